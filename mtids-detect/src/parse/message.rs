//! The message part of a log line: firewall packets and logins.

use std::borrow::Cow;
use std::net::IpAddr;

use super::scan::{
    end_of_token, leading_number, parse_endpoint, parse_ip, parse_u8, rfind, split_once,
};
use crate::event::{
    Auth, AuthKind, AuthSource, Event, FirewallLog, IcmpType, MacAddr, NatTranslation, Protocol,
    TcpFlags, TunnelConnect, TunnelFailure,
};

/// The event a log message describes, or [`Event::Unrecognized`].
///
/// `topics` are evidence (issue 11): a login message counts only under the topics
/// RouterOS itself logs it with (see [`Writer`]), so a script's
/// `:log error "login failure for user x from A via ssh"` (topics `script,error`) is
/// [`Event::Unrecognized`]. Empty topics (the `syslog` remote format, a bare message)
/// carry no evidence either way: the text alone decides.
pub(super) fn parse_message<'a>(topics: &'a str, message: &'a str) -> Event<'a> {
    if let Some(auth) = parse_login(topics, message) {
        return Event::Auth(auth);
    }
    if let Some(fw) = parse_firewall(message) {
        return Event::Firewall(fw);
    }
    // The rare shapes last, so firewall lines never pay for them.
    parse_tunnel_or_ipsec(topics, message).unwrap_or(Event::Unrecognized)
}

/// Which part of RouterOS writes a message, as its log topics show it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// `login failure ...`, `denied winbox/dude connect ...`: `system,error,critical`
    /// (ROUTEROS.md §3; fail2ban's routeros-auth sample, RouterOS 7.5).
    SystemError,
    /// `user X logged in/out ...`: `system,info,account` (ROUTEROS.md §3; MikroTik's
    /// manual, System/Log: `system,info,account user admin logged in from ... via winbox`).
    SystemAccount,
    /// PPP, L2TP, PPTP, SSTP, OVPN, PPPoE: one of those topics (`l2tp,ppp,info`).
    Tunnel,
    /// `ADDRESS parsing packet failed, possible cause: wrong password`: `ipsec`.
    Ipsec,
}

