//! Labelled scenarios: RouterOS log lines through the parsers and every detector, with
//! the expected findings and decisions, and no false positive on benign traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::mixed_log::mixed_log;
use mtids_detect::{
    Date, DetectionConfig, DetectionEngine, FindingKind, LineContext, Outcome, Source, Suppression,
    Timestamp, parse_log_line,
};

struct Run {
    outcomes: Vec<Outcome>,
    kinds: BTreeMap<&'static str, usize>,
}

fn run(config: &DetectionConfig, lines: &[&str]) -> Run {
    let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
    let mut engine = DetectionEngine::new(config).unwrap();
    let mut outcomes = Vec::new();
    let mut kinds = BTreeMap::new();
    let mut now = Timestamp::ZERO;
    for line in lines {
        let parsed = parse_log_line(line, &ctx);
        now = parsed.timestamp.unwrap_or(now).max(now);
        *kinds.entry(parsed.event.kind()).or_insert(0) += 1;
        engine.observe(now, &parsed.event, &mut outcomes);
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now, &mut outcomes);
        }
    }
    Run { outcomes, kinds }
}

fn source_ip(o: &Outcome) -> IpAddr {
    o.finding().source.as_ip().expect("an IP source")
}

#[test]
fn mixed_log_bans_exactly_the_attackers() {
    let log = mixed_log(60_000, 42);
    let lines: Vec<&str> = log.lines.iter().map(String::as_str).collect();
    let r = run(&DetectionConfig::default(), &lines);

    assert_eq!(r.kinds.get("unrecognized").copied(), Some(log.unrecognized));
    assert!(
        r.kinds["firewall"] > 30_000 && r.kinds["auth"] > 3_000,
        "{:?}",
        r.kinds
    );

    let mut by_kind: BTreeMap<FindingKind, BTreeSet<IpAddr>> = BTreeMap::new();
    for o in &r.outcomes {
        by_kind
            .entry(o.finding().kind)
            .or_default()
            .insert(source_ip(o));
    }
    assert_eq!(
        by_kind.remove(&FindingKind::PortScan).unwrap_or_default(),
        log.scanners
    );
    assert_eq!(
        by_kind.remove(&FindingKind::HostSweep).unwrap_or_default(),
        log.sweepers
    );
    assert_eq!(
        by_kind.remove(&FindingKind::BruteForce).unwrap_or_default(),
        log.brute_forcers
    );
    assert!(by_kind.is_empty(), "false positives: {by_kind:?}");

    let banned: BTreeSet<IpAddr> = r
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ban(d) => Some(d.target.addr()),
            Outcome::Suppressed(_) => None,
        })
        .collect();
    let attackers: BTreeSet<IpAddr> = log
        .scanners
        .iter()
        .chain(&log.sweepers)
        .chain(&log.brute_forcers)
        .copied()
        .collect();
    assert_eq!(banned, attackers);
    assert!(
        attackers.len() >= 25,
        "the log holds {} attackers",
        attackers.len()
    );
    // A scan of 40 ports fires twice; the second is reported as already banned.
    for o in &r.outcomes {
        if let Outcome::Suppressed(s) = o {
            assert!(
                matches!(s.reason, Suppression::AlreadyBanned { .. }),
                "{}",
                s.reason
            );
        }
    }
}

/// Hand-written lines in the router's own formats (syslog with and without PRI, RFC 3339,
/// `/log print`), with an allowlisted admin and the router itself in the mix.
const INCIDENT: &str = r#"<134>Nov 21 09:59:58 gw.example system,info,account user admin logged in from 198.51.100.10 via winbox
<134>Nov 21 10:00:00 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:aa:bb:cc, proto TCP (SYN), 203.0.113.66:40001->192.0.2.1:21, len 60
Nov 21 10:00:00 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40002->192.0.2.1:22, len 60
Nov 21 10:00:01 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40003->192.0.2.1:23, len 60
Nov 21 10:00:01 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40004->192.0.2.1:25, len 60
Nov 21 10:00:01 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40005->192.0.2.1:53, len 60
2026-11-21T10:00:02.100000+00:00 192.0.2.1 firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40006->192.0.2.1:80, len 60
2026-11-21T11:00:02.200000+01:00 192.0.2.1 firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40007->192.0.2.1:110, len 60
<134>Nov 21 10:00:03 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.66:40008->192.0.2.1:143, len 60
<134>Nov 21 10:00:04 gw.example firewall,info input: in:ether1 out:(unknown 0), proto ICMP (type 8, code 0), 203.0.113.66->192.0.2.1, len 84
<134>Nov 21 10:00:05 gw.example system,error,critical login failure for user admin from 198.51.100.10 via winbox
<134>Nov 21 10:00:06 gw.example system,error,critical login failure for user root from [2001:db8:bad::7] via ssh
<134>Nov 21 10:00:07 gw.example system,error,critical login failure for user admin from 2001:db8:bad::7 via ssh
<134>Nov 21 10:00:08 gw.example system,error,critical login failure for user test from 2001:db8:bad::7 via ssh
<134>Nov 21 10:00:09 gw.example system,error,critical login failure for user  from 2001:db8:bad::7 via ssh
<134>Nov 21 10:00:10 gw.example system,error,critical login failure for user guest from 2001:db8:bad::7 via ssh
2026-11-21 10:00:11 system,error,critical login failure for user admin from 00:0C:42:01:02:03 via mac-winbox
2026-11-21 10:00:12 system,error,critical login failure for user admin from 00:0C:42:01:02:03 via mac-winbox
2026-11-21 10:00:13 system,error,critical login failure for user admin from 00:0C:42:01:02:03 via mac-winbox
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:1, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:2, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:3, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:4, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:5, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:6, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:7, len 60
<134>Nov 21 10:00:14 gw.example firewall,info SCAN input: in:ether1 out:(unknown 0), proto TCP (SYN), 192.0.2.1:1->192.0.2.1:8, len 60
<134>Nov 21 10:00:15 gw.example dhcp,info defconf assigned 192.168.88.23 for 00:0C:42:11:22:33
<134>Nov 21 10:00:16 gw.example system,info,account user admin logged out from 198.51.100.10 via winbox
"#;

