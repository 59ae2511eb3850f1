//! The [`Detector`] trait, and [`DetectorSet`]: every configured detector behind one
//! detector.

use crate::config::{ConfigError, DetectionConfig};
use crate::detectors::{
    AsymmetricConnectionDetector, BruteForceDetector, LoginCpuSpikeDetector, PortScanDetector,
};
use crate::guard::InterfaceAddress;
use crate::{Event, Finding, Timestamp};

/// A synchronous, pure detector: events in, findings out, time passed in.
///
/// The caller drives it the way quinn drives a connection:
/// 1. [`Detector::observe`] for every event, with the event's time as `now`; findings are
///    pushed to `findings` (the caller drains that vector; it is never cleared here).
/// 2. Before sleeping, [`Detector::poll_timeout`]: the earliest time at which state can
///    expire. When that time has come, [`Detector::handle_timeout`] with the current time.
///
/// A detector never reads a clock and never blocks, so the same events and times always
/// give the same findings. Its memory is bounded: every detector caps the sources it
/// tracks (evicting the one seen least recently) and forgets windows that have passed.
pub trait Detector {
    /// The detector's name as in the configuration (`port_scan`, ...); findings carry it.
    fn name(&self) -> &'static str;

    /// Feeds one event seen at `now`; pushes any finding it completes.
    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>);

    /// When [`Detector::handle_timeout`] should next be called; `None` when nothing is
    /// pending.
    fn poll_timeout(&self) -> Option<Timestamp>;

    /// Expires state whose window ended at or before `now`; pushes any finding that the
    /// passage of time completes (none of the built-in detectors does).
    fn handle_timeout(&mut self, now: Timestamp, findings: &mut Vec<Finding>);

    /// How many sources (or source keys) the detector tracks now; never above its cap.
    fn tracked_sources(&self) -> usize;
}

impl<D: Detector + ?Sized> Detector for Box<D> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        (**self).observe(now, event, findings);
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        (**self).poll_timeout()
    }
    fn handle_timeout(&mut self, now: Timestamp, findings: &mut Vec<Finding>) {
        (**self).handle_timeout(now, findings);
    }
    fn tracked_sources(&self) -> usize {
        (**self).tracked_sources()
    }
}

/// A disabled detector (`None`) observes nothing, like tracing's `Option<Layer>`.
impl<D: Detector> Detector for Option<D> {
    fn name(&self) -> &'static str {
        self.as_ref().map_or("disabled", Detector::name)
    }
    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        if let Some(d) = self {
            d.observe(now, event, findings);
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.as_ref().and_then(Detector::poll_timeout)
    }
    fn handle_timeout(&mut self, now: Timestamp, findings: &mut Vec<Finding>) {
        if let Some(d) = self {
            d.handle_timeout(now, findings);
        }
    }
    fn tracked_sources(&self) -> usize {
        self.as_ref().map_or(0, Detector::tracked_sources)
    }
}

/// Detectors composed at run time: each sees every event in order, and the earliest
/// timeout wins, like tracing's `Vec<Layer>`.
impl<D: Detector> Detector for Vec<D> {
    fn name(&self) -> &'static str {
        "set"
    }
    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        for d in self.iter_mut() {
            d.observe(now, event, findings);
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.iter().filter_map(Detector::poll_timeout).min()
    }
    fn handle_timeout(&mut self, now: Timestamp, findings: &mut Vec<Finding>) {
        for d in self.iter_mut() {
            d.handle_timeout(now, findings);
        }
    }
    fn tracked_sources(&self) -> usize {
        self.iter().map(Detector::tracked_sources).sum()
    }
}

/// How far one source has come towards a detector's threshold: what `mtids explain` shows
/// after each line. Read with [`DetectorSet::progress`]; reading changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The detector's name (`port_scan`, `brute_force`, ...).
    pub detector: &'static str,
    /// What is counted (`weighted distinct ports`, `failures`, `distinct users`, ...).
    pub measure: &'static str,
    /// The count in the window now (0 right after a finding: the detector starts again).
    pub count: u64,
    /// The count at which the detector fires.
    pub threshold: u64,
    /// How long an event counts.
    pub window: std::time::Duration,
}

