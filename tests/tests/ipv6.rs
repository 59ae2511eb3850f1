//! `mtids run` and IPv6 against routeros-sim over real loopback sockets: the IPv6
//! connection table, IPv6 bans on an address list of their own name, a router without
//! IPv6, and the log topics filter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use mtids_cli::daemon::{Report, Stats};
use mtids_e2e::{Running, Sim, eventually, fail_logins};
use routeros_sim::{
    Connection, Family, FirewallLogLine, PortStyle, Router, RouterConfig, Server, ServerConfig,
    Service,
};

const SOON: Duration = Duration::from_secs(5);
const V4_LIST: &str = "bl4";
const V6_LIST: &str = "bl6";

/// The daemon's configuration against `sim`, with an IPv4 and an IPv6 list of different
/// names.
fn two_lists(sim: &Sim, dir: &std::path::Path) -> mtids_cli::config::Config {
    let mut config = sim.config(dir);
    config.enforcement.address_list = V4_LIST.to_owned();
    config.enforcement.address_list_v6 = V6_LIST.to_owned();
    config
}

/// `(list, address)` of every entry of one family.
fn entries(sim: &Sim, family: Family) -> Vec<(String, String)> {
    sim.router
        .address_list(family)
        .into_iter()
        .map(|e| (e.list, e.address))
        .collect()
}

