//! The router engine under link faults: the real daemon against routeros-sim through a
//! fault proxy (real loopback sockets, a real SQLite ledger). Each test breaks the link one
//! way and asserts exactly what becomes of the bans and the connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use mtids_cli::config::Config;
use mtids_cli::daemon::{Report, Stats};
use mtids_e2e::{FaultProxy, Running, Sim, eventually, fail_logins, syslog_login_failures};
use mtids_enforce::{BanLedger, BanState};

const SOON: Duration = Duration::from_secs(10);
const LIVENESS_INTERVAL: Duration = Duration::from_millis(200);
const LIVENESS_TIMEOUT: Duration = Duration::from_millis(600);

/// The daemon configured against `sim` through `proxy`, with a fast liveness check and
/// syslog over UDP.
fn config(sim: &Sim, proxy: &FaultProxy, dir: &Path) -> Config {
    let mut config = sim.config(dir);
    config.routers[0].port = Some(proxy.addr().port());
    config.routers[0].connect_timeout = Duration::from_millis(800);
    config.input.syslog_udp = Some("127.0.0.1:0".parse().unwrap());
    config.input.liveness_interval = LIVENESS_INTERVAL;
    config.input.liveness_timeout = LIVENESS_TIMEOUT;
    config
}

/// A scratch directory, a simulated router, and a fault proxy in front of it.
async fn behind_proxy() -> (tempfile::TempDir, Sim, FaultProxy) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let proxy = FaultProxy::start(sim.server.local_addr()).await;
    (dir, sim, proxy)
}

/// The ledger's state of the ban of `ip` on the router (the latest row).
fn ledger_state(dir: &Path, ip: &str) -> Option<BanState> {
    let ledger = BanLedger::open(dir.join("bans.db")).unwrap();
    ledger
        .history(ip)
        .unwrap()
        .into_iter()
        .rfind(|b| b.router == "sim")
        .map(|b| b.state)
}

