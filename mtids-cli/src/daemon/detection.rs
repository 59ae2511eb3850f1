//! The detection task: events from every router into one [`DetectionEngine`]; ban
//! decisions to the ledger and to every router's enforcement; alerts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtids_alert::{Action, Alert, Threat};
use mtids_detect::{
    Decision, DetectionEngine, Event, Finding, FindingKind, InterfaceAddress, IpPrefix, Outcome,
    Suppression, Timestamp,
};
use mtids_enforce::{BanOrder, Fleet};
use tokio::sync::mpsc;

use super::enforce::{self, Tracker};
use super::{Report, Shared, Stats, system_time, timestamp};

/// What router tasks send to the detection task.
#[allow(clippy::large_enum_variant)] // Events are the hot path: no box per event.
pub(crate) enum Input {
    /// One event seen on a router at `now`.
    Event {
        /// Where it came from: an index into `Shared::event_counters` (a configured
        /// router's index, or the `syslog` source after them).
        source: usize,
        now: Timestamp,
        event: Event<'static>,
        observed: Instant,
    },
    /// Events of one source in the order seen (a syslog read): one message, not one
    /// per line. `permit` holds their places in the syslog listeners' bounded queue
    /// until they are consumed.
    Events {
        /// As in [`Input::Event`].
        source: usize,
        now: Timestamp,
        events: Vec<Event<'static>>,
        observed: Instant,
        permit: tokio::sync::OwnedSemaphorePermit,
    },
    /// A router's own addresses (never banned).
    RouterAddresses {
        router: usize,
        addresses: Vec<InterfaceAddress>,
    },
    /// Decisions pulled from the CrowdSec LAPI: applied here, through the same guard.
    Crowdsec(Box<mtids_crowdsec::StreamUpdate>),
}

/// A router task's end of the channel to the detection task: its events are counted
/// under its own source.
#[derive(Clone)]
pub(crate) struct EventSender {
    source: usize,
    tx: mpsc::Sender<Input>,
}

impl EventSender {
    /// The sender of the event source `source` (see [`Input::Event`]).
    pub(crate) fn new(source: usize, tx: mpsc::Sender<Input>) -> EventSender {
        EventSender { source, tx }
    }

    /// The event source to put in [`Input::Event`].
    pub(crate) fn source(&self) -> usize {
        self.source
    }

    /// Sends, waiting while the detection task is behind.
    pub(crate) async fn send(&self, input: Input) -> Result<(), mpsc::error::SendError<Input>> {
        self.tx.send(input).await
    }
}

/// How often windows are expired when no event arrives.
const TICK: Duration = Duration::from_millis(200);

pub(crate) async fn run_detection(
    shared: Arc<Shared>,
    mut engine: DetectionEngine,
    mut inputs: mpsc::Receiver<Input>,
    mut enforcement: Enforcement,
) {
    restore_bans(&shared, &mut engine);
    let mut ledger_sync = super::ledger_sync::LedgerSync::new(&shared);
    let mut ledger_tick = tokio::time::interval(super::ledger_sync::SYNC_EVERY);
    ledger_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut own: BTreeMap<usize, Vec<InterfaceAddress>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut dry_run_bans = DryRunBans::default();
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let observed;
        // The source of the event that completed a finding: the router in its evidence.
        let seen_by;
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { break };
                match input {
                    Input::Event { source, now, event, observed: at } => {
                        Stats::bump(&shared.stats.events);
                        shared.web.events(shared.now(), 1);
                        shared.live.event(source, now, shared.now());
                        if let Some(counters) = shared.event_counters.get(source) {
                            counters.count(event.kind());
                        }
                        engine.expire_due(now, &mut outcomes);
                        engine.observe(now, &event, &mut outcomes);
                        observed = at;
                        seen_by = Some(source);
                    }
                    Input::Events { source, now, events, observed: at, permit } => {
                        shared.live.event(source, now, shared.now());
                        shared.web.events(shared.now(), events.len() as u64);
                        Stats::add(&shared.stats.events, events.len() as u64);
                        // Counted per run of one kind: one atomic add, not one per event.
                        let mut run: (&'static str, u64) = ("", 0);
                        let counters = shared.event_counters.get(source);
                        for event in &events {
                            let kind = event.kind();
                            if kind == run.0 {
                                run.1 += 1;
                            } else {
                                if let Some(counters) = counters {
                                    counters.count_many(run.0, run.1);
                                }
                                run = (kind, 1);
                            }
                            engine.expire_due(now, &mut outcomes);
                            engine.observe(now, event, &mut outcomes);
                        }
                        if let Some(counters) = counters {
                            counters.count_many(run.0, run.1);
                        }
                        drop(permit);
                        observed = at;
                        seen_by = Some(source);
                    }
                    Input::RouterAddresses { router, addresses } => {
                        own.insert(router, addresses);
                        engine.set_router_addresses(own.values().flatten().copied().collect());
                        continue;
                    }
                    Input::Crowdsec(update) => {
                        super::crowdsec::apply(&shared, &mut engine, &enforcement.fleet, *update);
                        continue;
                    }
                }
            }
            _ = tick.tick() => {
                let now = timestamp(shared.now());
                engine.expire_due(now, &mut outcomes);
                dry_run_bans.expire(&shared, now);
                observed = Instant::now();
                seen_by = None;
            }
            _ = ledger_tick.tick(), if shared.ledger.is_some() => {
                ledger_sync.tick(&shared, &mut engine, &enforcement.fleet);
                continue;
            }
            Some(command) = enforcement.commands.recv() => {
                super::control::apply(&shared, &mut engine, &own, command);
                continue;
            }
            _ = shutdown.changed() => break,
        }
        for outcome in outcomes.drain(..) {
            handle_outcome(
                &shared,
                &enforcement,
                &mut dry_run_bans,
                outcome,
                observed,
                seen_by,
            );
        }
    }
}

