//! Parse + detect throughput over a realistic mixed RouterOS log, with every detector on,
//! and the memory each tracked source costs, measured with a counting allocator.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mixed_log.rs"]
mod mixed_log;

use std::alloc::System;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use std::time::Duration;

use cap::Cap;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput};
use mtids_detect::detectors::{
    BruteForceConfig, BruteForceDetector, PortScanConfig, PortScanDetector,
};
use mtids_detect::{
    Auth, AuthKind, AuthSource, Date, DetectionConfig, DetectionEngine, Detector, DetectorSet,
    Endpoint, Event, FirewallLog, LineContext, Protocol, TcpFlags, Timestamp, parse_log_line,
};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const LINES: usize = 100_000;

fn ctx() -> LineContext {
    LineContext::new(Date::new(2026, 11, 21), 0)
}

/// This thread's CPU time instead of wall time: on a machine shared with other builds, wall
/// time measures the scheduler; CPU time measures the code on one core.
struct CpuTime;

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;
    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, start: ThreadTime) -> Duration {
        start.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn bench_parse_and_detect<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let log = mixed_log::mixed_log(LINES, 7);
    let config = DetectionConfig::default();
    let ctx = ctx();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(log.lines.len() as u64));
    group.bench_function("parse_and_detect_mixed_log", |b| {
        b.iter_batched_ref(
            || {
                (
                    DetectionEngine::new(&config).unwrap(),
                    Vec::with_capacity(256),
                )
            },
            |(engine, outcomes)| {
                let mut now = Timestamp::ZERO;
                for line in &log.lines {
                    let parsed = parse_log_line(line, &ctx);
                    now = parsed.timestamp.unwrap_or(now);
                    engine.observe(now, &parsed.event, outcomes);
                    outcomes.clear();
                }
                black_box(engine.detectors().tracked_sources())
            },
            BatchSize::LargeInput,
        );
    });
    let events: Vec<(Timestamp, Event<'_>)> = log
        .lines
        .iter()
        .map(|l| {
            let p = parse_log_line(l, &ctx);
            (p.timestamp.unwrap_or_default(), p.event)
        })
        .collect();
    group.bench_function("detect_only_mixed_log", |b| {
        b.iter_batched_ref(
            || {
                (
                    DetectionEngine::new(&config).unwrap(),
                    Vec::with_capacity(256),
                )
            },
            |(engine, outcomes)| {
                for (now, event) in &events {
                    engine.observe(*now, event, outcomes);
                    outcomes.clear();
                }
                black_box(engine.detectors().tracked_sources())
            },
            BatchSize::LargeInput,
        );
    });
    // Steady state, as in a daemon: one engine for every pass, each pass an hour later
    // than the previous one, so its sources are known (no handle_timeout in between) and
    // their windows have expired.
    let mut warm = DetectionEngine::new(&config).unwrap();
    let mut outcomes = Vec::with_capacity(256);
    let mut pass = 0u64;
    group.bench_function("parse_and_detect_mixed_log_warm", |b| {
        b.iter(|| {
            pass += 1;
            let shift = Duration::from_secs(3600 * pass);
            let mut now = Timestamp::ZERO;
            for line in &log.lines {
                let parsed = parse_log_line(line, &ctx);
                now = parsed.timestamp.unwrap_or(now) + shift;
                warm.observe(now, &parsed.event, &mut outcomes);
                outcomes.clear();
            }
            black_box(now);
        });
    });
    group.bench_function("detect_only_mixed_log_warm", |b| {
        b.iter(|| {
            pass += 1;
            let shift = Duration::from_secs(3600 * pass);
            let mut last = Timestamp::ZERO;
            for (now, event) in &events {
                last = *now + shift;
                warm.observe(last, event, &mut outcomes);
                outcomes.clear();
            }
            black_box(last);
        });
    });
    group.finish();
}

fn syn(src: IpAddr, port: u16) -> Event<'static> {
    Event::Firewall(FirewallLog {
        prefix: None,
        chain: "input".into(),
        in_interface: Some("ether1".into()),
        out_interface: None,
        connection_state: Some("new".into()),
        src_mac: None,
        protocol: Protocol::Tcp,
        tcp_flags: TcpFlags::SYN,
        icmp: None,
        src: Endpoint::new(src, 40_000),
        dst: Endpoint::new("192.0.2.1".parse().unwrap(), port),
        nat: None,
        length: Some(60),
    })
}

fn failure(src: IpAddr) -> Event<'static> {
    Event::Auth(Auth {
        kind: AuthKind::Failure,
        user: "admin".into(),
        source: AuthSource::Ip(src),
        service: Some("ssh".into()),
    })
}

