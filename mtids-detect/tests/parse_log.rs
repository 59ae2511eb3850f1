//! Every log shape of ROUTEROS.md §3, parsed with exact field assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::net::IpAddr;

use mtids_detect::{
    Auth, AuthKind, AuthSource, Date, Endpoint, Event, FirewallLog, IcmpType, LineContext, MacAddr,
    NatTranslation, Protocol, TcpFlags, Timestamp, parse_log_line, parse_log_line_bytes,
    parse_log_row, parse_log_row_bytes, parse_log_time,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(s: &str, port: u16) -> Endpoint {
    Endpoint::new(ip(s), port)
}

fn firewall(message: &str) -> FirewallLog<'_> {
    match parse_log_row("firewall,info", message) {
        Event::Firewall(fw) => fw,
        other => panic!("not a firewall event: {other:?} from {message:?}"),
    }
}

fn auth(message: &str) -> Auth<'_> {
    // The topics RouterOS logs each kind with: topics are evidence (ROUTEROS.md §3).
    let topics = if message.starts_with("user ") {
        "system,info,account"
    } else {
        "system,error,critical"
    };
    match parse_log_row(topics, message) {
        Event::Auth(a) => a,
        other => panic!("not an auth event: {other:?} from {message:?}"),
    }
}

// ---- firewall ----

#[test]
fn tcp_syn_with_prefix_state_and_src_mac() {
    let fw = firewall(
        "DROP-SSH input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1a:2b:3c, proto TCP (SYN), 198.51.100.7:40384->192.0.2.1:22, len 60",
    );
    assert_eq!(
        fw,
        FirewallLog {
            prefix: Some(Cow::Borrowed("DROP-SSH")),
            chain: Cow::Borrowed("input"),
            in_interface: Some(Cow::Borrowed("ether1")),
            out_interface: None,
            connection_state: Some(Cow::Borrowed("new")),
            src_mac: Some(MacAddr([0x00, 0x0c, 0x42, 0x1a, 0x2b, 0x3c])),
            protocol: Protocol::Tcp,
            tcp_flags: TcpFlags::SYN,
            icmp: None,
            src: ep("198.51.100.7", 40384),
            dst: ep("192.0.2.1", 22),
            nat: None,
            length: Some(60),
        }
    );
}

#[test]
fn no_prefix_no_state_no_src_mac_and_out_none() {
    let fw = firewall(
        "input: in:pppoe-out1 out:(none), proto TCP (ACK,FIN), 203.0.113.9:443->192.0.2.1:51000, len 52",
    );
    assert_eq!(fw.prefix, None);
    assert_eq!(fw.chain, "input");
    assert_eq!(fw.in_interface.as_deref(), Some("pppoe-out1"));
    assert_eq!(fw.out_interface, None);
    assert_eq!(fw.connection_state, None);
    assert_eq!(fw.src_mac, None);
    assert_eq!(fw.tcp_flags, TcpFlags::ACK | TcpFlags::FIN);
    assert_eq!(fw.src, ep("203.0.113.9", 443));
    assert_eq!(fw.dst, ep("192.0.2.1", 51000));
    assert_eq!(fw.length, Some(52));
}

#[test]
fn prefix_with_spaces_and_many_tcp_flags() {
    let fw = firewall(
        "port scan from wan forward: in:ether1 - WAN out:bridge, connection-state:invalid src-mac 64:d1:54:aa:bb:cc, proto TCP (SYN,ECE,CWR), 198.51.100.7:1234->10.0.0.5:8443, len 64",
    );
    assert_eq!(fw.prefix.as_deref(), Some("port scan from wan"));
    assert_eq!(fw.chain, "forward");
    // An interface name with spaces reaches up to ` out:`.
    assert_eq!(fw.in_interface.as_deref(), Some("ether1 - WAN"));
    assert_eq!(fw.out_interface.as_deref(), Some("bridge"));
    assert_eq!(fw.connection_state.as_deref(), Some("invalid"));
    assert_eq!(fw.tcp_flags, TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR);
    assert!(fw.tcp_flags.is_syn_only());
}

#[test]
fn udp_has_no_flags() {
    let fw = firewall(
        "input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1a:2b:3c, proto UDP, 198.51.100.7:5353->192.0.2.1:161, len 78",
    );
    assert_eq!(fw.protocol, Protocol::Udp);
    assert!(fw.tcp_flags.is_empty());
    assert_eq!(fw.icmp, None);
    assert_eq!(fw.src, ep("198.51.100.7", 5353));
    assert_eq!(fw.dst, ep("192.0.2.1", 161));
    assert_eq!(fw.length, Some(78));
}

