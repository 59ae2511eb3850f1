//! What is enforced: a [`Ban`], its address-list comment, and RouterOS durations.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use mtids_detect::{Decision, IpPrefix};

/// The marker every comment mtids writes starts with: how reconcile tells its own
/// entries from an operator's.
pub const COMMENT_MARKER: &str = "mtids";

/// The longest comment mtids writes, in bytes (always ASCII).
pub const MAX_COMMENT_LEN: usize = 120;

/// One ban to put on a router's address list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// The address or prefix (already parsed and masked: it cannot hold anything but an
    /// address).
    pub target: IpPrefix,
    /// How long; `None` for a permanent entry (which survives a router reboot).
    pub duration: Option<Duration>,
    /// The detector that decided it (`port_scan`, `brute_force`, ...).
    pub detector: String,
    /// Why, in a few words. May come from attacker-influenced text: it is sanitised
    /// before it goes into a comment.
    pub reason: String,
    /// The finding's evidence (users, ports, counts, window, sample lines, the router
    /// that saw it), kept in the ledger beside the ban ([`crate::BanLedger::evidence`]).
    /// Never sent to a router.
    pub evidence: Option<serde_json::Value>,
}

impl Ban {
    /// A ban of `target` for `duration`.
    pub fn new(
        target: IpPrefix,
        duration: Option<Duration>,
        detector: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Ban {
            target,
            duration,
            detector: detector.into(),
            reason: reason.into(),
            evidence: None,
        }
    }

    /// With the finding's evidence.
    #[must_use]
    pub fn with_evidence(mut self, evidence: serde_json::Value) -> Self {
        self.evidence = Some(evidence);
        self
    }

    /// The address-list comment: the marker, the detector and the reason, sanitised
    /// (ASCII only, no control characters or quotes, at most [`MAX_COMMENT_LEN`] bytes).
    pub fn comment(&self) -> String {
        let mut out = String::with_capacity(MAX_COMMENT_LEN);
        out.push_str(COMMENT_MARKER);
        out.push(' ');
        push_clean(&mut out, self.detector.trim(), 32);
        out.push_str(": ");
        push_clean(&mut out, &self.reason, MAX_COMMENT_LEN);
        while out.ends_with(' ') {
            out.pop();
        }
        out
    }
}

/// The detector and reason of a comment mtids wrote ([`Ban::comment`]:
/// `mtids <detector>: <reason>`); `None` for anyone else's comment.
pub(crate) fn parse_comment(comment: &str) -> Option<(&str, &str)> {
    let rest = comment.strip_prefix(COMMENT_MARKER)?.strip_prefix(' ')?;
    let (detector, reason) = rest.split_once(':')?;
    if detector.is_empty() || detector.contains(' ') {
        return None;
    }
    Some((detector, reason.trim_start()))
}

impl From<&Decision> for Ban {
    fn from(d: &Decision) -> Self {
        Ban {
            target: d.target,
            duration: Some(d.duration),
            detector: d.finding.detector.to_owned(),
            reason: d.reason.clone(),
            evidence: Some(evidence_json(&d.finding)),
        }
    }
}

/// At most this many sample lines are kept with a ban's evidence.
pub const MAX_EVIDENCE_SAMPLES: usize = 5;

/// A finding's evidence as kept with its ban: its kind, severity and [`Evidence`] (lists
/// already bounded by mtids-detect), with at most [`MAX_EVIDENCE_SAMPLES`] samples.
///
/// [`Evidence`]: mtids_detect::Evidence
pub fn evidence_json(finding: &mtids_detect::Finding) -> serde_json::Value {
    let mut evidence = finding.evidence.clone();
    evidence.samples.truncate(MAX_EVIDENCE_SAMPLES);
    let mut value = serde_json::to_value(&evidence).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("kind".to_owned(), finding.kind.as_str().into());
        object.insert("source".to_owned(), finding.source.to_string().into());
    }
    value
}

/// Appends `text` cleaned for a RouterOS comment until `out` has `max` bytes: printable
/// ASCII only; control characters become one space; quotes, backslashes and the
/// characters RouterOS scripts give meaning to (`$ ; { } [ ] \``) become `_`; any other
/// byte (non-ASCII) becomes `?`.
fn push_clean(out: &mut String, text: &str, max: usize) {
    let limit = MAX_COMMENT_LEN.min(out.len().saturating_add(max));
    for c in text.chars() {
        if out.len() >= limit {
            break;
        }
        let clean = match c {
            c if c.is_ascii_control() || c.is_whitespace() => {
                if out.ends_with(' ') {
                    continue;
                }
                ' '
            }
            '"' | '\'' | '\\' | '`' | '$' | ';' | '{' | '}' | '[' | ']' => '_',
            c if c.is_ascii() => c,
            _ => '?',
        };
        out.push(clean);
    }
}

/// Which address-list menu a target belongs in.
pub(crate) fn menu_of(target: &IpPrefix) -> &'static str {
    match target.addr() {
        IpAddr::V4(_) => "/ip/firewall/address-list",
        IpAddr::V6(_) => "/ipv6/firewall/address-list",
    }
}

/// Renders a validated target as RouterOS takes it: `198.51.100.7`, `192.0.2.0/24`,
/// `2001:db8::1`, `2001:db8::/64`. Only an [`IpPrefix`] can reach a command, so nothing
/// but an address is ever sent.
pub(crate) fn render_target(target: &IpPrefix) -> String {
    target.to_string()
}

