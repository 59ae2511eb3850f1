//! `mtids explain` through the binary, over the real log lines of
//! `mtids-detect/tests/real_lines/lines.toml` (each with its public source there).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mtids() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtids"));
    c.env_remove("MTIDS_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    c
}

/// Runs `mtids explain` with `args`, `input` on stdin.
fn explain(args: &[&str], input: &str) -> Output {
    let mut child = mtids()
        .arg("explain")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The `line` cases of the corpus: (line, kind).
fn corpus() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mtids-detect/tests/real_lines/lines.toml"
    ))
    .unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc["case"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let line = c.get("line")?.as_str()?;
            Some((line.to_owned(), c["kind"].as_str().unwrap().to_owned()))
        })
        .collect()
}

/// The blocks of the output, one per explained line.
fn blocks(stdout: &str) -> Vec<&str> {
    stdout
        .split("\n\n")
        .filter(|b| b.starts_with("line "))
        .collect()
}

#[test]
fn every_real_line_is_explained_with_the_event_the_corpus_expects() {
    let cases = corpus();
    assert!(cases.len() > 50, "the corpus shrank: {}", cases.len());
    // Lines may end with a literal `\r\n` inside the text; a real newline separates them.
    let input: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
    let out = explain(&["--date", "2026-11-21", "-"], &input);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks = blocks(&stdout);
    assert_eq!(blocks.len(), cases.len(), "{stdout}");
    for ((line, kind), block) in cases.iter().zip(&blocks) {
        let event = block
            .lines()
            .find_map(|l| l.strip_prefix("  event:   "))
            .unwrap_or_else(|| panic!("no event in {block}"));
        let expected = match kind.as_str() {
            "auth" => "auth:",
            "firewall" => "firewall:",
            "tunnel_connect" => "tunnel connect:",
            "tunnel_failure" => "tunnel failure:",
            "unrecognized" => "unrecognised:",
            other => panic!("new kind {other}"),
        };
        assert!(event.starts_with(expected), "{line}\n{block}");
        assert!(block.contains("  format:  "), "{block}");
        // Only lines a detector reads are counted.
        let counted =
            block.contains("counted: port_scan") || block.contains("counted: brute_force");
        if kind == "unrecognized" {
            assert!(block.contains("counted: by no detector"), "{block}");
        }
        if counted {
            assert!(matches!(kind.as_str(), "auth" | "firewall"), "{block}");
        }
    }
}

#[test]
fn names_the_header_format_of_each_remote_logging_form() {
    let cases = [
        (
            "<30>Feb 15 11:25:46 gw.local system,error,critical login failure for user admin from 198.51.100.7 via ssh",
            "BSD syslog",
        ),
        (
            "2023-03-18T20:36:59.594792+01:00 192.0.2.1 system,error,critical login failure for user admin from 198.51.100.7 via ssh",
            "RFC 3339",
        ),
        (
            "oct/07/2007 06:23:51 system,error,critical login failure for user admin from 198.51.100.9 via telnet",
            "/log print",
        ),
        (
            "system,error,critical login failure for user admin from 198.51.100.7 via ssh",
            "remote format `default`",
        ),
        (
            "<30>Sep 25 01:37:18 MikroTik user abc logged in from 192.0.2.1 via api",
            "syslog without topics",
        ),
        (
            "Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004-1G-12S+2XS|7.21 (stable)|10|system,error,critical|High|dvchost=gw dvc=192.0.2.1 msg=login failure for user support from 198.51.100.200 via ssh app=ssh duser=support outcome=failure src=198.51.100.200",
            "CEF",
        ),
    ];
    let input: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
    let out = explain(&["--date", "2026-11-21"], &input);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let blocks = blocks(&stdout);
    assert_eq!(blocks.len(), cases.len(), "{stdout}");
    for ((line, format), block) in cases.iter().zip(&blocks) {
        let shown = block
            .lines()
            .find_map(|l| l.strip_prefix("  format:  "))
            .unwrap();
        assert!(shown.contains(format), "{line}: {shown}");
    }
}

#[test]
fn counts_towards_the_threshold_and_shows_the_ban_and_then_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mtids.toml");
    std::fs::write(
        &cfg,
        "[detection.brute_force]\nmax_failures = 3\n[detection.guard]\nallowlist = [\"203.0.113.0/24\"]\n",
    )
    .unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "\
Nov 21 10:00:01 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh
Nov 21 10:00:02 gw system,error,critical login failure for user root from 198.51.100.7 via ssh
Nov 21 10:00:03 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh
Nov 21 10:00:04 gw system,error,critical login failure for user admin from 203.0.113.5 via ssh
",
    )
    .unwrap();
    let out = mtids()
        .arg("--config")
        .arg(&cfg)
        .args(["explain", "--date", "2026-11-21"])
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = blocks(&stdout);
    assert_eq!(b.len(), 4, "{stdout}");
    assert!(
        b[0].contains("counted: brute_force 1/3 failures in 1m"),
        "{}",
        b[0]
    );
    assert!(
        b[1].contains("counted: brute_force 2/3 failures in 1m"),
        "{}",
        b[1]
    );
    assert!(b[1].contains("policy:  no finding yet"), "{}", b[1]);
    // The third failure completes the finding: the count starts again, the ban is shown.
    assert!(
        b[2].contains("counted: brute_force 0/3 failures"),
        "{}",
        b[2]
    );
    assert!(
        b[2].contains("policy:  finding brute_force from 198.51.100.7 (brute_force 3/3) -> ban 198.51.100.7 for 1h: 3 failures in 1m"),
        "{}",
        b[2]
    );
    assert!(
        b[3].contains("guard:   203.0.113.5 is never banned"),
        "{}",
        b[3]
    );
}

#[test]
fn a_missing_file_is_a_clean_error() {
    let out = mtids()
        .args(["explain", "/nonexistent/mtids-explain.log"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/mtids-explain.log"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