/// The built-in detectors that a [`DetectionConfig`] enables, plus any others added with
/// [`DetectorSet::push`]. It is itself a [`Detector`]; the built-ins are held by value, so
/// the hot path has no dynamic dispatch.
#[derive(Default)]
pub struct DetectorSet {
    /// Port scans and host sweeps, when enabled.
    pub port_scan: Option<PortScanDetector>,
    /// Brute force and user enumeration, when enabled.
    pub brute_force: Option<BruteForceDetector>,
    /// Unanswered connections, when enabled.
    pub asymmetric_connection: Option<AsymmetricConnectionDetector>,
    /// Login followed by a CPU spike, when enabled.
    pub login_cpu_spike: Option<LoginCpuSpikeDetector>,
    /// Detectors added by the embedding application.
    pub others: Vec<Box<dyn Detector + Send>>,
}

impl std::fmt::Debug for DetectorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorSet")
            .field("port_scan", &self.port_scan.is_some())
            .field("brute_force", &self.brute_force.is_some())
            .field(
                "asymmetric_connection",
                &self.asymmetric_connection.is_some(),
            )
            .field("login_cpu_spike", &self.login_cpu_spike.is_some())
            .field("others", &self.others.len())
            .finish()
    }
}

impl DetectorSet {
    /// The detectors that `config` enables (validated first).
    ///
    /// ```
    /// use mtids_detect::{parse_log_row, DetectionConfig, Detector, DetectorSet, FindingKind, Timestamp};
    ///
    /// let mut config = DetectionConfig::default();
    /// config.port_scan.threshold = 3;
    /// let mut set = DetectorSet::new(&config)?;
    /// let mut findings = Vec::new();
    /// for (i, port) in [21, 22, 23].into_iter().enumerate() {
    ///     let msg = format!("input: in:ether1 out:(unknown 0), proto TCP (SYN), 198.51.100.7:4000->192.0.2.1:{port}, len 60");
    ///     set.observe(Timestamp::from_secs(i as u64), &parse_log_row("firewall,info", &msg), &mut findings);
    /// }
    /// assert_eq!(findings.len(), 1);
    /// assert_eq!(findings[0].kind, FindingKind::PortScan);
    /// assert_eq!(findings[0].evidence.ports, [21, 22, 23]);
    /// # Ok::<(), mtids_detect::ConfigError>(())
    /// ```
    pub fn new(config: &DetectionConfig) -> Result<DetectorSet, ConfigError> {
        config.validate()?;
        Ok(DetectorSet {
            port_scan: config
                .port_scan
                .enabled
                .then(|| PortScanDetector::new(config.port_scan.clone()))
                .transpose()?,
            brute_force: config
                .brute_force
                .enabled
                .then(|| BruteForceDetector::new(config.brute_force.clone()))
                .transpose()?,
            asymmetric_connection: config
                .asymmetric_connection
                .enabled
                .then(|| AsymmetricConnectionDetector::new(config.asymmetric_connection.clone()))
                .transpose()?,
            login_cpu_spike: config
                .login_cpu_spike
                .enabled
                .then(|| LoginCpuSpikeDetector::new(config.login_cpu_spike.clone()))
                .transpose()?,
            others: Vec::new(),
        })
    }

    /// Adds a detector of the application's own.
    pub fn push(&mut self, detector: Box<dyn Detector + Send>) {
        self.others.push(detector);
    }

    /// Tells the detectors that need it which networks are local (the router's interface
    /// networks, from `/ip/address/print`), for choosing the remote side of a connection.
    pub fn set_router_addresses(&mut self, addresses: &[InterfaceAddress]) {
        if let Some(d) = &mut self.asymmetric_connection {
            d.set_router_addresses(addresses);
        }
    }
}

impl DetectorSet {
    /// Where the source of `event` stands in each built-in detector that counts such
    /// events: one [`Progress`] per measure (brute force counts failures and distinct
    /// users). Empty when no enabled detector counts this event (a login success, a
    /// firewall row filtered out by `port_scan.chains`, an unrecognised line). Read-only;
    /// meant to be called right after [`Detector::observe`] with the same event.
    ///
    /// ```
    /// use mtids_detect::{parse_log_row, DetectionConfig, Detector, DetectorSet, Timestamp};
    ///
    /// let mut set = DetectorSet::new(&DetectionConfig::default())?;
    /// let event = parse_log_row("system,error,critical", "login failure for user admin from 198.51.100.7 via ssh");
    /// set.observe(Timestamp::from_secs(1), &event, &mut Vec::new());
    /// set.observe(Timestamp::from_secs(2), &event, &mut Vec::new());
    /// let progress = set.progress(&event);
    /// assert_eq!((progress[0].detector, progress[0].measure), ("brute_force", "failures"));
    /// assert_eq!((progress[0].count, progress[0].threshold), (2, 10));
    /// assert_eq!(progress[1].count, 1); // one distinct user
    /// # Ok::<(), mtids_detect::ConfigError>(())
    /// ```
    pub fn progress(&self, event: &Event<'_>) -> Vec<Progress> {
        let mut out = Vec::new();
        match event {
            Event::Firewall(row) => {
                if let (Some(d), Some(_)) = (&self.port_scan, row.dst.port) {
                    if d.accepts(row) {
                        out.push(d.progress(row.src.ip));
                    }
                }
            }
            Event::Auth(auth) => {
                if let Some(d) = &self.brute_force {
                    out.extend(d.progress(auth));
                }
            }
            _ => {}
        }
        out
    }
}

