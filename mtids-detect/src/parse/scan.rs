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

/// A decimal `u64`.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    s.parse()
        .ok()
        .filter(|_| s.bytes().all(|c| c.is_ascii_digit()))
}

/// An IPv4 or IPv6 address, without brackets.
#[inline]
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    match parse_ipv4_prefix(s.as_bytes()) {
        Some((ip, n)) if n == s.len() => Some(IpAddr::V4(ip)),
        _ => parse_ipv6(s.as_bytes()).map(IpAddr::V6),
    }
}

/// An IPv6 address in any textual form std accepts (`2001:db8::1`, `::`, `::ffff:1.2.3.4`),
/// and nothing std refuses. Hand-written because std's parser took a third of the parse
/// time on IPv6 lines.
pub(super) fn parse_ipv6(b: &[u8]) -> Option<Ipv6Addr> {
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (mut head_len, mut tail_len) = (0usize, 0usize);
    let mut gap = false;
    let mut at = 0;
    if b.starts_with(b"::") {
        gap = true;
        at = 2;
    } else if b.first() == Some(&b':') {
        return None;
    }
    while at < b.len() {
        let groups = head_len + tail_len;
        // Room left: eight groups, less one when `::` stands for at least one of them.
        let room = if gap { 7usize } else { 8 }.checked_sub(groups)?;
        let rest = b.get(at..)?;
        let digits = rest
            .iter()
            .take(5)
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if rest.get(digits) == Some(&b'.') {
            // A dotted IPv4 address ends the text and fills two groups.
            let (v4, n) = parse_ipv4_prefix(rest)?;
            if n != rest.len() || room < 2 {
                return None;
            }
            let [a, b2, c, d] = v4.octets();
            for group in [u16::from_be_bytes([a, b2]), u16::from_be_bytes([c, d])] {
                push_group(
                    &mut head,
                    &mut head_len,
                    &mut tail,
                    &mut tail_len,
                    gap,
                    group,
                )?;
            }
            break;
        }
        if digits == 0 || digits > 4 || room == 0 {
            return None;
        }
        let group = rest
            .get(..digits)?
            .iter()
            .fold(0u16, |acc, c| acc << 4 | u16::from(hex_value(*c)));
        push_group(
            &mut head,
            &mut head_len,
            &mut tail,
            &mut tail_len,
            gap,
            group,
        )?;
        at += digits;
        match (b.get(at), b.get(at + 1)) {
            (None, _) => break,
            (Some(b':'), Some(b':')) if !gap => {
                gap = true;
                at += 2;
            }
            (Some(b':'), Some(_)) => at += 1,
            _ => return None,
        }
    }
    if (!gap && head_len != 8) || (gap && head_len + tail_len > 7) {
        return None;
    }
    // The groups after `::` go to the end; the zeros of the gap sit in between.
    let mut groups = head;
    let start = 8usize.checked_sub(tail_len)?;
    for (slot, group) in groups
        .get_mut(start..)?
        .iter_mut()
        .zip(tail.get(..tail_len)?)
    {
        *slot = *group;
    }
    Some(Ipv6Addr::from(groups))
}

fn push_group(
    head: &mut [u16; 8],
    head_len: &mut usize,
    tail: &mut [u16; 8],
    tail_len: &mut usize,
    gap: bool,
    group: u16,
) -> Option<()> {
    let (groups, len) = if gap {
        (tail, tail_len)
    } else {
        (head, head_len)
    };
    *groups.get_mut(*len)? = group;
    *len += 1;
    Some(())
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Dotted-quad IPv4, refusing what std refuses (leading zeros like `010`, empty parts).
#[cfg(test)]
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    parse_ipv4_prefix(s.as_bytes()).and_then(|(ip, n)| (n == s.len()).then_some(ip))
}

