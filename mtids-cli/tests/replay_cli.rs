//! The `mtids replay` binary over a file and over stdin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

const LOG: &str = "\
Nov 21 10:00:01 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh
Nov 21 10:00:02 gw system,error,critical login failure for user root from 198.51.100.7 via ssh
Nov 21 10:00:03 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh
something else entirely
";

fn mtids() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtids"));
    // No stray configuration from the environment or a .env in the working directory.
    c.env_remove("MTIDS_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    c
}

#[test]
fn replays_a_file_with_the_configured_detection() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, LOG).unwrap();
    let cfg = dir.path().join("mtids.toml");
    std::fs::write(&cfg, "[detection.brute_force]\nmax_failures = 3\n").unwrap();
    let out = mtids()
        .args(["--config"])
        .arg(&cfg)
        .args(["replay", "--date", "2026-11-21"])
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ban 198.51.100.7 1h"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Lines: 4 lines, 3 matched, 1 missed"),
        "{stdout}"
    );
}

#[test]
fn reads_stdin_and_prints_json() {
    let mut child = mtids()
        .args(["replay", "--json", "--date", "2026-11-21", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(LOG.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["lines"], 4);
    assert_eq!(last["kinds"]["auth"], 3);
}

#[test]
fn a_bad_date_is_a_usage_error() {
    let out = mtids()
        .args(["replay", "--date", "yesterday", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--date"));
}
