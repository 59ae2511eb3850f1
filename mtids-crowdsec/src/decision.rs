//! Decisions as the LAPI sends them, and the typed bans mtids applies.

use std::net::IpAddr;
use std::time::Duration;

use mtids_detect::IpPrefix;
use serde::Deserialize;

use crate::go_duration::parse_go_duration;
use crate::http::bounded;

/// The origin mtids writes on the decisions it pushes.
pub const MTIDS_ORIGIN: &str = "mtids";

/// How long an origin or scenario kept from a pulled decision may be (characters).
const MAX_LABEL: usize = 256;

/// `GET /v1/decisions/stream`'s answer: either list may be JSON `null` (crowdsec 1.4.6's
/// `FormatDecisions` returns a nil slice when nothing matched).
#[derive(Debug, Deserialize)]
pub(crate) struct RawStream {
    #[serde(default)]
    pub(crate) new: Option<Vec<RawDecision>>,
    #[serde(default)]
    pub(crate) deleted: Option<Vec<RawDecision>>,
}

/// One decision of the stream (`Decision` in crowdsec's `pkg/models/localapi_swagger.yaml`;
/// `uuid` exists from 1.5 on). Every field is optional here: a missing one skips that
/// decision, not the whole answer.
#[derive(Debug, Deserialize)]
pub(crate) struct RawDecision {
    #[serde(default)]
    pub(crate) id: Option<i64>,
    #[serde(default)]
    pub(crate) origin: Option<String>,
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) duration: Option<String>,
    #[serde(default)]
    pub(crate) scenario: Option<String>,
    #[serde(default)]
    pub(crate) uuid: Option<String>,
}

/// What a pulled decision applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BanScope {
    /// Scope `Ip`: one address.
    Ip,
    /// Scope `Range`: a CIDR prefix.
    Range,
}

impl BanScope {
    /// The scope as the LAPI writes it (`Ip`, `Range`).
    pub fn as_str(self) -> &'static str {
        match self {
            BanScope::Ip => "Ip",
            BanScope::Range => "Range",
        }
    }

    /// The scope of a target: a single host is `Ip`, a wider prefix `Range`.
    pub fn of(target: &IpPrefix) -> BanScope {
        if target.is_host() {
            BanScope::Ip
        } else {
            BanScope::Range
        }
    }
}

/// A validated `ban` decision pulled from the LAPI.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ban {
    /// The address (scope `Ip`) or prefix (scope `Range`) to block.
    pub target: IpPrefix,
    /// The decision's scope.
    pub scope: BanScope,
    /// Time left when the LAPI answered; the address-list timeout to use. Zero in
    /// [`StreamUpdate::deleted`].
    pub remaining: Duration,
    /// Who decided: `crowdsec`, `cscli`, `CAPI`, `lists`, `mtids`, ...
    pub origin: String,
    /// The scenario (e.g. `crowdsecurity/ssh-bf`, `mtids/brute_force`).
    pub scenario: String,
    /// The LAPI's decision id.
    pub id: Option<i64>,
    /// The decision's UUID (LAPI 1.5 and later).
    pub uuid: Option<String>,
    /// The origin is `mtids` and this process pushed this target (see [`crate::OwnBans`]):
    /// the integrator already holds this ban and must not push it again.
    pub pushed_by_us: bool,
}

/// Decisions that were not turned into bans, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedDecisions {
    /// A type other than `ban` (`captcha`, `throttle`, custom).
    pub not_ban: u64,
    /// A scope other than `Ip` or `Range` (`Country`, `AS`, `Username`, ...).
    pub unknown_scope: u64,
    /// The value does not fit the scope (not an address for `Ip`, not a CIDR for `Range`).
    pub invalid_value: u64,
    /// The duration is not a Go duration.
    pub invalid_duration: u64,
    /// A new decision whose duration is zero or negative.
    pub expired: u64,
    /// A required field (type, scope, value, duration) is missing.
    pub missing_field: u64,
    /// Left out because `max_pulled_bans` bans were already held.
    pub over_cap: u64,
}

impl SkippedDecisions {
    /// All skipped decisions.
    pub fn total(&self) -> u64 {
        self.not_ban
            + self.unknown_scope
            + self.invalid_value
            + self.invalid_duration
            + self.expired
            + self.missing_field
            + self.over_cap
    }
}

/// One pull's worth of changes.
///
/// Apply [`deleted`](Self::deleted) first, then [`new`](Self::new): a target can be in both
/// when one of its decisions ended and another began within one interval.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamUpdate {
    /// Whether this was the startup snapshot (`startup=true`): `new` is then everything the
    /// LAPI holds (up to `max_pulled_bans`), pulled bans not in it should be removed, and
    /// `deleted` is empty (the LAPI's list of every expired decision is not needed).
    pub startup: bool,
    /// Bans to apply (or extend).
    pub new: Vec<Ban>,
    /// Bans that ended (deleted or expired) with no other decision still holding them.
    pub deleted: Vec<Ban>,
    /// What was skipped, by reason.
    pub skipped: SkippedDecisions,
    /// The first few targets left out by `max_pulled_bans` (at most 10), to name in logs.
    pub left_out: Vec<IpPrefix>,
}

/// Why a raw decision was not a ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    NotBan,
    UnknownScope,
    InvalidValue,
    InvalidDuration,
    Expired,
    MissingField,
}

