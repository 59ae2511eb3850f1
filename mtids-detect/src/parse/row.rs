//! API rows given as `(name, value)` pairs: the connection table and system resources.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use super::scan::{parse_endpoint, parse_u8, parse_u16, parse_u64};
use crate::event::{ConnectionSample, Endpoint, Protocol, ResourceSample};

/// Why an API row could not become an event: which field, and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowError {
    /// A field the event needs was not in the row: add it to `=.proplist=`.
    Missing {
        /// The field's name, e.g. `repl-packets`.
        field: &'static str,
    },
    /// A field's value could not be read.
    Invalid {
        /// The field's name, e.g. `src-address`.
        field: &'static str,
        /// The value as received (at most 64 characters).
        value: String,
    },
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::Missing { field } => {
                write!(f, "row has no `{field}` (add it to the .proplist)")
            }
            RowError::Invalid { field, value } => {
                write!(f, "row has an invalid `{field}`: {value:?}")
            }
        }
    }
}

impl std::error::Error for RowError {}

fn invalid(field: &'static str, value: &str) -> RowError {
    RowError::Invalid {
        field,
        value: value.chars().take(64).collect(),
    }
}

fn missing(field: &'static str) -> RowError {
    RowError::Missing { field }
}

/// A row of `/ip/firewall/connection/print` (or `/ipv6/...`) as `(name, value)` pairs.
///
/// Needs `protocol`, `src-address`, `dst-address`, `orig-packets` and `repl-packets`;
/// reads `.id`, `orig-bytes`, `repl-bytes`, `tcp-state`, `seen-reply` and `assured` when
/// present, and ignores other fields. Addresses may carry the port (`10.0.0.5:34923`,
/// `[2001:db8::1]:443`) or leave it to `src-port` / `dst-port`.
///
/// ```
/// use mtids_detect::parse_connection_row;
///
/// let row = [("protocol", "tcp"), ("src-address", "198.51.100.7:40000"),
///            ("dst-address", "192.0.2.1:443"), ("orig-packets", "9"), ("repl-packets", "0")];
/// let sample = parse_connection_row(row).unwrap();
/// assert_eq!(sample.dst.port, Some(443));
/// assert_eq!(sample.repl_packets, 0);
/// ```
pub fn parse_connection_row<'a, I>(fields: I) -> Result<ConnectionSample<'a>, RowError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut id = None;
    let mut protocol = None;
    let (mut src, mut dst) = (None, None);
    let (mut src_port, mut dst_port) = (None, None);
    let (mut orig_packets, mut repl_packets) = (None, None);
    let (mut orig_bytes, mut repl_bytes) = (None, None);
    let mut tcp_state = None;
    let (mut seen_reply, mut assured) = (None, None);
    for (name, value) in fields {
        match name {
            ".id" => id = Some(Cow::Borrowed(value)),
            "protocol" => protocol = Some(Protocol::from_name(value)),
            "src-address" => src = Some(endpoint("src-address", value)?),
            "dst-address" => dst = Some(endpoint("dst-address", value)?),
            "src-port" => src_port = Some(port("src-port", value)?),
            "dst-port" => dst_port = Some(port("dst-port", value)?),
            "orig-packets" => orig_packets = Some(counter("orig-packets", value)?),
            "repl-packets" => repl_packets = Some(counter("repl-packets", value)?),
            "orig-bytes" => orig_bytes = Some(counter("orig-bytes", value)?),
            "repl-bytes" => repl_bytes = Some(counter("repl-bytes", value)?),
            "tcp-state" if !value.is_empty() => tcp_state = Some(Cow::Borrowed(value)),
            "seen-reply" => seen_reply = Some(flag("seen-reply", value)?),
            "assured" => assured = Some(flag("assured", value)?),
            _ => {}
        }
    }
    let mut src: Endpoint = src.ok_or(missing("src-address"))?;
    let mut dst: Endpoint = dst.ok_or(missing("dst-address"))?;
    src.port = src.port.or(src_port);
    dst.port = dst.port.or(dst_port);
    Ok(ConnectionSample {
        id,
        protocol: protocol.ok_or(missing("protocol"))?,
        src,
        dst,
        orig_packets: orig_packets.ok_or(missing("orig-packets"))?,
        repl_packets: repl_packets.ok_or(missing("repl-packets"))?,
        orig_bytes,
        repl_bytes,
        tcp_state,
        seen_reply,
        assured,
    })
}

