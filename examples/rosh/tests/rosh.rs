//! The built `rosh` binary against the scripted fake router over loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../../routeros-proto/tests/net_peer/mod.rs"]
mod net_peer;

use std::process::{Output, Stdio};
use std::time::Duration;

use net_peer::{FakeRouter, Peer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const USER: &str = "admin";
const PASSWORD: &str = "pa55-word";

fn rosh(router: &FakeRouter, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rosh"));
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &router.port().to_string(),
        "--user",
        USER,
    ])
    .args(args)
    .env("ROS_PASSWORD", PASSWORD)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    cmd
}

async fn run(router: &FakeRouter, args: &[&str]) -> (Output, String, String) {
    let output = tokio::time::timeout(Duration::from_secs(20), rosh(router, args).output())
        .await
        .expect("rosh finished")
        .unwrap();
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "password printed"
    );
    (output, stdout, stderr)
}

async fn answer_addresses(peer: &mut Peer) {
    let cmd = peer.expect("/ip/address/print").await;
    assert!(cmd.has("=.proplist=.id,address,comment"), "{cmd:?}");
    assert!(cmd.has("?interface=ether1"), "{cmd:?}");
    peer.reply(
        &cmd,
        &[
            "!re",
            "=.id=*1",
            "=address=192.0.2.1/24",
            "=comment=uplink a",
        ],
    )
    .await;
    peer.reply(
        &cmd,
        &["!re", "=.id=*2", "=address=198.51.100.1/24", "=comment="],
    )
    .await;
    peer.reply(&cmd, &["!done"]).await;
}

const PRINT: [&str; 3] = [
    "/ip/address/print",
    "=.proplist=.id,address,comment",
    "?interface=ether1",
];

#[tokio::test]
async fn prints_one_line_per_reply_after_a_plain_login() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        answer_addresses(&mut peer).await;
        peer.expect("/quit").await;
    })
    .await;
    let (output, stdout, _) = run(&router, &PRINT).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout,
        "!re .id=*1 address=192.0.2.1/24 comment=\"uplink a\"\n\
         !re .id=*2 address=198.51.100.1/24 comment=\"\"\n\
         !done\n"
    );
    router.finish().await;
}

#[tokio::test]
async fn json_output_after_a_legacy_login() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_legacy(USER, PASSWORD).await);
        answer_addresses(&mut peer).await;
        peer.expect("/quit").await;
    })
    .await;
    let mut args = vec!["--json"];
    args.extend(PRINT);
    let (output, stdout, _) = run(&router, &args).await;
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        lines[0],
        serde_json::json!({"!reply": "!re", ".id": "*1", "address": "192.0.2.1/24", "comment": "uplink a"})
    );
    assert_eq!(lines[1]["comment"], "");
    assert_eq!(lines[2], serde_json::json!({"!reply": "!done"}));
    router.finish().await;
}

#[tokio::test]
async fn empty_reply_of_a_7_18_router() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/ip/firewall/address-list/print").await;
        peer.reply(&cmd, &["!empty"]).await;
        peer.reply(&cmd, &["!done"]).await;
        peer.expect("/quit").await;
    })
    .await;
    let (output, stdout, _) = run(&router, &["/ip/firewall/address-list/print", "?list=x"]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout, "!empty\n!done\n");
    router.finish().await;
}

#[tokio::test]
async fn a_trap_exits_non_zero_with_the_routers_message() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/ip/firewall/address-list/add").await;
        peer.reply(
            &cmd,
            &["!trap", "=message=failure: already have such entry"],
        )
        .await;
        peer.reply(&cmd, &["!done"]).await;
        peer.expect("/quit").await;
    })
    .await;
    let (output, stdout, stderr) = run(
        &router,
        &[
            "/ip/firewall/address-list/add",
            "=list=blocked",
            "=address=198.51.100.7",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stderr.contains("failure: already have such entry"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("!trap message=\"failure: already have such entry\"\n"),
        "{stdout}"
    );
    router.finish().await;
}

#[tokio::test]
async fn a_refused_login_exits_non_zero_with_the_routers_message() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(!peer.login_plain(USER, "not-the-password").await);
        peer.wait_closed().await;
    })
    .await;
    let (output, stdout, stderr) = run(&router, &["/system/resource/print"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stderr.contains("invalid user name or password (6)"),
        "{stderr}"
    );
    assert_eq!(stdout, "");
    router.finish().await;
}

#[tokio::test]
async fn fatal_exits_non_zero_with_the_reason() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        peer.expect("/system/reboot").await;
        peer.send(&["!fatal", "session terminated on request"])
            .await;
        peer.close().await;
    })
    .await;
    let (output, _, stderr) = run(&router, &["/system/reboot"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr.contains("session terminated on request"), "{stderr}");
    router.finish().await;
}

#[tokio::test]
async fn follow_only_runs_until_interrupted_then_cancels() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let follow = peer.expect("/log/print").await;
        assert!(follow.has("=follow-only="), "{follow:?}");
        for message in ["first", "second"] {
            peer.reply(
                &follow,
                &["!re", "=topics=system,info", &format!("=message={message}")],
            )
            .await;
        }
        let cancel = peer.expect("/cancel").await;
        assert_eq!(cancel.attr("tag"), follow.tag());
        peer.expect("/quit").await;
    })
    .await;
    let mut child = rosh(&router, &["/log/print", "=follow-only="])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for expected in ["first", "second"] {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(line, format!("!re topics=system,info message={expected}"));
    }
    let status = common::interrupt(&mut child).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "nothing after the interrupt"
    );
    router.finish().await;
}

#[tokio::test]
async fn a_bad_fingerprint_is_a_usage_error() {
    let router = FakeRouter::start(|_peer| async move {}).await;
    let (output, _, stderr) = run(&router, &["--tls", "--fingerprint", "abc", "/x"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(stderr.contains("64 hex digits"), "{stderr}");
    // Never connected: release the listener's accept.
    drop(router);
}