impl Skip {
    pub(crate) fn count(self, into: &mut SkippedDecisions) {
        match self {
            Skip::NotBan => into.not_ban += 1,
            Skip::UnknownScope => into.unknown_scope += 1,
            Skip::InvalidValue => into.invalid_value += 1,
            Skip::InvalidDuration => into.invalid_duration += 1,
            Skip::Expired => into.expired += 1,
            Skip::MissingField => into.missing_field += 1,
        }
    }
}

/// Turns one raw decision into a ban. `deleted`: it comes from the `deleted` list, so its
/// (negative) duration is not checked for being positive and `remaining` is zero.
pub(crate) fn to_ban(raw: RawDecision, deleted: bool) -> Result<Ban, Skip> {
    let (Some(kind), Some(scope), Some(value), Some(duration)) =
        (raw.kind, raw.scope, raw.value, raw.duration)
    else {
        return Err(Skip::MissingField);
    };
    if !kind.eq_ignore_ascii_case("ban") {
        return Err(Skip::NotBan);
    }
    let scope = if scope.eq_ignore_ascii_case("ip") {
        BanScope::Ip
    } else if scope.eq_ignore_ascii_case("range") {
        BanScope::Range
    } else {
        return Err(Skip::UnknownScope);
    };
    let target = parse_target(scope, &value).ok_or(Skip::InvalidValue)?;
    let duration = parse_go_duration(&duration).map_err(|_| Skip::InvalidDuration)?;
    let remaining = if deleted {
        Duration::ZERO
    } else {
        duration.remaining().ok_or(Skip::Expired)?
    };
    Ok(Ban {
        target,
        scope,
        remaining,
        origin: bounded(raw.origin.as_deref().unwrap_or_default(), MAX_LABEL),
        scenario: bounded(raw.scenario.as_deref().unwrap_or_default(), MAX_LABEL),
        id: raw.id,
        uuid: raw.uuid.map(|u| bounded(&u, 64)),
        pushed_by_us: false,
    })
}

/// `Ip`: one address, nothing else. `Range`: `addr/len` (masked to the network, as the
/// LAPI matches ranges by their start and end).
fn parse_target(scope: BanScope, value: &str) -> Option<IpPrefix> {
    if value.len() > 64 {
        return None;
    }
    match scope {
        BanScope::Ip => value.parse::<IpAddr>().ok().map(IpPrefix::host),
        BanScope::Range => {
            let (addr, len) = value.split_once('/')?;
            let addr: IpAddr = addr.parse().ok()?;
            // Digits only: `u8::from_str` would also take `+24`.
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            IpPrefix::new(addr, len.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: &str, scope: &str, value: &str, duration: &str) -> RawDecision {
        RawDecision {
            id: Some(7),
            origin: Some("cscli".into()),
            kind: Some(kind.into()),
            scope: Some(scope.into()),
            value: Some(value.into()),
            duration: Some(duration.into()),
            scenario: Some("manual".into()),
            uuid: None,
        }
    }

    #[test]
    fn ip_and_range_bans() {
        let b = to_ban(raw("ban", "Ip", "198.51.100.7", "3h59m59.54s"), false).unwrap();
        assert_eq!(b.target, "198.51.100.7".parse().unwrap());
        assert_eq!(b.scope, BanScope::Ip);
        assert_eq!(b.remaining, Duration::from_millis(14_399_540));
        assert_eq!((b.origin.as_str(), b.id), ("cscli", Some(7)));
        let b = to_ban(raw("ban", "Range", "203.0.113.0/24", "1h"), false).unwrap();
        assert_eq!(b.target.to_string(), "203.0.113.0/24");
        let b = to_ban(raw("ban", "range", "2001:db8::/32", "1h"), false).unwrap();
        assert_eq!(b.target.prefix_len(), 32);
        let b = to_ban(raw("ban", "Ip", "2001:db8::1", "1h"), false).unwrap();
        assert!(b.target.is_host());
        let b = to_ban(raw("ban", "Ip", "198.51.100.7", "-1m2s"), true).unwrap();
        assert_eq!(b.remaining, Duration::ZERO);
    }

    #[test]
    fn skips_by_reason() {
        let cases = [
            (raw("captcha", "Ip", "198.51.100.7", "1h"), Skip::NotBan),
            (raw("ban", "Country", "FR", "1h"), Skip::UnknownScope),
            (raw("ban", "Username", "root", "1h"), Skip::UnknownScope),
            (
                raw("ban", "Ip", "198.51.100.0/24", "1h"),
                Skip::InvalidValue,
            ),
            (raw("ban", "Ip", "999.1.1.1", "1h"), Skip::InvalidValue),
            (raw("ban", "Ip", "", "1h"), Skip::InvalidValue),
            (raw("ban", "Range", "203.0.113.0", "1h"), Skip::InvalidValue),
            (
                raw("ban", "Range", "203.0.113.0/33", "1h"),
                Skip::InvalidValue,
            ),
            (
                raw("ban", "Range", "203.0.113.0/+24", "1h"),
                Skip::InvalidValue,
            ),
            (
                raw("ban", "Range", "203.0.113.0/", "1h"),
                Skip::InvalidValue,
            ),
            (
                raw("ban", "Ip", "198.51.100.7", "forever"),
                Skip::InvalidDuration,
            ),
            (raw("ban", "Ip", "198.51.100.7", "-5s"), Skip::Expired),
            (raw("ban", "Ip", "198.51.100.7", "0s"), Skip::Expired),
        ];
        for (decision, why) in cases {
            assert_eq!(to_ban(decision, false).unwrap_err(), why);
        }
        let mut missing = raw("ban", "Ip", "198.51.100.7", "1h");
        missing.duration = None;
        assert_eq!(to_ban(missing, false).unwrap_err(), Skip::MissingField);
    }
}
