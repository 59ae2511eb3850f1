//! Parse throughput on a realistic mixed RouterOS log, generated here: firewall lines of
//! every shape, logins, and noise, behind every header form.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::CpuTime;

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use mtids_detect::{
    Date, Event, LineContext, parse_connection_row, parse_log_line, parse_log_line_bytes,
    parse_log_row,
};

/// A small deterministic generator (xorshift64*): the log is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn ip4(&mut self) -> String {
        let n = self.next();
        format!(
            "{}.{}.{}.{}",
            1 + n % 223,
            (n >> 8) % 256,
            (n >> 16) % 256,
            1 + (n >> 24) % 254
        )
    }
    fn ip6(&mut self) -> String {
        let n = self.next();
        format!("2001:db8:{:x}::{:x}", n % 0xffff, (n >> 16) % 0xffff)
    }
    fn port(&mut self) -> u16 {
        (1 + self.below(65_534)) as u16
    }
}

const USERS: &[&str] = &[
    "admin",
    "root",
    "",
    "john smith",
    "support",
    "ubnt",
    "test user 2",
];
const SERVICES: &[&str] = &["ssh", "winbox", "telnet", "ftp", "web", "api", "api-ssl"];
const FLAGS: &[&str] = &[
    "SYN",
    "ACK",
    "ACK,FIN",
    "ACK,PSH",
    "RST",
    "SYN,ECE,CWR",
    "ACK,RST",
];

fn firewall(r: &mut Rng) -> String {
    let mac = if r.below(4) == 0 {
        String::new()
    } else {
        format!(
            "src-mac 00:0c:42:{:02x}:{:02x}:{:02x}, ",
            r.below(256),
            r.below(256),
            r.below(256)
        )
    };
    let out = if r.below(2) == 0 {
        "(unknown 0)"
    } else {
        "(none)"
    };
    let state = ["", "connection-state:new ", "connection-state:invalid "][r.below(3) as usize];
    let prefix = ["", "DROP ", "port scan wan ", "FW-IN "][r.below(4) as usize];
    let (src, dst) = (r.ip4(), r.ip4());
    let (sp, dp) = (r.port(), r.port());
    match r.below(10) {
        0..=3 => {
            let flags = FLAGS[r.below(FLAGS.len() as u64) as usize];
            format!(
                "{prefix}input: in:ether1 out:{out}, {state}{mac}proto TCP ({flags}), {src}:{sp}->{dst}:{dp}, len {}",
                40 + r.below(1400)
            )
        }
        4 | 5 => format!(
            "{prefix}input: in:ether1 out:{out}, {state}{mac}proto UDP, {src}:{sp}->{dst}:{dp}, len {}",
            28 + r.below(500)
        ),
        6 => format!(
            "{prefix}input: in:ether1 out:{out}, {state}{mac}proto ICMP (type 8, code 0), {src}->{dst}, len 84"
        ),
        7 => {
            let (s6, d6) = (r.ip6(), r.ip6());
            format!(
                "{prefix}input: in:ether1 out:{out}, {state}{mac}proto TCP (SYN), [{s6}]:{sp}->[{d6}]:{dp}, len 80"
            )
        }
        8 => {
            let pub_ip = r.ip4();
            format!(
                "{prefix}srcnat: in:(unknown 0) out:ether1, {state}proto TCP (SYN), 10.0.0.5:{sp}->{dst}:{dp}, NAT (10.0.0.5:{sp}->{pub_ip}:{sp})->{dst}:{dp}, len 52"
            )
        }
        _ => format!(
            "{prefix}dstnat: in:ether1 out:{out}, connection-state:new,dnat {mac}proto TCP (SYN), {src}:{sp}->{dst}:8080, NAT {src}:{sp}->({dst}:8080->10.0.0.5:80), len 60"
        ),
    }
}

