//! Small byte-level helpers shared by the parsers. None of them panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::Endpoint;

/// The byte index of the first `pat` in `hay`.
#[inline]
pub(super) fn find(hay: &str, pat: &str) -> Option<usize> {
    hay.find(pat)
}

/// The byte index of the last `pat` in `hay`.
#[inline]
pub(super) fn rfind(hay: &str, pat: &str) -> Option<usize> {
    hay.rfind(pat)
}

/// `hay` split around the first `pat`.
#[inline]
pub(super) fn split_once<'a>(hay: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let i = find(hay, pat)?;
    Some((hay.get(..i)?, hay.get(i + pat.len()..)?))
}

/// The value of one to `max_digits` ASCII digits, all of `s`.
#[inline]
fn parse_digits(s: &str, max_digits: usize) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > max_digits {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// A decimal `u8`.
pub(super) fn parse_u8(s: &str) -> Option<u8> {
    u8::try_from(parse_digits(s, 3)?).ok()
}

/// A decimal `u16`.
pub(super) fn parse_u16(s: &str) -> Option<u16> {
    u16::try_from(parse_digits(s, 5)?).ok()
}

/// A decimal `u32`.
pub(super) fn parse_u32(s: &str) -> Option<u32> {
    u32::try_from(parse_digits(s, 10)?).ok()
}

/// A decimal `u64`.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    s.parse()
        .ok()
        .filter(|_| s.bytes().all(|c| c.is_ascii_digit()))
}

/// An IPv4 or IPv6 address, without brackets.
#[inline]
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        parse_ipv4(s).map(IpAddr::V4)
    }
}

/// Dotted-quad IPv4 without leading zeros ambiguity (`010` is refused like std does).
#[inline]
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *octet = parse_u8(part)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:22`, `[2001:db8::1]` or a bare `2001:db8::1`.
pub(super) fn parse_endpoint(s: &str) -> Option<Endpoint> {
    if let Some(r) = s.strip_prefix('[') {
        let (ip, r) = split_once(r, "]")?;
        let ip = IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?);
        return match r {
            "" => Some(Endpoint::ip(ip)),
            _ => Some(Endpoint::new(ip, parse_u16(r.strip_prefix(':')?)?)),
        };
    }
    match s.rfind(':') {
        // Exactly one colon: IPv4 with a port. More: a bare IPv6 address.
        Some(i) if !s.get(..i)?.contains(':') => {
            let ip = IpAddr::V4(parse_ipv4(s.get(..i)?)?);
            Some(Endpoint::new(ip, parse_u16(s.get(i + 1..)?)?))
        }
        _ => parse_ip(s).map(Endpoint::ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_refuse_signs_spaces_and_overflow() {
        assert_eq!(parse_u16("65535"), Some(65535));
        assert_eq!(parse_u16("65536"), None);
        assert_eq!(parse_u16("+1"), None);
        assert_eq!(parse_u16(""), None);
        assert_eq!(parse_u8("256"), None);
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("+5"), None);
    }

    #[test]
    fn ipv4_matches_std_on_tricky_inputs() {
        for s in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..3.4",
            "256.1.1.1",
            "1.2.3.-4",
            "",
        ] {
            assert_eq!(parse_ipv4(s), s.parse::<Ipv4Addr>().ok(), "{s:?}");
        }
    }

    #[test]
    fn endpoints_in_every_shape() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_endpoint("198.51.100.7"), Some(Endpoint::ip(v4)));
        assert_eq!(
            parse_endpoint("198.51.100.7:443"),
            Some(Endpoint::new(v4, 443))
        );
        assert_eq!(
            parse_endpoint("[2001:db8::1]:22"),
            Some(Endpoint::new(v6, 22))
        );
        assert_eq!(parse_endpoint("[2001:db8::1]"), Some(Endpoint::ip(v6)));
        assert_eq!(parse_endpoint("2001:db8::1"), Some(Endpoint::ip(v6)));
        for bad in [
            "",
            "198.51.100.7:",
            "198.51.100.7:65536",
            "[2001:db8::1]22",
            "[2001:db8::1",
            "x:1",
        ] {
            assert_eq!(parse_endpoint(bad), None, "{bad:?}");
        }
    }
}
