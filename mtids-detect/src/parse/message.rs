//! The message part of a log line: firewall packets and logins.

use std::borrow::Cow;
use std::net::IpAddr;

use super::scan::{
    end_of_token, leading_number, parse_endpoint, parse_ip, parse_u8, rfind, split_once,
};
use crate::event::{
    Auth, AuthKind, AuthSource, Event, FirewallLog, IcmpType, MacAddr, NatTranslation, Protocol,
    TcpFlags,
};

/// The event a log message describes, or [`Event::Unrecognized`].
pub(super) fn parse_message<'a>(topics: &'a str, message: &'a str) -> Event<'a> {
    if let Some(auth) = parse_auth(topics, message) {
        return Event::Auth(auth);
    }
    match parse_firewall(message) {
        Some(fw) => Event::Firewall(fw),
        None => Event::Unrecognized,
    }
}

/// `PREFIX CHAIN: in:IFACE out:IFACE, [connection-state:STATE ][src-mac MAC, ]proto PROTO[ (DETAIL)], SRC->DST, [NAT ...,] len N`
fn parse_firewall(msg: &str) -> Option<FirewallLog<'_>> {
    let (head, rest) = split_once(msg, ": in:")?;
    let (prefix, chain) = match head.rfind(' ') {
        Some(i) => (head.get(..i)?.trim_end(), head.get(i + 1..)?),
        None => ("", head),
    };
    if chain.is_empty() {
        return None;
    }
    let (in_interface, rest) = split_once(rest, " out:")?;
    let (out_interface, mut rest) = split_once(rest, ", ")?;

    let mut connection_state = None;
    if let Some(r) = rest.strip_prefix("connection-state:") {
        // Up to the space: the state may carry NAT marks (`established,snat`), and
        // RouterOS writes no comma after it (older versions may: drop it).
        let (state, r) = split_once(r, " ").unwrap_or((r, ""));
        connection_state = Some(Cow::Borrowed(state.strip_suffix(',').unwrap_or(state)));
        rest = r;
    }

    let mut src_mac = None;
    if let Some(r) = rest.strip_prefix("src-mac ") {
        let (mac, r) = split_once(r, ", ")?;
        src_mac = mac.parse::<MacAddr>().ok();
        rest = r;
    }

    // Fields we do not know may come first on other versions: skip to `proto`.
    let r = match rest.strip_prefix("proto ") {
        Some(r) => r,
        None => split_once(rest, "proto ")?.1,
    };
    let name_end = end_of_token(r, b" ,");
    let (name, r) = r.split_at(name_end);
    let protocol = Protocol::from_name(name);
    let mut tcp_flags = TcpFlags::EMPTY;
    let mut icmp = None;
    let r = match r.strip_prefix(" (") {
        Some(r) => {
            let (detail, r) = split_once(r, ")")?;
            match protocol {
                Protocol::Tcp => tcp_flags = parse_tcp_flags(detail),
                Protocol::Icmp | Protocol::Icmpv6 => icmp = parse_icmp(detail),
                _ => {}
            }
            r
        }
        None => r,
    };
    rest = r.strip_prefix(", ")?;

    let (addrs, mut rest) = split_once(rest, ", ").unwrap_or((rest, ""));
    let (src, dst) = split_once(addrs, "->")?;
    let src = parse_endpoint(src)?;
    let dst = parse_endpoint(dst)?;
    // ICMP between IPv6 addresses can only be ICMPv6, whatever name the log gives it.
    let protocol = match (protocol, src.ip) {
        (Protocol::Icmp, IpAddr::V6(_)) => Protocol::Icmpv6,
        (p, _) => p,
    };

    let mut nat = None;
    if let Some(r) = rest.strip_prefix("NAT ") {
        let (translation, r) = split_once(r, ", ").unwrap_or((r, ""));
        nat = parse_nat(translation);
        rest = r;
    }

    let length = rest.strip_prefix("len ").and_then(|r| {
        let (n, digits) = leading_number(r.as_bytes(), 10);
        u32::try_from(n).ok().filter(|_| digits > 0)
    });

    Some(FirewallLog {
        prefix: (!prefix.is_empty()).then_some(Cow::Borrowed(prefix)),
        chain: Cow::Borrowed(chain),
        in_interface: interface(in_interface),
        out_interface: interface(out_interface),
        connection_state,
        src_mac,
        protocol,
        tcp_flags,
        icmp,
        src,
        dst,
        nat,
        length,
    })
}