fn auth(r: &mut Rng) -> (&'static str, String) {
    let user = USERS[r.below(USERS.len() as u64) as usize];
    let via = SERVICES[r.below(SERVICES.len() as u64) as usize];
    let ip = r.ip4();
    match r.below(8) {
        0..=3 => (
            "system,error,critical",
            format!("login failure for user {user} from {ip} via {via}"),
        ),
        4 => (
            "system,error,critical",
            format!(
                "login failure for user {user} from 64:D1:54:AA:BB:{:02X} via winbox",
                r.below(256)
            ),
        ),
        5 => (
            "system,info,account",
            format!("user {} logged in from {ip} via {via}", user.trim()),
        ),
        6 => (
            "system,info,account",
            format!("user {} logged out from {ip} via {via}", user.trim()),
        ),
        _ => (
            "l2tp,ppp,info,account",
            format!("<{ip}>: user {} authentication failed", user.trim()),
        ),
    }
}

fn noise(r: &mut Rng) -> (&'static str, String) {
    match r.below(4) {
        0 => (
            "dhcp,info",
            format!("dhcp-client on ether1 got IP address {}", r.ip4()),
        ),
        1 => (
            "interface,info",
            "ether2 link up (speed 1G, full duplex)".to_string(),
        ),
        2 => ("script,info", "backup done".to_string()),
        _ => (
            "system,info",
            "changed script settings by admin".to_string(),
        ),
    }
}

fn header(r: &mut Rng, i: usize) -> String {
    let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
    match r.below(5) {
        0 => format!("<134>Feb {:>2} {h:02}:{m:02}:{s:02} gw.local ", 1 + i % 28),
        1 => format!("2023-03-18T{h:02}:{m:02}:{s:02}.734637+01:00 10.0.0.1 "),
        2 => format!("oct/07/2007 {h:02}:{m:02}:{s:02} "),
        3 => format!("2025-02-11 {h:02}:{m:02}:{s:02} "),
        _ => format!("{h:02}:{m:02}:{s:02} "),
    }
}

/// `(topics, message)` rows: 70 % firewall, 20 % logins, 10 % noise.
fn rows(n: usize) -> Vec<(&'static str, String)> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| match r.below(10) {
            0..=6 => ("firewall,info", firewall(&mut r)),
            7 | 8 => auth(&mut r),
            _ => noise(&mut r),
        })
        .collect()
}

