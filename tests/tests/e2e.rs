//! `mtids` against routeros-sim over real loopback sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mtids_cli::daemon::{Report, Stats};
use mtids_detect::{Outcome, Suppression};
use mtids_e2e::{HttpSink, Running, Sim, eventually, fail_logins};
use routeros_sim::{Connection, FirewallLogLine, Service};

const SOON: Duration = Duration::from_secs(5);

fn is_ban_of(r: &Report, ip: &str) -> bool {
    matches!(r, Report::Outcome { outcome, .. }
        if matches!(outcome.as_ref(), Outcome::Ban(d) if d.target.addr().to_string() == ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_is_blocked_within_a_second_of_the_crossing_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let running = Running::start(sim.config(dir.path())).await;

    fail_logins(&sim.router, "198.51.100.7", "admin", 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !sim.listed("198.51.100.7"),
        "4 failures are below the threshold of 5"
    );

    let crossing = Instant::now();
    fail_logins(&sim.router, "198.51.100.7", "admin", 1);
    eventually(SOON, || sim.listed("198.51.100.7"))
        .await
        .expect("blocked");
    let took = crossing.elapsed();
    assert!(took < Duration::from_secs(1), "blocked after {took:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_scan_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let running = Running::start(sim.config(dir.path())).await;
    for port in 1000..1040u16 {
        sim.router.log_firewall(&FirewallLogLine::tcp_syn(
            Some("SCAN"),
            "198.51.100.23:40000".parse().unwrap(),
            format!("192.0.2.1:{port}").parse().unwrap(),
        ));
    }
    assert!(
        eventually(SOON, || sim.listed("198.51.100.23"))
            .await
            .is_some(),
        "the scanner is on the list"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asymmetric_connections_remote_is_blocked_and_its_connections_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    // A benign, answered connection that must stay.
    sim.router.add_connection(
        Connection::tcp(
            "192.0.2.50:40001".parse().unwrap(),
            "203.0.113.200:443".parse().unwrap(),
        )
        .tcp_state("established")
        .packets(20, 18)
        .replied(true),
    );
    let running = Running::start(sim.config(dir.path())).await;
    for port in 50000..50003u16 {
        sim.router.add_connection(
            Connection::tcp(
                format!("192.0.2.50:{port}").parse().unwrap(),
                "203.0.113.45:443".parse().unwrap(),
            )
            .tcp_state("syn-sent")
            .packets(6, 0)
            .replied(false),
        );
    }
    assert!(
        eventually(SOON, || sim.listed("203.0.113.45"))
            .await
            .is_some(),
        "the unanswering remote is on the list"
    );
    let gone = eventually(SOON, || {
        sim.router
            .connections()
            .iter()
            .all(|c| !format!("{c:?}").contains("203.0.113.45"))
    })
    .await;
    assert!(gone.is_some(), "its connections were removed");
    assert!(
        sim.router
            .connections()
            .iter()
            .any(|c| format!("{c:?}").contains("203.0.113.200")),
        "the answered connection stays"
    );
    assert!(!sim.listed("192.0.2.50"), "the local side is never blocked");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_followed_by_a_cpu_spike_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    sim.router.set_cpu_load(8);
    let running = Running::start(sim.config(dir.path())).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // A baseline of low samples.
    sim.router
        .log_login("admin", "198.51.100.99".parse().unwrap(), Service::Winbox);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!sim.listed("198.51.100.99"), "a login alone is fine");
    sim.router.set_cpu_load(97);
    assert!(
        eventually(SOON, || sim.listed("198.51.100.99"))
            .await
            .is_some(),
        "login then spike is blocked"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlisted_attacker_is_detected_but_never_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.detection.guard.allowlist = vec!["198.51.100.0/24".parse().unwrap()];
    let mut running = Running::start(config).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 12);
    let guarded = running
        .wait_for(SOON, |r| {
            matches!(r, Report::Outcome { outcome, .. }
                if matches!(outcome.as_ref(), Outcome::Suppressed(s)
                    if matches!(s.reason, Suppression::Guarded { .. })))
        })
        .await;
    assert!(guarded.is_some(), "the finding is reported as guarded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sim.listed("198.51.100.7"));
    assert_eq!(sim.router.address_list(routeros_sim::Family::V4).len(), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telegram_stand_in_receives_the_alert() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let telegram = HttpSink::start().await;
    let mut config = sim.config(dir.path());
    config.alert = telegram_at(&telegram.url).alert;
    let running = Running::start(config).await;
    fail_logins(&sim.router, "203.0.113.11", "root", 5);
    let got = eventually(SOON, || {
        telegram.bodies().iter().any(|b| b.contains("203.0.113.11"))
    })
    .await;
    let bodies = telegram.bodies();
    assert!(got.is_some(), "no alert for the attacker: {bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("-100123")), "{bodies:?}");
    running.stop().await;
}

/// The alert section of a configuration file pointing Telegram at `url`.
fn telegram_at(url: &str) -> mtids_cli::config::Config {
    let text = format!(
        "[alert.telegram]\nbot_token = \"123:ABC\"\nchat_id = -100123\napi_url = \"{url}\"\n\
         [alert.dispatcher]\nmax_messages_per_window = 0\n"
    );
    mtids_cli::config::Config::parse(&text, "test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_does_not_ban_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let running = Running::start(sim.config(dir.path())).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    eventually(SOON, || sim.listed("198.51.100.7"))
        .await
        .unwrap();
    running.stop().await;

    let mut running = Running::start(sim.config(dir.path())).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    let again = running
        .wait_for(SOON, |r| matches!(r, Report::Outcome { .. }))
        .await
        .expect("the new failures are detected");
    assert!(
        matches!(&again, Report::Outcome { outcome, .. }
            if matches!(outcome.as_ref(), Outcome::Suppressed(s)
                if matches!(s.reason, Suppression::AlreadyBanned { .. }))),
        "{again:?}"
    );
    assert_eq!(sim.entries("198.51.100.7"), 1);
    let ledger = mtids_enforce::BanLedger::open(dir.path().join("bans.db")).unwrap();
    assert_eq!(ledger.history("198.51.100.7").unwrap().len(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_are_reapplied_after_a_router_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut running = Running::start(sim.config(dir.path())).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    eventually(SOON, || sim.listed("198.51.100.7"))
        .await
        .unwrap();
    while running.reports.try_recv().is_ok() {}

    sim.router.reboot();
    assert!(
        !sim.listed("198.51.100.7"),
        "a reboot erases dynamic entries"
    );
    assert!(
        eventually(Duration::from_secs(10), || sim.listed("198.51.100.7"))
            .await
            .is_some(),
        "re-applied after the reconnect"
    );
    // The entry lands inside the reconcile; its counter right after it returns.
    let stats = running.daemon.stats();
    assert!(
        eventually(SOON, || Stats::get(&stats.blocks_restored) >= 1)
            .await
            .is_some(),
        "the re-application is counted as a restore"
    );
    assert!(
        running
            .wait_for(Duration::from_millis(10), |r| is_ban_of(r, "198.51.100.7"))
            .await
            .is_none(),
        "no new decision was needed"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_without_losing_or_repeating_lines() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut running = Running::start(sim.config(dir.path())).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 3);
    tokio::time::sleep(Duration::from_millis(200)).await;

    sim.router.send_fatal("session terminated on request");
    running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .expect("the daemon notices");
    // Logged while the daemon is away.
    fail_logins(&sim.router, "198.51.100.7", "admin", 1);
    running
        .wait_for(SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("the daemon reconnects");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // 3 + 1 = 4: had the 3 been read twice, 7 would have crossed the threshold of 5.
    assert!(!sim.listed("198.51.100.7"), "lines were detected twice");
    fail_logins(&sim.router, "198.51.100.7", "admin", 1);
    // Had the missed line been lost, 4 would stay below the threshold.
    assert!(
        eventually(SOON, || sim.listed("198.51.100.7"))
            .await
            .is_some(),
        "the line logged while disconnected was lost"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_udp_and_tcp_feeds_detection() {
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.input.api_log = false; // Only syslog reaches the engine.
    config.input.syslog_udp = Some("127.0.0.1:0".parse().unwrap());
    config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let udp_addr = running.daemon.syslog_udp_addr().unwrap();
    let tcp_addr = running.daemon.syslog_tcp_addr().unwrap();

    // BSD syslog over UDP, as RouterOS' remote action sends it.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..5 {
        let line = format!(
            "<86>Nov 21 10:00:0{i} gw system,error,critical login failure for user admin from 198.51.100.31 via ssh"
        );
        udp.send_to(line.as_bytes(), udp_addr).await.unwrap();
    }
    assert!(
        eventually(SOON, || sim.listed("198.51.100.31"))
            .await
            .is_some(),
        "UDP syslog lines were detected"
    );

    // RFC 5424, octet-counted, over TCP; and a line of garbage in between.
    let mut tcp = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
    tcp.write_all(b"not syslog at all\n").await.unwrap();
    for i in 0..5 {
        let msg = format!(
            "<86>1 2026-11-21T10:00:0{i}.000+00:00 gw system,error,critical - - - login failure for user root from 198.51.100.32 via ssh"
        );
        tcp.write_all(format!("{} {msg}", msg.len()).as_bytes())
            .await
            .unwrap();
    }
    tcp.flush().await.unwrap();
    assert!(
        eventually(SOON, || sim.listed("198.51.100.32"))
            .await
            .is_some(),
        "TCP RFC 5424 lines were detected"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_detects_but_changes_nothing_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.enforcement.dry_run = true;
    let mut running = Running::start(config).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    let blocked = running
        .wait_for(SOON, |r| matches!(r, Report::Blocked { .. }))
        .await
        .expect("the would-be block is reported");
    assert!(
        matches!(blocked, Report::Blocked { dry_run: true, .. }),
        "{blocked:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!sim.listed("198.51.100.7"));
    assert!(
        !dir.path().join("bans.db").exists(),
        "a dry run keeps no ledger"
    );
    running.stop().await;
}
