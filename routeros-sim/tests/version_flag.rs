//! `routeros-sim --version` without a value prints the simulator's version (issue 13).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn version_without_a_value_prints_the_version_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_routeros-sim"))
        .arg("--version")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(concat!("routeros-sim ", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("RouterOS 7.20.4"), "{stdout}");
}

#[test]
fn a_bad_routeros_version_is_still_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_routeros-sim"))
        .args(["--version", "seven"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("seven"));
}