#[test]
fn icmp_has_type_and_code_and_no_ports() {
    let fw = firewall(
        "ping input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1a:2b:3c, proto ICMP (type 8, code 0), 198.51.100.7->192.0.2.1, len 64",
    );
    assert_eq!(fw.protocol, Protocol::Icmp);
    assert_eq!(fw.icmp, Some(IcmpType { kind: 8, code: 0 }));
    assert_eq!(fw.src, Endpoint::ip(ip("198.51.100.7")));
    assert_eq!(fw.dst, Endpoint::ip(ip("192.0.2.1")));
    assert_eq!(fw.length, Some(64));
}

#[test]
fn ipv6_endpoints_in_brackets() {
    let fw = firewall(
        "input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1a:2b:3c, proto TCP (SYN), [2001:db8::1]:40384->[2001:db8::2]:22, len 80",
    );
    assert_eq!(fw.src, ep("2001:db8::1", 40384));
    assert_eq!(fw.dst, ep("2001:db8::2", 22));
}

#[test]
fn icmpv6_without_ports() {
    let fw = firewall(
        "input: in:ether1 out:(unknown 0), proto ICMPv6 (type 128, code 0), 2001:db8::1->2001:db8::2, len 104",
    );
    assert_eq!(fw.protocol, Protocol::Icmpv6);
    assert_eq!(fw.icmp, Some(IcmpType { kind: 128, code: 0 }));
    assert_eq!(fw.src, Endpoint::ip(ip("2001:db8::1")));
    assert_eq!(fw.dst, Endpoint::ip(ip("2001:db8::2")));
}

#[test]
fn icmp_between_ipv6_addresses_is_icmpv6() {
    let fw = firewall(
        "input: in:ether1 out:(unknown 0), proto ICMP (type 135, code 0), fe80::1->ff02::1:ff00:2, len 72",
    );
    assert_eq!(fw.protocol, Protocol::Icmpv6);
    assert_eq!(fw.icmp, Some(IcmpType { kind: 135, code: 0 }));
    assert_eq!(fw.dst, Endpoint::ip(ip("ff02::1:ff00:2")));
}

#[test]
fn source_nat() {
    let fw = firewall(
        "srcnat: in:(unknown 0) out:ether1, connection-state:new proto TCP (SYN), 10.0.0.5:34923->203.0.113.9:80, NAT (10.0.0.5:34923->192.0.2.1:34923)->203.0.113.9:80, len 52",
    );
    assert_eq!(fw.in_interface, None);
    assert_eq!(fw.out_interface.as_deref(), Some("ether1"));
    assert_eq!(fw.src, ep("10.0.0.5", 34923));
    assert_eq!(fw.dst, ep("203.0.113.9", 80));
    assert_eq!(
        fw.nat,
        Some(NatTranslation {
            original_src: ep("10.0.0.5", 34923),
            translated_src: ep("192.0.2.1", 34923),
            original_dst: ep("203.0.113.9", 80),
            translated_dst: ep("203.0.113.9", 80),
        })
    );
    assert_eq!(fw.length, Some(52));
}

#[test]
fn destination_nat() {
    let fw = firewall(
        "dstnat: in:ether1 out:(unknown 0), connection-state:new,dnat src-mac 00:0c:42:1a:2b:3c, proto TCP (SYN), 198.51.100.7:40000->192.0.2.1:8080, NAT 198.51.100.7:40000->(192.0.2.1:8080->10.0.0.5:80), len 60",
    );
    assert_eq!(fw.connection_state.as_deref(), Some("new,dnat"));
    assert_eq!(
        fw.nat,
        Some(NatTranslation {
            original_src: ep("198.51.100.7", 40000),
            translated_src: ep("198.51.100.7", 40000),
            original_dst: ep("192.0.2.1", 8080),
            translated_dst: ep("10.0.0.5", 80),
        })
    );
}

#[test]
fn other_protocols_keep_their_number() {
    let fw =
        firewall("input: in:ether1 out:(unknown 0), proto GRE, 198.51.100.7->192.0.2.1, len 120");
    assert_eq!(fw.protocol, Protocol::Other(47));
    let fw =
        firewall("input: in:ether1 out:(unknown 0), proto 41, 198.51.100.7->192.0.2.1, len 120");
    assert_eq!(fw.protocol, Protocol::Other(41));
}