impl Detector for DetectorSet {
    fn name(&self) -> &'static str {
        "set"
    }

    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        // Each detector only looks at one kind of event: dispatch once here.
        match event {
            Event::Firewall(_) => self.port_scan.observe(now, event, findings),
            Event::Auth(_) => {
                self.brute_force.observe(now, event, findings);
                self.login_cpu_spike.observe(now, event, findings);
            }
            Event::Connection(_) => self.asymmetric_connection.observe(now, event, findings),
            Event::Resource(_) => self.login_cpu_spike.observe(now, event, findings),
            _ => {}
        }
        self.others.observe(now, event, findings);
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        [
            self.port_scan.poll_timeout(),
            self.brute_force.poll_timeout(),
            self.asymmetric_connection.poll_timeout(),
            self.login_cpu_spike.poll_timeout(),
            self.others.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, now: Timestamp, findings: &mut Vec<Finding>) {
        self.port_scan.handle_timeout(now, findings);
        self.brute_force.handle_timeout(now, findings);
        self.asymmetric_connection.handle_timeout(now, findings);
        self.login_cpu_spike.handle_timeout(now, findings);
        self.others.handle_timeout(now, findings);
    }

    fn tracked_sources(&self) -> usize {
        self.port_scan.tracked_sources()
            + self.brute_force.tracked_sources()
            + self.asymmetric_connection.tracked_sources()
            + self.login_cpu_spike.tracked_sources()
            + self.others.tracked_sources()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Evidence, FindingKind, Severity, Source};

    /// Fires on every event and asks for a timeout one second after the last one.
    struct Echo {
        last: Option<Timestamp>,
        timeouts: usize,
    }

    impl Detector for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn observe(&mut self, now: Timestamp, _: &Event<'_>, findings: &mut Vec<Finding>) {
            self.last = Some(now);
            findings.push(Finding {
                time: now,
                detector: "echo",
                kind: FindingKind::PortScan,
                severity: Severity::Low,
                source: Source::ip("192.0.2.9".parse().unwrap()),
                evidence: Evidence::default(),
            });
        }
        fn poll_timeout(&self) -> Option<Timestamp> {
            self.last.map(|t| t + std::time::Duration::from_secs(1))
        }
        fn handle_timeout(&mut self, _: Timestamp, _: &mut Vec<Finding>) {
            self.timeouts += 1;
            self.last = None;
        }
        fn tracked_sources(&self) -> usize {
            usize::from(self.last.is_some())
        }
    }

    fn echo() -> Echo {
        Echo {
            last: None,
            timeouts: 0,
        }
    }

    #[test]
    fn vec_option_and_box_compose() {
        let mut stack: Vec<Box<dyn Detector + Send>> = vec![
            Box::new(echo()),
            Box::new(None::<Echo>),
            Box::new(Some(echo())),
        ];
        let mut findings = Vec::new();
        stack.observe(Timestamp::from_secs(5), &Event::Unrecognized, &mut findings);
        assert_eq!(findings.len(), 2, "the disabled detector sees nothing");
        assert_eq!(stack.tracked_sources(), 2);
        assert_eq!(stack.poll_timeout(), Some(Timestamp::from_secs(6)));
        stack.handle_timeout(Timestamp::from_secs(6), &mut findings);
        assert_eq!(stack.poll_timeout(), None);
        assert_eq!(stack.tracked_sources(), 0);
    }

    #[test]
    fn a_set_runs_added_detectors_and_takes_the_earliest_timeout() {
        let mut set = DetectorSet::new(&DetectionConfig::default()).unwrap();
        set.push(Box::new(echo()));
        let mut findings = Vec::new();
        set.observe(Timestamp::from_secs(1), &Event::Unrecognized, &mut findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(set.poll_timeout(), Some(Timestamp::from_secs(2)));
        assert!(format!("{set:?}").contains("others: 1"));
    }
}