/// In dry-run mode there is no ledger: the `mtids_active_bans` gauge counts the ban
/// decisions whose duration has not run out.
#[derive(Default)]
struct DryRunBans {
    until: HashMap<IpPrefix, Timestamp>,
}

impl DryRunBans {
    fn insert(&mut self, shared: &Shared, target: IpPrefix, until: Timestamp) {
        self.until.insert(target, until);
        shared.metrics.set_active_bans(self.until.len() as u64);
    }

    fn expire(&mut self, shared: &Shared, now: Timestamp) {
        let before = self.until.len();
        self.until.retain(|_, until| *until > now);
        if self.until.len() != before {
            shared.metrics.set_active_bans(self.until.len() as u64);
        }
    }
}

/// Tells the policy about bans still active in the ledger, so a restart neither bans
/// them again nor forgets the escalation.
pub(crate) fn restore_bans(shared: &Shared, engine: &mut DetectionEngine) {
    let now_sys = shared.now();
    let now = timestamp(now_sys);
    let Some(active) = shared.with_ledger("reading active bans", |l| l.active(None, now_sys))
    else {
        return;
    };
    for ban in &active {
        let Ok(target) = ban.target.parse() else {
            continue;
        };
        let until = ban
            .expires
            .map_or(Timestamp::from_millis(u64::MAX), timestamp);
        engine.policy_mut().restore_ban(now, target, until, 1);
    }
    if !active.is_empty() {
        tracing::info!(bans = active.len(), "restored active bans from the ledger");
    }
}

/// Where ban decisions go: the routers' engine, and the alerts waiting for its answers.
pub(crate) struct Enforcement {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) tracker: Arc<Tracker>,
    /// From the control socket: reload, manual bans and unbans.
    pub(crate) commands: mpsc::Receiver<super::control::EngineCommand>,
}

fn handle_outcome(
    shared: &Arc<Shared>,
    enforcement: &Enforcement,
    dry_run_bans: &mut DryRunBans,
    outcome: Outcome,
    observed: Instant,
    seen_by: Option<usize>,
) {
    Stats::bump(&shared.stats.findings);
    shared.metrics.finding(outcome.finding().detector);
    shared.metrics.decision(matches!(outcome, Outcome::Ban(_)));
    shared.web.outcome(shared.now(), &outcome);
    shared.report(Report::Outcome {
        outcome: Box::new(outcome.clone()),
        observed,
    });
    match outcome {
        Outcome::Ban(decision) => {
            if shared.dry_run() {
                let now = timestamp(shared.now());
                let until = Timestamp::from_millis(now.as_millis().saturating_add(
                    u64::try_from(decision.duration.as_millis()).unwrap_or(u64::MAX),
                ));
                dry_run_bans.insert(shared, decision.target, until);
            }
            ban(shared, enforcement, decision, observed, seen_by);
        }
        Outcome::Suppressed(s) => {
            tracing::info!(
                source = %s.finding.source,
                detector = s.finding.detector,
                reason = %s.reason,
                "finding not banned"
            );
            // Tell a human about guarded attackers; repeats of banned ones are noise.
            if matches!(s.reason, Suppression::Guarded { .. }) {
                shared.alerts.submit(alert_for(
                    &s.finding,
                    Action::Suppressed {
                        reason: s.reason.to_string(),
                    },
                    describe(&s.finding),
                ));
            }
        }
    }
}

