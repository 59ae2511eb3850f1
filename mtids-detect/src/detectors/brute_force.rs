//! [`BruteForceDetector`]: failed logins and user-name enumeration per source.

use std::time::Duration;

use super::table::{SourceTable, Window};
use super::text_fingerprint;
use crate::config::{ConfigError, check_range, check_window};
use crate::detector::{Detector, Progress};
use crate::finding::{Evidence, FindingKind, Severity, Source};
use crate::{Auth, AuthKind, Event, Finding, Timestamp};

/// Settings of the brute-force detector, the `[brute_force]` table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BruteForceConfig {
    /// Run this detector. Default `true`.
    pub enabled: bool,
    /// Failures count while they are less than this old. Default 60 s, with
    /// `max_failures = 10`: the seed project's ">= 10 failures in 1 minute", a rate no
    /// person mistyping a password reaches, and every scripted attack exceeds.
    pub window_secs: u64,
    /// Fire when this many failures from one source fall in the window. Default 10.
    pub max_failures: u32,
    /// Count each service (`via ssh`, `via winbox`, ...) separately. Default `false`:
    /// attackers rotate services, and the address is what gets banned either way.
    pub per_service: bool,
    /// Fire a user-enumeration finding when one source tries this many distinct user
    /// names in the window. Default 5, CrowdSec's MikroTik scenario; 0 turns it off.
    pub distinct_users: u32,
    /// Most sources tracked at once; past it the least recently seen is forgotten.
    /// Default 65 536.
    pub max_sources: usize,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            enabled: true,
            window_secs: 60,
            max_failures: 10,
            per_service: false,
            distinct_users: 5,
            max_sources: 65_536,
        }
    }
}

impl BruteForceConfig {
    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_window("brute_force.window_secs", self.window_secs)?;
        check_range(
            "brute_force.max_failures",
            self.max_failures.into(),
            1,
            1024,
        )?;
        if self.distinct_users == 1 || self.distinct_users > 1024 {
            return Err(ConfigError::invalid(
                "brute_force.distinct_users",
                format!(
                    "must be 0 (off) or between 2 and 1024, got {}",
                    self.distinct_users
                ),
            ));
        }
        check_range(
            "brute_force.max_sources",
            self.max_sources as u64,
            1,
            1 << 24,
        )?;
        Ok(())
    }
}

/// Per-key state: 64 bytes plus 8 heap bytes per failure and per distinct user kept.
#[derive(Debug, Default)]
struct LoginFailures {
    failures: Window,
    users: Window,
}

/// The name findings of this detector carry.
pub const BRUTE_FORCE: &str = "brute_force";

/// Detects password guessing and user enumeration in authentication events.
///
/// Only failures count (a success does not reset the count: an attacker who owns one
/// account must not be able to launder failures with it). A failure counts while it is less
/// than `window_secs` old. At `max_failures` the detector fires a
/// [`FindingKind::BruteForce`] and starts again from zero; at `distinct_users` distinct
/// names (kept as 32-bit fingerprints, which can only undercount) it fires a
/// [`FindingKind::UserEnumeration`]. A MAC source (MAC-winbox) is tracked and reported like
/// any other, but its finding's [`Source::Mac`] can never become an IP ban.
///
/// Memory per tracked source: table overhead (about 110 bytes), 64 bytes of state, and 8
/// bytes per failure (at most `max_failures`) and per distinct user name in the window.
/// The user names in a finding's evidence come from a ring of the last 256 failures (all
/// sources together, about 30 KiB at most), not from per-source text.
pub struct BruteForceDetector {
    config: BruteForceConfig,
    window_ms: u64,
    sources: SourceTable<(Source, u32), LoginFailures>,
    recent: RecentUsers,
}

/// The user names of the last [`RECENT_USERS`] failures, whatever their source: evidence
/// for a finding without keeping text per source. Slots reuse their strings, so once warm
/// it allocates nothing.
#[derive(Debug, Default)]
struct RecentUsers {
    slots: Vec<(Source, String)>,
    next: usize,
}

/// How many recent failures [`RecentUsers`] remembers.
const RECENT_USERS: usize = 256;

impl RecentUsers {
    fn record(&mut self, source: Source, user: &str) {
        let user = crate::finding::truncate(user, crate::finding::MAX_EVIDENCE_TEXT);
        if self.slots.len() < RECENT_USERS {
            self.slots.push((source, user.to_string()));
        } else if let Some(slot) = self.slots.get_mut(self.next) {
            slot.0 = source;
            slot.1.clear();
            slot.1.push_str(user);
        }
        self.next = (self.next + 1) % RECENT_USERS;
    }

    /// Distinct user names recently tried by `source`, oldest first.
    fn users_of(&self, source: Source) -> Vec<String> {
        let (newer, older) = self.slots.split_at(self.next.min(self.slots.len()));
        let mut users = Vec::new();
        for (s, u) in older.iter().chain(newer) {
            if *s == source {
                Evidence::push_text(&mut users, u);
            }
        }
        users
    }
}

