//! The corpus of real RouterOS line shapes (`tests/real_lines/lines.toml`): every line,
//! with its public source beside it, must parse to the event written next to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use mtids_detect::{
    AuthKind, Date, DetectionConfig, DetectionEngine, Endpoint, Event, LineContext, Outcome,
    Timestamp, parse_log_line, parse_log_row, parse_log_time,
};

#[derive(serde::Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    source: String,
    line: Option<String>,
    row: Option<(String, String)>,
    kind: String,
    time: Option<String>,
    host: Option<String>,
    topics: Option<String>,
    auth: Option<String>,
    user: Option<String>,
    from: Option<String>,
    via: Option<String>,
    session: Option<String>,
    proto: Option<String>,
    src: Option<String>,
    dst: Option<String>,
    prefix: Option<String>,
    chain: Option<String>,
    state: Option<String>,
    flags: Option<String>,
    icmp: Option<(u8, u8)>,
    nat: Option<[String; 4]>,
    #[serde(rename = "in")]
    in_interface: Option<String>,
    out: Option<String>,
    len: Option<u32>,
    quic_answer: Option<bool>,
}

fn corpus() -> Vec<Case> {
    let text = include_str!("real_lines/lines.toml");
    toml::from_str::<Corpus>(text).unwrap().case
}

fn ctx() -> LineContext {
    LineContext::new(Date::new(2026, 11, 21), 0)
}

fn endpoint(s: &str) -> Endpoint {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Endpoint::new(sa.ip(), sa.port());
    }
    Endpoint::ip(
        s.parse()
            .unwrap_or_else(|_| panic!("bad endpoint {s:?} in the corpus")),
    )
}

