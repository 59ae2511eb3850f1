//! Small byte-level helpers shared by the parsers. None of them panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::Endpoint;

/// The byte index of the first `pat` in `hay`.
///
/// Our needles are short and our haystacks a line long, so a SIMD scan for the needle's
/// first byte and a compare beats building a substring searcher per call (the std
/// `str::find` sets up a Two-Way searcher each time: most of the parse time).
#[inline]
pub(super) fn find(hay: &str, pat: &str) -> Option<usize> {
    let (h, p) = (hay.as_bytes(), pat.as_bytes());
    let Some((&first, tail)) = p.split_first() else {
        return Some(0);
    };
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, h.get(from..)?) {
        let at = from + i;
        if h.get(at + 1..at + p.len()) == Some(tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The byte index of the last `pat` in `hay`.
#[inline]
pub(super) fn rfind(hay: &str, pat: &str) -> Option<usize> {
    let (h, p) = (hay.as_bytes(), pat.as_bytes());
    let Some((&first, tail)) = p.split_first() else {
        return Some(h.len());
    };
    let mut end = h.len();
    while let Some(at) = memchr::memrchr(first, h.get(..end)?) {
        if h.get(at + 1..at + p.len()) == Some(tail) {
            return Some(at);
        }
        end = at;
    }
    None
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

/// Dotted-quad IPv4, refusing what std refuses (leading zeros like `010`, empty parts).
#[inline]
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut index = 0;
    let (mut value, mut digits, mut leading_zero) = (0u32, 0u8, false);
    for &c in s.as_bytes() {
        if c == b'.' {
            if digits == 0 {
                return None;
            }
            *octets.get_mut(index)? = u8::try_from(value).ok()?;
            index += 1;
            (value, digits) = (0, 0);
            continue;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 || digits == 3 || leading_zero && digits == 1 {
            return None;
        }
        leading_zero = digits == 0 && d == 0;
        value = value * 10 + u32::from(d);
        digits += 1;
    }
    if index != 3 || digits == 0 {
        return None;
    }
    *octets.get_mut(3)? = u8::try_from(value).ok()?;
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
    fn find_and_rfind_match_std() {
        let hay = "a: in:b out:c, d, e->f";
        for pat in [
            ": in:", " out:", ", ", "->", "x", "", "f", "a:", "e->f", "->g",
        ] {
            assert_eq!(find(hay, pat), hay.find(pat), "find {pat:?}");
            assert_eq!(rfind(hay, pat), hay.rfind(pat), "rfind {pat:?}");
        }
        assert_eq!(find("", "x"), None);
        assert_eq!(rfind("aa", "aa"), Some(0));
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
