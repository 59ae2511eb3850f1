//! The `mtids check` and `mtids setup` binaries: output and exit status, against
//! routeros-sim over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use routeros_sim::{Policies, Router, RouterConfig, Server, ServerConfig, User};

fn mtids() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mtids"));
    c.env_remove("MTIDS_CONFIG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_items_and_fails_on_a_wrong_password() {
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("ids", "pw", Policies::WRITE));
    let server = Server::bind(router, ServerConfig::plain("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword_env = \"CHECK_TEST_PW\"\n"
            ),
        )
        .unwrap();
        (path, password.to_owned())
    };
    for ((path, password), ok) in [
        (write("good.toml", "pw"), true),
        (write("bad.toml", "nope"), false),
    ] {
        let out = tokio::task::spawn_blocking(move || {
            mtids()
                .arg("--config")
                .arg(&path)
                .arg("check")
                .env("CHECK_TEST_PW", password)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if ok {
            // Logged in, but the router is not set up yet: the log rules fail.
            assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
            assert!(stdout.contains("PASS  [gw] login"), "{stdout}");
            assert!(stdout.contains("FAIL  [gw] log rules"), "{stdout}");
            assert!(stdout.contains("fix: mtids setup"), "{stdout}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
            assert!(stdout.contains("FAIL  [gw] login"), "{stdout}");
            // The password never appears in the output.
            assert!(!stdout.contains("nope") && !stderr.contains("nope"));
        }
    }
    server.shutdown().await;
}

#[test]
fn setup_prints_the_script_and_refuses_a_hostile_interface_name() {
    let out = mtids().args(["setup", "--wan", "ether2"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("in-interface=ether2"), "{script}");
    assert!(script.contains("policy=api,read,write"), "{script}");
    let out = mtids()
        .args(["setup", "--wan", "ether1 disabled=yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wan"));
}