fn source(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        0x0b00_0000 + i.wrapping_mul(2_654_435_761) % 0x5000_0000,
    ))
}

/// Heap bytes per tracked source after `n` unique sources each sent `per_source` events.
fn measure(
    name: &str,
    n: u32,
    mut detector: impl Detector,
    events: impl Fn(IpAddr, u32) -> Vec<Event<'static>>,
) {
    let before = ALLOC.allocated();
    let mut findings = Vec::new();
    for i in 0..n {
        for e in events(source(i), i) {
            detector.observe(Timestamp::from_millis(u64::from(i)), &e, &mut findings);
        }
        findings.clear();
    }
    let bytes = ALLOC.allocated().saturating_sub(before);
    let tracked = detector.tracked_sources().max(1);
    println!(
        "memory {name}: {n} unique sources, {tracked} tracked entries, {bytes} bytes: {:.1} bytes per unique source, {:.1} per tracked entry",
        bytes as f64 / f64::from(n.min(tracked as u32).max(1)),
        bytes as f64 / tracked as f64
    );
    drop(detector);
}

fn memory_report() {
    let n = 60_000;
    measure(
        "port_scan (1 SYN each)",
        n,
        PortScanDetector::new(PortScanConfig::default()).unwrap(),
        |s, _| vec![syn(s, 22)],
    );
    measure(
        "port_scan (3 ports each)",
        n,
        PortScanDetector::new(PortScanConfig::default()).unwrap(),
        |s, _| vec![syn(s, 22), syn(s, 80), syn(s, 443)],
    );
    measure(
        "brute_force (2 failures each)",
        n,
        BruteForceDetector::new(BruteForceConfig::default()).unwrap(),
        |s, _| vec![failure(s), failure(s)],
    );
    let set = DetectorSet::new(&DetectionConfig::default()).unwrap();
    measure("all detectors (1 SYN + 1 failure each)", n, set, |s, _| {
        vec![syn(s, 22), failure(s)]
    });
    // Past the cap (65 536 per table) memory stops growing.
    let set = DetectorSet::new(&DetectionConfig::default()).unwrap();
    measure(
        "all detectors, flood of 300 000 (capped)",
        300_000,
        set,
        |s, _| vec![syn(s, 22), failure(s)],
    );
}

/// The best of several timed passes: on a shared machine the fastest pass is the one that
/// had a core to itself, so it estimates one core's speed better than the mean does.
#[allow(clippy::disallowed_methods)] // The bench may read the clock; the crate may not.
fn best_of_report() {
    let log = mixed_log::mixed_log(LINES, 7);
    let ctx = ctx();
    let config = DetectionConfig::default();
    let events: Vec<(Timestamp, Event<'_>)> = log
        .lines
        .iter()
        .map(|l| {
            let p = parse_log_line(l, &ctx);
            (p.timestamp.unwrap_or_default(), p.event)
        })
        .collect();
    let (mut best_full, mut best_detect, mut best_parse) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..15 {
        let mut engine = DetectionEngine::new(&config).unwrap();
        let mut outcomes = Vec::with_capacity(256);
        let start = std::time::Instant::now();
        let mut now = Timestamp::ZERO;
        for line in &log.lines {
            let parsed = parse_log_line(line, &ctx);
            now = parsed.timestamp.unwrap_or(now);
            engine.observe(now, &parsed.event, &mut outcomes);
            outcomes.clear();
        }
        best_full = best_full.min(start.elapsed().as_secs_f64());

        let mut engine = DetectionEngine::new(&config).unwrap();
        let start = std::time::Instant::now();
        for (now, event) in &events {
            engine.observe(*now, event, &mut outcomes);
            outcomes.clear();
        }
        best_detect = best_detect.min(start.elapsed().as_secs_f64());

        let start = std::time::Instant::now();
        for line in &log.lines {
            black_box(parse_log_line(line, &ctx));
        }
        best_parse = best_parse.min(start.elapsed().as_secs_f64());
    }
    let n = log.lines.len() as f64;
    println!(
        "best of 15 passes over {} lines: parse+detect {:.2} M lines/s, detect only {:.2} M events/s, parse only {:.2} M lines/s",
        log.lines.len(),
        n / best_full / 1e6,
        n / best_detect / 1e6,
        n / best_parse / 1e6
    );
}

fn main() {
    // Not under `cargo test` (a smoke run) nor while profiling one benchmark.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        memory_report();
        best_of_report();
    }
    let mut c = Criterion::default().configure_from_args();
    bench_parse_and_detect(&mut c, "detect");
    let mut c = Criterion::default()
        .with_measurement(CpuTime)
        .configure_from_args();
    bench_parse_and_detect(&mut c, "detect_cpu_time");
    c.final_summary();
}
