//! Properties of the parsers: no input panics them, and generated lines of every shape
//! read back the fields they were written from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mtids_detect::{
    AuthKind, AuthSource, Date, Endpoint, Event, LineContext, Protocol, TcpFlags,
    parse_connection_row, parse_log_line, parse_log_line_bytes, parse_log_row, parse_log_row_bytes,
    parse_resource_row,
};
use proptest::prelude::*;

const SAMPLES: &[&str] = &[
    "<134>Feb 15 11:25:46 gw.local firewall,info DROP input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1a:2b:3c, proto TCP (SYN), 198.51.100.7:40384->192.0.2.1:22, len 60",
    "Mar  2 09:09:46 10.0.0.1 firewall,info forward: in:ether1 out:bridge, proto ICMP (type 8, code 0), 198.51.100.7->10.0.0.5, len 64",
    "2023-03-18T20:35:05.734637+01:00 10.0.0.1 firewall,info srcnat: in:(unknown 0) out:ether1, proto TCP (SYN), 10.0.0.5:34923->203.0.113.9:80, NAT (10.0.0.5:34923->192.0.2.1:34923)->203.0.113.9:80, len 52",
    "oct/07/2007 06:23:51 firewall,info input: in:ether1 out:(none), proto TCP (ACK,FIN), [2001:db8::1]:40384->[2001:db8::2]:22, len 80",
    "2025-02-11 00:02:30 system,error,critical login failure for user  from 198.51.100.7 via ssh",
    "06:23:51 system,info,account user john smith logged in from 64:D1:54:AA:BB:CC via winbox",
    "feb/11 00:02:30 l2tp,ppp,info <198.51.100.7>: user vpn authentication failed",
    "dstnat: in:ether1 out:(unknown 0), proto TCP (SYN), 198.51.100.7:40000->192.0.2.1:8080, NAT 198.51.100.7:40000->(192.0.2.1:8080->10.0.0.5:80), len 60",
    "Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004-1G-12S+2XS|7.21 (stable)|10|system,error,critical|High|dvchost=gw dvc=192.0.2.1 msg=login failure for user a\\=b from 198.51.100.200 via ssh app=ssh duser=a\\=b outcome=failure src=198.51.100.200\\r\\n",
    "2026-01-05T07:00:12.004-0500 gw CEF:0|MikroTik|hEX \\| S|7.19 (stable)|16|firewall,info|Low|dvchost=gw dvc=192.0.2.1 msg=input: in:ether1 out:(unknown 0), proto UDP, 203.0.113.5:443->192.0.2.1:51000, len 1252",
    " 2025-02-11 00:02:30.123 pptp,ppp,error <pptp-0>: user vpn authentication failed",
];

fn ctx() -> LineContext {
    LineContext::new(Date::new(2025, 2, 15), 3600)
}

