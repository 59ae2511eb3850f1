//! What a detector reports: a [`Finding`] about one [`Source`], with bounded [`Evidence`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::{AuthSource, MacAddr, Timestamp};

/// Most ports, destinations or samples kept in one finding's evidence, so that a finding
/// stays small whatever the attacker sent.
pub const MAX_EVIDENCE_ITEMS: usize = 32;

/// Longest text (user name, service, sample line) kept in evidence, in bytes.
pub const MAX_EVIDENCE_TEXT: usize = 96;

/// Who a finding is about.
///
/// Authentication logs may name a MAC address instead of an IP (MAC-winbox, MAC-telnet):
/// such a finding is reported, but can never become an IP ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An IPv4 or IPv6 address (IPv4-mapped IPv6 is normalised to IPv4 by [`Source::ip`]).
    Ip(IpAddr),
    /// A layer-2 address.
    Mac(MacAddr),
}

impl Source {
    /// A source for `ip`, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into
    /// plain IPv4 so the same host is never tracked (or allowlisted) twice.
    pub fn ip(ip: IpAddr) -> Source {
        Source::Ip(normalize_ip(ip))
    }

    /// The IP address, if this is one.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Source::Ip(ip) => Some(*ip),
            Source::Mac(_) => None,
        }
    }
}

impl From<AuthSource> for Source {
    fn from(s: AuthSource) -> Source {
        match s {
            AuthSource::Ip(ip) => Source::ip(ip),
            AuthSource::Mac(m) => Source::Mac(m),
        }
    }
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`; every other address is returned unchanged.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ip(ip) => ip.fmt(f),
            Source::Mac(m) => m.fmt(f),
        }
    }
}

impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What kind of behaviour was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// Many distinct destination ports from one source.
    PortScan,
    /// One destination port across many destination hosts from one source.
    HostSweep,
    /// Many failed logins from one source.
    BruteForce,
    /// Many distinct user names tried from one source.
    UserEnumeration,
    /// A connection that sends but is (almost) never answered.
    AsymmetricConnection,
    /// A successful login followed closely by a CPU spike on the router.
    LoginThenCpuSpike,
}

impl FindingKind {
    /// The snake_case name used in JSON and address-list comments.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::PortScan => "port_scan",
            FindingKind::HostSweep => "host_sweep",
            FindingKind::BruteForce => "brute_force",
            FindingKind::UserEnumeration => "user_enumeration",
            FindingKind::AsymmetricConnection => "asymmetric_connection",
            FindingKind::LoginThenCpuSpike => "login_then_cpu_spike",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a finding is, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look; may be noise.
    Low,
    /// Hostile reconnaissance.
    Medium,
    /// An attack on a service.
    High,
    /// Likely compromise.
    Critical,
}

/// Why a detector fired. Every list is bounded by [`MAX_EVIDENCE_ITEMS`] and every text by
/// [`MAX_EVIDENCE_TEXT`]; empty lists and `None` fields mean "not applicable".
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    /// The measured quantity that crossed the threshold (distinct ports, failures, ...).
    pub count: u64,
    /// The threshold it reached.
    pub threshold: u64,
    /// The window the count was taken over.
    #[serde(serialize_with = "serialize_secs")]
    pub window: Duration,
    /// First event counted.
    pub first_seen: Timestamp,
    /// Last event counted (the one that fired).
    pub last_seen: Timestamp,
    /// Destination ports involved, ascending.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Destination addresses involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<IpAddr>,
    /// User names involved (lossily cleaned, bounded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Services involved (`ssh`, `winbox`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// A few of the events that made the finding, as short one-line descriptions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Evidence {
    /// Adds `text` (cleaned and truncated) to `list` unless the list is full or has it.
    pub(crate) fn push_text(list: &mut Vec<String>, text: &str) {
        if list.len() >= MAX_EVIDENCE_ITEMS {
            return;
        }
        let clean = clean_text(text, MAX_EVIDENCE_TEXT);
        if !list.contains(&clean) {
            list.push(clean);
        }
    }
}

/// `s` cut to at most `max` bytes on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// `text` without control characters, cut to at most `max` bytes on a char boundary.
pub(crate) fn clean_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// One detection: who, what, how bad, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// When the detector fired (the `now` of the event that crossed the threshold).
    pub time: Timestamp,
    /// The detector's name (`port_scan`, `brute_force`, ...), as in the configuration.
    pub detector: &'static str,
    /// What was seen.
    pub kind: FindingKind,
    /// How bad it is.
    pub severity: Severity,
    /// Who did it: the address a ban would target.
    pub source: Source,
    /// Why the detector fired.
    pub evidence: Evidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv6_becomes_ipv4() {
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(
            Source::ip(mapped),
            Source::Ip("198.51.100.7".parse().unwrap())
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Source::ip(v6), Source::Ip(v6));
    }

    #[test]
    fn mac_displays_like_routeros() {
        let s = Source::Mac(MacAddr([0xd4, 0xca, 0x6d, 0x01, 0x02, 0x0a]));
        assert_eq!(s.to_string(), "D4:CA:6D:01:02:0A");
    }

    #[test]
    fn evidence_text_is_clean_and_bounded() {
        let mut list = Vec::new();
        Evidence::push_text(&mut list, "adm\nin\u{7}");
        assert_eq!(list, vec!["adm in ".to_string()]);
        let long = "é".repeat(200);
        Evidence::push_text(&mut list, &long);
        assert!(list[1].len() <= MAX_EVIDENCE_TEXT);
        for i in 0..100 {
            Evidence::push_text(&mut list, &i.to_string());
        }
        assert_eq!(list.len(), MAX_EVIDENCE_ITEMS);
    }
}
