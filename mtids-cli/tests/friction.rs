//! From install to daily use without friction (issue 13): configuration errors that say
//! everything at once, password variables that break nothing, commands that never contact
//! a router never asking for a password, the default configuration path, the container's
//! environment. All through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn mtids(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtids"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("MTIDS_") || k.starts_with("MT_") || k == "TELE_TOKEN" || k == "CHAT_ID" {
            c.env_remove(k);
        }
    }
    c
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ONE_LINE: &str = "Nov 21 10:00:01 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh\n";

/// A configuration whose router takes its password from a variable that is not set.
const ROUTER_WITH_PASSWORD_ENV: &str = "[[router]]\nname = \"gw\"\nhost = \"192.0.2.1\"\nuser = \"mtids\"\npassword_env = \"MTIDS_GW_PASSWORD\"\n";

#[test]
fn an_unknown_log_level_is_an_error_naming_the_key_and_the_levels() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mtids.toml");
    std::fs::write(&cfg, "[log]\nlevel = \"warning\"\n").unwrap();
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`log.level`"), "{stderr}");
    assert!(stderr.contains("did you mean `warn`"), "{stderr}");
    assert!(
        stderr.contains("trace, debug, info, warn, error, off"),
        "{stderr}"
    );
    // A filter with targets is still fine.
    std::fs::write(&cfg, "[log]\nlevel = \"mtids_cli=debug,warn\"\n").unwrap();
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn password_variables_never_break_a_command() {
    let dir = tempfile::tempdir().unwrap();
    // The docs' variable, in the environment, with no configuration naming it.
    let out = mtids(dir.path())
        .env("MTIDS_GW_PASSWORD", "secret")
        .env("MTIDS_PASSWORD_BRANCH", "secret")
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    // And in a `.env`.
    std::fs::write(dir.path().join(".env"), "MTIDS_BRANCH_PASSWORD=secret\n").unwrap();
    let out = mtids(dir.path())
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    // A typo in any other MTIDS_ name is still an error, with a suggestion.
    let out = mtids(dir.path())
        .env("MTIDS_DRYRUN", "1")
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `MTIDS_DRY_RUN`"), "{stderr}");
}