/// Whether `topics` are the ones `writer` logs with. Empty topics pass (no evidence).
/// Scripts log under `script,LEVEL` only, so requiring the writer's own topic shuts them
/// out. Only called once a login message has matched: never on the firewall hot path.
fn topics_allow(topics: &str, writer: Writer) -> bool {
    // The topics RouterOS logs logins with, answered without a scan.
    match topics {
        "" => return true,
        "system,error,critical" => return writer == Writer::SystemError,
        "system,info,account" => return writer == Writer::SystemAccount,
        _ => {}
    }
    let (mut system, mut error, mut account, mut tunnel, mut ipsec) =
        (false, false, false, false, false);
    // Bytes, not `str::split`: this runs on every login line, and topic lists are short.
    for topic in topics.as_bytes().split(|c| *c == b',') {
        match topic.trim_ascii() {
            b"script" => return false,
            b"system" => system = true,
            b"error" | b"critical" | b"warning" => error = true,
            b"account" | b"info" => account = true,
            b"ppp" | b"pptp" | b"l2tp" | b"sstp" | b"ovpn" | b"pppoe" => tunnel = true,
            b"ipsec" => ipsec = true,
            _ => {}
        }
    }
    match writer {
        Writer::SystemError => system && error,
        Writer::SystemAccount => system && account,
        Writer::Tunnel => tunnel,
        Writer::Ipsec => ipsec,
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
fn parse_login<'a>(topics: &'a str, msg: &'a str) -> Option<Auth<'a>> {
    let (auth, writer) = match msg.as_bytes().first()? {
        b'l' | b'A' => {
            let r = msg.strip_prefix("AUTH_FAILED: ").unwrap_or(msg);
            let auth = if let Some(r) = r
                .strip_prefix("login failure for user ")
                .or_else(|| r.strip_prefix("login: failure for user "))
            {
                user_from_via(AuthKind::Failure, r)?
            } else {
                // `AUTH_FAILED: user X from A via S`
                let r = msg.strip_prefix("AUTH_FAILED: ")?;
                user_from_via(AuthKind::Failure, r.strip_prefix("user ")?)?
            };
            (auth, Writer::SystemError)
        }
        b'u' => {
            let r = msg.strip_prefix("user ")?;
            let auth = if let Some((user, tail)) = rsplit_once(r, " logged in from ") {
                auth_tail(AuthKind::Success, user, tail)?
            } else {
                let (user, tail) = rsplit_once(r, " logged out from ")?;
                auth_tail(AuthKind::Logout, user, tail)?
            };
            (auth, Writer::SystemAccount)
        }
        // `denied winbox/dude connect from ADDRESS` (RouterOS 7.9+, ROUTEROS.md §5;
        // https://github.com/crowdsecurity/hub/issues/726): a refused Winbox or Dude login,
        // counted as a Winbox failure without a user.
        b'd' => {
            let addr = msg.strip_prefix("denied winbox/dude connect from ")?;
            let auth = Auth {
                kind: AuthKind::Failure,
                user: Cow::Borrowed(""),
                source: parse_source(addr.trim_end())?,
                service: Some(Cow::Borrowed("winbox")),
            };
            (auth, Writer::SystemError)
        }
        _ => return None,
    };
    topics_allow(topics, writer).then_some(auth)
}

/// PPP/L2TP/PPTP failures, PPTP connections and IPsec key failures (ROUTEROS.md §3, §5).
fn parse_tunnel_or_ipsec<'a>(topics: &'a str, msg: &'a str) -> Option<Event<'a>> {
    match msg.as_bytes().first()? {
        b'<' => parse_ppp_failure(topics, msg),
        // PPTP: `TCP connection established from ADDRESS`.
        b'T' => {
            let addr = msg.strip_prefix("TCP connection established from ")?;
            let source = parse_ip(addr.trim_end())?;
            topics_allow(topics, Writer::Tunnel).then_some(())?;
            Some(Event::TunnelConnect(TunnelConnect {
                service: Cow::Borrowed(tunnel_service(topics).unwrap_or("pptp")),
                source,
            }))
        }
        _ => {
            let auth = parse_ipsec_failure(msg)?;
            topics_allow(topics, Writer::Ipsec).then_some(Event::Auth(auth))
        }
    }
}

/// `ADDRESS parsing packet failed, possible cause: wrong password` (IPsec with a wrong
/// pre-shared key, ROUTEROS.md §5).
fn parse_ipsec_failure(msg: &str) -> Option<Auth<'_>> {
    // The tail first: one compare turns away the firewall lines that start like an address.
    let addr = msg.strip_suffix(" parsing packet failed, possible cause: wrong password")?;
    let ip = match parse_source(addr)? {
        AuthSource::Ip(ip) => ip,
        AuthSource::Mac(_) => return None,
    };
    Some(Auth {
        kind: AuthKind::Failure,
        user: Cow::Borrowed(""),
        source: AuthSource::Ip(ip),
        service: Some(Cow::Borrowed("ipsec")),
    })
}

/// The first tunnel topic (`l2tp`, `pptp`, ...), or `ppp`, or `None`.
fn tunnel_service(topics: &str) -> Option<&str> {
    let mut ppp = None;
    for topic in topics.split(',') {
        match topic {
            "pptp" | "l2tp" | "sstp" | "ovpn" | "pppoe" => return Some(topic),
            "ppp" => ppp = Some(topic),
            _ => {}
        }
    }
    ppp
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
pub(super) fn parse_source(addr: &str) -> Option<AuthSource> {
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    if let Some(ip) = parse_ip(bare) {
        return Some(AuthSource::Ip(ip));
    }
    addr.parse::<MacAddr>().ok().map(AuthSource::Mac)
}

/// `<198.51.100.7>: user x authentication failed` (PPP, L2TP, SSTP): an [`Event::Auth`].
/// `<pptp-0>: user x authentication failed` (PPTP names the session, not the address):
/// an [`Event::TunnelFailure`] for the engine to link (ROUTEROS.md §5).
fn parse_ppp_failure<'a>(topics: &'a str, msg: &'a str) -> Option<Event<'a>> {
    let (session, rest) = split_once(msg.strip_prefix('<')?, ">: user ")?;
    let (user, _) = rsplit_once(rest, " authentication failed")?;
    if !topics_allow(topics, Writer::Tunnel) {
        return None;
    }
    let service = tunnel_service(topics).unwrap_or("ppp");
    if let Some(ip) = parse_ip(session) {
        return Some(Event::Auth(Auth {
            kind: AuthKind::Failure,
            user: Cow::Borrowed(user),
            source: AuthSource::Ip(ip),
            service: Some(Cow::Borrowed(service)),
        }));
    }
    // A session name is one short word (`pptp-0`, `<pptp-user>`).
    if session.is_empty() || session.len() > 64 || session.contains(' ') {
        return None;
    }
    Some(Event::TunnelFailure(TunnelFailure {
        session: Cow::Borrowed(session),
        user: Cow::Borrowed(user),
        service: Cow::Borrowed(service),
    }))
}

fn rsplit_once<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let i = rfind(s, pat)?;
    Some((s.get(..i)?, s.get(i + pat.len()..)?))
}