#[test]
fn broken_firewall_lines_are_unrecognized() {
    for msg in [
        "input: in:ether1 out:(unknown 0), proto TCP (SYN), 198.51.100.7:40384, len 60",
        "input: in:ether1 out:(unknown 0), proto TCP (SYN), 198.51.100.7:99999->192.0.2.1:22, len 60",
        "input: in:ether1 out:(unknown 0), proto TCP (SYN, 198.51.100.7:1->192.0.2.1:22, len 60",
        "input: in:ether1 out:(unknown 0) proto TCP",
        ": in:ether1 out:(unknown 0), proto TCP (SYN), 198.51.100.7:1->192.0.2.1:22, len 60",
    ] {
        assert_eq!(
            parse_log_row("firewall,info", msg),
            Event::Unrecognized,
            "{msg:?}"
        );
    }
}

// ---- authentication ----

#[test]
fn login_failure() {
    assert_eq!(
        auth("login failure for user admin from 198.51.100.7 via ssh"),
        Auth {
            kind: AuthKind::Failure,
            user: Cow::Borrowed("admin"),
            source: AuthSource::Ip(ip("198.51.100.7")),
            service: Some(Cow::Borrowed("ssh")),
        }
    );
}

#[test]
fn login_failure_with_empty_user_and_ipv6() {
    let a = auth("login failure for user  from 2001:db8::7 via winbox");
    assert_eq!(a.user, "");
    assert_eq!(a.source, AuthSource::Ip(ip("2001:db8::7")));
    assert_eq!(a.service.as_deref(), Some("winbox"));
}

#[test]
fn login_failure_with_user_containing_spaces() {
    let a = auth("login failure for user john from accounting from 198.51.100.7 via api-ssl");
    assert_eq!(a.user, "john from accounting");
    assert_eq!(a.source.ip(), Some(ip("198.51.100.7")));
    assert_eq!(a.service.as_deref(), Some("api-ssl"));
}

#[test]
fn login_colon_failure_and_auth_failed_variants() {
    let a = auth("login: failure for user root from 198.51.100.7 via telnet");
    assert_eq!(
        (a.kind, &*a.user, a.service.as_deref()),
        (AuthKind::Failure, "root", Some("telnet"))
    );
    let a = auth("AUTH_FAILED: login failure for user admin from 198.51.100.7 via ftp");
    assert_eq!(
        (a.kind, &*a.user, a.service.as_deref()),
        (AuthKind::Failure, "admin", Some("ftp"))
    );
    let a = auth("AUTH_FAILED: user guest from 198.51.100.8 via web");
    assert_eq!((a.kind, &*a.user), (AuthKind::Failure, "guest"));
    assert_eq!(a.source.ip(), Some(ip("198.51.100.8")));
}

#[test]
fn mac_source_is_not_an_ip() {
    let a = auth("login failure for user admin from 64:D1:54:AA:BB:CC via winbox");
    assert_eq!(
        a.source,
        AuthSource::Mac(MacAddr([0x64, 0xd1, 0x54, 0xaa, 0xbb, 0xcc]))
    );
    assert_eq!(a.source.ip(), None);
}

#[test]
fn login_success_and_logout() {
    let a = auth("user admin logged in from 198.51.100.7 via winbox");
    assert_eq!(a.kind, AuthKind::Success);
    assert_eq!(a.user, "admin");
    assert_eq!(a.source.ip(), Some(ip("198.51.100.7")));
    assert_eq!(a.service.as_deref(), Some("winbox"));
    let a = auth("user john smith logged out from [2001:db8::7] via web");
    assert_eq!(a.kind, AuthKind::Logout);
    assert_eq!(a.user, "john smith");
    assert_eq!(a.source.ip(), Some(ip("2001:db8::7")));
    assert_eq!(a.service.as_deref(), Some("web"));
}

#[test]
fn failure_without_via_has_no_service() {
    let a = auth("login failure for user admin from 198.51.100.7");
    assert_eq!(a.service, None);
    assert_eq!(a.source.ip(), Some(ip("198.51.100.7")));
}