#[test]
fn commands_that_never_contact_a_router_never_ask_for_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mtids.toml");
    let ledger = dir.path().join("ledger.db");
    std::fs::write(
        &cfg,
        format!(
            "{ROUTER_WITH_PASSWORD_ENV}[ledger]\npath = {:?}\n",
            ledger.display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, ONE_LINE).unwrap();
    for args in [
        vec!["replay", "--date", "2026-11-21", log.to_str().unwrap()],
        vec!["explain", "--date", "2026-11-21", log.to_str().unwrap()],
        vec!["bans", "list"],
        vec!["bans", "history", "198.51.100.7"],
        vec!["simulate", "--list"],
    ] {
        let out = mtids(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        assert!(!stderr.contains("MTIDS_GW_PASSWORD"), "{args:?}: {stderr}");
    }
    // Read-only ledger commands do not create the ledger, and say which they read.
    assert!(!ledger.exists());
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["bans", "list"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(&format!("no ban ledger at {}", ledger.display())),
        "{stderr}"
    );
    // A command that logs in still needs it, and says which variable.
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["check"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MTIDS_GW_PASSWORD"), "{stderr}");
}

#[test]
fn bans_list_without_a_config_creates_no_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let out = mtids(dir.path()).args(["bans", "list"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no ban ledger at mtids-bans.db"),
        "{stderr}"
    );
    assert!(!dir.path().join("mtids-bans.db").exists());
}

#[test]
fn the_default_configuration_path_is_read_and_said_in_help() {
    let dir = tempfile::tempdir().unwrap();
    let help = mtids(dir.path()).arg("--help").output().unwrap();
    let (stdout, _) = text(&help);
    assert!(stdout.contains("/etc/mtids/mtids.toml"), "{stdout}");
    assert!(stdout.contains("./mtids.toml"), "{stdout}");
    assert!(stdout.contains("MTIDS_<NAME>_PASSWORD"), "{stdout}");
    // ./mtids.toml is read without --config: its error shows it was.
    std::fs::write(dir.path().join("mtids.toml"), "[log]\nlevel = \"loud\"\n").unwrap();
    let out = mtids(dir.path())
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mtids.toml: `log.level`"), "{stderr}");
}

#[test]
fn the_container_environment_runs_simulate_without_a_config_file() {
    // The image sets MTIDS_CONFIG=/etc/mtids/mtids.toml for a file mounted at run time.
    assert!(!Path::new("/etc/mtids/mtids.toml").exists());
    let dir = tempfile::tempdir().unwrap();
    // The image's whole environment (Dockerfile `ENV`).
    let out = mtids(dir.path())
        .env("MTIDS_CONFIG", "/etc/mtids/mtids.toml")
        .env("MTIDS_LEDGER_PATH", dir.path().join("bans.db"))
        .env("MTIDS_METRICS_LISTEN", "127.0.0.1:0")
        .args([
            "simulate",
            "--scenario",
            "ssh-brute-force",
            "--speed",
            "600",
            "-q",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ssh"), "{stdout}");
    // No log lines in the middle of the simulation's own output.
    assert!(
        !stderr.contains("WARN") && !stdout.contains("WARN"),
        "{stdout}\n{stderr}"
    );
    // Any other missing file named is still an error.
    let out = mtids(dir.path())
        .env("MTIDS_CONFIG", dir.path().join("missing.toml"))
        .args(["simulate", "--list"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn every_config_error_at_once_with_key_value_and_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mtids.toml");
    let replay = |cfg: &Path| {
        mtids(dir.path())
            .arg("--config")
            .arg(cfg)
            .args(["replay", "-"])
            .output()
            .unwrap()
    };
    // Validation errors: all of them in one run.
    std::fs::write(
        &cfg,
        "[log]\nlevel = \"verbose\"\n[enforcement]\naddress_list = \"bad list;\"\n",
    )
    .unwrap();
    let out = replay(&cfg);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`log.level`"), "{stderr}");
    assert!(stderr.contains("`enforcement.address_list`"), "{stderr}");
    assert!(stderr.contains("`bad list;`"), "{stderr}");
    // An unknown key gets the closest valid one.
    std::fs::write(&cfg, "[enforcement]\nadress_list = \"x\"\n").unwrap();
    let (_, stderr) = text(&replay(&cfg));
    assert!(stderr.contains("did you mean `address_list`"), "{stderr}");
    // A bad listen address: the key and the value.
    std::fs::write(&cfg, "[metrics]\nlisten = \"localhost9100\"\n").unwrap();
    let out = replay(&cfg);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`metrics.listen`"), "{stderr}");
    assert!(stderr.contains("localhost9100"), "{stderr}");
}

#[test]
fn replaying_a_missing_file_is_one_clean_error_and_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = mtids(dir.path())
        .args(["replay", "/nonexistent.log"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent.log"), "{stderr}");
}

#[test]
fn password_file_reads_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("gw.password"), "secret\n").unwrap();
    let cfg = dir.path().join("mtids.toml");
    // Port 1 on loopback: nothing listens, so `check` fails at the connection, after the
    // password was read.
    std::fs::write(
        &cfg,
        "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"mtids\"\nconnect_timeout = \"2s\"\npassword_file = \"$CREDENTIALS_DIRECTORY/gw.password\"\n",
    )
    .unwrap();
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("password_file"), "{stderr}");
    // Without the directory (not under systemd): a configuration error that says why.
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`router[0].password_file`"), "{stderr}");
    assert!(stderr.contains("LoadCredential"), "{stderr}");
}

#[test]
fn check_advice_fits_a_router_that_does_not_answer_and_the_last_line_reads_well() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mtids.toml");
    // Port 1 on loopback: connection refused.
    std::fs::write(
        &cfg,
        "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"mtids\"\npassword = \"x\"\nconnect_timeout = \"2s\"\n",
    )
    .unwrap();
    let out = mtids(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("nothing answered on 127.0.0.1:1"),
        "{stdout}"
    );
    assert!(!stdout.contains("`/user` step"), "{stdout}");
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some("mtids: error: 1 check failed; apply the fix shown above"),
        "{stderr}"
    );
}

#[test]
fn the_detect_log_example_config_is_accepted_by_replay_and_finds_the_attacks() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/detect-log");
    let out = mtids(dir.path())
        .args(["--config", &format!("{example}/sample.toml")])
        .args([
            "replay",
            "--date",
            "2026-11-21",
            &format!("{example}/sample.log"),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ban 203.0.113.66 1h"), "{stdout}");
    assert!(stdout.contains("8 ports in 5m"), "{stdout}");
    assert!(stdout.contains("ban 2001:db8:bad::/64 1h"), "{stdout}");
    assert!(stdout.contains("3 failures in 1m"), "{stdout}");
}