#[test]
fn incident_gives_the_expected_findings_and_decisions() {
    let config: DetectionConfig = toml::from_str(
        r#"
        [port_scan]
        threshold = 8
        log_prefixes = ["SCAN"]
        [brute_force]
        max_failures = 3
        distinct_users = 4
        [guard]
        allowlist = ["198.51.100.10"]
        router_addresses = ["192.0.2.1/24"]
        [policy]
        ipv6_prefix_len = 64
        "#,
    )
    .unwrap();
    let lines: Vec<&str> = INCIDENT.lines().collect();
    let r = run(&config, &lines);
    assert_eq!(r.kinds["firewall"], 17);
    assert_eq!(r.kinds["auth"], 11);
    assert_eq!(r.kinds["unrecognized"], 1);

    let summary: Vec<(String, &str, String)> = r
        .outcomes
        .iter()
        .map(|o| {
            let f = o.finding();
            let what = match o {
                Outcome::Ban(d) => format!("ban {} {}s", d.target, d.duration.as_secs()),
                Outcome::Suppressed(s) => s.reason.to_string(),
            };
            (f.source.to_string(), f.kind.as_str(), what)
        })
        .collect();
    let expected = vec![
        // Eight distinct ports (the ICMP row has none) within the window.
        (
            "203.0.113.66".into(),
            "port_scan",
            "ban 203.0.113.66 3600s".into(),
        ),
        // Third failure from the IPv6 host: banned as its /64.
        (
            "2001:db8:bad::7".into(),
            "brute_force",
            "ban 2001:db8:bad::/64 3600s".into(),
        ),
        // Fourth distinct user name (root, admin, test, the empty one) at 10:00:09: the
        // /64 is banned until 11:00:08 already.
        (
            "2001:db8:bad::7".into(),
            "user_enumeration",
            "already banned until 2026-11-21 11:00:08 UTC".into(),
        ),
        // MAC-winbox failures: reported, never an IP ban.
        (
            "00:0C:42:01:02:03".into(),
            "brute_force",
            "source is not an IP address".into(),
        ),
        // The router's own address: found, reported, never banned.
        (
            "192.0.2.1".into(),
            "port_scan",
            "guarded: router's own address 192.0.2.1".into(),
        ),
    ];
    assert_eq!(summary, expected);
    // The allowlisted admin's single failure is far below any threshold.
    assert!(
        r.outcomes
            .iter()
            .all(|o| o.finding().source != Source::Ip("198.51.100.10".parse().unwrap()))
    );
}