/// A simulated router that prints connection endpoints in `style`.
async fn sim_printing_ports(style: PortStyle) -> Sim {
    let router = Router::new(RouterConfig {
        port_style: style,
        ..RouterConfig::default()
    });
    let server = Server::bind(router.clone(), ServerConfig::plain(sa("127.0.0.1:0")))
        .await
        .unwrap();
    Sim { router, server }
}

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Three unanswered connections from a local host to `remote`:443 (and one answered
/// connection to `benign`:443 that must stay).
fn asymmetric(sim: &Sim, local: &str, remote: &str, benign: &str) {
    sim.router.add_connection(
        Connection::tcp(sa(&format!("{local}:40001")), sa(&format!("{benign}:443")))
            .tcp_state("established")
            .packets(20, 18)
            .replied(true),
    );
    for port in 50000..50003u16 {
        sim.router.add_connection(
            Connection::tcp(sa(&format!("{local}:{port}")), sa(&format!("{remote}:443")))
                .tcp_state("syn-sent")
                .packets(6, 0)
                .replied(false),
        );
    }
}

fn connections_of(sim: &Sim, ip: &str) -> usize {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    sim.router
        .connections()
        .iter()
        .filter(|c| c.src.ip() == ip || c.dst.ip() == ip)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asymmetric_ipv6_remote_is_blocked_on_the_v6_list_and_its_connections_removed() {
    // Both ways RouterOS prints an IPv6 endpoint: `[2001:db8::50]:50000` in one field,
    // or the bare address with `src-port` / `dst-port`.
    for style in [PortStyle::Combined, PortStyle::Separate] {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim_printing_ports(style).await;
        let running = Running::start(two_lists(&sim, dir.path())).await;
        // 2001:db8::50 is inside the router's own 2001:db8::1/64: the local side.
        asymmetric(
            &sim,
            "[2001:db8::50]",
            "[2001:db8:ffff::45]",
            "[2001:db8:ffff::200]",
        );
        assert!(
            eventually(SOON, || sim.router.is_listed(V6_LIST, "2001:db8:ffff::45"))
                .await
                .is_some(),
            "{style:?}: the unanswering IPv6 remote is on {V6_LIST}: {:?}",
            entries(&sim, Family::V6)
        );
        assert!(
            eventually(SOON, || connections_of(&sim, "2001:db8:ffff::45") == 0)
                .await
                .is_some(),
            "{style:?}: its connections were removed"
        );
        assert_eq!(
            connections_of(&sim, "2001:db8:ffff::200"),
            1,
            "{style:?}: the answered connection stays"
        );
        assert_eq!(
            entries(&sim, Family::V6),
            [(V6_LIST.to_owned(), "2001:db8:ffff::45/128".to_owned())],
            "{style:?}: only the remote, only on the IPv6 list"
        );
        assert!(entries(&sim, Family::V4).is_empty(), "{style:?}");
        let stats = running.daemon.stats();
        assert_eq!(Stats::get(&stats.malformed_rows), 0, "{style:?}");
        // Counted when the removal returns, just after the table empties.
        assert!(
            eventually(SOON, || Stats::get(&stats.connections_removed) == 3)
                .await
                .is_some(),
            "{style:?}: {} removed",
            Stats::get(&stats.connections_removed)
        );
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_and_ipv4_brute_force_land_on_their_own_lists() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let running = Running::start(two_lists(&sim, dir.path())).await;
    fail_logins(&sim.router, "2001:db8:bad::7", "admin", 5);
    fail_logins(&sim.router, "198.51.100.7", "root", 5);
    assert!(
        eventually(SOON, || sim.router.is_listed(V6_LIST, "2001:db8:bad::7"))
            .await
            .is_some(),
        "the IPv6 attacker is on {V6_LIST}: {:?}",
        entries(&sim, Family::V6)
    );
    assert!(
        eventually(SOON, || sim.router.is_listed(V4_LIST, "198.51.100.7"))
            .await
            .is_some(),
        "the IPv4 attacker is on {V4_LIST}: {:?}",
        entries(&sim, Family::V4)
    );
    assert_eq!(entries(&sim, Family::V6).len(), 1);
    assert_eq!(entries(&sim, Family::V4).len(), 1);
    running.stop().await;

    // The ledger recorded each ban on the list it went on.
    let ledger = mtids_enforce::BanLedger::open(dir.path().join("bans.db")).unwrap();
    let v6 = ledger.history("2001:db8:bad::7").unwrap();
    let v4 = ledger.history("198.51.100.7").unwrap();
    assert_eq!((v6.len(), v6[0].list.as_str()), (1, V6_LIST));
    assert_eq!((v4.len(), v4[0].list.as_str()), (1, V4_LIST));

    // The router reboots while the daemon is down; the next start re-applies both, each
    // to its own list.
    sim.router.reboot();
    assert!(sim.router.address_list(Family::V6).is_empty());
    let running = Running::start(two_lists(&sim, dir.path())).await;
    assert!(
        eventually(SOON, || {
            sim.router.is_listed(V6_LIST, "2001:db8:bad::7")
                && sim.router.is_listed(V4_LIST, "198.51.100.7")
        })
        .await
        .is_some(),
        "{:?} {:?}",
        entries(&sim, Family::V4),
        entries(&sim, Family::V6)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_without_ipv6_keeps_its_session_and_ipv4_detection() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    sim.router.set_ipv6(false);
    let config = two_lists(&sim, dir.path());
    let mut running = Running::start(config).await;
    // Several connection polls go by; each would trap on /ipv6.
    tokio::time::sleep(Duration::from_millis(500)).await;
    asymmetric(&sim, "192.0.2.50", "203.0.113.45", "203.0.113.200");
    assert!(
        eventually(SOON, || sim.router.is_listed(V4_LIST, "203.0.113.45"))
            .await
            .is_some(),
        "IPv4 detection and blocking go on"
    );
    assert!(
        eventually(SOON, || connections_of(&sim, "203.0.113.45") == 0)
            .await
            .is_some()
    );
    let stats = running.daemon.stats();
    assert_eq!(Stats::get(&stats.connects), 1, "never reconnected");
    assert!(
        running
            .wait_for(Duration::from_millis(50), |r| matches!(
                r,
                Report::Disconnected { .. }
            ))
            .await
            .is_none(),
        "never disconnected: {:?}",
        running.seen
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_rows_of_the_configured_log_topics_reach_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.input.log_topics = vec!["system,error,critical".to_owned()];
    let mut running = Running::start(config).await;
    let stats = running.daemon.stats();
    let scan = |ports: std::ops::Range<u16>| {
        for port in ports {
            sim.router.log_firewall(&FirewallLogLine::tcp_syn(
                Some("SCAN"),
                sa("198.51.100.23:40000"),
                sa(&format!("192.0.2.1:{port}")),
            ));
        }
    };

    // A port scan (topics `firewall,info`), logins (`system,info,account`), and three
    // login failures (`system,error,critical`).
    scan(1000..1040);
    sim.router
        .log_login("admin", "198.51.100.99".parse().unwrap(), Service::Winbox);
    sim.router.log("system,error", "a near miss of the topics");
    fail_logins(&sim.router, "198.51.100.7", "admin", 3);
    assert!(
        eventually(SOON, || Stats::get(&stats.log_rows) == 3)
            .await
            .is_some(),
        "{} rows",
        Stats::get(&stats.log_rows)
    );

    // Logged while disconnected: the resume print carries the filter too.
    sim.router.send_fatal("session terminated on request");
    running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .expect("the daemon notices");
    scan(2000..2040);
    fail_logins(&sim.router, "198.51.100.7", "admin", 1);
    running
        .wait_for(SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("the daemon reconnects");
    assert!(
        eventually(SOON, || Stats::get(&stats.log_rows) == 4)
            .await
            .is_some(),
        "{} rows",
        Stats::get(&stats.log_rows)
    );
    assert!(!sim.listed("198.51.100.7"), "4 failures are below 5");

    // The fifth failure is detected and blocked.
    fail_logins(&sim.router, "198.51.100.7", "admin", 1);
    assert!(
        eventually(SOON, || sim.listed("198.51.100.7"))
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(Stats::get(&stats.log_rows), 5, "only the failures arrived");
    assert_eq!(Stats::get(&stats.malformed_rows), 0);
    assert!(
        !sim.listed("198.51.100.23"),
        "the scan never reached the daemon"
    );
    running.stop().await;
}
