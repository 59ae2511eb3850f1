//! The Prometheus endpoint of a daemon defending routeros-sim, scraped over a real
//! loopback socket: what a brute force, a lost router and syslog do to the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mtids_cli::daemon::Report;
use mtids_e2e::{Running, Sim, eventually, fail_logins};
use routeros_sim::{Policies, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOON: Duration = Duration::from_secs(5);

/// `GET /metrics` over a new TCP connection; the status line must be 200.
async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: mtids\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    body.to_owned()
}

/// The value of one series (`name{labels}` exactly as exposed), if present.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

/// Scrapes until `series` satisfies `cond` (or `within` passes); returns the last body.
async fn scrape_until(
    addr: SocketAddr,
    series: &str,
    within: Duration,
    cond: impl Fn(f64) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let body = scrape(addr).await;
        if value(&body, series).is_some_and(&cond) || start.elapsed() > within {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_and_a_lost_router_show_in_the_scraped_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut running = Running::start(config).await;
    let addr = running
        .daemon
        .metrics_addr()
        .expect("the endpoint is bound");
    assert_ne!(addr.port(), 0, "the real port, not the configured 0");

    let body = scrape(addr).await;
    assert_eq!(
        value(&body, "mtids_router_connected{router=\"sim\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, "mtids_decisions_total{outcome=\"ban\"}"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(value(&body, "mtids_active_bans"), Some(0.0), "{body}");

    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    eventually(SOON, || sim.listed("198.51.100.7"))
        .await
        .expect("blocked");
    // The histogram is observed once the router's answer is back in the daemon.
    let body = scrape_until(addr, "mtids_detection_to_block_seconds_count", SOON, |n| {
        n >= 1.0
    })
    .await;
    let at_least = |series: &str, min: f64| {
        let v = value(&body, series);
        assert!(
            v.is_some_and(|v| v >= min),
            "{series} = {v:?}, want >= {min} in\n{body}"
        );
    };
    at_least("mtids_events_total{router=\"sim\",kind=\"auth\"}", 5.0);
    at_least("mtids_findings_total{detector=\"brute_force\"}", 1.0);
    at_least("mtids_decisions_total{outcome=\"ban\"}", 1.0);
    at_least("mtids_detection_to_block_seconds_count", 1.0);
    at_least("mtids_active_bans", 1.0);
    at_least("mtids_router_connected{router=\"sim\"}", 1.0);
    let count = value(&body, "mtids_detection_to_block_seconds_count").unwrap();
    let sum = value(&body, "mtids_detection_to_block_seconds_sum").unwrap();
    assert!(
        sum / count < 1.0,
        "mean block latency {} s on loopback",
        sum / count
    );
    assert!(value(&body, "mtids_alert_queue").is_some(), "{body}");

    // The router drops the session (`!fatal`) and refuses the reconnects: the gauge
    // goes to 0 and stays there.
    assert!(sim.router.remove_user("admin"));
    sim.router.send_fatal("session terminated on request");
    running
        .wait_for(SOON, |r| matches!(r, Report::Disconnected { .. }))
        .await
        .expect("the daemon notices the loss");
    let body = scrape_until(addr, "mtids_router_connected{router=\"sim\"}", SOON, |v| {
        v == 0.0
    })
    .await;
    assert_eq!(
        value(&body, "mtids_router_connected{router=\"sim\"}"),
        Some(0.0),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await; // A failed reconnect or two.
    let body = scrape(addr).await;
    assert_eq!(
        value(&body, "mtids_router_connected{router=\"sim\"}"),
        Some(0.0),
        "{body}"
    );

    // Back: 1 again.
    sim.router.add_user(User::new("admin", "", Policies::FULL));
    running
        .wait_for(SOON, |r| matches!(r, Report::Connected { .. }))
        .await
        .expect("the daemon reconnects");
    let body = scrape_until(addr, "mtids_router_connected{router=\"sim\"}", SOON, |v| {
        v == 1.0
    })
    .await;
    assert_eq!(
        value(&body, "mtids_router_connected{router=\"sim\"}"),
        Some(1.0),
        "{body}"
    );

    // The endpoint stops with the daemon.
    running.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the metrics endpoint still accepts after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_the_router_refuses_counts_as_a_block_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    // Reads the log, may not write the address list: every add is refused.
    sim.router.add_user(User::new("admin", "", Policies::READ));
    let mut config = sim.config(dir.path());
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let addr = running.daemon.metrics_addr().unwrap();
    let series = "mtids_block_failures_total{router=\"sim\"}";
    let body = scrape(addr).await;
    assert_eq!(value(&body, series), Some(0.0), "{body}");

    fail_logins(&sim.router, "198.51.100.8", "admin", 5);
    let body = scrape_until(addr, series, SOON, |n| n >= 1.0).await;
    assert_eq!(value(&body, series), Some(1.0), "{body}");
    assert_eq!(
        value(&body, "mtids_decisions_total{outcome=\"ban\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, "mtids_detection_to_block_seconds_count"),
        Some(0.0),
        "nothing reached the router: {body}"
    );
    assert!(!sim.listed("198.51.100.8"));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_events_count_under_the_sending_router_or_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.input.api_log = false; // Only syslog brings log lines.
    config.input.syslog_udp = Some("127.0.0.1:0".parse().unwrap());
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let addr = running.daemon.metrics_addr().unwrap();
    let syslog = running.daemon.syslog_udp_addr().unwrap();

    let line = |port: u16| {
        format!(
            "<134>Nov 21 10:00:00 gw firewall,info input: in:ether1 out:(unknown 0), \
             connection-state:new proto TCP (SYN), 198.51.100.40:40000->192.0.2.1:{port}, len 60"
        )
    };
    // From the router's own address (its host in the configuration is 127.0.0.1) ...
    let from_router = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for port in [22, 23, 80] {
        from_router
            .send_to(line(port).as_bytes(), syslog)
            .await
            .unwrap();
    }
    // ... and from an address no router has (all of 127/8 is loopback on Linux).
    let other = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other.send_to(line(443).as_bytes(), syslog).await.unwrap();

    let sim_series = "mtids_events_total{router=\"sim\",kind=\"firewall\"}";
    let syslog_series = "mtids_events_total{router=\"syslog\",kind=\"firewall\"}";
    scrape_until(addr, syslog_series, SOON, |v| v >= 1.0).await;
    scrape_until(addr, sim_series, SOON, |v| v >= 3.0).await;
    let body = scrape(addr).await;
    assert_eq!(value(&body, sim_series), Some(3.0), "{body}");
    assert_eq!(value(&body, syslog_series), Some(1.0), "{body}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_decisions_in_force_and_observes_no_block() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.enforcement.dry_run = true;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut running = Running::start(config).await;
    let addr = running.daemon.metrics_addr().unwrap();
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    running
        .wait_for(SOON, |r| matches!(r, Report::Blocked { dry_run: true, .. }))
        .await
        .expect("the would-be block is reported");
    let body = scrape_until(addr, "mtids_active_bans", SOON, |v| v >= 1.0).await;
    assert_eq!(value(&body, "mtids_active_bans"), Some(1.0), "{body}");
    assert_eq!(
        value(&body, "mtids_decisions_total{outcome=\"ban\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, "mtids_detection_to_block_seconds_count"),
        Some(0.0),
        "nothing was blocked: {body}"
    );
    assert!(!sim.listed("198.51.100.7"));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_queue_shows_and_the_endpoint_answers_while_shutting_down() {
    // A Telegram stand-in that accepts and never answers: the alert stays queued.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hanging.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.alert = mtids_cli::config::Config::parse(
        &format!(
            "[alert.telegram]\nbot_token = \"123:ABC\"\nchat_id = -100123\napi_url = \"{url}\"\n\
             [alert.dispatcher]\nmax_messages_per_window = 0\n"
        ),
        "test",
    )
    .unwrap()
    .alert;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let addr = running.daemon.metrics_addr().unwrap();
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    let body = scrape_until(addr, "mtids_alert_queue", SOON, |v| v >= 1.0).await;
    assert!(
        value(&body, "mtids_alert_queue").is_some_and(|v| v >= 1.0),
        "{body}"
    );

    // The shutdown waits up to 2 s for the alert; the endpoint still answers meanwhile.
    let stopping = tokio::spawn(running.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "the undeliverable alert is waited for"
    );
    let body = scrape(addr).await;
    assert!(value(&body, "mtids_alert_queue").is_some(), "{body}");
    stopping.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
