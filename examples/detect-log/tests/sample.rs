//! Runs the example binary on the sample log and config and checks what it prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_detect-log");
const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["type"] == t).collect()
}

#[test]
fn sample_log_gives_the_expected_findings_decisions_and_summary() {
    let out = Command::new(BIN)
        .args([
            "--config",
            &format!("{DIR}/sample.toml"),
            "--date",
            "2026-11-21",
        ])
        .arg(format!("{DIR}/sample.log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);

    let findings: Vec<(String, String)> = of_type(&lines, "finding")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [
            ("port_scan", "203.0.113.66"),
            ("brute_force", "2001:db8:bad::7"),
            ("user_enumeration", "2001:db8:bad::7"),
            ("brute_force", "00:0C:42:01:02:03"),
        ]
        .map(|(k, s)| (k.to_string(), s.to_string()))
    );

    let decisions = of_type(&lines, "decision");
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["detector"], "port_scan");
    assert_eq!(decisions[0]["source"], "203.0.113.66");
    assert_eq!(decisions[0]["target"], "203.0.113.66");
    assert_eq!(decisions[0]["duration_secs"], 3600);
    assert_eq!(decisions[1]["detector"], "brute_force");
    assert_eq!(decisions[1]["target"], "2001:db8:bad::/64");
    // Time comes from the lines: the scan's eighth port was logged at 10:00:03 UTC.
    let scan = of_type(&lines, "finding")[0];
    assert_eq!(scan["time_ms"], 1_795_255_203_000u64);
    assert_eq!(scan["evidence"]["ports"].as_array().unwrap().len(), 8);

    // The user-enumeration finding lists the names tried, the empty one included.
    let enumeration = of_type(&lines, "finding")[2];
    assert_eq!(
        enumeration["evidence"]["users"],
        serde_json::json!(["root", "admin", "test", ""])
    );

    let suppressed: Vec<&str> = of_type(&lines, "suppressed")
        .iter()
        .map(|s| s["suppression"]["why"].as_str().unwrap())
        .collect();
    assert_eq!(suppressed, ["already_banned", "not_an_ip_address"]);

    let summary = of_type(&lines, "summary");
    assert_eq!(summary.len(), 1);
    let s = summary[0];
    assert_eq!(s["lines"], 22);
    assert_eq!(s["parsed"]["firewall"], 10);
    assert_eq!(s["parsed"]["auth"], 10);
    assert_eq!(s["unrecognized"], 2);
    assert_eq!(s["decisions"], 2);
    assert_eq!(lines.last().unwrap()["type"], "summary");
}

#[test]
fn reads_stdin_and_counts_garbage_without_stopping() {
    let mut child = Command::new(BIN)
        .args(["--date", "2026-11-21", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"\xff\xfe not a log line\n\nNov 21 10:00:00 gw firewall,info input: in:ether1 out:(unknown 0), proto UDP, 198.51.100.7:5353->192.0.2.1:161, len 60\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = json_lines(&out.stdout);
    assert_eq!(
        lines.len(),
        1,
        "default config, one UDP packet: only the summary"
    );
    assert_eq!(lines[0]["lines"], 3);
    assert_eq!(lines[0]["parsed"]["firewall"], 1);
    assert_eq!(lines[0]["unrecognized"], 2);
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = std::env::temp_dir().join(format!("detect-log-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[brute_force]\nmax_failures = 0\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg(format!("{DIR}/sample.log"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("brute_force.max_failures"), "{err}");

    std::fs::write(&config, "[brute_force]\nmax_fialures = 3\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("-")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_fialures"));
    std::fs::remove_dir_all(&dir).unwrap();
}