/// Formats a timeout as RouterOS takes it (`1w2d3h4m5s`), rounded up to whole seconds and
/// at least `1s` (`0s` would mean no timeout, a permanent entry).
pub fn format_timeout(d: Duration) -> String {
    let mut secs = d.as_secs();
    if d.subsec_nanos() > 0 || secs == 0 {
        secs = secs.saturating_add(1);
    }
    let mut out = String::new();
    for (unit, size) in [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60)] {
        if secs >= size {
            let _ = write!(out, "{}{unit}", secs / size);
            secs %= size;
        }
    }
    if secs > 0 {
        let _ = write!(out, "{secs}s");
    }
    out
}

/// Parses a duration as the RouterOS API prints it: `1w2d3h4m5s`, `250ms`, `00:10:00`,
/// `1d00:10:00`, or plain seconds. `None` when the text is not one.
pub fn parse_routeros_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if let Some(colon) = rest.find(':') {
        // A clock part `HH:MM:SS` after the units (`1d00:10:00`).
        let start = rest
            .get(..colon)?
            .rfind(|c: char| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        let clock = rest.get(start..)?;
        let mut parts = clock.split(':');
        let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let s = s.split('.').next()?;
        let secs = h
            .parse::<u64>()
            .ok()?
            .checked_mul(3600)?
            .checked_add(m.parse::<u64>().ok()?.checked_mul(60)?)?
            .checked_add(s.parse::<u64>().ok()?)?;
        total = Duration::from_secs(secs);
        rest = rest.get(..start)?;
    }
    if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        return total.checked_add(Duration::from_secs(rest.parse().ok()?));
    }
    let mut number: Option<u64> = None;
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(d.into())?);
            continue;
        }
        let n = number.take()?;
        let part = match c {
            'w' => Duration::from_secs(n.checked_mul(604_800)?),
            'd' => Duration::from_secs(n.checked_mul(86_400)?),
            'h' => Duration::from_secs(n.checked_mul(3_600)?),
            'm' if chars.peek().is_some_and(|&(_, c)| c == 's') => {
                chars.next();
                Duration::from_millis(n)
            }
            'm' => Duration::from_secs(n.checked_mul(60)?),
            's' => Duration::from_secs(n),
            'u' if chars.peek().is_some_and(|&(_, c)| c == 's') => {
                chars.next();
                Duration::from_micros(n)
            }
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    if number.is_some() {
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_trip_through_the_router_format() {
        for secs in [1, 59, 60, 61, 3_599, 3_600, 86_400, 90_061, 700_000] {
            let d = Duration::from_secs(secs);
            assert_eq!(
                parse_routeros_duration(&format_timeout(d)),
                Some(d),
                "{secs}"
            );
        }
        assert_eq!(format_timeout(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(format_timeout(Duration::ZERO), "1s");
        assert_eq!(format_timeout(Duration::from_millis(1_500)), "2s");
    }

    #[test]
    fn router_durations_in_every_printed_form() {
        let p = parse_routeros_duration;
        assert_eq!(p("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(p("00:10:00"), Some(Duration::from_secs(600)));
        assert_eq!(p("1d00:10:00"), Some(Duration::from_secs(87_000)));
        assert_eq!(p("600"), Some(Duration::from_secs(600)));
        assert_eq!(p("1w"), Some(Duration::from_secs(604_800)));
        for bad in ["", "x", "1x", "1d2", "99999999999999999999w", "1:2", "::"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mtids_comments_are_read_back_and_others_are_not() {
        let target: IpPrefix = "198.51.100.7".parse().unwrap();
        let c = Ban::new(target, None, "brute_force", "ssh 5/5 in 60s").comment();
        assert_eq!(
            super::parse_comment(&c),
            Some(("brute_force", "ssh 5/5 in 60s"))
        );
        assert_eq!(
            super::parse_comment("mtids manual: seen in the web log"),
            Some(("manual", "seen in the web log"))
        );
        assert_eq!(super::parse_comment("office printer"), None);
        assert_eq!(super::parse_comment("mtidsx y: z"), None);
        assert_eq!(super::parse_comment("mtids two words: z"), None);
    }

    #[test]
    fn comments_never_carry_raw_attacker_text() {
        let target: IpPrefix = "198.51.100.7".parse().unwrap();
        let hostile = "user \"x\"\r\n$(/system reboot); [:put \\1] \u{7}é\u{202e}";
        let ban = Ban::new(target, None, "brute_force\n", hostile.repeat(20));
        let c = ban.comment();
        assert!(
            c.starts_with("mtids brute_force: user _x_ _(/system reboot)_ _:put _1_ ??user"),
            "{c}"
        );
        assert!(c.len() <= MAX_COMMENT_LEN);
        assert!(c.bytes().all(|b| (0x20..0x7f).contains(&b)), "{c}");
        assert!(!c.contains(['"', '\'', '\\', '$', ';', '[', ']']), "{c}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_makes_a_clean_bounded_comment(detector in ".*", reason in proptest::collection::vec(proptest::char::any(), 0..400)) {
            let reason: String = reason.into_iter().collect();
            let target: IpPrefix = "198.51.100.7".parse().unwrap();
            let c = Ban::new(target, None, detector, reason).comment();
            proptest::prop_assert!(c.starts_with("mtids "));
            proptest::prop_assert!(c.len() <= MAX_COMMENT_LEN);
            proptest::prop_assert!(c.bytes().all(|b| (0x20..0x7f).contains(&b)));
            let forbidden = ['"', '\'', '\\', '`', '$', ';', '{', '}', '[', ']'];
            let clean = !c.contains(forbidden);
            proptest::prop_assert!(clean, "{}", c);
        }

        #[test]
        fn any_duration_text_parses_or_not_without_panicking(text in ".{0,40}") {
            let _ = parse_routeros_duration(&text);
        }

        #[test]
        fn any_timeout_round_trips(secs in 1u64..10_000_000_000) {
            let d = Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_routeros_duration(&format_timeout(d)), Some(d));
        }
    }
}
