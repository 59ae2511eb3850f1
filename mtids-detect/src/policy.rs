//! The [`Policy`]: turns findings into ban [`Decision`]s, or into [`Suppressed`] outcomes
//! that say why not.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::Timestamp;
use crate::config::{ConfigError, check_range};
use crate::detectors::table::SourceTable;
use crate::finding::{Finding, FindingKind, Severity, Source, normalize_ip};
use crate::guard::{Guard, GuardReason, IpPrefix};

/// Longest address-list comment the policy writes, in bytes.
pub const MAX_REASON_LEN: usize = 64;

/// Settings of the ban policy, the `[policy]` table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// First ban, in seconds. Default 3600: long enough to stop a scanner's run, short
    /// enough that a false positive heals by itself within the hour.
    pub ban_secs: u64,
    /// Multiply the ban for each repeat offence, like fail2ban's `bantime.increment`.
    /// Default `true`.
    pub increment: bool,
    /// The multiplier per repeat offence. Default 2 (fail2ban and sshguard double).
    pub factor: u32,
    /// Longest ban, in seconds. Default 604 800 (one week): bans on the router are
    /// dynamic address-list entries and vanish on reboot anyway; the ledger restores them.
    pub max_ban_secs: u64,
    /// An address still banned for less than this is decided again when it offends again,
    /// so an ongoing attack never sees its ban lapse. Default 60 s.
    pub renew_before_secs: u64,
    /// Offences are remembered this long after the last one, for escalation. Default
    /// 604 800 (one week).
    pub remember_secs: u64,
    /// Ban an IPv6 source's prefix of this length instead of the address. Default 128 (the
    /// address alone); 64 bans the whole /64, which one attacker usually owns.
    pub ipv6_prefix_len: u8,
    /// Most new bans per minute. Past it, decisions are suppressed and reported as a flood,
    /// so spoofed sources cannot fill the router's address list. Default 60: real attacks
    /// bring a handful of new sources a minute, a spoofer thousands; 60 a minute still bans
    /// a botnet wave in full within the hour.
    pub max_new_bans_per_minute: u32,
    /// Findings below this severity are reported but never banned. Default `low` (ban on
    /// every finding).
    pub min_severity: Severity,
    /// Most offenders remembered (least recently offending forgotten first). Default
    /// 100 000.
    pub max_offenders: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            ban_secs: 3600,
            increment: true,
            factor: 2,
            max_ban_secs: 7 * 24 * 3600,
            renew_before_secs: 60,
            remember_secs: 7 * 24 * 3600,
            ipv6_prefix_len: 128,
            max_new_bans_per_minute: 60,
            min_severity: Severity::Low,
            max_offenders: 100_000,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match &*s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(serde::de::Error::custom(format!(
                "unknown severity `{other}`, expected low, medium, high or critical"
            ))),
        }
    }
}

impl PolicyConfig {
    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("policy.ban_secs", self.ban_secs, 1, 10 * 365 * 86_400)?;
        check_range("policy.factor", self.factor.into(), 1, 100)?;
        if self.max_ban_secs < self.ban_secs {
            return Err(ConfigError::invalid(
                "policy.max_ban_secs",
                format!("must be at least policy.ban_secs ({})", self.ban_secs),
            ));
        }
        check_range(
            "policy.max_ban_secs",
            self.max_ban_secs,
            1,
            10 * 365 * 86_400,
        )?;
        if self.renew_before_secs >= self.ban_secs {
            return Err(ConfigError::invalid(
                "policy.renew_before_secs",
                "must be shorter than policy.ban_secs, or every finding renews the ban",
            ));
        }
        check_range(
            "policy.remember_secs",
            self.remember_secs,
            0,
            10 * 365 * 86_400,
        )?;
        check_range(
            "policy.ipv6_prefix_len",
            self.ipv6_prefix_len.into(),
            16,
            128,
        )?;
        check_range(
            "policy.max_new_bans_per_minute",
            self.max_new_bans_per_minute.into(),
            1,
            100_000,
        )?;
        check_range(
            "policy.max_offenders",
            self.max_offenders as u64,
            1,
            1 << 24,
        )?;
        Ok(())
    }
}

