//! [`LoginCpuSpikeDetector`]: a successful login followed closely by a CPU spike.

use std::collections::VecDeque;
use std::time::Duration;

use super::table::SourceTable;
use crate::config::{ConfigError, check_range, check_window};
use crate::detector::Detector;
use crate::finding::{Evidence, FindingKind, MAX_EVIDENCE_TEXT, Severity, Source, truncate};
use crate::{Auth, AuthKind, Event, Finding, Timestamp};

/// Settings of the login-then-CPU-spike detector, the `[login_cpu_spike]` table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginCpuSpikeConfig {
    /// Run this detector. Default `true`.
    pub enabled: bool,
    /// A spike counts when it comes less than this long after the login. Default 120 s:
    /// a dropped miner or flood script starts within a minute or two, and with the usual
    /// 10-30 s resource poll that is several samples.
    pub window_secs: u64,
    /// A sample at or above this CPU load (percent) is a spike. Default 90: a router
    /// rarely sits there, and a miner pins it at 100.
    pub cpu_above: u8,
    /// A sample at least this many points above the baseline is a spike too. Default 40
    /// (e.g. 15 % -> 55 %); 0 turns the relative test off.
    pub rise_over_baseline: u8,
    /// The baseline is the average load of the samples in this span before the login.
    /// Default 300 s. With no sample in it, only `cpu_above` applies.
    pub baseline_secs: u64,
    /// Most logins watched at once; past it the oldest is forgotten. Default 4096.
    pub max_logins: usize,
}

impl Default for LoginCpuSpikeConfig {
    fn default() -> Self {
        LoginCpuSpikeConfig {
            enabled: true,
            window_secs: 120,
            cpu_above: 90,
            rise_over_baseline: 40,
            baseline_secs: 300,
            max_logins: 4096,
        }
    }
}

impl LoginCpuSpikeConfig {
    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_window("login_cpu_spike.window_secs", self.window_secs)?;
        check_range("login_cpu_spike.cpu_above", self.cpu_above.into(), 1, 100)?;
        check_range(
            "login_cpu_spike.rise_over_baseline",
            self.rise_over_baseline.into(),
            0,
            100,
        )?;
        check_window("login_cpu_spike.baseline_secs", self.baseline_secs)?;
        check_range(
            "login_cpu_spike.max_logins",
            self.max_logins as u64,
            1,
            1 << 20,
        )?;
        Ok(())
    }
}

/// Most CPU samples kept for the baseline, whatever the poll rate.
const MAX_CPU_SAMPLES: usize = 512;

#[derive(Debug, Clone)]
struct Login {
    at: Timestamp,
    baseline: Option<u8>,
    user: String,
    service: String,
}

/// The name findings of this detector carry.
pub const LOGIN_CPU_SPIKE: &str = "login_cpu_spike";

/// Detects a successful login from X followed within `window_secs` by a CPU sample at or
/// above `cpu_above`, or at least `rise_over_baseline` points over the average load seen in
/// the `baseline_secs` before the login: the finding is against X.
///
/// Several logins in the window: **every** source that logged in less than `window_secs`
/// before the spike is flagged, each once. The router cannot tell us which session caused
/// the load, and a quiet admin session next to a malicious one is exactly what an attacker
/// would hide behind; picking only the latest would let an attacker log in first and wait
/// for a legitimate login to take the blame. The finding says how many logins shared the
/// window (`evidence.count`) and is [`Severity::Medium`] instead of [`Severity::High`] when
/// there were several, and the guard keeps allowlisted admins from ever being banned.
/// A login is dropped once flagged or once its window has passed; a logout does not end
/// it (a backdoor keeps running after its installer logs out).
///
/// Memory: about 150 bytes per watched login plus the user and service text; at most 512
/// CPU samples (16 bytes each).
pub struct LoginCpuSpikeDetector {
    config: LoginCpuSpikeConfig,
    cpu: VecDeque<(Timestamp, u8)>,
    logins: SourceTable<Source, Login>,
}

impl std::fmt::Debug for LoginCpuSpikeDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCpuSpikeDetector")
            .field("config", &self.config)
            .field("logins", &self.logins.len())
            .finish()
    }
}