fn none_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// One case: what it parses to against what the corpus says. Returns a description of the
/// first mismatch.
fn check(case: &Case) -> Result<(), String> {
    let (event, line) = match (&case.line, &case.row) {
        (Some(line), None) => {
            let parsed = parse_log_line(line, &ctx());
            let want_time = case
                .time
                .as_deref()
                .ok_or("a `line` case needs `time` (\"\" for none)")?;
            let want_time = match want_time {
                "" => None,
                t => Some(parse_log_time(t, &LineContext::default()).ok_or("bad `time`")?),
            };
            if parsed.timestamp != want_time {
                return Err(format!("time {:?}, want {want_time:?}", parsed.timestamp));
            }
            if let Some(host) = &case.host
                && parsed.host != Some(host.as_str())
            {
                return Err(format!("host {:?}, want {host:?}", parsed.host));
            }
            if let Some(topics) = &case.topics
                && parsed.topics != topics
            {
                return Err(format!("topics {:?}, want {topics:?}", parsed.topics));
            }
            (parsed.event, line.as_str())
        }
        (None, Some((topics, message))) => (parse_log_row(topics, message), message.as_str()),
        _ => return Err("give exactly one of `line` and `row`".into()),
    };
    if event.kind() != case.kind {
        return Err(format!(
            "kind {} ({event:?}), want {}",
            event.kind(),
            case.kind
        ));
    }
    let eq = |what: &str, got: Option<&str>, want: &Option<String>| match want {
        Some(w) if got != none_if_empty(w) => Err(format!("{what} {got:?}, want {w:?}")),
        _ => Ok(()),
    };
    match &event {
        Event::Auth(a) => {
            let kind = match a.kind {
                AuthKind::Failure => "failure",
                AuthKind::Success => "success",
                AuthKind::Logout => "logout",
            };
            eq("auth", Some(kind), &case.auth)?;
            if case.user.as_deref() != Some(&a.user) {
                return Err(format!("user {:?}, want {:?}", a.user, case.user));
            }
            let from = case.from.as_deref().ok_or("an auth case needs `from`")?;
            if a.source.to_string().to_lowercase() != from.to_lowercase() {
                return Err(format!("from {}, want {from}", a.source));
            }
            eq("via", a.service.as_deref(), &case.via)?;
        }
        Event::TunnelConnect(t) => {
            let from = case.from.as_deref().ok_or("needs `from`")?;
            if t.source.to_string() != from {
                return Err(format!("from {}, want {from}", t.source));
            }
            eq("via", Some(&t.service), &case.via)?;
        }
        Event::TunnelFailure(t) => {
            eq("session", Some(&t.session), &case.session)?;
            eq("user", Some(&t.user), &case.user)?;
            eq("via", Some(&t.service), &case.via)?;
        }
        Event::Firewall(fw) => {
            let proto = fw.protocol.to_string();
            eq("proto", Some(&proto), &case.proto)?;
            eq("prefix", fw.prefix.as_deref(), &case.prefix)?;
            eq("chain", Some(&fw.chain), &case.chain)?;
            eq("state", fw.connection_state.as_deref(), &case.state)?;
            eq("in", fw.in_interface.as_deref(), &case.in_interface)?;
            eq("out", fw.out_interface.as_deref(), &case.out)?;
            let flags = fw.tcp_flags.to_string();
            eq("flags", none_if_empty(&flags), &case.flags)?;
            if let Some(src) = &case.src
                && fw.src != endpoint(src)
            {
                return Err(format!("src {}, want {src}", fw.src));
            }
            if let Some(dst) = &case.dst
                && fw.dst != endpoint(dst)
            {
                return Err(format!("dst {}, want {dst}", fw.dst));
            }
            if let Some((t, c)) = case.icmp
                && fw.icmp.map(|i| (i.kind, i.code)) != Some((t, c))
            {
                return Err(format!("icmp {:?}, want {t}/{c}", fw.icmp));
            }
            if let Some(nat) = &case.nat {
                let got = fw.nat.ok_or("no NAT parsed")?;
                let want = nat.clone().map(|e| endpoint(&e));
                let got = [
                    got.original_src,
                    got.translated_src,
                    got.original_dst,
                    got.translated_dst,
                ];
                if got != want {
                    return Err(format!("nat {got:?}, want {want:?}"));
                }
            }
            if case.len.is_some() && fw.length != case.len {
                return Err(format!("len {:?}, want {:?}", fw.length, case.len));
            }
            if let Some(quic) = case.quic_answer {
                let is_quic = quic_answer_ignored(line);
                if is_quic != quic {
                    return Err(format!("port scan ignores it: {is_quic}, want {quic}"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether the port-scan detector (default settings) ignores 20 copies of this firewall
/// line, each to another destination port: a QUIC answer is ignored, anything else is a
/// scan.
fn quic_answer_ignored(line: &str) -> bool {
    let parsed = parse_log_line(line, &ctx());
    let Event::Firewall(fw) = parsed.event else {
        panic!("not a firewall line: {line}");
    };
    let config: DetectionConfig = toml::from_str("[guard]\nprotect_private = false\n").unwrap();
    let mut engine = DetectionEngine::new(&config).unwrap();
    let mut outcomes = Vec::new();
    for i in 0..20u16 {
        let mut copy = fw.clone();
        copy.dst.port = Some(40_000 + i);
        engine.observe(
            Timestamp::from_secs(u64::from(i)),
            &Event::Firewall(copy),
            &mut outcomes,
        );
    }
    outcomes.is_empty()
}

#[test]
fn every_real_line_parses_to_its_event() {
    let cases = corpus();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check(c).err().map(|e| {
                let input = c.line.clone().unwrap_or_else(|| format!("{:?}", c.row));
                format!("{e}\n    line: {input:?}\n    source: {}", c.source)
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_is_large_distinct_and_sourced() {
    let cases = corpus();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut seen = HashSet::new();
    for c in &cases {
        let input = c.line.clone().unwrap_or_else(|| format!("{:?}", c.row));
        assert!(seen.insert(input.clone()), "duplicate line {input:?}");
        assert!(
            c.source.contains("https://") || c.source.contains("ROUTEROS.md"),
            "no source for {input:?}"
        );
        // Documentation addresses only (and the private ranges the sources use).
        for word in input.split(|ch: char| !(ch.is_ascii_hexdigit() || ch == '.' || ch == ':')) {
            let word = word.trim_matches(':');
            if let Ok(ip) = word.parse::<std::net::Ipv4Addr>() {
                let o = ip.octets();
                let doc = matches!(o, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]);
                assert!(
                    doc || ip.is_private(),
                    "not a documentation address: {ip} in {input:?}"
                );
            }
        }
    }
    // Every format and kind is there.
    for kind in [
        "auth",
        "firewall",
        "tunnel_connect",
        "tunnel_failure",
        "unrecognized",
    ] {
        assert!(cases.iter().any(|c| c.kind == kind), "no {kind} case");
    }
    let lines: Vec<&str> = cases.iter().filter_map(|c| c.line.as_deref()).collect();
    for (what, probe) in [
        ("CEF", "CEF:0|"),
        ("leading space", " 20"),
        ("PRI", "<30>"),
        ("milliseconds", ":30.123 "),
        ("RFC 3339", "T20:3"),
    ] {
        assert!(lines.iter().any(|l| l.contains(probe)), "no {what} line");
    }
}

/// PPTP: the failure names only its session; the engine links it to the connection's
/// address, and the brute-force detector bans that address.
#[test]
fn linked_pptp_failures_reach_the_brute_force_detector() {
    let config: DetectionConfig = toml::from_str("[brute_force]\nmax_failures = 2\n").unwrap();
    let mut engine = DetectionEngine::new(&config).unwrap();
    let mut outcomes = Vec::new();
    let log = [
        "Feb 15 11:25:51 gw.local pptp,info TCP connection established from 198.51.100.30",
        "Feb 15 11:25:52 gw.local pptp,ppp,error <pptp-0>: user vpn authentication failed",
        "Feb 15 11:25:53 gw.local pptp,info TCP connection established from 198.51.100.30",
        "Feb 15 11:25:54 gw.local pptp,ppp,error <pptp-0>: user admin authentication failed",
    ];
    for line in log {
        let parsed = parse_log_line(line, &ctx());
        engine.observe(parsed.timestamp.unwrap(), &parsed.event, &mut outcomes);
    }
    let Some(Outcome::Ban(ban)) = outcomes.first() else {
        panic!("expected a ban, got {outcomes:?}");
    };
    assert_eq!(ban.target.to_string(), "198.51.100.30");
}
