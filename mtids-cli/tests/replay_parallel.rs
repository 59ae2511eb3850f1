//! `mtids replay` parses on several threads and detects in input order: its output must
//! be byte for byte the output of a one-thread run, whatever the threads, the chunk size
//! and how the input arrives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use mtids_cli::replay::{MAX_LINE, OutputFormat, Replay, ReplayOptions, ReplaySummary};
use mtids_detect::{Date, DetectionConfig, LineContext};

/// Every line of the real-lines corpus (`mtids-detect/tests/real_lines/lines.toml`).
fn real_lines() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mtids-detect/tests/real_lines/lines.toml"
    );
    let doc: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let lines: Vec<String> = doc["case"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.get("line").and_then(|l| l.as_str()))
        .map(|l| l.trim_end_matches(['\r', '\n']).to_owned())
        .collect();
    assert!(lines.len() > 40, "the corpus has its lines");
    lines
}

/// A deterministic log mixing every line shape: the corpus, firewall lines from benign
/// sources and port scanners, brute forces over SSH and PPTP (connect + failure), logins,
/// noise, blank lines, CRLF endings, lines that are not UTF-8, lines over [`MAX_LINE`],
/// and a last line without its newline.
fn mixed_log() -> Vec<u8> {
    let corpus = real_lines();
    let mut log = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for i in 0..30_000u64 {
        let secs = i / 2;
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        let header = match i % 3 {
            0 => format!("<134>Nov 21 {h:02}:{m:02}:{s:02} gw.example "),
            1 => format!("2026-11-21T{h:02}:{m:02}:{s:02}.123456+00:00 192.0.2.1 "),
            _ => format!("2026-11-21 {h:02}:{m:02}:{s:02} "),
        };
        let kind = rand(1000);
        let body = if kind < 500 {
            let scanner = rand(50) == 0;
            let src = if scanner {
                format!("198.51.100.{}", rand(20) + 1)
            } else {
                format!("203.0.113.{}", rand(254) + 1)
            };
            let port = if scanner { rand(65_000) + 1 } else { 443 };
            format!(
                "firewall,info MTIDS_NEW input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), {src}:{}->192.0.2.1:{port}, len 60",
                1024 + rand(60_000)
            )
        } else if kind < 650 {
            format!(
                "system,error,critical login failure for user admin from 198.51.100.{} via ssh",
                100 + rand(30)
            )
        } else if kind < 700 {
            let n = rand(8);
            let ip = 100 + rand(10);
            log.extend_from_slice(
                format!("{header}pptp,info TCP connection established from 203.0.113.{ip}\n")
                    .as_bytes(),
            );
            format!("pptp,ppp,info,account <pptp-{n}>: user vpn authentication failed")
        } else if kind < 750 {
            "system,info,account user admin logged in from 10.0.0.2 via winbox".to_owned()
        } else if kind < 950 {
            corpus[rand(corpus.len() as u64) as usize].clone()
        } else if kind < 970 {
            log.extend_from_slice(b"\n   \n");
            "system,info dhcp lease assigned\r".to_owned()
        } else if kind < 990 {
            "system,error,critical login failure for user \u{1}caf\u{e9} from 198.51.100.200 via ssh"
                .to_owned()
        } else if kind < 995 {
            // Not UTF-8: a Latin-1 user name.
            log.extend_from_slice(header.as_bytes());
            log.extend_from_slice(
                b"system,error,critical login failure for user caf\xe9 from 198.51.100.201 via ssh\n",
            );
            continue;
        } else if kind < 996 {
            "x".repeat(MAX_LINE + 1 + rand(3) as usize * 50_000)
        } else {
            "system,info nothing known".to_owned()
        };
        // Corpus lines carry their own header.
        if !(750..950).contains(&kind) {
            log.extend_from_slice(header.as_bytes());
        }
        log.extend_from_slice(body.as_bytes());
        log.push(b'\n');
    }
    log.extend_from_slice(b"2026-11-21 23:59:59 system,info the last line has no newline");
    log
}

/// A reader that hands out at most `step` bytes per read, as a pipe might.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn replay(
    log: &[u8],
    format: OutputFormat,
    threads: usize,
    chunk: usize,
    step: usize,
) -> (Vec<u8>, ReplaySummary) {
    let config: DetectionConfig = toml::from_str(
        "[brute_force]\nmax_failures = 5\n[policy]\nmax_new_bans_per_minute = 1000\n",
    )
    .unwrap();
    let options = ReplayOptions {
        context: LineContext::new(Date::new(2026, 11, 21), 0),
        format,
        show_unmatched: 50,
        progress: false,
    };
    let mut replay = Replay::new(&config, options)
        .unwrap()
        .with_threads(threads)
        .with_chunk_bytes(chunk);
    let mut out = Vec::new();
    replay
        .feed("mixed.log", Trickle { data: log, step }, None, &mut out)
        .unwrap();
    // A second input through the same engine.
    replay
        .feed("again.log", Trickle { data: log, step }, None, &mut out)
        .unwrap();
    let summary = replay.finish(&mut out).unwrap();
    (out, summary)
}

#[test]
fn parallel_output_is_the_one_thread_output() {
    let log = mixed_log();
    for format in [OutputFormat::Table, OutputFormat::Json] {
        let (reference, summary) = replay(&log, format, 1, 1 << 20, usize::MAX);
        // The log exercises what it should: findings of several kinds, every skip.
        assert!(summary.bans > 10, "{summary:?}");
        assert!(summary.suppressed > 0, "{summary:?}");
        assert!(summary.blank > 0 && summary.too_long > 0, "{summary:?}");
        assert!(
            summary.unmatched > 0 && summary.without_timestamp > 0,
            "{summary:?}"
        );
        let text = String::from_utf8_lossy(&reference);
        for kind in ["brute_force", "port_scan"] {
            assert!(text.contains(kind), "no {kind} finding in\n{text}");
        }
        let newlines = log.iter().filter(|&&b| b == b'\n').count() as u64;
        let too_long_tails = 0; // every too long line ends with a newline
        assert_eq!(summary.lines, 2 * (newlines + 1 - too_long_tails));
        for (threads, chunk, step) in [
            (2, 1 << 20, usize::MAX),
            (2, 4096, usize::MAX),
            (3, 1, 777),
            (4, 100_000, 65_537),
            (1, 3000, 10_000),
        ] {
            let (out, s) = replay(&log, format, threads, chunk, step);
            assert_eq!(
                s, summary,
                "summary with {threads} threads, {chunk}-byte chunks, {step}-byte reads"
            );
            assert!(
                out == reference,
                "output with {threads} threads, {chunk}-byte chunks, {step}-byte reads differs"
            );
        }
    }
}