/// A ban to carry out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// What to put on the address list: the address, or its IPv6 prefix when configured.
    pub target: IpPrefix,
    /// How long.
    #[serde(rename = "duration_secs", serialize_with = "serialize_secs")]
    pub duration: Duration,
    /// When the ban ends (`time + duration`).
    pub expires: Timestamp,
    /// Which offence of this target this is (1 for the first); the duration grew with it.
    pub offence: u32,
    /// A short reason for the address-list comment: ASCII, no control characters, at most
    /// [`MAX_REASON_LEN`] bytes.
    pub reason: String,
    /// The finding, with its evidence.
    pub finding: Finding,
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// Why a finding did not become a ban.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "why")]
#[non_exhaustive]
pub enum Suppression {
    /// The guard protects the address: report it, never ban it.
    Guarded {
        /// Which rule protects it.
        guard: GuardReason,
    },
    /// The source is a MAC address (a layer-2 login): it can be reported, not banned.
    NotAnIpAddress,
    /// The target is banned already and its ban is not near its end.
    AlreadyBanned {
        /// When the current ban ends.
        until: Timestamp,
    },
    /// The cap on new bans per minute was reached: possibly a spoofed flood.
    Flood {
        /// The cap in force.
        max_per_minute: u32,
    },
    /// The finding's severity is below `policy.min_severity`.
    BelowMinSeverity,
}

impl fmt::Display for Suppression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suppression::Guarded { guard } => write!(f, "guarded: {guard}"),
            Suppression::NotAnIpAddress => f.write_str("source is not an IP address"),
            Suppression::AlreadyBanned { until } => write!(f, "already banned until {until}"),
            Suppression::Flood { max_per_minute } => {
                write!(f, "flood: more than {max_per_minute} new bans per minute")
            }
            Suppression::BelowMinSeverity => f.write_str("severity below policy.min_severity"),
        }
    }
}

/// A finding that did not become a ban, kept so it can be reported.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Suppressed {
    /// Why not.
    pub reason: Suppression,
    /// The finding.
    pub finding: Finding,
}

/// What the policy made of one finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[allow(clippy::large_enum_variant)] // Both variants carry a Finding; rare, not hot.
pub enum Outcome {
    /// Ban this target.
    Ban(Decision),
    /// Report, do not ban.
    Suppressed(Suppressed),
}