#[test]
fn ppp_authentication_failure() {
    let a = match parse_log_row(
        "l2tp,ppp,info,account",
        "<198.51.100.7>: user vpnuser authentication failed",
    ) {
        Event::Auth(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(a.kind, AuthKind::Failure);
    assert_eq!(a.user, "vpnuser");
    assert_eq!(a.source.ip(), Some(ip("198.51.100.7")));
    assert_eq!(a.service.as_deref(), Some("l2tp"));
}

#[test]
fn noise_is_unrecognized() {
    for msg in [
        "",
        "dhcp-client on ether1 got IP address 192.0.2.1",
        "user admin logged in via local",
        "login failure for user admin from nowhere via ssh",
        "<l2tp-x>: user vpnuser authentication failed",
        "system,info router rebooted",
    ] {
        assert_eq!(
            parse_log_row("system,info", msg),
            Event::Unrecognized,
            "{msg:?}"
        );
    }
}

// ---- whole lines with headers ----

/// Test lines live for the whole test run, so their events can be compared freely.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn ctx() -> LineContext {
    // Router clock at UTC+01:00; today is 2025-02-15.
    LineContext::new(Date::new(2025, 2, 15), 3600)
}

const FW: &str = "input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 198.51.100.7:40384->192.0.2.1:22, len 60";
const LOGIN: &str = "login failure for user admin from 198.51.100.7 via ssh";

#[test]
fn bsd_syslog_with_pri_and_host() {
    let line = format!("<134>Feb 15 11:25:46 gw.local firewall,info {FW}");
    let l = parse_log_line(&line, &ctx());
    // 2025-02-15T10:25:46Z: the router's local time is an hour ahead.
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_739_615_146)));
    assert_eq!(l.host, Some("gw.local"));
    assert_eq!(l.topics, "firewall,info");
    assert_eq!(l.message, FW);
    assert!(matches!(l.event, Event::Firewall(ref fw) if fw.dst.port == Some(22)));
}

#[test]
fn bsd_syslog_without_pri_and_space_padded_day() {
    let line = format!("Mar  2 09:09:46 10.0.0.1 system,error,critical {LOGIN}\n");
    let l = parse_log_line(&line, &ctx());
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_740_902_986)));
    assert_eq!(l.host, Some("10.0.0.1"));
    assert_eq!(l.topics, "system,error,critical");
    assert!(matches!(l.event, Event::Auth(ref a) if a.user == "admin"));
}

#[test]
fn topics_followed_by_a_colon() {
    let line = format!("<134>Oct 10 13:55:36 mikrotik-router firewall,info: {FW}");
    let l = parse_log_line(leak(line), &ctx());
    assert_eq!(l.host, Some("mikrotik-router"));
    assert_eq!(l.topics, "firewall,info");
    assert_eq!(l.message, FW);
    assert!(matches!(l.event, Event::Firewall(_)));
}

#[test]
fn bsd_syslog_without_host() {
    let line =
        "<30>Feb 15 11:25:46 system,info,account user admin logged in from 198.51.100.7 via winbox";
    let l = parse_log_line(line, &ctx());
    assert_eq!(l.host, None);
    assert_eq!(l.topics, "system,info,account");
    assert!(matches!(l.event, Event::Auth(ref a) if a.kind == AuthKind::Success));
}

#[test]
fn bsd_syslog_with_host_but_no_topics() {
    let line = format!("Feb 15 11:25:46 MikroTik {LOGIN}");
    let l = parse_log_line(&line, &ctx());
    assert_eq!(l.host, Some("MikroTik"));
    assert_eq!(l.topics, "");
    assert_eq!(l.message, LOGIN);
    assert!(matches!(l.event, Event::Auth(_)));
    // And without a host either.
    let l = parse_log_line(
        "Feb 15 11:25:46 login failure for user admin from 198.51.100.7 via ssh",
        &ctx(),
    );
    assert_eq!(l.host, None);
    assert!(matches!(l.event, Event::Auth(_)));
}

#[test]
fn rsyslog_rfc3339_uses_its_own_offset() {
    let line = format!("2023-03-18T20:35:05.734637+01:00 10.0.0.1 firewall,info {FW}");
    let l = parse_log_line(&line, &ctx());
    // 2023-03-18T19:35:05.734Z
    assert_eq!(l.timestamp, Some(Timestamp::from_millis(1_679_168_105_734)));
    assert_eq!(l.host, Some("10.0.0.1"));
    assert!(matches!(l.event, Event::Firewall(_)));
    let l = parse_log_line(
        leak(format!("2023-03-18T19:35:05Z gw firewall,info {FW}")),
        &ctx(),
    );
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_679_168_105)));
}

