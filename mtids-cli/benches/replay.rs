//! `mtids replay` end to end over a generated 1-million-line log file: reading the file in
//! blocks, splitting lines, parsing every header form, detection and the policy, output to
//! a sink. Target: at least 1 million lines/s.
//!
//! ```sh
//! cargo bench -p mtids-cli --bench replay
//! MTIDS_REPLAY_LINES=5000000 cargo bench -p mtids-cli --bench replay   # another size
//! ```
//!
//! Besides criterion's figures it prints `replay: N lines in S s = R lines/s` (best of the
//! passes), the figure docs/performance.md quotes. The same log can be written for trying
//! the binary by hand: `MTIDS_REPLAY_WRITE=/tmp/1m.log cargo bench -p mtids-cli --bench replay`
//! then `mtids replay /tmp/1m.log`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mtids_cli::replay::{OutputFormat, Replay, ReplayOptions};
use mtids_detect::{Date, DetectionConfig, LineContext};

/// A small deterministic generator (xorshift), so every run replays the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes `n` lines spread over one day of 2026-11-21: firewall lines from many benign
/// sources, a few port scanners, login failures (some brute force), successful logins
/// and noise, under the three header forms of ROUTEROS.md §3.
fn write_log(path: &Path, n: usize) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..n {
        let secs = (i as u64 * 86_400) / n as u64;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match i % 3 {
            0 => write!(
                out,
                "<134>{} 21 {h:02}:{m:02}:{s:02} gw.example ",
                MONTHS[10]
            ),
            1 => write!(
                out,
                "2026-11-21T{h:02}:{m:02}:{s:02}.{:06}+00:00 192.0.2.1 ",
                r.below(1_000_000)
            ),
            _ => write!(out, "2026-11-21 {h:02}:{m:02}:{s:02} "),
        }
        .unwrap();
        let kind = r.below(100);
        if kind < 80 {
            // Firewall log of a new connection; 1 % of sources are scanners.
            let scanner = r.below(100) == 0;
            let src = if scanner {
                format!("198.51.100.{}", r.below(20) + 1)
            } else {
                format!(
                    "203.0.{}.{}",
                    113 + r.below(100) as u8 % 100,
                    r.below(254) + 1
                )
            };
            let port = if scanner {
                r.below(65_000) + 1
            } else {
                [443, 80, 22, 53, 8443][r.below(5) as usize]
            };
            let sport = 1024 + r.below(60_000);
            if r.below(2) == 0 {
                writeln!(
                    out,
                    "firewall,info MTIDS_NEW input: in:ether1 out:(unknown 0), connection-state:new src-mac 4c:5e:0c:11:22:33, proto TCP (SYN), {src}:{sport}->192.0.2.1:{port}, len 60"
                )
            } else {
                writeln!(
                    out,
                    "firewall,info MTIDS_NEW forward: in:ether1 out:bridge, connection-state:new proto UDP, {src}:{sport}->10.0.0.5:{port}, NAT ({src}:{sport}->192.0.2.1:{port})->10.0.0.5:{port}, len 76"
                )
            }
        } else if kind < 92 {
            let src = format!("198.51.100.{}", 100 + r.below(40));
            let user = ["admin", "root", "user", "test", "support"][r.below(5) as usize];
            let via = ["ssh", "winbox", "api", "ftp"][r.below(4) as usize];
            writeln!(
                out,
                "system,error,critical login failure for user {user} from {src} via {via}"
            )
        } else if kind < 96 {
            writeln!(
                out,
                "system,info,account user admin logged in from 10.0.0.{} via winbox",
                r.below(250) + 2
            )
        } else {
            writeln!(
                out,
                "system,info dhcp-server lease {} assigned to 4C:5E:0C:{:02X}:{:02X}:01",
                r.below(255),
                r.below(256),
                r.below(256)
            )
        }
        .unwrap();
    }
    out.flush().unwrap();
}

fn replay_file(path: &Path, threads: usize) -> (u64, u64) {
    let options = ReplayOptions {
        context: LineContext::new(Date::new(2026, 11, 21), 0),
        format: OutputFormat::Json,
        show_unmatched: 0,
        progress: false,
    };
    let mut replay = Replay::new(&DetectionConfig::default(), options)
        .unwrap()
        .with_threads(threads);
    let file = File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut sink = std::io::sink();
    replay
        .feed("bench.log", file, Some(size), &mut sink)
        .unwrap();
    let summary = replay.finish(&mut sink).unwrap();
    (summary.lines, summary.findings)
}

fn main() {
    let n: usize = std::env::var("MTIDS_REPLAY_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("MTIDS_REPLAY_WRITE") {
        Some(p) => p.into(),
        None => dir.path().join("replay-bench.log"),
    };
    write_log(&path, n);
    let bytes = std::fs::metadata(&path).unwrap().len();

    // The headline figures: best of five whole passes, wall clock, on every core and on one.
    let cores = mtids_cli::replay::default_threads();
    for threads in [cores, 1] {
        let mut best = Duration::MAX;
        let mut findings = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let (lines, f) = replay_file(&path, threads);
            best = best.min(start.elapsed());
            assert_eq!(lines, n as u64);
            findings = f;
        }
        println!(
            "replay: {n} lines ({:.1} MB) on {threads} thread(s) in {:.3} s = {:.0} lines/s ({findings} findings)",
            bytes as f64 / 1e6,
            best.as_secs_f64(),
            n as f64 / best.as_secs_f64()
        );
    }

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("file_end_to_end", |b| b.iter(|| replay_file(&path, cores)));
    group.finish();
    c.final_summary();
}
