//! `mtids replay` over real files in every header form of ROUTEROS.md §3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mtids_cli::replay::{self, MAX_LINE, OutputFormat, Replay, ReplayArgs, ReplayOptions};
use mtids_detect::{Date, DetectionConfig, LineContext};

fn options(format: OutputFormat) -> ReplayOptions {
    ReplayOptions {
        context: LineContext::new(Date::new(2026, 11, 21), 0),
        format,
        show_unmatched: 5,
        progress: false,
    }
}

fn config(toml_text: &str) -> DetectionConfig {
    toml::from_str(toml_text).unwrap()
}

/// Three login failures from one address, one per header form, plus noise.
const MIXED: &str = "\
<30>Nov 21 10:00:01 gw.local system,error,critical login failure for user admin from 198.51.100.7 via ssh
2026-11-21T10:00:02.734637+00:00 10.0.0.1 system,error,critical login failure for user root from 198.51.100.7 via ssh

nov/21/2026 10:00:03 system,error,critical login failure for user admin from 198.51.100.7 via winbox
Nov 21 10:00:04 gw firewall,info MTIDS_NEW input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 203.0.113.200:40000->192.0.2.1:22, len 60
2026-11-21 10:00:05 system,info dhcp lease assigned to somebody
";

#[test]
fn every_header_form_counts_and_detects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.log");
    std::fs::write(&path, MIXED).unwrap();
    let cfg = config("[brute_force]\nmax_failures = 3\n");
    let mut replay = Replay::new(&cfg, options(OutputFormat::Table)).unwrap();
    let mut out = Vec::new();
    replay
        .feed(
            "mixed.log",
            std::fs::File::open(&path).unwrap(),
            None,
            &mut out,
        )
        .unwrap();
    let summary = replay.finish(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();

    assert_eq!(summary.lines, 6, "{text}");
    assert_eq!(summary.blank, 1);
    assert_eq!(summary.matched, 4);
    assert_eq!(summary.unmatched, 1);
    assert_eq!(summary.without_timestamp, 0);
    let kinds: std::collections::HashMap<_, _> = summary.kinds.iter().cloned().collect();
    assert_eq!(kinds["auth"], 3);
    assert_eq!(kinds["firewall"], 1);
    assert_eq!(summary.bans, 1, "{text}");
    // Time comes from the lines: the ban fired at the third failure, 10:00:03 UTC.
    assert!(
        text.contains("2026-11-21T10:00:03Z  brute_force"),
        "table row missing:\n{text}"
    );
    assert!(text.contains("ban 198.51.100.7 1h"), "{text}");
    assert!(
        text.contains("Lines: 6 lines, 4 matched, 1 missed"),
        "{text}"
    );
    assert!(
        text.contains("| 2026-11-21 10:00:05 system,info dhcp lease"),
        "{text}"
    );
}

#[test]
fn json_output_is_one_object_per_line() {
    let cfg =
        config("[brute_force]\nmax_failures = 3\n[guard]\nallowlist = [\"198.51.100.0/24\"]\n");
    let mut replay = Replay::new(&cfg, options(OutputFormat::Json)).unwrap();
    let mut out = Vec::new();
    replay.feed("-", MIXED.as_bytes(), None, &mut out).unwrap();
    let summary = replay.finish(&mut out).unwrap();
    let objects: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
    // Allowlisted: reported, not banned, and the JSON says why.
    assert_eq!(objects[0]["outcome"], "suppressed");
    assert_eq!(objects[0]["source"], "198.51.100.7");
    assert!(
        objects[0]["why"].as_str().unwrap().contains("allowlisted"),
        "{objects:?}"
    );
    assert_eq!(objects[0]["time"], "2026-11-21T10:00:03Z");
    assert_eq!(objects[1]["type"], "summary");
    assert_eq!(objects[1]["kinds"]["auth"], 3);
    assert_eq!(objects[1]["suppressed"], 1);
    assert_eq!(summary.bans, 0);
}

#[test]
fn long_lines_are_counted_and_skipped_and_lines_split_across_reads_are_whole() {
    // A line longer than MAX_LINE in the middle, and a final line without a newline.
    let mut data = Vec::new();
    data.extend_from_slice(
        b"Nov 21 10:00:01 gw system,error,critical login failure for user a from 198.51.100.9 via ssh\n",
    );
    data.extend(std::iter::repeat_n(b'x', MAX_LINE * 3));
    data.push(b'\n');
    data.extend_from_slice(
        b"Nov 21 10:00:02 gw system,error,critical login failure for user b from 198.51.100.9 via ssh",
    );
    // A reader that hands out 7 bytes at a time splits lines anywhere.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let cfg = config("[brute_force]\nmax_failures = 2\n");
    let mut replay = Replay::new(&cfg, options(OutputFormat::Json)).unwrap();
    let mut out = Vec::new();
    replay.feed("t", Trickle(&data), None, &mut out).unwrap();
    let summary = replay.finish(&mut out).unwrap();
    assert_eq!(summary.too_long, 1);
    assert_eq!(summary.lines, 3);
    assert_eq!(summary.matched, 2);
    assert_eq!(summary.bans, 1);
}

#[test]
fn invalid_utf8_is_parsed_lossily_not_dropped() {
    let line = b"Nov 21 10:00:01 gw system,error,critical login failure for user \xe9t\xe9 from 198.51.100.9 via ssh\n";
    let mut replay = Replay::new(&DetectionConfig::default(), options(OutputFormat::Json)).unwrap();
    let mut out = Vec::new();
    replay.feed("latin1", &line[..], None, &mut out).unwrap();
    let summary = replay.finish(&mut out).unwrap();
    assert_eq!(summary.matched, 1);
}

#[test]
fn run_reads_several_files_with_one_engine_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, MIXED).unwrap();
    let args = ReplayArgs {
        files: vec![log.clone(), dir.path().join("missing.log"), log],
        json: true,
        time: replay::LogTimeArgs::new(Some("2026-11-21"), "Z"),
        show_unmatched: 0,
        no_progress: true,
        threads: None,
    };
    let mut out = Vec::new();
    // The missing file is reported, the two others are still replayed.
    let cfg = config("[brute_force]\nmax_failures = 3\n");
    let err = replay::run(&cfg, &args, &mut out).unwrap_err();
    assert!(err.to_string().contains("missing.log"), "{err}");
    let text = String::from_utf8(out).unwrap();
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["lines"], 12);
    // One engine across files: the second file's failures re-ban nothing new while banned.
    assert_eq!(summary["bans"], 1, "{text}");
    assert_eq!(summary["files"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_date_and_offset_name_the_option() {
    let e = replay::parse_date("21/11/2026").unwrap_err().to_string();
    assert!(e.starts_with("--date"), "{e}");
    let e = replay::parse_utc_offset("+99").unwrap_err().to_string();
    assert!(e.starts_with("--utc-offset"), "{e}");
}