/// Three polls of `/ip/firewall/connection/print` as the API returns them (`ip:port` in
/// one field, or separate `src-port` / `dst-port` on some versions), through the parser.
#[test]
fn connection_table_polls_fire_each_stuck_connection_once() {
    let mut config = DetectionConfig::default();
    config.guard.router_addresses = vec!["192.168.88.1/24".into()];
    let mut engine = DetectionEngine::new(&config).unwrap();
    let poll: Vec<Vec<(&str, &str)>> = vec![
        // A healthy HTTPS session from the LAN.
        vec![
            (".id", "*A1"),
            ("protocol", "tcp"),
            ("src-address", "192.168.88.10:51000"),
            ("dst-address", "93.184.216.34:443"),
            ("orig-packets", "52"),
            ("repl-packets", "61"),
            ("tcp-state", "established"),
        ],
        // A TLS handshake nobody answers: 6 packets out, none back.
        vec![
            (".id", "*A2"),
            ("protocol", "tcp"),
            ("src-address", "192.168.88.11"),
            ("src-port", "51001"),
            ("dst-address", "203.0.113.77"),
            ("dst-port", "443"),
            ("orig-packets", "6"),
            ("repl-packets", "0"),
            ("tcp-state", "syn-sent"),
        ],
        // Quiet but not on a watched port (SSH).
        vec![
            (".id", "*A3"),
            ("protocol", "tcp"),
            ("src-address", "192.168.88.12:51002"),
            ("dst-address", "203.0.113.78:22"),
            ("orig-packets", "9"),
            ("repl-packets", "0"),
        ],
        // Inbound: a remote host hammering the router's web UI without answers.
        vec![
            (".id", "*A4"),
            ("protocol", "udp"),
            ("src-address", "198.51.100.99:40000"),
            ("dst-address", "192.168.88.1:8443"),
            ("orig-packets", "12"),
            ("repl-packets", "2"),
        ],
        // A row from a router that does not send orig-packets: an error for this row only.
        vec![
            (".id", "*A5"),
            ("protocol", "tcp"),
            ("src-address", "192.168.88.13:1"),
            ("dst-address", "203.0.113.79:80"),
        ],
    ];
    let mut outcomes = Vec::new();
    let mut row_errors = Vec::new();
    for second in [10u64, 12, 14] {
        let now = Timestamp::from_secs(second);
        for row in &poll {
            match mtids_detect::parse_connection_row(row.iter().copied()) {
                Ok(sample) => {
                    engine.observe(now, &mtids_detect::Event::Connection(sample), &mut outcomes)
                }
                Err(e) => row_errors.push(e.to_string()),
            }
        }
    }
    assert_eq!(row_errors.len(), 3, "{row_errors:?}");
    assert!(row_errors[0].contains("orig-packets"), "{}", row_errors[0]);
    let fired: Vec<(String, String)> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Ban(d) => (o.finding().source.to_string(), format!("ban {}", d.target)),
            Outcome::Suppressed(s) => (o.finding().source.to_string(), s.reason.to_string()),
        })
        .collect();
    assert_eq!(
        fired,
        [
            ("203.0.113.77".to_string(), "ban 203.0.113.77".to_string()),
            ("198.51.100.99".to_string(), "ban 198.51.100.99".to_string()),
        ]
    );
}

/// A login line from the log, then `/system/resource/print` rows through the parser.
#[test]
fn login_then_cpu_spike_flags_the_login_source() {
    let mut config = DetectionConfig::default();
    config.guard.allowlist = vec!["198.51.100.10".parse().unwrap()];
    let mut engine = DetectionEngine::new(&config).unwrap();
    let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
    let mut outcomes = Vec::new();
    let resource =
        |engine: &mut DetectionEngine, outcomes: &mut Vec<Outcome>, at: &str, load: &str| {
            let text = format!("Nov 21 {at} gw script,info tick");
            let line = parse_log_line(&text, &ctx);
            let sample =
                mtids_detect::parse_resource_row([("cpu-load", load), ("uptime", "3d04:05:06")])
                    .unwrap();
            engine.observe(
                line.timestamp.unwrap(),
                &mtids_detect::Event::Resource(sample),
                outcomes,
            );
        };
    let log = |engine: &mut DetectionEngine, outcomes: &mut Vec<Outcome>, line: &str| {
        let parsed = parse_log_line(line, &ctx);
        engine.observe(parsed.timestamp.unwrap(), &parsed.event, outcomes);
    };
    resource(&mut engine, &mut outcomes, "10:00:00", "12");
    resource(&mut engine, &mut outcomes, "10:00:30", "15");
    log(
        &mut engine,
        &mut outcomes,
        "Nov 21 10:01:00 gw system,info,account user admin logged in from 198.51.100.10 via winbox",
    );
    resource(&mut engine, &mut outcomes, "10:01:30", "35");
    assert!(outcomes.is_empty(), "an admin session at 35 % is normal");
    log(
        &mut engine,
        &mut outcomes,
        "Nov 21 10:05:00 gw system,info,account user support logged in from 203.0.113.200 via ssh",
    );
    resource(&mut engine, &mut outcomes, "10:05:20", "18");
    resource(&mut engine, &mut outcomes, "10:05:40", "100%");
    let fired: Vec<(String, String)> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Ban(d) => (o.finding().source.to_string(), format!("ban {}", d.target)),
            Outcome::Suppressed(s) => (o.finding().source.to_string(), s.reason.to_string()),
        })
        .collect();
    // The admin logged in 4m40s before the spike: outside the 120 s window, not flagged.
    assert_eq!(
        fired,
        [("203.0.113.200".to_string(), "ban 203.0.113.200".to_string())]
    );
    assert_eq!(outcomes[0].finding().evidence.users, ["support"]);
}