impl LoginCpuSpikeDetector {
    /// A detector with validated settings.
    pub fn new(config: LoginCpuSpikeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(LoginCpuSpikeDetector {
            cpu: VecDeque::new(),
            logins: SourceTable::new(config.max_logins),
            config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &LoginCpuSpikeConfig {
        &self.config
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.config.window_secs)
    }

    /// Records a successful login at `now` (a second login from the same source restarts
    /// its window and baseline).
    pub fn observe_login(&mut self, now: Timestamp, auth: &Auth<'_>) {
        let since = now - Duration::from_secs(self.config.baseline_secs);
        let (sum, n) = self
            .cpu
            .iter()
            .filter(|(t, _)| *t >= since && *t < now)
            .fold((0u32, 0u32), |(s, n), (_, c)| (s + u32::from(*c), n + 1));
        let baseline = (n > 0).then(|| u8::try_from(sum / n).unwrap_or(100));
        // Text is kept raw (bounded) and cleaned only if it ends up in a finding; the
        // strings of a known source are reused.
        let login = self.logins.touch(Source::from(auth.source), now, || Login {
            at: now,
            baseline,
            user: String::new(),
            service: String::new(),
        });
        login.at = now;
        login.baseline = baseline;
        login.user.clear();
        login.user.push_str(truncate(&auth.user, MAX_EVIDENCE_TEXT));
        login.service.clear();
        login.service.push_str(truncate(
            auth.service.as_deref().unwrap_or(""),
            MAX_EVIDENCE_TEXT,
        ));
    }

    /// Records a CPU-load sample at `now`; flags the logins it is a spike for.
    pub fn observe_cpu(&mut self, now: Timestamp, cpu_load: u8, findings: &mut Vec<Finding>) {
        if self.cpu.len() >= MAX_CPU_SAMPLES {
            self.cpu.pop_front();
        }
        self.cpu.push_back((now, cpu_load));
        let keep_since = now - Duration::from_secs(self.config.baseline_secs);
        while self.cpu.front().is_some_and(|(t, _)| *t < keep_since) {
            self.cpu.pop_front();
        }

        let window = self.window();
        let cfg = &self.config;
        let is_spike = |login: &Login| {
            cpu_load >= cfg.cpu_above
                || (cfg.rise_over_baseline > 0
                    && login
                        .baseline
                        .is_some_and(|b| cpu_load >= b.saturating_add(cfg.rise_over_baseline)))
        };
        let in_window = |login: &Login| now >= login.at && now - login.at < window;
        let flagged: Vec<(Source, Login)> = self
            .logins
            .iter()
            .filter(|(_, l)| in_window(l) && is_spike(l))
            .map(|(s, l)| (*s, l.clone()))
            .collect();
        if flagged.is_empty() {
            return;
        }
        let concurrent = self.logins.iter().filter(|(_, l)| in_window(l)).count();
        let threshold = match flagged.first().and_then(|(_, l)| l.baseline) {
            Some(b) if cpu_load < cfg.cpu_above => b.saturating_add(cfg.rise_over_baseline),
            _ => cfg.cpu_above,
        };
        let mut sorted = flagged;
        sorted.sort_by_key(|(s, l)| (l.at, *s));
        for (source, login) in sorted {
            self.logins.remove(&source);
            let mut evidence = Evidence {
                count: concurrent as u64,
                threshold: u64::from(threshold),
                window,
                first_seen: login.at,
                last_seen: now,
                ..Evidence::default()
            };
            Evidence::push_text(&mut evidence.users, &login.user);
            if !login.service.is_empty() {
                Evidence::push_text(&mut evidence.services, &login.service);
            }
            let baseline = login
                .baseline
                .map_or_else(|| "unknown".to_string(), |b| format!("{b}%"));
            Evidence::push_text(
                &mut evidence.samples,
                &format!(
                    "user {} logged in from {source}; cpu-load {cpu_load}% {}s later (baseline {baseline})",
                    login.user,
                    (now - login.at).as_secs()
                ),
            );
            findings.push(Finding {
                time: now,
                detector: LOGIN_CPU_SPIKE,
                kind: FindingKind::LoginThenCpuSpike,
                severity: if concurrent > 1 {
                    Severity::Medium
                } else {
                    Severity::High
                },
                source,
                evidence,
            });
        }
    }
}

impl Detector for LoginCpuSpikeDetector {
    fn name(&self) -> &'static str {
        LOGIN_CPU_SPIKE
    }

    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        match event {
            Event::Auth(
                auth @ Auth {
                    kind: AuthKind::Success,
                    ..
                },
            ) => self.observe_login(now, auth),
            Event::Resource(r) => self.observe_cpu(now, r.cpu_load, findings),
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.logins.oldest().map(|t| t + self.window())
    }

    fn handle_timeout(&mut self, now: Timestamp, _findings: &mut Vec<Finding>) {
        self.logins.expire(now - self.window());
    }

    fn tracked_sources(&self) -> usize {
        self.logins.len()
    }
}