/// `(none)` (RouterOS 6) and `(unknown 0)` (RouterOS 7) mean "no interface".
fn interface(name: &str) -> Option<Cow<'_, str>> {
    if name.is_empty() || name == "(none)" || name.starts_with("(unknown") {
        None
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// `SYN`, `ACK,FIN`, ...; unknown names are skipped.
fn parse_tcp_flags(list: &str) -> TcpFlags {
    let mut flags = TcpFlags::EMPTY;
    for name in list.as_bytes().split(|c| *c == b',') {
        flags |= match name.trim_ascii() {
            b"SYN" => TcpFlags::SYN,
            b"ACK" => TcpFlags::ACK,
            b"FIN" => TcpFlags::FIN,
            b"RST" => TcpFlags::RST,
            b"PSH" => TcpFlags::PSH,
            b"URG" => TcpFlags::URG,
            b"ECE" => TcpFlags::ECE,
            b"CWR" => TcpFlags::CWR,
            other => std::str::from_utf8(other)
                .ok()
                .and_then(TcpFlags::from_name)
                .unwrap_or(TcpFlags::EMPTY),
        };
    }
    flags
}

/// `type 8, code 0`.
fn parse_icmp(detail: &str) -> Option<IcmpType> {
    let (kind, code) = split_once(detail, ", ")?;
    Some(IcmpType {
        kind: parse_u8(kind.strip_prefix("type ")?)?,
        code: parse_u8(code.strip_prefix("code ")?)?,
    })
}

/// `(A->B)->C` (source NAT), `A->(C->D)` (destination NAT) or `(A->B)->(C->D)`.
fn parse_nat(s: &str) -> Option<NatTranslation> {
    let (original_src, translated_src, rest) = match s.strip_prefix('(') {
        Some(r) => {
            let (inner, r) = split_once(r, ")")?;
            let (a, b) = split_once(inner, "->")?;
            (
                parse_endpoint(a)?,
                parse_endpoint(b)?,
                r.strip_prefix("->")?,
            )
        }
        None => {
            let (a, r) = split_once(s, "->")?;
            let a = parse_endpoint(a)?;
            (a, a, r)
        }
    };
    let (original_dst, translated_dst) = match rest.strip_prefix('(') {
        Some(r) => {
            let inner = r.strip_suffix(')')?;
            let (c, d) = split_once(inner, "->")?;
            (parse_endpoint(c)?, parse_endpoint(d)?)
        }
        None => {
            let c = parse_endpoint(rest)?;
            (c, c)
        }
    };
    Some(NatTranslation {
        original_src,
        translated_src,
        original_dst,
        translated_dst,
    })
}

/// Login failures, logins and logouts in every shape RouterOS writes them.
fn parse_auth<'a>(topics: &'a str, msg: &'a str) -> Option<Auth<'a>> {
    match msg.as_bytes().first()? {
        b'l' | b'A' => {
            let r = msg.strip_prefix("AUTH_FAILED: ").unwrap_or(msg);
            if let Some(r) = r
                .strip_prefix("login failure for user ")
                .or_else(|| r.strip_prefix("login: failure for user "))
            {
                return user_from_via(AuthKind::Failure, r);
            }
            // `AUTH_FAILED: user X from A via S`
            let r = msg.strip_prefix("AUTH_FAILED: ")?;
            user_from_via(AuthKind::Failure, r.strip_prefix("user ")?)
        }
        b'u' => {
            let r = msg.strip_prefix("user ")?;
            if let Some((user, tail)) = rsplit_once(r, " logged in from ") {
                return auth_tail(AuthKind::Success, user, tail);
            }
            let (user, tail) = rsplit_once(r, " logged out from ")?;
            auth_tail(AuthKind::Logout, user, tail)
        }
        b'<' => parse_ppp_failure(topics, msg),
        _ => None,
    }
}

/// `USER from ADDR[ via SERVICE]`, where USER may be empty or contain spaces.
fn user_from_via(kind: AuthKind, r: &str) -> Option<Auth<'_>> {
    let (user, tail) = match rsplit_once(r, " from ") {
        Some(found) => found,
        // An empty user written with a single space: `for user from A via S`.
        None => ("", r.strip_prefix("from ")?),
    };
    auth_tail(kind, user, tail)
}

/// `ADDR[ via SERVICE]` after `from`.
fn auth_tail<'a>(kind: AuthKind, user: &'a str, tail: &'a str) -> Option<Auth<'a>> {
    let (addr, service) = match split_once(tail, " via ") {
        Some((addr, service)) => (addr, Some(Cow::Borrowed(service.trim_end()))),
        None => (tail.trim_end(), None),
    };
    Some(Auth {
        kind,
        user: Cow::Borrowed(user),
        source: parse_source(addr)?,
        service,
    })
}

/// An IP address (IPv6 possibly in brackets) or a MAC address.
fn parse_source(addr: &str) -> Option<AuthSource> {
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    if let Some(ip) = parse_ip(bare) {
        return Some(AuthSource::Ip(ip));
    }
    addr.parse::<MacAddr>().ok().map(AuthSource::Mac)
}

/// `<198.51.100.7>: user x authentication failed` (PPP, L2TP, PPTP, SSTP).
fn parse_ppp_failure<'a>(topics: &'a str, msg: &'a str) -> Option<Auth<'a>> {
    let (addr, rest) = split_once(msg.strip_prefix('<')?, ">: user ")?;
    let ip: IpAddr = parse_ip(addr)?;
    let (user, _) = rsplit_once(rest, " authentication failed")?;
    let service = topics.split(',').next().filter(|t| !t.is_empty());
    Some(Auth {
        kind: AuthKind::Failure,
        user: Cow::Borrowed(user),
        source: AuthSource::Ip(ip),
        service: Some(Cow::Borrowed(service.unwrap_or("ppp"))),
    })
}

fn rsplit_once<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let i = rfind(s, pat)?;
    Some((s.get(..i)?, s.get(i + pat.len()..)?))
}