#[test]
fn log_print_forms() {
    let l = parse_log_line(
        leak(format!(
            "oct/07/2007 06:23:51 system,error,critical {LOGIN}"
        )),
        &ctx(),
    );
    // 2007-10-07T05:23:51Z
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_191_734_631)));
    assert_eq!(l.host, None);
    assert!(matches!(l.event, Event::Auth(_)));

    let l = parse_log_line(
        leak(format!("2025-02-11 00:02:30 firewall,info {FW}")),
        &ctx(),
    );
    // 2025-02-10T23:02:30Z
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_739_228_550)));
    assert!(matches!(l.event, Event::Firewall(_)));

    let l = parse_log_line(leak(format!("06:23:51 firewall,info {FW}")), &ctx());
    // 2025-02-15T05:23:51Z
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_739_597_031)));
    assert!(matches!(l.event, Event::Firewall(_)));

    let l = parse_log_line(leak(format!("feb/11 00:02:30 firewall,info {FW}")), &ctx());
    // 2025-02-10T23:02:30Z
    assert_eq!(l.timestamp, Some(Timestamp::from_secs(1_739_228_550)));
}

#[test]
fn api_row_times() {
    let ctx = ctx();
    // 2025-02-15T05:23:51Z: the router's clock is an hour ahead.
    assert_eq!(
        parse_log_time("06:23:51", &ctx),
        Some(Timestamp::from_secs(1_739_597_031))
    );
    // 2007-10-07T05:23:51Z
    assert_eq!(
        parse_log_time("oct/07/2007 06:23:51", &ctx),
        Some(Timestamp::from_secs(1_191_734_631))
    );
    // 2025-02-10T23:02:30Z
    assert_eq!(
        parse_log_time("feb/11 00:02:30", &ctx),
        Some(Timestamp::from_secs(1_739_228_550))
    );
    assert_eq!(
        parse_log_time("2025-02-11 00:02:30", &ctx),
        Some(Timestamp::from_secs(1_739_228_550))
    );
    for bad in [
        "",
        "06:23:51 firewall,info",
        "feb/30 00:02:30",
        "6:23:51",
        "never",
    ] {
        assert_eq!(parse_log_time(bad, &ctx), None, "{bad:?}");
    }
}

#[test]
fn lines_without_header() {
    let l = parse_log_line(leak(format!("firewall,info {FW}")), &ctx());
    assert_eq!(l.timestamp, None);
    assert_eq!(l.topics, "firewall,info");
    assert!(matches!(l.event, Event::Firewall(_)));
    let l = parse_log_line(LOGIN, &ctx());
    assert_eq!((l.timestamp, l.topics), (None, ""));
    assert!(matches!(l.event, Event::Auth(_)));
}

#[test]
fn noise_lines_keep_their_header() {
    let l = parse_log_line(
        "Feb 15 11:25:46 gw.local dhcp,info dhcp-client on ether1 got IP address 192.0.2.1",
        &ctx(),
    );
    assert_eq!(l.event, Event::Unrecognized);
    assert_eq!(l.topics, "dhcp,info");
    assert!(l.timestamp.is_some());
    assert_eq!(parse_log_line("", &ctx()).event, Event::Unrecognized);
    assert_eq!(
        parse_log_line("\u{0}\u{ffff}<99", &ctx()).event,
        Event::Unrecognized
    );
}

#[test]
fn bytes_that_are_not_utf8_are_decoded_lossily() {
    let mut line = b"Feb 15 11:25:46 gw system,error,critical login failure for user ".to_vec();
    line.extend_from_slice(b"j\xf6rg from 198.51.100.7 via ssh");
    let mut scratch = String::new();
    let l = parse_log_line_bytes(&line, &ctx(), &mut scratch);
    let Event::Auth(a) = l.event else {
        panic!("{l:?}")
    };
    assert_eq!(a.user, "j\u{fffd}rg");
    assert_eq!(a.source.ip(), Some(ip("198.51.100.7")));

    let mut scratch = String::new();
    let ev = parse_log_row_bytes(
        b"system,info,account",
        b"user \xe9t\xe9 logged in from 198.51.100.7 via web",
        &mut scratch,
    );
    let Event::Auth(a) = ev else { panic!("{ev:?}") };
    assert_eq!((a.kind, &*a.user), (AuthKind::Success, "\u{fffd}t\u{fffd}"));

    // Valid UTF-8 is borrowed, not copied.
    let mut scratch = String::new();
    let l = parse_log_line_bytes(LOGIN.as_bytes(), &ctx(), &mut scratch);
    assert!(matches!(l.event, Event::Auth(_)));
    assert!(scratch.is_empty());
}