fn lines(rows: &[(&'static str, String)]) -> Vec<String> {
    let mut r = Rng(0xD1B5_4A32_D192_ED03);
    rows.iter()
        .enumerate()
        .map(|(i, (topics, msg))| format!("{}{topics} {msg}", header(&mut r, i)))
        .collect()
}

/// The same rows as `remote-log-format=cef` records (RouterOS 7.18+), half with each
/// time form, logins with the `app=`/`duser=`/`src=` fields current routers add.
fn cef_lines(rows: &[(&'static str, String)]) -> Vec<String> {
    rows.iter()
        .enumerate()
        .map(|(i, (topics, msg))| {
            let time = if i % 2 == 0 {
                format!("Nov 22 20:{:02}:{:02}", i / 60 % 60, i % 60)
            } else {
                format!("2026-01-05T07:{:02}:{:02}.004-05:00", i / 60 % 60, i % 60)
            };
            let extra = match msg.split_once(" from ") {
                Some((_, tail)) if topics.starts_with("system") => {
                    let src = tail.split(' ').next().unwrap_or("");
                    format!(" app=ssh duser=admin outcome=failure src={src}")
                }
                _ => String::new(),
            };
            format!(
                "{time} gw CEF:0|MikroTik|RB5009UG+S+|7.20.4 (stable)|10|{topics}|Low|dvchost=gw dvc=192.0.2.1 msg={}{extra}\\r\\n",
                msg.replace('=', "\\=")
            )
        })
        .collect()
}

fn bench_parse<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let ctx = LineContext::new(Date::new(2025, 2, 15), 3600);
    let rows = rows(10_000);
    let lines = lines(&rows);
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();

    // The log is what it claims to be: every non-noise line parses.
    let unrecognized = lines
        .iter()
        .filter(|l| parse_log_line(l, &ctx).event == Event::Unrecognized)
        .count();
    let noise = rows
        .iter()
        .filter(|(t, _)| {
            !t.starts_with("firewall") && !t.contains("account") && !t.contains("critical")
        })
        .count();
    assert_eq!(
        unrecognized, noise,
        "only the noise lines may be unrecognized"
    );
    assert!(
        lines
            .iter()
            .all(|l| parse_log_line(l, &ctx).timestamp.is_some())
    );

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("log_line/mixed lines", |b| {
        b.iter(|| {
            let mut recognized = 0usize;
            for line in &lines {
                let l = parse_log_line(black_box(line), &ctx);
                recognized += usize::from(l.event != Event::Unrecognized);
                black_box(&l);
            }
            recognized
        })
    });
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("log_line/mixed bytes", |b| {
        let mut scratch = String::new();
        b.iter(|| {
            let mut recognized = 0usize;
            for line in &lines {
                let l = parse_log_line_bytes(black_box(line.as_bytes()), &ctx, &mut scratch);
                recognized += usize::from(l.event != Event::Unrecognized);
                black_box(&l);
            }
            recognized
        })
    });
    let cef = cef_lines(&rows);
    let cef_unrecognized = cef
        .iter()
        .filter(|l| parse_log_line(l, &ctx).event == Event::Unrecognized)
        .count();
    assert_eq!(
        cef_unrecognized, noise,
        "CEF: only the noise may be unrecognized"
    );
    group.throughput(Throughput::Elements(cef.len() as u64));
    group.bench_function("log_line/cef lines", |b| {
        b.iter(|| {
            let mut recognized = 0usize;
            for line in &cef {
                let l = parse_log_line(black_box(line), &ctx);
                recognized += usize::from(l.event != Event::Unrecognized);
                black_box(&l);
            }
            recognized
        })
    });
    let cef_bytes: u64 = cef.iter().map(|l| l.len() as u64 + 1).sum();
    group.throughput(Throughput::Bytes(cef_bytes));
    group.bench_function("log_line/cef bytes", |b| {
        let mut scratch = String::new();
        b.iter(|| {
            let mut recognized = 0usize;
            for line in &cef {
                let l = parse_log_line_bytes(black_box(line.as_bytes()), &ctx, &mut scratch);
                recognized += usize::from(l.event != Event::Unrecognized);
                black_box(&l);
            }
            recognized
        })
    });
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("log_row/mixed rows", |b| {
        b.iter(|| {
            let mut recognized = 0usize;
            for (topics, message) in &rows {
                let e = parse_log_row(black_box(topics), black_box(message));
                recognized += usize::from(e != Event::Unrecognized);
                black_box(&e);
            }
            recognized
        })
    });

    let mut r = Rng(7);
    let conns: Vec<Vec<(&'static str, String)>> = (0..1000)
        .map(|i| {
            vec![
                (".id", format!("*{i:X}")),
                (
                    "protocol",
                    if i % 3 == 0 { "udp" } else { "tcp" }.to_string(),
                ),
                ("src-address", format!("{}:{}", r.ip4(), r.port())),
                (
                    "dst-address",
                    format!("{}:{}", r.ip4(), [443, 80, 8443, 22][i % 4]),
                ),
                ("tcp-state", "established".to_string()),
                ("orig-packets", r.below(1000).to_string()),
                ("orig-bytes", r.below(1_000_000).to_string()),
                ("repl-packets", r.below(1000).to_string()),
                ("repl-bytes", r.below(1_000_000).to_string()),
            ]
        })
        .collect();
    group.throughput(Throughput::Elements(conns.len() as u64));
    group.bench_function("connection_row", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for row in &conns {
                let c = parse_connection_row(row.iter().map(|(n, v)| (*n, v.as_str())));
                ok += usize::from(c.is_ok());
                black_box(&c);
            }
            ok
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_parse(&mut c, "parse");
    let mut c = Criterion::default()
        .with_measurement(CpuTime)
        .configure_from_args();
    bench_parse(&mut c, "parse_cpu_time");
    c.final_summary();
}