/// The value of `mtids_router_connected{router="sim"}`.
fn connected_gauge(running: &Running) -> Option<f64> {
    let body = running.daemon.metrics().render();
    body.lines()
        .find(|l| l.starts_with("mtids_router_connected{router=\"sim\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn banned(report: &Report, ip: &str) -> bool {
    matches!(report, Report::Outcome { outcome, .. }
        if matches!(outcome.as_ref(), mtids_detect::Outcome::Ban(d) if d.target.to_string() == ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_decided_while_the_router_is_unreachable_is_applied_when_it_is_back() {
    let (dir, sim, proxy) = behind_proxy().await;
    let mut config = config(&sim, &proxy, dir.path());
    config.input.api_log = false; // Only syslog: the router is away.
    let mut running = Running::start(config).await;
    let syslog = running.daemon.syslog_udp_addr().unwrap();

    // The router goes away and refuses the reconnects.
    proxy.refuse(true);
    proxy.cut();
    running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .expect("the loss is noticed");

    syslog_login_failures(syslog, "198.51.100.7", "admin", 6).await;
    running
        .wait_for(SOON, |r| banned(r, "198.51.100.7"))
        .await
        .expect("the ban is decided while the router is away");
    // Recorded at once, pending; never answered "failed".
    assert!(
        eventually(SOON, || ledger_state(dir.path(), "198.51.100.7")
            == Some(BanState::Pending))
        .await
        .is_some()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sim.listed("198.51.100.7"));

    // Back: on the list within 5 s, applied in the ledger, reported as blocked.
    proxy.refuse(false);
    let back = Instant::now();
    let took = eventually(Duration::from_secs(5), || sim.listed("198.51.100.7")).await;
    assert!(
        took.is_some(),
        "not applied within 5 s of the router's return"
    );
    running
        .wait_for(SOON, |r| {
            matches!(r, Report::Blocked { target, router, dry_run: false, .. }
                if target == "198.51.100.7" && router == "sim")
        })
        .await
        .expect("the ban is reported blocked once applied");
    assert!(
        eventually(SOON, || ledger_state(dir.path(), "198.51.100.7")
            == Some(BanState::Applied))
        .await
        .is_some()
    );
    println!("applied {:?} after the router was back", back.elapsed());

    // A second attack while the router is away again is not lost either.
    proxy.refuse(true);
    proxy.cut();
    running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .expect("the second loss is noticed");
    syslog_login_failures(syslog, "198.51.100.8", "root", 6).await;
    running
        .wait_for(SOON, |r| banned(r, "198.51.100.8"))
        .await
        .expect("the second ban is decided");
    proxy.refuse(false);
    assert!(
        eventually(SOON, || sim.listed("198.51.100.8"))
            .await
            .is_some()
    );
    assert!(
        eventually(SOON, || ledger_state(dir.path(), "198.51.100.8")
            == Some(BanState::Applied))
        .await
        .is_some()
    );
    assert_eq!(sim.entries("198.51.100.7"), 1);
    assert_eq!(sim.entries("198.51.100.8"), 1);
    // No ban was ever answered as failed because the link was down.
    assert!(
        !running
            .seen
            .iter()
            .any(|r| matches!(r, Report::BlockFailed { .. })),
        "{:?}",
        running.seen
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_with_only_the_log_followed_is_dropped_and_the_attack_banned_after() {
    let (dir, sim, proxy) = behind_proxy().await;
    let mut config = config(&sim, &proxy, dir.path());
    config.input.connections = false;
    config.input.resource = false;
    config.input.syslog_udp = None;
    let mut running = Running::start(config).await;
    assert_eq!(connected_gauge(&running), Some(1.0));

    // One line read before the stall, so the log follow has a place to resume from.
    fail_logins(&sim.router, "198.51.100.200", "admin", 1);
    let stats = running.daemon.stats();
    assert!(
        eventually(SOON, || Stats::get(&stats.log_rows) >= 1)
            .await
            .is_some()
    );

    // Sockets open, no byte either way: only the liveness check can tell.
    proxy.stall();
    let stalled = Instant::now();
    let limit = LIVENESS_INTERVAL + LIVENESS_TIMEOUT + Duration::from_millis(1500);
    let took = eventually(limit, || connected_gauge(&running) == Some(0.0)).await;
    assert!(
        took.is_some(),
        "mtids_router_connected still {:?} {:?} into the stall",
        connected_gauge(&running),
        stalled.elapsed()
    );
    let lost = running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .unwrap();
    let Report::Disconnected { error, .. } = lost else {
        unreachable!()
    };
    assert!(error.contains("liveness"), "{error}");
    println!("stall noticed after {took:?}");
    // The attack, while the link is still stalled.
    fail_logins(&sim.router, "198.51.100.9", "admin", 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sim.listed("198.51.100.9"));

    // Resumed: reconnected through the proxy, the lines logged during the stall are read
    // and the attacker is banned.
    proxy.resume();
    running
        .wait_for(SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("reconnects after the stall");
    // The daemon knows the router only through the proxy: the first connection and at
    // least the one that logged in again.
    assert!(proxy.accepted() >= 2, "{} connections", proxy.accepted());
    assert!(
        eventually(SOON, || sim.listed("198.51.100.9"))
            .await
            .is_some(),
        "the attack during the stall was not banned"
    );
    assert!(
        eventually(SOON, || ledger_state(dir.path(), "198.51.100.9")
            == Some(BanState::Applied))
        .await
        .is_some()
    );
    assert!(
        eventually(SOON, || connected_gauge(&running) == Some(1.0))
            .await
            .is_some()
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backoff_starts_over_after_a_healthy_session() {
    let (dir, sim, proxy) = behind_proxy().await;
    let mut config = config(&sim, &proxy, dir.path());
    config.input.max_backoff = Duration::from_secs(60);
    let mut running = Running::start(config).await;

    // Away long enough for the backoff to grow past a second.
    proxy.refuse(true);
    proxy.cut();
    let grown = running
        .wait_for(Duration::from_secs(20), |r| {
            matches!(r, Report::Disconnected { retry_in, .. } if *retry_in >= Duration::from_millis(800))
        })
        .await
        .expect("the backoff grows while the router refuses");
    let Report::Disconnected {
        retry_in: grown, ..
    } = grown
    else {
        unreachable!()
    };
    proxy.refuse(false);
    running
        .wait_for(grown + SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("back after the grown backoff");
    // A healthy session: reconciled and a few liveness checks answered.
    tokio::time::sleep(LIVENESS_INTERVAL * 4).await;

    proxy.cut();
    let lost = running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .unwrap();
    let cut = Instant::now();
    let Report::Disconnected { retry_in, .. } = lost else {
        unreachable!()
    };
    // The first step again (200 ms with 50-100 % jitter), not the grown backoff.
    assert!(
        retry_in <= Duration::from_millis(200) && retry_in >= Duration::from_millis(100),
        "retry in {retry_in:?} after a healthy session (grown: {grown:?})"
    );
    running
        .wait_for(SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("reconnects");
    let reconnect = cut.elapsed();
    assert!(
        reconnect < Duration::from_millis(200) + Duration::from_millis(400),
        "reconnected after {reconnect:?}; the grown backoff was {grown:?}"
    );
    println!("reconnected {reconnect:?} after the cut (grown backoff was {grown:?})");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ban_of_a_burst_cut_and_reset_midway_ends_applied() {
    let (dir, sim, proxy) = behind_proxy().await;
    let mut config = config(&sim, &proxy, dir.path());
    config.input.api_log = false;
    let mut running = Running::start(config).await;
    let syslog = running.daemon.syslog_udp_addr().unwrap();

    let attackers: Vec<String> = (1..=30).map(|i| format!("198.51.100.{i}")).collect();
    for (i, ip) in attackers.iter().enumerate() {
        syslog_login_failures(syslog, ip, "admin", 6).await;
        if i == 9 {
            proxy.cut();
        }
        if i == 19 {
            proxy.reset();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for ip in &attackers {
        if !running.seen.iter().any(|r| banned(r, ip)) {
            running
                .wait_for(SOON, |r| banned(r, ip))
                .await
                .unwrap_or_else(|| panic!("no ban decided for {ip}"));
        }
    }
    let all_listed = eventually(Duration::from_secs(15), || {
        attackers.iter().all(|ip| sim.listed(ip))
    })
    .await;
    let missing: Vec<&String> = attackers.iter().filter(|ip| !sim.listed(ip)).collect();
    assert!(all_listed.is_some(), "not on the router: {missing:?}");
    let all_applied = eventually(SOON, || {
        attackers
            .iter()
            .all(|ip| ledger_state(dir.path(), ip) == Some(BanState::Applied))
    })
    .await;
    let states: Vec<(String, Option<BanState>)> = attackers
        .iter()
        .map(|ip| (ip.clone(), ledger_state(dir.path(), ip)))
        .filter(|(_, s)| *s != Some(BanState::Applied))
        .collect();
    assert!(
        all_applied.is_some(),
        "not applied in the ledger: {states:?}"
    );
    for ip in &attackers {
        assert_eq!(sim.entries(ip), 1, "{ip} listed once");
    }
    // Both faults were seen by the engine.
    let losses = running
        .seen
        .iter()
        .filter(|r| matches!(r, Report::Disconnected { .. }))
        .count();
    assert!(losses >= 1, "{:?}", running.seen);
    let ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    assert_eq!(
        ledger.active(Some("sim"), SystemTime::now()).unwrap().len(),
        attackers.len()
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_with_a_ban_in_flight_is_noticed_by_the_liveness_check() {
    let (dir, sim, proxy) = behind_proxy().await;
    let mut config = config(&sim, &proxy, dir.path());
    config.input.api_log = false;
    config.input.connections = false;
    config.input.resource = false;
    let mut running = Running::start(config).await;
    let syslog = running.daemon.syslog_udp_addr().unwrap();

    // The add goes into a stalled link: its own timeout is 10 s; the liveness check, run
    // beside it, declares the link dead well before.
    proxy.stall();
    syslog_login_failures(syslog, "198.51.100.77", "admin", 6).await;
    running
        .wait_for(SOON, |r| banned(r, "198.51.100.77"))
        .await
        .expect("the ban is decided");
    let limit = LIVENESS_INTERVAL + LIVENESS_TIMEOUT + Duration::from_millis(1500);
    let took = eventually(limit, || connected_gauge(&running) == Some(0.0)).await;
    assert!(
        took.is_some(),
        "the stalled link was not declared dead within {limit:?}"
    );
    assert!(!sim.listed("198.51.100.77"));
    assert_eq!(
        ledger_state(dir.path(), "198.51.100.77"),
        Some(BanState::Pending)
    );

    proxy.resume();
    assert!(
        eventually(SOON, || sim.listed("198.51.100.77"))
            .await
            .is_some()
    );
    running
        .wait_for(
            SOON,
            |r| matches!(r, Report::Blocked { target, .. } if target == "198.51.100.77"),
        )
        .await
        .expect("reported blocked once applied");
    assert!(
        eventually(SOON, || ledger_state(dir.path(), "198.51.100.77")
            == Some(BanState::Applied))
        .await
        .is_some()
    );
    assert_eq!(sim.entries("198.51.100.77"), 1);
    running.stop().await;
}

/// A log flood while the daemon reconnects and catches up: the attack in the middle of it
/// is banned well within routeros-proto's 60 s stall timeout. (The follow is read while
/// the catch-up commands run: a follow left unread would fill its stream buffer, the
/// client would stop reading the socket, and the catch-up's own answer would wait behind
/// it. How many rows fall in that window here depends on timing; the guard is in
/// `daemon/log_follow.rs`, `call_reading_follow`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_in_a_log_flood_across_a_reconnect_is_banned() {
    let (dir, sim, proxy) = behind_proxy().await;
    let mut running = Running::start(config(&sim, &proxy, dir.path())).await;
    // A position to resume from: one line read.
    sim.router.log("system,info", "before the outage");
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.refuse(true);
    proxy.cut();
    running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .expect("the loss is noticed");
    // The router floods its log while the link comes back and the daemon catches up.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let router = sim.router.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 2_000_000 {
                router.log(
                    "firewall,info",
                    format!(
                        "flood input: in:ether1 out:(unknown 0), proto TCP (ACK), 192.0.2.10:443->192.0.2.1:{}, len 52",
                        1024 + i % 60_000
                    ),
                );
                i += 1;
                if i % 2_000 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.refuse(false);
    running
        .wait_for(SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("the daemon reconnects");
    tokio::time::sleep(Duration::from_millis(500)).await;
    fail_logins(&sim.router, "198.51.100.99", "admin", 6);
    let banned_after = eventually(Duration::from_secs(30), || sim.listed("198.51.100.99")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert!(
        banned_after.is_some(),
        "an attack during a log flood after a reconnect is banned well within the 60 s stall timeout"
    );
    running.stop().await;
}