impl Outcome {
    /// The finding behind the outcome.
    pub fn finding(&self) -> &Finding {
        match self {
            Outcome::Ban(d) => &d.finding,
            Outcome::Suppressed(s) => &s.finding,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Offender {
    offences: u32,
    last_offence: Timestamp,
    banned_until: Timestamp,
}

/// Turns findings into decisions: guard first, then the current ban, then the flood cap,
/// then the escalated duration. Every finding gives exactly one [`Outcome`]; nothing is
/// dropped silently.
///
/// The policy remembers offenders (bounded by `max_offenders`, expired after
/// `remember_secs` via [`Policy::handle_timeout`]) and the times of the last bans (at most
/// `max_new_bans_per_minute`, for the flood cap).
#[derive(Debug)]
pub struct Policy {
    config: PolicyConfig,
    guard: Guard,
    offenders: SourceTable<IpPrefix, Offender>,
    recent_bans: VecDeque<Timestamp>,
    floods: u64,
}

impl Policy {
    /// A policy with validated settings and a guard.
    pub fn new(config: PolicyConfig, guard: Guard) -> Result<Policy, ConfigError> {
        config.validate()?;
        Ok(Policy {
            offenders: SourceTable::new(config.max_offenders),
            recent_bans: VecDeque::with_capacity(config.max_new_bans_per_minute as usize),
            floods: 0,
            guard,
            config,
        })
    }

    /// The guard, e.g. to report on it.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The guard, to set the router's addresses at run time.
    pub fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    /// The settings in force.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Findings suppressed by the flood cap since creation.
    pub fn floods(&self) -> u64 {
        self.floods
    }

    /// How many offenders are remembered.
    pub fn offenders(&self) -> usize {
        self.offenders.len()
    }

    /// What a ban on `ip` would target: the address, or its IPv6 prefix when configured.
    pub fn target_for(&self, ip: IpAddr) -> IpPrefix {
        let ip = normalize_ip(ip);
        match ip {
            IpAddr::V6(_) if self.config.ipv6_prefix_len < 128 => {
                IpPrefix::new(ip, self.config.ipv6_prefix_len).unwrap_or(IpPrefix::host(ip))
            }
            _ => IpPrefix::host(ip),
        }
    }

    /// Tells the policy about a ban that exists already (restored from the ledger, or
    /// found on the router), so it is neither decided again early nor unescalated.
    pub fn restore_ban(
        &mut self,
        now: Timestamp,
        target: IpPrefix,
        until: Timestamp,
        offences: u32,
    ) {
        let o = self.offenders.touch(target, now, || Offender {
            offences,
            last_offence: now,
            banned_until: until,
        });
        o.offences = o.offences.max(offences);
        o.banned_until = o.banned_until.max(until);
    }

    /// Lifts a target's ban (an operator unbanned it by hand) but keeps its offence
    /// count: its next attack is banned again, for the escalated time.
    pub fn lift_ban(&mut self, target: &IpPrefix) {
        if let Some(o) = self.offenders.get_mut(target) {
            o.banned_until = Timestamp::from_millis(0);
        }
    }

    /// Forgets a target (e.g. after an operator unbanned it by hand).
    pub fn forget(&mut self, target: &IpPrefix) {
        self.offenders.remove(target);
    }

    /// Decides what to do with `finding`, at `now`.
    pub fn decide(&mut self, now: Timestamp, finding: Finding) -> Outcome {
        let suppress = |reason, finding| Outcome::Suppressed(Suppressed { reason, finding });
        let Source::Ip(ip) = finding.source else {
            return suppress(Suppression::NotAnIpAddress, finding);
        };
        let target = self.target_for(ip);
        if let Some(guard) = self
            .guard
            .check(ip)
            .or_else(|| self.guard.check_prefix(&target))
        {
            return suppress(Suppression::Guarded { guard }, finding);
        }
        if finding.severity < self.config.min_severity {
            return suppress(Suppression::BelowMinSeverity, finding);
        }
        let renew = Duration::from_secs(self.config.renew_before_secs);
        let remember = Duration::from_secs(self.config.remember_secs);
        let previous = self.offenders.get_mut(&target).copied();
        if let Some(o) = previous.filter(|o| o.banned_until > now + renew) {
            return suppress(
                Suppression::AlreadyBanned {
                    until: o.banned_until,
                },
                finding,
            );
        }
        let minute = Duration::from_secs(60);
        while self.recent_bans.front().is_some_and(|t| now - *t >= minute) {
            self.recent_bans.pop_front();
        }
        let cap = self.config.max_new_bans_per_minute;
        if self.recent_bans.len() >= cap as usize {
            self.floods += 1;
            return suppress(
                Suppression::Flood {
                    max_per_minute: cap,
                },
                finding,
            );
        }
        self.recent_bans.push_back(now);

        let offence = match previous {
            Some(o) if now - o.last_offence < remember => o.offences.saturating_add(1),
            _ => 1,
        };
        let duration = self.duration_for(offence);
        let expires = now + duration;
        *self.offenders.touch(target, now, || Offender {
            offences: 0,
            last_offence: now,
            banned_until: now,
        }) = Offender {
            offences: offence,
            last_offence: now,
            banned_until: expires,
        };
        Outcome::Ban(Decision {
            target,
            duration,
            expires,
            offence,
            reason: reason_for(&finding),
            finding,
        })
    }

    /// The ban for the `offence`-th offence: `ban_secs * factor^(offence-1)`, at most
    /// `max_ban_secs`.
    pub fn duration_for(&self, offence: u32) -> Duration {
        let mut secs = self.config.ban_secs;
        if self.config.increment {
            for _ in 1..offence {
                secs = secs.saturating_mul(self.config.factor.into());
                if secs >= self.config.max_ban_secs {
                    break;
                }
            }
        }
        Duration::from_secs(secs.min(self.config.max_ban_secs))
    }

    /// When offender memory next expires.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.offenders
            .oldest()
            .map(|t| t + Duration::from_secs(self.config.remember_secs))
    }

    /// Forgets offenders whose last offence is `remember_secs` old and whose ban is over.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let remember = Duration::from_secs(self.config.remember_secs);
        self.offenders
            .retain(|_, o| now - o.last_offence < remember || o.banned_until > now);
    }
}

/// What the finding was, in words (`15 ports in 5m`, `10 failures in 1m`): the address
/// list's comment puts `mtids <detector>: ` before it. ASCII letters, digits and
/// `_ ./:-,%` only, bounded.
fn reason_for(f: &Finding) -> String {
    let e = &f.evidence;
    let within = window_words(e.window);
    let raw = match f.kind {
        FindingKind::PortScan => format!("{} ports in {within}", e.count),
        FindingKind::HostSweep => format!("{} hosts on one port in {within}", e.count),
        FindingKind::BruteForce => format!("{} failures in {within}", e.count),
        FindingKind::UserEnumeration => format!("{} user names tried in {within}", e.count),
        FindingKind::AsymmetricConnection => {
            format!("{} packets out, unanswered", e.count)
        }
        FindingKind::LoginThenCpuSpike => {
            format!("login then cpu over {}%", e.threshold)
        }
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _./:-,%".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_REASON_LEN)
        .collect()
}

/// `300s` as `5m`, `3600s` as `1h`, `90s` as `90s`.
fn window_words(window: Duration) -> String {
    let secs = window.as_secs();
    match secs {
        0 => format!("{}ms", window.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Evidence, FindingKind};
    use crate::guard::GuardConfig;

    fn finding(src: &str, at: u64) -> Finding {
        Finding {
            time: Timestamp::from_secs(at),
            detector: "test",
            kind: FindingKind::PortScan,
            severity: Severity::Medium,
            source: Source::ip(src.parse().unwrap()),
            evidence: Evidence {
                count: 15,
                threshold: 15,
                window: Duration::from_secs(300),
                ..Evidence::default()
            },
        }
    }

    fn policy(config: PolicyConfig) -> Policy {
        let guard = Guard::new(&GuardConfig {
            allowlist: vec!["198.51.100.1".parse().unwrap()],
            protect_private: true,
            router_addresses: vec!["203.0.113.1/24".into()],
        })
        .unwrap();
        Policy::new(config, guard).unwrap()
    }

    #[test]
    fn a_lifted_ban_is_banned_again_at_the_next_finding_for_longer() {
        let mut p = policy(PolicyConfig::default());
        let first = ban(p.decide(Timestamp::from_secs(100), finding("192.0.2.7", 100)));
        assert!(matches!(
            why(p.decide(Timestamp::from_secs(110), finding("192.0.2.7", 110))),
            Suppression::AlreadyBanned { .. }
        ));
        p.lift_ban(&first.target);
        let second = ban(p.decide(Timestamp::from_secs(120), finding("192.0.2.7", 120)));
        assert_eq!(second.offence, 2, "the offence count is kept");
        assert!(second.duration >= first.duration);
        // Lifting an unknown target changes nothing.
        p.lift_ban(&"192.0.2.99".parse().unwrap());
        assert_eq!(p.offenders(), 1);
    }

    fn ban(o: Outcome) -> Decision {
        match o {
            Outcome::Ban(d) => d,
            Outcome::Suppressed(s) => panic!("suppressed: {}", s.reason),
        }
    }

    fn why(o: Outcome) -> Suppression {
        match o {
            Outcome::Ban(d) => panic!("banned {}", d.target),
            Outcome::Suppressed(s) => s.reason,
        }
    }

    #[test]
    fn bans_escalate_and_cap() {
        let mut p = policy(PolicyConfig {
            ban_secs: 100,
            max_ban_secs: 350,
            renew_before_secs: 10,
            ..PolicyConfig::default()
        });
        let d = ban(p.decide(Timestamp::from_secs(0), finding("192.0.2.7", 0)));
        assert_eq!((d.offence, d.duration.as_secs()), (1, 100));
        assert_eq!(d.target.to_string(), "192.0.2.7");
        assert_eq!(d.reason, "15 ports in 5m");
        // Still banned for 50 s more: not decided again.
        assert_eq!(
            why(p.decide(Timestamp::from_secs(50), finding("192.0.2.7", 50))),
            Suppression::AlreadyBanned {
                until: Timestamp::from_secs(100)
            }
        );
        // Near expiry (10 s left, renew_before 10 s): decided again, escalated.
        let d = ban(p.decide(Timestamp::from_secs(90), finding("192.0.2.7", 90)));
        assert_eq!((d.offence, d.duration.as_secs()), (2, 200));
        let d = ban(p.decide(Timestamp::from_secs(1000), finding("192.0.2.7", 1000)));
        assert_eq!((d.offence, d.duration.as_secs()), (3, 350));
        assert_eq!(p.duration_for(u32::MAX).as_secs(), 350);
    }

    #[test]
    fn offences_are_forgotten_after_remember_secs() {
        let mut p = policy(PolicyConfig {
            ban_secs: 100,
            renew_before_secs: 10,
            remember_secs: 1000,
            ..PolicyConfig::default()
        });
        ban(p.decide(Timestamp::from_secs(0), finding("192.0.2.7", 0)));
        assert!(p.poll_timeout().is_some());
        p.handle_timeout(Timestamp::from_secs(1000));
        assert_eq!(p.offenders(), 0);
        let d = ban(p.decide(Timestamp::from_secs(1001), finding("192.0.2.7", 1001)));
        assert_eq!(d.offence, 1);
    }

    #[test]
    fn guarded_and_mac_sources_are_reported_not_banned() {
        let mut p = policy(PolicyConfig::default());
        let now = Timestamp::from_secs(1);
        assert!(matches!(
            why(p.decide(now, finding("198.51.100.1", 1))),
            Suppression::Guarded {
                guard: GuardReason::Allowlisted(_)
            }
        ));
        assert!(matches!(
            why(p.decide(now, finding("::ffff:203.0.113.1", 1))),
            Suppression::Guarded {
                guard: GuardReason::RouterAddress(_)
            }
        ));
        assert!(matches!(
            why(p.decide(now, finding("10.1.2.3", 1))),
            Suppression::Guarded {
                guard: GuardReason::Private
            }
        ));
        let mut mac = finding("192.0.2.7", 1);
        mac.source = Source::Mac(crate::MacAddr([0, 1, 2, 3, 4, 5]));
        assert_eq!(why(p.decide(now, mac)), Suppression::NotAnIpAddress);
    }

    #[test]
    fn ipv6_prefix_target_is_guarded_as_a_whole() {
        let mut p = policy(PolicyConfig {
            ipv6_prefix_len: 64,
            ..PolicyConfig::default()
        });
        p.guard_mut().allow("2001:db8:1::5".parse().unwrap());
        let d = ban(p.decide(Timestamp::ZERO, finding("2001:db8:2::9", 0)));
        assert_eq!(d.target.to_string(), "2001:db8:2::/64");
        // Another address of the same /64 is banned already.
        assert!(matches!(
            why(p.decide(Timestamp::ZERO, finding("2001:db8:2::10", 0))),
            Suppression::AlreadyBanned { .. }
        ));
        // A /64 holding an allowlisted address is never banned.
        assert!(matches!(
            why(p.decide(Timestamp::ZERO, finding("2001:db8:1::77", 0))),
            Suppression::Guarded { .. }
        ));
    }

    #[test]
    fn flood_cap_suppresses_then_recovers() {
        let mut p = policy(PolicyConfig {
            max_new_bans_per_minute: 3,
            ..PolicyConfig::default()
        });
        let mut banned = 0;
        for i in 0..10u8 {
            match p.decide(
                Timestamp::from_secs(10),
                finding(&format!("192.0.2.{i}"), 10),
            ) {
                Outcome::Ban(_) => banned += 1,
                Outcome::Suppressed(s) => {
                    assert_eq!(s.reason, Suppression::Flood { max_per_minute: 3 })
                }
            }
        }
        assert_eq!((banned, p.floods()), (3, 7));
        // 59.999 s later the minute is not over; at 60 s it is.
        assert!(matches!(
            p.decide(Timestamp::from_millis(69_999), finding("192.0.2.50", 69)),
            Outcome::Suppressed(_)
        ));
        assert!(matches!(
            p.decide(Timestamp::from_secs(70), finding("192.0.2.51", 70)),
            Outcome::Ban(_)
        ));
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = PolicyConfig {
            max_ban_secs: 10,
            ..PolicyConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("policy.max_ban_secs"), "{err}");
        let err = PolicyConfig {
            ipv6_prefix_len: 130,
            ..PolicyConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("policy.ipv6_prefix_len"), "{err}");
    }
}