/// A row of `/system/resource/print` as `(name, value)` pairs: needs `cpu-load` (percent),
/// reads `uptime` (`1w2d3h4m5s`, or `3d05:06:07` / `05:06:07`) when present.
///
/// ```
/// use mtids_detect::parse_resource_row;
/// use std::time::Duration;
///
/// let sample = parse_resource_row([("cpu-load", "87"), ("uptime", "1d2h3m4s")]).unwrap();
/// assert_eq!(sample.cpu_load, 87);
/// assert_eq!(sample.uptime, Some(Duration::from_secs(93_784)));
/// ```
pub fn parse_resource_row<'a, I>(fields: I) -> Result<ResourceSample, RowError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut cpu_load = None;
    let mut uptime = None;
    for (name, value) in fields {
        match name {
            "cpu-load" => {
                let load = value.strip_suffix('%').unwrap_or(value).trim();
                cpu_load = Some(
                    parse_u8(load)
                        .filter(|l| *l <= 100)
                        .ok_or_else(|| invalid("cpu-load", value))?,
                );
            }
            "uptime" => uptime = Some(parse_uptime(value).ok_or_else(|| invalid("uptime", value))?),
            _ => {}
        }
    }
    Ok(ResourceSample {
        cpu_load: cpu_load.ok_or(missing("cpu-load"))?,
        uptime,
    })
}

fn endpoint(field: &'static str, value: &str) -> Result<Endpoint, RowError> {
    parse_endpoint(value).ok_or_else(|| invalid(field, value))
}

fn port(field: &'static str, value: &str) -> Result<u16, RowError> {
    parse_u16(value).ok_or_else(|| invalid(field, value))
}

fn counter(field: &'static str, value: &str) -> Result<u64, RowError> {
    parse_u64(value).ok_or_else(|| invalid(field, value))
}

fn flag(field: &'static str, value: &str) -> Result<bool, RowError> {
    match value {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(invalid(field, value)),
    }
}

/// `1w2d3h4m5s` (the API's form, any units left out, `ms` allowed), optionally ending in
/// `HH:MM:SS` as the terminal prints it (`3d05:06:07`).
fn parse_uptime(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut millis: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (n, r) = rest.split_at(n_end);
        if r.starts_with(':') {
            // `HH:MM:SS` ends the value.
            let mut parts = rest.split(':');
            let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || m.len() != 2 || sec.len() != 2 {
                return None;
            }
            let secs = parse_u64(h)?
                .checked_mul(3600)?
                .checked_add(parse_u64(m).filter(|m| *m < 60)? * 60)?
                .checked_add(parse_u64(sec).filter(|s| *s < 60)?)?;
            millis = millis.checked_add(secs.checked_mul(1000)?)?;
            break;
        }
        let n = parse_u64(n)?;
        let (unit, r) = if let Some(r) = r.strip_prefix("ms") {
            (1, r)
        } else {
            let unit = match r.as_bytes().first()? {
                b'w' => 604_800_000,
                b'd' => 86_400_000,
                b'h' => 3_600_000,
                b'm' => 60_000,
                b's' => 1000,
                _ => return None,
            };
            (unit, r.get(1..)?)
        };
        millis = millis.checked_add(n.checked_mul(unit)?)?;
        rest = r;
    }
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_in_api_and_terminal_forms() {
        assert_eq!(
            parse_uptime("1w2d3h4m5s"),
            Some(Duration::from_secs(788_645))
        );
        assert_eq!(parse_uptime("5s250ms"), Some(Duration::from_millis(5_250)));
        assert_eq!(
            parse_uptime("3d05:06:07"),
            Some(Duration::from_secs(277_567))
        );
        assert_eq!(parse_uptime("05:06:07"), Some(Duration::from_secs(18_367)));
        for bad in [
            "",
            "5",
            "5x",
            "d",
            "05:6:07",
            "1:2:3:4",
            "99999999999999999999w",
        ] {
            assert_eq!(parse_uptime(bad), None, "{bad:?}");
        }
    }
}
