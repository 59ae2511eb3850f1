//! [`DetectionEngine`]: the detectors, the guard and the policy wired together.

use crate::config::{ConfigError, DetectionConfig};
use crate::detector::{Detector, DetectorSet};
use crate::guard::{Guard, InterfaceAddress};
use crate::linker::TunnelLinker;
use crate::policy::{Outcome, Policy};
use crate::{Event, Finding, Timestamp};

/// Events in, [`Outcome`]s out: every finding of the [`DetectorSet`] goes through the
/// [`Policy`] (and so the [`Guard`]), and comes out as a ban or as a suppressed finding to
/// report. Like its parts it never reads a clock; drive it with
/// [`DetectionEngine::observe`], and call [`DetectionEngine::expire_due`] before each
/// event (or [`DetectionEngine::handle_timeout`] when [`DetectionEngine::poll_timeout`]
/// says so).
#[derive(Debug)]
pub struct DetectionEngine {
    detectors: DetectorSet,
    policy: Policy,
    tunnels: TunnelLinker,
    findings: Vec<Finding>,
    /// The point in time [`DetectionEngine::expire_due`] last asked the timeout at.
    expired_at: Option<Timestamp>,
}

impl DetectionEngine {
    /// An engine for `config` (validated; the error names the bad key).
    pub fn new(config: &DetectionConfig) -> Result<DetectionEngine, ConfigError> {
        let detectors = DetectorSet::new(config)?;
        let policy = Policy::new(config.policy.clone(), Guard::new(&config.guard)?)?;
        let mut engine = DetectionEngine {
            detectors,
            policy,
            tunnels: TunnelLinker::default(),
            findings: Vec::new(),
            expired_at: None,
        };
        let known: Vec<InterfaceAddress> = engine.policy.guard().router_addresses().to_vec();
        engine.detectors.set_router_addresses(&known);
        Ok(engine)
    }

    /// Feeds one event seen at `now`; pushes one outcome per finding it completes.
    ///
    /// Tunnel lines go through a [`TunnelLinker`] first: a PPTP failure linked to its
    /// connection's address reaches the detectors as an [`Event::Auth`] failure too.
    pub fn observe(&mut self, now: Timestamp, event: &Event<'_>, outcomes: &mut Vec<Outcome>) {
        self.detectors.observe(now, event, &mut self.findings);
        if matches!(event, Event::TunnelConnect(_) | Event::TunnelFailure(_)) {
            if let Some(auth) = self.tunnels.link(now, event) {
                self.detectors
                    .observe(now, &Event::Auth(auth), &mut self.findings);
            }
        }
        self.decide(now, outcomes);
    }

    /// When [`DetectionEngine::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [self.detectors.poll_timeout(), self.policy.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs [`DetectionEngine::handle_timeout`] if it is due at `now`: what a driver does
    /// before each event it observes.
    ///
    /// Asking [`DetectionEngine::poll_timeout`] touches the oldest entry of every table (a
    /// cache miss each under a flood), so it is asked once per point in time: what is
    /// observed at `now` cannot expire at `now`, as every built-in window is at least a
    /// second. Not so with detectors added through [`DetectionEngine::detectors_mut`] (their
    /// windows are theirs) or with `policy.remember_secs = 0`: then it asks every time.
    pub fn expire_due(&mut self, now: Timestamp, outcomes: &mut Vec<Outcome>) {
        let once_per_instant =
            self.detectors.others.is_empty() && self.policy.config().remember_secs > 0;
        if once_per_instant && self.expired_at == Some(now) {
            return;
        }
        self.expired_at = Some(now);
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.handle_timeout(now, outcomes);
        }
    }

    /// Expires windows and offender memory due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp, outcomes: &mut Vec<Outcome>) {
        self.detectors.handle_timeout(now, &mut self.findings);
        self.policy.handle_timeout(now);
        self.decide(now, outcomes);
    }

    /// Sets the router's own addresses (from `/ip/address/print`): the guard never bans
    /// them, and their networks count as local for the asymmetric-connection detector.
    pub fn set_router_addresses(&mut self, addresses: Vec<InterfaceAddress>) {
        self.detectors.set_router_addresses(&addresses);
        self.policy.guard_mut().set_router_addresses(addresses);
    }

    /// The detectors.
    pub fn detectors(&self) -> &DetectorSet {
        &self.detectors
    }

    /// The detectors, e.g. to add one of the application's own.
    pub fn detectors_mut(&mut self) -> &mut DetectorSet {
        &mut self.detectors
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy, e.g. to restore bans from a ledger.
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    fn decide(&mut self, now: Timestamp, outcomes: &mut Vec<Outcome>) {
        if self.findings.is_empty() {
            return; // The common case: most events complete nothing.
        }
        for f in self.findings.drain(..) {
            outcomes.push(self.policy.decide(now, f));
        }
    }
}
