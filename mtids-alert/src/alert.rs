//! What a notification says: [`Alert`] (one detection and what was done about it) and
//! [`Summary`] (what the rate limit held back), wrapped in a [`Notification`].

use std::time::{Duration, SystemTime};

/// The kind of threat a detector reported.
///
/// `mtids-detect` owns the detection types; the CLI maps its findings onto this enum so
/// this crate depends on no other mtids crate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Threat {
    /// Many ports or hosts probed by one source.
    PortScan,
    /// Repeated failed logins (SSH, Winbox, API, FTP, web) from one source.
    LoginBruteForce,
    /// Connections seen in one direction only (spoofing, stealth scans).
    AsymmetricConnection,
    /// A successful login followed by a router CPU spike.
    LoginThenCpuSpike,
    /// Anything else, named by the detector (the text is escaped like all outside text).
    Other(String),
}

impl Threat {
    /// A human-readable name, e.g. "Login brute force".
    pub fn label(&self) -> &str {
        match self {
            Self::PortScan => "Port scan",
            Self::LoginBruteForce => "Login brute force",
            Self::AsymmetricConnection => "Asymmetric connection",
            Self::LoginThenCpuSpike => "Login then CPU spike",
            Self::Other(name) => name,
        }
    }

    /// A stable machine-readable key, e.g. `login_brute_force` (`other` for [`Threat::Other`]).
    pub fn key(&self) -> &'static str {
        match self {
            Self::PortScan => "port_scan",
            Self::LoginBruteForce => "login_brute_force",
            Self::AsymmetricConnection => "asymmetric_connection",
            Self::LoginThenCpuSpike => "login_then_cpu_spike",
            Self::Other(_) => "other",
        }
    }
}

/// How serious the detector thinks the finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Likely hostile.
    Medium,
    /// Hostile.
    High,
    /// Hostile and possibly successful (e.g. a login followed by a CPU spike).
    Critical,
}

impl Severity {
    /// Lower-case name: `low`, `medium`, `high`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// What the enforcer did about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// The source was put on the block list.
    Blocked {
        /// How long the block lasts; `None` means until removed by hand.
        duration: Option<Duration>,
        /// The routers (names as configured) that accepted the block.
        routers: Vec<String>,
    },
    /// Dry-run mode: the source would have been blocked, nothing was changed.
    DryRun {
        /// How long the block would have lasted; `None` means until removed by hand.
        duration: Option<Duration>,
        /// The routers the block would have gone to.
        routers: Vec<String>,
    },
    /// No block, on purpose (allowlisted, router-own address, already blocked...).
    Suppressed {
        /// Why, in a few words, e.g. "allowlisted (10.0.0.0/8)".
        reason: String,
    },
}

impl Action {
    /// A stable machine-readable key: `blocked`, `dry_run` or `suppressed`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Blocked { .. } => "blocked",
            Self::DryRun { .. } => "dry_run",
            Self::Suppressed { .. } => "suppressed",
        }
    }

    /// Whether a block was actually placed.
    pub fn is_block(&self) -> bool {
        matches!(self, Self::Blocked { .. })
    }
}

/// One detection and what was done about it: the unit handed to a [`crate::Dispatcher`].
///
/// Every text field may come from outside (log lines carry attacker-chosen user names);
/// renderers escape and bound them, so callers pass them as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alert {
    /// What was detected.
    pub threat: Threat,
    /// The offending source as text: an IP address, or a MAC address for layer-2 findings.
    pub source: String,
    /// What the enforcer did.
    pub action: Action,
    /// The detector's evidence in one line, e.g. "12 failed logins for admin in 60 s".
    pub evidence: String,
    /// When the detector decided.
    pub detected_at: SystemTime,
    /// When the block landed on the router(s), if it did.
    pub enforced_at: Option<SystemTime>,
    /// The detector's name, if the caller has one.
    pub detector: Option<String>,
    /// The detector's severity, if it gives one.
    pub severity: Option<Severity>,
}

impl Alert {
    /// An alert with the required fields; add the optional ones with the `with_*` methods.
    pub fn new(
        threat: Threat,
        source: impl Into<String>,
        action: Action,
        evidence: impl Into<String>,
        detected_at: SystemTime,
    ) -> Self {
        Self {
            threat,
            source: source.into(),
            action,
            evidence: evidence.into(),
            detected_at,
            enforced_at: None,
            detector: None,
            severity: None,
        }
    }

    /// Sets the time the block landed.
    #[must_use]
    pub fn with_enforced_at(mut self, at: SystemTime) -> Self {
        self.enforced_at = Some(at);
        self
    }

    /// Sets the detector's name.
    #[must_use]
    pub fn with_detector(mut self, name: impl Into<String>) -> Self {
        self.detector = Some(name.into());
        self
    }

    /// Sets the severity.
    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }
}

/// What the rate limit held back during one window, sent as a single message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// How many alerts were held back.
    pub held_back: u64,
    /// How many of those were blocks ([`Action::Blocked`]).
    pub blocks: u64,
    /// The window length (one minute by default).
    pub window: Duration,
    /// The sources with the most held-back alerts, most first (at most five).
    pub top_sources: Vec<SourceCount>,
}

impl Summary {
    /// A summary (the dispatcher makes these; notifier tests may too).
    pub fn new(
        held_back: u64,
        blocks: u64,
        window: Duration,
        top_sources: Vec<SourceCount>,
    ) -> Self {
        Self {
            held_back,
            blocks,
            window,
            top_sources,
        }
    }
}

/// A source and how many alerts it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCount {
    /// The source as text.
    pub source: String,
    /// How many alerts.
    pub count: u64,
}

/// What a [`crate::Notifier`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// One alert.
    Alert(Alert),
    /// A roll-up of alerts held back by the rate limit.
    Summary(Summary),
}

impl From<Alert> for Notification {
    fn from(alert: Alert) -> Self {
        Self::Alert(alert)
    }
}

impl From<Summary> for Notification {
    fn from(summary: Summary) -> Self {
        Self::Summary(summary)
    }
}
