//! The `mtids` binary as a user runs it: exit statuses and what it prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn mtids(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtids"));
    // No stray .env or variables from the developer's shell.
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("MTIDS_") || k.starts_with("MT_") || k == "TELE_TOKEN" || k == "CHAT_ID" {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn a_bad_config_exits_with_status_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtids.toml");
    std::fs::write(
        &path,
        "[[router]]\nname = \"gw\"\nhost = \"192.0.2.1\"\nuser = \"mtids\"\npasword = \"x\"\n",
    )
    .unwrap();
    let out = mtids(dir.path())
        .args(["--config", path.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mtids.toml:5:"), "{stderr}");
    assert!(stderr.contains("`router[0].pasword`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_variable_exits_with_status_2_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = mtids(dir.path())
        .args(["run"])
        .env("MT_HOST", "192.0.2.1")
        .env("MT_PORT", "eighty")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`MT_PORT`"), "{stderr}");
}

#[test]
fn run_without_a_router_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = mtids(dir.path()).args(["run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no router configured"), "{stderr}");
}

#[test]
fn simulate_blocks_every_attack_with_no_config_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let out = mtids(dir.path())
        .args(["simulate", "--quiet", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let attacks = report["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 12, "every attack kind of the mixed scenario");
    for a in attacks {
        assert_eq!(a["blocked"], true, "{a}");
        assert_eq!(a["alerted"], true, "{a}");
    }
    assert_eq!(report["false_positives"].as_array().unwrap().len(), 0);
    assert!(report["events_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn simulate_rejects_an_unknown_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = mtids(dir.path())
        .args(["simulate", "--scenario", "nope"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nope") && stderr.contains("mixed"),
        "{stderr}"
    );
}