/// Run every log entry point on the text; all that matters is that none panics.
fn parse_everything(s: &str) {
    let _ = parse_log_line(s, &ctx());
    let _ = parse_log_row("firewall,info", s);
    let mut scratch = String::new();
    let _ = parse_log_line_bytes(s.as_bytes(), &ctx(), &mut scratch);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        parse_everything(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut scratch = String::new();
        let _ = parse_log_line_bytes(&bytes, &ctx(), &mut scratch);
        let mut scratch = String::new();
        let _ = parse_log_row_bytes(&bytes, &bytes, &mut scratch);
    }

    #[test]
    fn arbitrary_cef_records_never_panic(
        record in "[ -~]{0,200}",
        pipes in proptest::collection::vec("[a-z0-9 \\\\|=,]{0,12}", 0..9),
    ) {
        // Any record after `CEF:0|`, and records built of pipes, escapes and `key=` pairs.
        parse_everything(&format!("Nov 22 20:47:18 gw CEF:0|{record}"));
        parse_everything(&format!("CEF:0|{}", pipes.join("|")));
        let line = format!("Nov 22 20:47:18 gw CEF:0|{}", pipes.join("|"));
        let event = parse_log_line(&line, &ctx()).event;
        prop_assert_eq!(event.clone().into_owned(), event);
    }

    #[test]
    fn mangled_real_lines_never_panic(
        sample in proptest::sample::select(SAMPLES),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        insert in "[ ,:()\\[\\]>\\-<0-9a-f.]{0,3}",
    ) {
        // Truncated anywhere, and with a few structural characters spliced in.
        let boundaries: Vec<usize> = (0..=sample.len()).filter(|i| sample.is_char_boundary(*i)).collect();
        let end = boundaries[cut.index(boundaries.len())];
        parse_everything(&sample[..end]);
        let at = boundaries[at.index(boundaries.len())];
        let mangled = format!("{}{}{}", &sample[..at], insert, &sample[at..]);
        parse_everything(&mangled);
    }

    #[test]
    fn any_context_never_panics(
        year in any::<i32>(), month in any::<u8>(), day in any::<u8>(), offset in any::<i32>(),
        sample in proptest::sample::select(SAMPLES),
    ) {
        let ctx = LineContext { year, today: Date::new(year, month, day), utc_offset_secs: offset };
        let _ = parse_log_line(sample, &ctx);
    }

    #[test]
    fn arbitrary_rows_never_panic(
        fields in proptest::collection::vec(
            (proptest::sample::select(&[".id", "protocol", "src-address", "dst-address", "src-port",
                "dst-port", "orig-packets", "repl-packets", "orig-bytes", "repl-bytes", "tcp-state",
                "seen-reply", "assured", "cpu-load", "uptime", "other"][..]), "\\PC{0,24}"),
            0..16),
    ) {
        let _ = parse_connection_row(fields.iter().map(|(n, v)| (*n, v.as_str())));
        let _ = parse_resource_row(fields.iter().map(|(n, v)| (*n, v.as_str())));
    }

    #[test]
    fn generated_firewall_lines_read_back(
        prefix in proptest::option::of("[A-Za-z][A-Za-z0-9 _-]{0,20}[A-Za-z0-9]"),
        chain in "(input|forward|output|prerouting|my-chain)",
        in_if in proptest::option::of("[a-z][a-z0-9-]{0,10}"),
        out_if in proptest::option::of("[a-z][a-z0-9-]{0,10}"),
        ros7 in any::<bool>(),
        state in proptest::option::of("(new|established|related|invalid|new,dnat)"),
        mac in proptest::option::of(any::<[u8; 6]>()),
        src in endpoint(), dst in endpoint(),
        flags in 1u8..=255, icmp in any::<(u8, u8)>(),
        proto_kind in 0..3u8,
        len in any::<u16>(),
    ) {
        let none = if ros7 { "(unknown 0)" } else { "(none)" };
        let mut line = String::new();
        if let Some(p) = &prefix { line.push_str(p); line.push(' '); }
        line.push_str(&format!("{chain}: in:{} out:{}, ", in_if.as_deref().unwrap_or(none), out_if.as_deref().unwrap_or(none)));
        if let Some(s) = &state { line.push_str(&format!("connection-state:{s} ")); }
        if let Some(m) = mac {
            line.push_str(&format!("src-mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, ", m[0], m[1], m[2], m[3], m[4], m[5]));
        }
        let (src, dst) = if proto_kind == 2 { (Endpoint::ip(src.ip), Endpoint::ip(dst.ip)) } else { (src, dst) };
        let flags = TcpFlags::from_bits(flags);
        match proto_kind {
            0 => line.push_str(&format!("proto TCP ({flags}), ")),
            1 => line.push_str("proto UDP, "),
            _ => line.push_str(&format!("proto ICMP (type {}, code {}), ", icmp.0, icmp.1)),
        }
        line.push_str(&format!("{src}->{dst}, len {len}"));

        let Event::Firewall(fw) = parse_log_row("firewall,info", &line) else {
            panic!("not parsed: {line}");
        };
        prop_assert_eq!(fw.prefix.as_deref(), prefix.as_deref());
        prop_assert_eq!(&*fw.chain, chain.as_str());
        prop_assert_eq!(fw.in_interface.as_deref(), in_if.as_deref());
        prop_assert_eq!(fw.out_interface.as_deref(), out_if.as_deref());
        prop_assert_eq!(fw.connection_state.as_deref(), state.as_deref());
        prop_assert_eq!(fw.src_mac.map(|m| m.0), mac);
        prop_assert_eq!(fw.src, src);
        prop_assert_eq!(fw.dst, dst);
        prop_assert_eq!(fw.length, Some(u32::from(len)));
        match proto_kind {
            0 => { prop_assert_eq!(fw.protocol, Protocol::Tcp); prop_assert_eq!(fw.tcp_flags, flags); }
            1 => { prop_assert_eq!(fw.protocol, Protocol::Udp); prop_assert!(fw.tcp_flags.is_empty()); }
            _ => {
                // ICMP between IPv6 addresses is read as ICMPv6.
                let expected = if src.ip.is_ipv6() { Protocol::Icmpv6 } else { Protocol::Icmp };
                prop_assert_eq!(fw.protocol, expected);
                prop_assert_eq!(fw.icmp.map(|i| (i.kind, i.code)), Some(icmp));
            }
        }
    }

    #[test]
    fn generated_auth_lines_read_back(
        kind in 0..3u8,
        user in "([a-zA-Z0-9._@-]{1,8}( [a-zA-Z0-9._@-]{1,8}){0,2})?",
        ip in ip(),
        service in "(ssh|telnet|ftp|winbox|web|api|api-ssl)",
    ) {
        // Each kind under the topics RouterOS logs it with (ROUTEROS.md §3).
        let (expected, topics, line) = match kind {
            0 => (AuthKind::Failure, "system,error,critical", format!("login failure for user {user} from {ip} via {service}")),
            1 => (AuthKind::Success, "system,info,account", format!("user {user} logged in from {ip} via {service}")),
            _ => (AuthKind::Logout, "system,info,account", format!("user {user} logged out from {ip} via {service}")),
        };
        // An empty user cannot log in or out, only fail to.
        prop_assume!(kind == 0 || !user.is_empty());
        let Event::Auth(a) = parse_log_row(topics, &line) else {
            panic!("not parsed: {line}");
        };
        prop_assert_eq!(a.kind, expected);
        prop_assert_eq!(&*a.user, user.as_str());
        prop_assert_eq!(a.source, AuthSource::Ip(ip));
        prop_assert_eq!(a.service.as_deref(), Some(service.as_str()));
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (ip(), any::<u16>()).prop_map(|(ip, port)| Endpoint::new(ip, port))
}