impl std::fmt::Debug for BruteForceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BruteForceDetector")
            .field("config", &self.config)
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl BruteForceDetector {
    /// A detector with validated settings.
    pub fn new(config: BruteForceConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(BruteForceDetector {
            window_ms: config.window_secs.saturating_mul(1000),
            sources: SourceTable::new(config.max_sources),
            recent: RecentUsers::default(),
            config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &BruteForceConfig {
        &self.config
    }

    /// Sources evicted because the table was full, since creation.
    pub fn evicted(&self) -> u64 {
        self.sources.evicted()
    }

    /// Where the source of `auth` stands: failures and distinct users in the window as of
    /// its last failure (see [`crate::DetectorSet::progress`]). Empty for a success or a
    /// logout: only failures count.
    pub fn progress(&self, auth: &Auth<'_>) -> Vec<Progress> {
        if auth.kind != AuthKind::Failure {
            return Vec::new();
        }
        let service_key = if self.config.per_service {
            text_fingerprint(auth.service.as_deref().unwrap_or(""))
        } else {
            0
        };
        let state = self.sources.get(&(Source::from(auth.source), service_key));
        let window = Duration::from_millis(self.window_ms);
        let mut out = vec![Progress {
            detector: BRUTE_FORCE,
            measure: "failures",
            count: state.map_or(0, |s| s.failures.len() as u64),
            threshold: u64::from(self.config.max_failures),
            window,
        }];
        if self.config.distinct_users > 0 {
            out.push(Progress {
                detector: BRUTE_FORCE,
                measure: "distinct users",
                count: state.map_or(0, |s| s.users.len() as u64),
                threshold: u64::from(self.config.distinct_users),
                window,
            });
        }
        out
    }

    /// Counts one failed login seen at `now`.
    pub fn observe_failure(
        &mut self,
        now: Timestamp,
        auth: &Auth<'_>,
        findings: &mut Vec<Finding>,
    ) {
        let source = Source::from(auth.source);
        let service = auth.service.as_deref().unwrap_or("");
        let service_key = if self.config.per_service {
            text_fingerprint(service)
        } else {
            0
        };
        self.recent.record(source, &auth.user);
        let window_ms = self.window_ms;
        let max_failures = self.config.max_failures as usize;
        let recent = &self.recent;
        let distinct_users = self.config.distinct_users as usize;
        let state = self
            .sources
            .touch((source, service_key), now, LoginFailures::default);
        state.failures.expire(now, window_ms);
        state.users.expire(now, window_ms);
        state.failures.push_capped(now, 0, max_failures);
        if distinct_users > 0 {
            state
                .users
                .insert_distinct(now, text_fingerprint(&auth.user));
        }
        let evidence = |count: usize, threshold: usize, first: Option<Timestamp>| {
            let mut e = Evidence {
                count: count as u64,
                threshold: threshold as u64,
                window: Duration::from_millis(window_ms),
                first_seen: first.unwrap_or(now),
                last_seen: now,
                ..Evidence::default()
            };
            e.users = recent.users_of(source);
            if !service.is_empty() {
                Evidence::push_text(&mut e.services, service);
            }
            Evidence::push_text(
                &mut e.samples,
                &format!(
                    "login failure for user {} from {source} via {service}",
                    auth.user
                ),
            );
            e
        };
        if state.failures.len() >= max_failures {
            let e = evidence(
                state.failures.len(),
                max_failures,
                state.failures.first_time(),
            );
            state.failures.clear();
            findings.push(Finding {
                time: now,
                detector: BRUTE_FORCE,
                kind: FindingKind::BruteForce,
                severity: Severity::High,
                source,
                evidence: e,
            });
        }
        if distinct_users > 0 && state.users.len() >= distinct_users {
            let e = evidence(state.users.len(), distinct_users, state.users.first_time());
            state.users.clear();
            findings.push(Finding {
                time: now,
                detector: BRUTE_FORCE,
                kind: FindingKind::UserEnumeration,
                severity: Severity::Medium,
                source,
                evidence: e,
            });
        }
    }
}

impl Detector for BruteForceDetector {
    fn name(&self) -> &'static str {
        BRUTE_FORCE
    }

    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        if let Event::Auth(
            auth @ Auth {
                kind: AuthKind::Failure,
                ..
            },
        ) = event
        {
            self.observe_failure(now, auth, findings);
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.sources
            .oldest()
            .map(|t| t + Duration::from_millis(self.window_ms))
    }

    fn handle_timeout(&mut self, now: Timestamp, _findings: &mut Vec<Finding>) {
        self.sources
            .expire(now - Duration::from_millis(self.window_ms));
    }

    fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}
