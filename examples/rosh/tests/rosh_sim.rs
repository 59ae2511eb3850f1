//! The built `rosh` binary against routeros-sim over loopback TCP: the same checks the
//! Python clients make in routeros-sim/interop, from our own client. A 7.18 router
//! (plain login, `!empty`) and a 6.42 one (legacy MD5 challenge login).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Output, Stdio};
use std::time::Duration;

mod common;

use routeros_sim::{
    Connection, LoginMethod, Policies, Router, RouterConfig, RouterOsVersion, Server, ServerConfig,
    Service, User,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const USER: &str = "admin";
const PASSWORD: &str = "sim-pa55";
const ATTACKER: &str = "198.51.100.7";

async fn start(version: (u16, u16), login: LoginMethod) -> (Router, Server) {
    let config = RouterConfig {
        version: RouterOsVersion {
            major: version.0,
            minor: version.1,
            patch: 0,
        },
        login,
        ..RouterConfig::default()
    };
    let router = Router::new(config);
    router.add_user(User::new(USER, PASSWORD, Policies::FULL));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    (router, server)
}

fn rosh(server: &Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rosh"));
    cmd.args(["--host", "127.0.0.1", "--port"])
        .arg(server.local_addr().port().to_string())
        .args(["--user", USER])
        .args(args)
        .env("ROS_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(server: &Server, args: &[&str]) -> (Output, String) {
    let output = tokio::time::timeout(Duration::from_secs(20), rosh(server, args).output())
        .await
        .expect("rosh finished")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains(PASSWORD), "password printed: {text}");
    (output, text)
}

const ADD: [&str; 5] = [
    "/ip/firewall/address-list/add",
    "=list=mtids-blocked",
    "=address=198.51.100.7",
    "=timeout=1h",
    "=comment=rosh test",
];

#[tokio::test]
async fn add_print_duplicate_and_remove_on_a_7_18_router() {
    let (router, server) = start((7, 18), LoginMethod::Plain).await;

    let (out, text) = run(&server, &ADD).await;
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("!done ret=*"), "{text}");
    assert!(router.is_listed("mtids-blocked", ATTACKER));

    // A duplicate is the router's trap, reported with its message and exit status 1.
    let (out, text) = run(&server, &ADD).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("already have such entry"), "{text}");

    // Print with a query and a proplist.
    let (out, text) = run(
        &server,
        &[
            "/ip/firewall/address-list/print",
            "?list=mtids-blocked",
            "=.proplist=.id,address,comment",
        ],
    )
    .await;
    assert!(out.status.success(), "{text}");
    let row = text.lines().find(|l| l.starts_with("!re")).expect(&text);
    assert!(row.contains("address=198.51.100.7"), "{row}");
    assert!(!row.contains("timeout="), "proplist honoured: {row}");
    let id = row
        .split_whitespace()
        .find_map(|w| w.strip_prefix(".id="))
        .expect(row)
        .to_owned();

    // The same print as JSON: one object per reply.
    let (out, text) = run(
        &server,
        &[
            "--json",
            "/ip/firewall/address-list/print",
            "?list=mtids-blocked",
        ],
    )
    .await;
    assert!(out.status.success(), "{text}");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["address"], ATTACKER, "{text}");

    // Remove by id; removing it again is `no such item`.
    let remove = ["/ip/firewall/address-list/remove", &format!("=.id={id}")];
    let (out, text) = run(&server, &remove).await;
    assert!(out.status.success(), "{text}");
    assert!(!router.is_listed("mtids-blocked", ATTACKER));
    let (out, text) = run(&server, &remove).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("no such item"), "{text}");

    // Nothing left: 7.18 answers `!empty`, then `!done`.
    let (out, text) = run(
        &server,
        &["/ip/firewall/address-list/print", "?list=mtids-blocked"],
    )
    .await;
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().collect::<Vec<_>>(), vec!["!empty", "!done"]);
}

#[tokio::test]
async fn legacy_login_on_a_6_42_router_and_no_empty_reply() {
    let (router, server) = start((6, 42), LoginMethod::LegacyChallenge).await;
    let (out, text) = run(&server, &ADD).await;
    assert!(out.status.success(), "{text}");
    assert!(router.is_listed("mtids-blocked", ATTACKER));

    let (out, text) = run(
        &server,
        &["/ip/firewall/address-list/print", "?list=nothing-here"],
    )
    .await;
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec!["!done"],
        "no !empty before 7.18"
    );

    // A wrong password is refused with the router's message.
    let output = rosh(&server, &["/system/resource/print"])
        .env("ROS_PASSWORD", "wrong")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid user name or password"), "{stderr}");
}

#[tokio::test]
async fn follows_the_log_until_interrupted() {
    let (router, server) = start((7, 18), LoginMethod::Plain).await;
    let mut child = rosh(&server, &["/log/print", "=follow-only="])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let attacker = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    // Entries logged before the follow starts are not shown (follow-only), so keep
    // logging until one arrives.
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            router.log_login_failure("admin", attacker, Service::Ssh);
            tokio::select! {
                line = lines.next_line() => break line.unwrap().expect("rosh printed a line"),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await
    .expect("a followed log entry within 20 s");
    assert!(line.starts_with("!re"), "{line}");
    assert!(
        line.contains("login failure for user admin from 198.51.100.7 via ssh"),
        "{line}"
    );

    let status = common::interrupt(&mut child).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_all_rows_of_a_100k_row_connection_table() {
    const ROWS: usize = 100_000;
    let (router, server) = start((7, 18), LoginMethod::Plain).await;
    router.add_connections((0..ROWS).map(|i| {
        let i = u32::try_from(i).unwrap();
        let src = std::net::SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (i >> 8))),
            40_000 + u16::try_from(i % 20_000).unwrap(),
        );
        let dst = std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 80)), 443);
        Connection::tcp(src, dst)
    }));
    // Every reply is a line written and flushed to a pipe: slower than the router, so the
    // client holds the router back instead of buffering (or failing, as it did at 65,536).
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        rosh(
            &server,
            &["--timeout", "60", "/ip/firewall/connection/print"],
        )
        .output(),
    )
    .await
    .expect("rosh finished")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let rows = stdout.lines().filter(|l| l.starts_with("!re ")).count();
    assert_eq!(rows, ROWS);
    assert_eq!(stdout.lines().last(), Some("!done"));
    let ids: std::collections::HashSet<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(".id=")))
        .collect();
    assert_eq!(ids.len(), ROWS, "every row once");
}