/// A dotted-quad IPv4 address at the start of `b`, and how many bytes it took. Refuses
/// what std refuses (leading zeros like `010`, empty parts, octets above 255).
#[inline]
pub(super) fn parse_ipv4_prefix(b: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            if b.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let first = *b.get(at)?;
        let mut value = u32::from(first.wrapping_sub(b'0'));
        if value > 9 {
            return None;
        }
        at += 1;
        // A leading zero stands alone: `0` is an octet, `01` is refused below.
        if first != b'0' {
            for _ in 0..2 {
                match b.get(at) {
                    Some(c) if c.is_ascii_digit() => {
                        value = value * 10 + u32::from(c - b'0');
                        at += 1;
                    }
                    _ => break,
                }
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    // `1.2.3.4` must not be the start of `1.2.3.45`, `1.2.3.04` or `1.2.3.4.5`.
    if b.get(at).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
        return None;
    }
    Some((Ipv4Addr::from(octets), at))
}

/// The value of the ASCII digits at the start of `b` (at most `max` of them) and how many
/// there were.
#[inline]
pub(super) fn leading_number(b: &[u8], max: usize) -> (u64, usize) {
    let mut value = 0u64;
    let mut n = 0;
    for &c in b.iter().take(max) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        value = value * 10 + u64::from(d);
        n += 1;
    }
    (value, n)
}

/// The index of the first byte of `s` that is one of `set`, or `s.len()`.
#[inline]
pub(super) fn end_of_token(s: &str, set: &[u8]) -> usize {
    s.bytes().position(|c| set.contains(&c)).unwrap_or(s.len())
}

/// `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:22`, `[2001:db8::1]` or a bare `2001:db8::1`.
pub(super) fn parse_endpoint(s: &str) -> Option<Endpoint> {
    let b = s.as_bytes();
    if let Some(r) = s.strip_prefix('[') {
        let (ip, r) = split_once(r, "]")?;
        let ip = IpAddr::V6(parse_ipv6(ip.as_bytes())?);
        return match r {
            "" => Some(Endpoint::ip(ip)),
            _ => Some(Endpoint::new(ip, parse_u16(r.strip_prefix(':')?)?)),
        };
    }
    if let Some((ip, n)) = parse_ipv4_prefix(b) {
        let ip = IpAddr::V4(ip);
        return match b.get(n) {
            None => Some(Endpoint::ip(ip)),
            Some(b':') => Some(Endpoint::new(ip, parse_u16(s.get(n + 1..)?)?)),
            Some(_) => None,
        };
    }
    parse_ipv6(b).map(|ip| Endpoint::ip(IpAddr::V6(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ipv6_agrees_with_std_on_any_text(s in "[0-9a-fA-F:.]{0,42}") {
            prop_assert_eq!(parse_ipv6(s.as_bytes()), s.parse::<Ipv6Addr>().ok());
        }

        #[test]
        fn ipv6_reads_what_std_writes(
            groups in prop::array::uniform8(prop_oneof![Just(0u16), Just(0xffff), any::<u16>()]),
            upper in any::<bool>(),
        ) {
            let ip = Ipv6Addr::from(groups);
            let text = if upper { ip.to_string().to_uppercase() } else { ip.to_string() };
            prop_assert_eq!(parse_ipv6(text.as_bytes()), Some(ip));
            // And the uncompressed form.
            let full = groups.map(|g| format!("{g:x}")).join(":");
            prop_assert_eq!(parse_ipv6(full.as_bytes()), Some(ip));
        }

        #[test]
        fn ipv4_agrees_with_std_on_any_text(s in "[0-9.]{0,17}") {
            prop_assert_eq!(parse_ipv4(&s), s.parse::<Ipv4Addr>().ok());
        }
    }

    #[test]
    fn numbers_refuse_signs_spaces_and_overflow() {
        assert_eq!(parse_u16("65535"), Some(65535));
        assert_eq!(parse_u16("65536"), None);
        assert_eq!(parse_u16("+1"), None);
        assert_eq!(parse_u16(""), None);
        assert_eq!(parse_u8("256"), None);
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
    fn ipv6_matches_std_on_tricky_inputs() {
        for s in [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:0:0:0:0:1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6::8",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3.4",
            "1::1.2.3.4",
            "FE80::ABCD",
            "0001:0002::",
            "00001::",
            ":::",
            "1:::2",
            "1::2::3",
            ":1::",
            "1::2:",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "::1.2.3",
            "::1.2.3.4:5",
            "1.2.3.4",
            "",
            ":",
            "1:",
            "g::",
            "::01.2.3.4",
            "1:2:3:4:5:6:7::8",
            "::1:2:3:4:5:6:7:8",
        ] {
            assert_eq!(
                parse_ipv6(s.as_bytes()),
                s.parse::<Ipv6Addr>().ok(),
                "{s:?}"
            );
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
