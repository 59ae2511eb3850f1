//! Alert destinations in the running daemon: a webhook that accepts and never answers
//! delays no other destination, shows as hung in the metrics by its name, and does not
//! hold up the daemon's shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mtids_e2e::{HttpSink, Running, Sim, eventually, fail_logins};
use tokio::net::TcpListener;

const SOON: Duration = Duration::from_secs(5);

/// A loopback "webhook" that accepts connections and reads nothing, answers nothing.
async fn hung_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/SECRET-PATH", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

fn metric(running: &Running, series: &str) -> Option<f64> {
    running.daemon.metrics().render().lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_webhook_delays_no_other_destination_and_shows_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let hung = hung_server().await;
    let healthy = HttpSink::start().await;
    let text = format!(
        "[alert.dispatcher]\nmax_messages_per_window = 0\ndelivery_timeout = \"3s\"\n\
         [[alert.webhook]]\nurl = \"{hung}\"\nname = \"stuck\"\ntimeout = \"30s\"\n\
         [alert.webhook.retry]\nmax_attempts = 1\n\
         [[alert.webhook]]\nurl = \"{}/ok\"\nname = \"good\"\n",
        healthy.url
    );
    let mut config = sim.config(dir.path());
    config.alert = mtids_cli::config::Config::parse(&text, "test")
        .unwrap()
        .alert;
    let running = Running::start(config).await;

    for attacker in ["203.0.113.21", "203.0.113.22", "203.0.113.23"] {
        fail_logins(&sim.router, attacker, "root", 5);
    }
    let started = Instant::now();
    let all = eventually(SOON, || {
        let bodies = healthy.bodies();
        ["203.0.113.21", "203.0.113.22", "203.0.113.23"]
            .iter()
            .all(|a| bodies.iter().any(|b| b.contains(a)))
    })
    .await;
    assert!(
        all.is_some(),
        "the healthy webhook did not get all three alerts: {:?}",
        healthy.bodies()
    );
    // Far below the hung webhook's 3 s delivery timeout: nothing waited for it.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the healthy webhook waited {:?}",
        started.elapsed()
    );
    let queued = "mtids_alert_destination_queue{destination=\"stuck\"}";
    let stuck = metric(&running, queued).unwrap();
    assert!(
        (2.0..=3.0).contains(&stuck),
        "one in flight, the rest queued: {stuck}"
    );
    // The sink records a request before its answer reaches the dispatcher: wait for it.
    let good_queue = "mtids_alert_destination_queue{destination=\"good\"}";
    assert!(
        eventually(SOON, || metric(&running, good_queue) == Some(0.0))
            .await
            .is_some(),
        "{good_queue} = {:?}",
        metric(&running, good_queue)
    );
    // Past the timeout, the stuck one is reported hung and its failure counted.
    let hung_series = "mtids_alert_destination_hung{destination=\"stuck\"}";
    assert!(
        eventually(SOON, || metric(&running, hung_series) == Some(1.0))
            .await
            .is_some(),
        "{}",
        running.daemon.metrics().render()
    );
    assert!(metric(&running, "mtids_alerts_failed_total{destination=\"stuck\"}").unwrap() >= 1.0);
    assert_eq!(
        metric(
            &running,
            "mtids_alert_destination_hung{destination=\"good\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(&running, "mtids_alerts_dropped_total{destination=\"good\"}"),
        Some(0.0)
    );
    let body = running.daemon.metrics().render();
    assert!(!body.contains("SECRET-PATH"), "no URL in the metrics");

    // `Running::stop` gives the alerts 2 s: the hung webhook must not hold it longer.
    let stopping = Instant::now();
    running.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}