#[test]
fn events_outlive_their_line_once_owned() {
    let owned: Event<'static> = {
        let line = format!("Feb 15 11:25:46 gw firewall,info port scan {FW}");
        parse_log_line(&line, &ctx()).event.into_owned()
    };
    let Event::Firewall(fw) = owned else { panic!() };
    assert_eq!(fw.prefix.as_deref(), Some("port scan"));
}

#[test]
fn events_serialize_to_json_for_evidence() {
    let json = serde_json::to_value(parse_log_row("system,error,critical", LOGIN)).unwrap();
    assert_eq!(json["event"], "auth");
    assert_eq!(json["kind"], "failure");
    assert_eq!(json["user"], "admin");
    assert_eq!(json["source"]["ip"], "198.51.100.7");
    assert_eq!(json["service"], "ssh");

    let json = serde_json::to_value(parse_log_row("firewall,info", FW)).unwrap();
    assert_eq!(json["event"], "firewall");
    assert_eq!(json["protocol"], "tcp");
    assert_eq!(json["tcp_flags"], "SYN");
    assert_eq!(json["src"]["ip"], "198.51.100.7");
    assert_eq!(json["dst"]["port"], 22);
    assert_eq!(json["out_interface"], serde_json::Value::Null);
    let mac = "00:0c:42:1a:2b:3c".parse::<MacAddr>().unwrap();
    assert_eq!(serde_json::to_value(mac).unwrap(), "00:0C:42:1A:2B:3C");
    assert_eq!(
        serde_json::to_value(Event::Unrecognized).unwrap(),
        serde_json::json!({"event": "unrecognized"})
    );
}

// ---- remote formats of RouterOS 7.18+ and topics as evidence ----

#[test]
fn a_header_without_host_or_topics_still_reads_the_message() {
    let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
    let line = parse_log_line(
        "Feb 15 11:25:46 login failure for user admin from 198.51.100.7 via ssh",
        &ctx,
    );
    assert_eq!(line.host, None);
    assert!(matches!(line.event, Event::Auth(_)), "{line:?}");
    // With a host (the `syslog` format), the host is not part of a firewall prefix.
    let line = parse_log_line(
        "<30>Sep 25 01:37:18 MikroTik input: in:ether1 out:(unknown 0), proto UDP, 198.51.100.7:5353->192.0.2.1:161, len 60",
        &ctx,
    );
    assert_eq!(line.host, Some("MikroTik"));
    let Event::Firewall(fw) = line.event else {
        panic!("not a firewall line")
    };
    assert_eq!(fw.prefix, None);
}

#[test]
fn ipsec_and_winbox_failures_from_every_address_form() {
    let Event::Auth(a) = parse_log_row(
        "ipsec,error",
        "ABCD:DB8::1 parsing packet failed, possible cause: wrong password",
    ) else {
        panic!("not a login")
    };
    assert_eq!(a.source.ip(), Some(ip("abcd:db8::1")));
    assert_eq!(a.service.as_deref(), Some("ipsec"));
    let Event::Auth(a) = parse_log_row(
        "system,error,critical",
        "denied winbox/dude connect from 64:D1:54:AA:BB:01",
    ) else {
        panic!("not a login")
    };
    assert_eq!(
        a.source,
        AuthSource::Mac("64:D1:54:AA:BB:01".parse().unwrap())
    );
    // The same messages under a script's topics are not logins.
    for (topics, message) in [
        (
            "script,warning",
            "198.51.100.7 parsing packet failed, possible cause: wrong password",
        ),
        (
            "script,error",
            "denied winbox/dude connect from 198.51.100.7",
        ),
        (
            "script,info",
            "TCP connection established from 198.51.100.7",
        ),
        ("script,error", "<pptp-0>: user x authentication failed"),
        (
            "script,error",
            "<198.51.100.7>: user x authentication failed",
        ),
    ] {
        assert_eq!(
            parse_log_row(topics, message),
            Event::Unrecognized,
            "{message}"
        );
    }
}
