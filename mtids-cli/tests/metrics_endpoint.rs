//! The Prometheus endpoint over a real loopback socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mtids_cli::metrics::{Metrics, MetricsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn serves_what_the_daemon_counted() {
    let metrics = Metrics::new();
    for _ in 0..3 {
        metrics.event("gw", "auth");
    }
    metrics.event("gw", "firewall");
    metrics.finding("brute_force");
    metrics.decision(true);
    metrics.decision(false);
    metrics.set_active_bans(7);
    metrics.block_latency(Duration::from_millis(3));
    metrics.router_connected("gw", true);
    metrics.set_alert_queue(2);

    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("application/openmetrics-text"), "{body}");
    for line in [
        "mtids_events_total{router=\"gw\",kind=\"auth\"} 3",
        "mtids_events_total{router=\"gw\",kind=\"firewall\"} 1",
        "mtids_findings_total{detector=\"brute_force\"} 1",
        "mtids_decisions_total{outcome=\"ban\"} 1",
        "mtids_decisions_total{outcome=\"suppressed\"} 1",
        "mtids_active_bans 7",
        "mtids_detection_to_block_seconds_count 1",
        "mtids_router_connected{router=\"gw\"} 1",
        "mtids_alert_queue 2",
        "# EOF",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    // Only /metrics is served.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut other = String::new();
    s.read_to_string(&mut other).await.unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