fn ban(
    shared: &Arc<Shared>,
    enforcement: &Enforcement,
    decision: Decision,
    observed: Instant,
    seen_by: Option<usize>,
) {
    Stats::bump(&shared.stats.bans);
    let target = decision.target.to_string();
    let detector = decision.finding.detector;
    let routers: Vec<String> = shared
        .config
        .routers
        .iter()
        .map(|r| r.name.clone())
        .collect();
    if shared.dry_run() {
        log_ban(shared, &decision);
        for router in &routers {
            shared.report(Report::Blocked {
                router: router.clone(),
                target: target.clone(),
                detector: detector.to_owned(),
                latency: observed.elapsed(),
                dry_run: true,
            });
        }
        shared.alerts.submit(alert_for(
            &decision.finding,
            Action::DryRun {
                duration: Some(decision.duration),
                routers,
            },
            decision.reason.clone(),
        ));
        return;
    }
    let remove_connections = shared.config.enforcement.remove_connections
        && decision.finding.kind == FindingKind::AsymmetricConnection;
    let mut evidence = mtids_enforce::evidence_json(&decision.finding);
    if let (Some(object), Some(source)) = (evidence.as_object_mut(), seen_by) {
        let router = shared
            .config
            .routers
            .get(source)
            .map_or("syslog", |r| r.name.as_str());
        object.insert("router".to_owned(), router.into());
    }
    let ban = mtids_enforce::Ban::new(
        decision.target,
        Some(decision.duration),
        detector,
        decision.reason.clone(),
    )
    .with_evidence(evidence);
    // Recorded in the ledger before anything else, then applied by each router's engine
    // whenever that router is connected; the alert waits for the answers.
    let reason = decision.reason.clone();
    let finding = decision.finding.clone();
    let tag = enforcement.tracker.track(
        decision.finding,
        decision.duration,
        decision.reason,
        &routers,
    );
    let order = BanOrder::new(ban)
        .tag(tag)
        .since(observed)
        .drop_connections(remove_connections);
    enforce::order(shared, &enforcement.fleet, &enforcement.tracker, &order);
    super::crowdsec::push(shared, decision.target, decision.duration, &finding);
    // Logged once the fleet has recorded it for every router: a daemon killed right
    // after (`kill -9` mid-burst) finds every decision it logged pending in the ledger,
    // and the next start's reconcile applies it.
    log_ban_text(shared, &target, detector, order.ban.duration, &reason);
}

fn log_ban(shared: &Shared, decision: &Decision) {
    log_ban_text(
        shared,
        &decision.target.to_string(),
        decision.finding.detector,
        Some(decision.duration),
        &decision.reason,
    );
}

fn log_ban_text(
    shared: &Shared,
    target: &str,
    detector: &str,
    duration: Option<Duration>,
    reason: &str,
) {
    // `address`, not `target`: JSON logs put the event's module under `target`.
    tracing::warn!(
        address = %target,
        detector,
        duration_secs = duration.map_or(0, |d| d.as_secs()),
        %reason,
        dry_run = shared.dry_run(),
        "ban"
    );
}

/// The alert crate's threat for a finding kind.
pub(crate) fn threat(kind: FindingKind) -> Threat {
    match kind {
        FindingKind::PortScan | FindingKind::HostSweep => Threat::PortScan,
        FindingKind::BruteForce | FindingKind::UserEnumeration => Threat::LoginBruteForce,
        FindingKind::AsymmetricConnection => Threat::AsymmetricConnection,
        FindingKind::LoginThenCpuSpike => Threat::LoginThenCpuSpike,
        other => Threat::Other(other.as_str().to_owned()),
    }
}

fn severity(s: mtids_detect::Severity) -> mtids_alert::Severity {
    match s {
        mtids_detect::Severity::Low => mtids_alert::Severity::Low,
        mtids_detect::Severity::Medium => mtids_alert::Severity::Medium,
        mtids_detect::Severity::High => mtids_alert::Severity::High,
        mtids_detect::Severity::Critical => mtids_alert::Severity::Critical,
    }
}

/// One line of evidence: the count against the threshold, and what was involved.
pub(crate) fn describe(f: &Finding) -> String {
    let e = &f.evidence;
    let mut text = format!(
        "{} {}/{} in {}s",
        f.kind,
        e.count,
        e.threshold,
        e.window.as_secs()
    );
    if !e.users.is_empty() {
        text.push_str(&format!("; users {}", e.users.join(", ")));
    }
    if !e.services.is_empty() {
        text.push_str(&format!("; via {}", e.services.join(", ")));
    }
    if !e.ports.is_empty() {
        let ports: Vec<String> = e.ports.iter().take(8).map(u16::to_string).collect();
        text.push_str(&format!("; ports {}", ports.join(",")));
    }
    if let Some(sample) = e.samples.first() {
        text.push_str(&format!("; e.g. {sample}"));
    }
    text
}

pub(crate) fn alert_for(f: &Finding, action: Action, evidence: String) -> Alert {
    Alert::new(
        threat(f.kind),
        f.source.to_string(),
        action,
        evidence,
        system_time(f.time),
    )
    .with_detector(f.detector)
    .with_severity(severity(f.severity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finding_kind_maps_to_a_threat() {
        assert_eq!(threat(FindingKind::PortScan), Threat::PortScan);
        assert_eq!(threat(FindingKind::HostSweep), Threat::PortScan);
        assert_eq!(threat(FindingKind::BruteForce), Threat::LoginBruteForce);
        assert_eq!(
            threat(FindingKind::UserEnumeration),
            Threat::LoginBruteForce
        );
        assert_eq!(
            threat(FindingKind::AsymmetricConnection),
            Threat::AsymmetricConnection
        );
        assert_eq!(
            threat(FindingKind::LoginThenCpuSpike),
            Threat::LoginThenCpuSpike
        );
    }
}
