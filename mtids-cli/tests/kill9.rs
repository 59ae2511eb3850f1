//! `kill -9` of the real `mtids` binary in the middle of a burst of attackers over
//! syslog: after a restart, every ban it had logged as decided is on the router and in
//! the ledger (decisions are recorded before they are logged; a restart's reconcile
//! re-applies what was recorded but not yet sent).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mtids_enforce::BanLedger;
use routeros_sim::{Policies, Router, RouterConfig, Server, ServerConfig, User};

mod common;
use common::{message, start};

/// Waits for a line with `wanted` as its message, keeping every line read.
fn wait_for(rx: &mpsc::Receiver<String>, lines: &mut Vec<String>, wanted: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no `{wanted}` line:\n{}", lines.join("\n")));
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no `{wanted}` line:\n{}", lines.join("\n")));
        lines.push(line.clone());
        if message(&line).is_some_and(|(m, _)| m == wanted) {
            return;
        }
    }
}

fn attacker(i: u32) -> String {
    let n = 0x0B00_0000 + i; // 11.0.0.0/8: outside the router's own ranges
    std::net::Ipv4Addr::from(n).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ban_logged_before_a_kill_9_is_on_the_router_and_in_the_ledger_after_restart() {
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("ids", "pw", Policies::FULL));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    // A free UDP port for the daemon's syslog listener.
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let config = dir.path().join("mtids.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nformat = \"json\"\n\n\
             [[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"pw\"\n\n\
             [input]\napi_log = false\nsyslog_udp = \"{syslog}\"\nconnection_interval = \"200ms\"\nresource_interval = \"200ms\"\n\n\
             [ledger]\npath = \"{}\"\n\n\
             [detection.brute_force]\nmax_failures = 5\n\n\
             [detection.policy]\nmax_new_bans_per_minute = 100000\n",
            db.display()
        ),
    )
    .unwrap();

    let (mut daemon, rx) = start(&config, dir.path());
    let mut lines = Vec::new();
    tokio::task::block_in_place(|| wait_for(&rx, &mut lines, "connected", Duration::from_secs(20)));

    // The burst: 400 attackers, 5 failures each, over UDP syslog as a router sends them.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..400 {
            for _ in 0..5 {
                let line = format!(
                    "<86>Dec  7 01:22:33 gw system,error,critical login failure for user admin from {} via ssh",
                    attacker(i)
                );
                let _ = udp.send_to(line.as_bytes(), syslog);
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    // Kill it once it has decided some bans, while the burst goes on.
    let mut decided = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while decided.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "too few bans:\n{}",
            lines.join("\n")
        );
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            break;
        };
        if let Some(("ban", v)) = message(&line).as_ref().map(|(m, v)| (m.as_str(), v)) {
            decided.push(v["address"].as_str().unwrap().to_owned());
        }
        lines.push(line);
    }
    let status = Command::new("kill")
        .args(["-KILL", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = daemon.0.wait();
    sender.join().unwrap();
    // Every line the killed process wrote before it died.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        if let Some(("ban", v)) = message(&line).as_ref().map(|(m, v)| (m.as_str(), v)) {
            decided.push(v["address"].as_str().unwrap().to_owned());
        }
    }
    decided.sort();
    decided.dedup();
    assert!(decided.len() >= 40);

    let (_daemon, rx) = start(&config, dir.path());
    let mut lines = Vec::new();
    tokio::task::block_in_place(|| wait_for(&rx, &mut lines, "connected", Duration::from_secs(20)));
    let deadline = Instant::now() + Duration::from_secs(15);
    let missing = loop {
        let missing: Vec<&String> = decided
            .iter()
            .filter(|ip| !router.is_listed("mtids-blocked", ip))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        missing.is_empty(),
        "{} of {} decided bans not on the router: {missing:?}",
        missing.len(),
        decided.len()
    );
    let active = BanLedger::open(&db)
        .unwrap()
        .active(Some("gw"), SystemTime::now())
        .unwrap();
    for ip in &decided {
        assert!(
            active.iter().any(|b| &b.target == ip),
            "{ip} decided but not in the ledger"
        );
    }
}
