//! The dispatcher, end to end over a real HTTP server, and with gated in-process notifiers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{LogBuffer, Reply, TestServer, block};
use mtids_alert::{
    AlertError, AuthHeader, ChatId, Dispatcher, DispatcherConfig, Notification, Notifier,
    RetryPolicy, Submitted, TelegramConfig, TelegramNotifier, WebhookConfig, WebhookNotifier,
};
use tokio::sync::Semaphore;

const TOKEN: &str = "777:dispatcher-SECRET-token";

fn telegram(base: &str, timeout: Duration, max_attempts: u32) -> Arc<dyn Notifier> {
    let mut config = TelegramConfig::new(TOKEN, ChatId::Id(42));
    config.api_url = base.to_owned();
    config.timeout = timeout;
    let mut retry = RetryPolicy::default();
    retry.max_attempts = max_attempts;
    retry.initial_backoff = Duration::from_millis(10);
    config.retry = retry;
    Arc::new(TelegramNotifier::new(config).unwrap())
}

fn config(max_per_window: u32) -> DispatcherConfig {
    let mut config = DispatcherConfig::default();
    config.max_messages_per_window = max_per_window;
    config
}

#[tokio::test]
async fn a_burst_of_1000_alerts_becomes_a_bounded_number_of_messages() {
    let server = TestServer::start(vec![]).await;
    let dispatcher = Dispatcher::spawn(
        config(10),
        vec![telegram(&server.base, Duration::from_secs(5), 1)],
    )
    .unwrap();
    for i in 0..1000 {
        dispatcher.submit(block(&format!("198.51.{}.{}", i % 7, i % 250)));
    }
    // The same 1000 again: all duplicates of alerts already accepted.
    let mut duplicates = 0;
    for i in 0..1000 {
        if dispatcher.submit(block(&format!("198.51.{}.{}", i % 7, i % 250)))
            == Submitted::Duplicate
        {
            duplicates += 1;
        }
    }
    assert!(
        dispatcher
            .flush(Duration::from_secs(10))
            .await
            .is_complete()
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 11, "10 alerts and one summary");
    let summary = requests.last().unwrap().json()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        summary.contains("990 more blocks in the last minute"),
        "{summary}"
    );
    assert!(summary.contains("Top sources: <code>198.51."), "{summary}");
    let stats = dispatcher.stats();
    assert_eq!(stats.submitted, 2000);
    assert_eq!(duplicates, stats.deduplicated);
    // (i % 7, i % 250) repeats only every 1750: the first thousand are all distinct.
    assert_eq!((stats.aggregated, stats.deduplicated), (990, 1000));
    assert_eq!(
        (stats.sent, stats.summaries, stats.failed, stats.dropped),
        (11, 1, 0, 0)
    );
}

#[tokio::test]
async fn submit_never_waits_on_a_server_that_never_answers() {
    let server = TestServer::start_with_default(vec![], Reply::Hang).await;
    let mut cfg = config(0);
    cfg.delivery_timeout = Duration::from_millis(300);
    // A request timeout far longer than the test: only the dispatcher's deadline ends it.
    let dispatcher = Dispatcher::spawn(
        cfg,
        vec![telegram(&server.base, Duration::from_secs(30), 1)],
    )
    .unwrap();
    let started = Instant::now();
    for i in 0..3 {
        assert_eq!(
            dispatcher.submit(block(&format!("192.0.2.{i}"))),
            Submitted::Queued
        );
    }
    let submitting = started.elapsed();
    // A submit that waited on the network would take the 300 ms delivery timeout at least.
    assert!(
        submitting < Duration::from_millis(250),
        "submit took {submitting:?}"
    );
    assert!(
        dispatcher
            .flush(Duration::from_secs(10))
            .await
            .is_complete()
    );
    server.wait_for(3, Duration::from_secs(1)).await;
    let stats = dispatcher.stats();
    assert_eq!((stats.sent, stats.failed), (0, 3));
}

#[tokio::test]
async fn shutdown_gives_up_at_its_deadline_and_refuses_new_alerts() {
    let (logs, _guard) = LogBuffer::install();
    let server = TestServer::start_with_default(vec![], Reply::Hang).await;
    let dispatcher = Dispatcher::spawn(
        config(0),
        vec![telegram(&server.base, Duration::from_secs(30), 1)],
    )
    .unwrap();
    for i in 0..5 {
        dispatcher.submit(block(&format!("192.0.2.{i}")));
    }
    server.wait_for(1, Duration::from_secs(5)).await;
    let started = Instant::now();
    let outcome = dispatcher.shutdown(Duration::from_millis(200)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(outcome.undelivered, 5, "one in flight, four queued");
    assert_eq!(dispatcher.submit(block("192.0.2.99")), Submitted::Closed);
    assert_eq!(dispatcher.stats().dropped, 1);
    assert!(logs.text().contains("alerts left undelivered at shutdown"));
}

/// Records what it is asked to deliver; waits for a permit per notification.
struct GatedNotifier {
    gate: Arc<Semaphore>,
    entered: AtomicUsize,
    seen: Mutex<Vec<Notification>>,
}

#[async_trait]
impl Notifier for GatedNotifier {
    fn name(&self) -> &str {
        "gated"
    }

    async fn notify(&self, notification: &Notification) -> Result<(), AlertError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        self.seen.lock().unwrap().push(notification.clone());
        Ok(())
    }
}

fn source_of(n: &Notification) -> String {
    match n {
        Notification::Alert(a) => a.source.clone(),
        other => panic!("expected an alert, got {other:?}"),
    }
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    let gate = Arc::new(Semaphore::new(0));
    let notifier = Arc::new(GatedNotifier {
        gate: Arc::clone(&gate),
        entered: AtomicUsize::new(0),
        seen: Mutex::default(),
    });
    let mut cfg = config(0);
    cfg.queue_capacity = 3;
    let dispatcher =
        Dispatcher::spawn(cfg, vec![Arc::clone(&notifier) as Arc<dyn Notifier>]).unwrap();
    dispatcher.submit(block("10.0.0.0"));
    // Let the worker take the first one: it is now in flight, waiting on the gate.
    while notifier.entered.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let outcomes: Vec<Submitted> = (1..10)
        .map(|i| dispatcher.submit(block(&format!("10.0.0.{i}"))))
        .collect();
    assert_eq!(outcomes[..3], [Submitted::Queued; 3]);
    assert_eq!(outcomes[3..], [Submitted::QueuedDroppingOldest; 6]);
    gate.add_permits(100);
    assert!(dispatcher.flush(Duration::from_secs(5)).await.is_complete());
    let seen: Vec<String> = notifier
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(source_of)
        .collect();
    assert_eq!(seen, ["10.0.0.0", "10.0.0.7", "10.0.0.8", "10.0.0.9"]);
    let stats = dispatcher.stats();
    assert_eq!((stats.sent, stats.dropped), (4, 6));
}

#[tokio::test(start_paused = true)]
async fn held_back_alerts_arrive_as_one_summary_when_the_window_ends() {
    let gate = Arc::new(Semaphore::new(1000));
    let notifier = Arc::new(GatedNotifier {
        gate,
        entered: AtomicUsize::new(0),
        seen: Mutex::default(),
    });
    let mut cfg = config(2);
    cfg.dedupe_window = Duration::ZERO;
    let dispatcher =
        Dispatcher::spawn(cfg, vec![Arc::clone(&notifier) as Arc<dyn Notifier>]).unwrap();
    for source in ["a", "b", "c", "c", "d"] {
        dispatcher.submit(block(source));
    }
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(
        notifier.seen.lock().unwrap().len(),
        2,
        "only the first two so far"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = notifier.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    match &seen[2] {
        Notification::Summary(s) => {
            assert_eq!((s.held_back, s.blocks), (3, 3));
            assert_eq!(s.top_sources[0].source, "c");
            assert_eq!(s.top_sources[0].count, 2);
        }
        other => panic!("expected a summary, got {other:?}"),
    }
}

#[tokio::test]
async fn every_notifier_gets_every_notification_and_failures_are_counted() {
    let server = TestServer::start_with_default(
        vec![],
        Reply::Status(
            400,
            r#"{"ok":false,"description":"Bad Request: chat not found"}"#,
        ),
    )
    .await;
    let gate = Arc::new(Semaphore::new(1000));
    let good = Arc::new(GatedNotifier {
        gate,
        entered: AtomicUsize::new(0),
        seen: Mutex::default(),
    });
    let dispatcher = Dispatcher::spawn(
        config(0),
        vec![
            telegram(&server.base, Duration::from_secs(5), 1),
            Arc::clone(&good) as Arc<dyn Notifier>,
        ],
    )
    .unwrap();
    dispatcher.submit(block("10.1.1.1"));
    dispatcher.submit(block("10.1.1.2"));
    assert!(dispatcher.flush(Duration::from_secs(5)).await.is_complete());
    assert_eq!(good.seen.lock().unwrap().len(), 2);
    assert_eq!(server.requests().len(), 2);
    let stats = dispatcher.stats();
    assert_eq!((stats.sent, stats.failed), (2, 2));
}

fn webhook(url: &str, name: &str, timeout: Duration) -> Arc<dyn Notifier> {
    let mut config = WebhookConfig::new(url);
    config.name = name.to_owned();
    config.timeout = timeout;
    config.auth_header = Some(AuthHeader::authorization("Bearer hook-SECRET-value"));
    let mut retry = RetryPolicy::default();
    retry.max_attempts = 1;
    config.retry = retry;
    Arc::new(WebhookNotifier::new(config).unwrap())
}

/// One webhook that accepts and never answers, one that answers at once: the healthy one
/// gets every alert promptly, the hung one is reported by name (without its URL or
/// token) and counted, and shutdown still ends at its deadline.
#[tokio::test]
async fn a_hung_destination_delays_no_other() {
    let (logs, _guard) = LogBuffer::install();
    let hung = TestServer::start_with_default(vec![], Reply::Hang).await;
    let healthy = TestServer::start(vec![]).await;
    let mut cfg = config(0);
    // The hung webhook holds each alert this long; the healthy one must not wait for it.
    cfg.delivery_timeout = Duration::from_secs(10);
    cfg.queue_capacity = 4;
    let dispatcher = Dispatcher::spawn(
        cfg,
        vec![
            webhook(
                &format!("{}/hook/secret-path-token", hung.base),
                "stuck-hook",
                Duration::from_secs(30),
            ),
            webhook(
                &format!("{}/ok", healthy.base),
                "good-hook",
                Duration::from_secs(5),
            ),
        ],
    )
    .unwrap();
    let started = Instant::now();
    for i in 0..8 {
        dispatcher.submit(block(&format!("192.0.2.{i}")));
        // Spaced out, so every alert is its own request on the healthy side.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests = healthy.wait_for(8, Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "the healthy webhook got 8 alerts after {elapsed:?} (hung one's timeout: 10 s)"
    );
    let sources: Vec<String> = requests
        .iter()
        .map(|r| r.json()["alert"]["source"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..8).map(|i| format!("192.0.2.{i}")).collect();
    assert_eq!(sources, expected, "every alert, in order");
    // The hung webhook got its first request and holds it; 7 more are for it: 4 queued
    // (its capacity), 3 dropped.
    hung.wait_for(1, Duration::from_secs(2)).await;
    // The server records a request before its answer reaches the dispatcher.
    let settled = Instant::now();
    while dispatcher.destinations()[1].sent < 8 && settled.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let destinations = dispatcher.destinations();
    assert_eq!(destinations.len(), 2);
    let (stuck, good) = (&destinations[0], &destinations[1]);
    assert_eq!(stuck.name, "stuck-hook");
    assert_eq!((stuck.pending, stuck.dropped, stuck.sent), (5, 3, 0));
    assert!(stuck.hung, "a full queue marks it hung");
    assert_eq!(
        (good.name.as_str(), good.pending, good.sent, good.dropped),
        ("good-hook", 0, 8, 0)
    );
    assert!(!good.hung);
    assert_eq!(dispatcher.pending(), 5);
    let text = logs.text();
    assert!(
        text.contains("alert destination hung") && text.contains("stuck-hook"),
        "{text}"
    );
    assert!(
        !text.contains("good-hook"),
        "the healthy one is not reported: {text}"
    );
    assert!(
        !text.contains("secret-path-token") && !text.contains("hook-SECRET-value"),
        "no URL or token in logs: {text}"
    );

    let stopping = Instant::now();
    let outcome = dispatcher.shutdown(Duration::from_millis(300)).await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert_eq!(
        outcome.undelivered, 5,
        "the hung webhook's alerts are abandoned"
    );
    let stats = dispatcher.stats();
    assert_eq!((stats.sent, stats.dropped), (8, 3));
}

/// A delivery that outlives `delivery_timeout` is reported once, counted as timed out,
/// and the destination goes on with its next alert (and recovers when it answers).
#[tokio::test]
async fn a_delivery_past_its_timeout_is_reported_and_the_destination_recovers() {
    let (logs, _guard) = LogBuffer::install();
    let server = TestServer::start(vec![Reply::Hang, Reply::Hang]).await;
    let healthy = TestServer::start(vec![]).await;
    let mut cfg = config(0);
    cfg.delivery_timeout = Duration::from_millis(200);
    let dispatcher = Dispatcher::spawn(
        cfg,
        vec![
            webhook(&server.base, "flaky", Duration::from_secs(30)),
            webhook(&healthy.base, "steady", Duration::from_secs(5)),
        ],
    )
    .unwrap();
    for i in 0..3 {
        dispatcher.submit(block(&format!("198.51.100.{i}")));
    }
    healthy.wait_for(3, Duration::from_millis(500)).await;
    let after_two_timeouts = dispatcher.destinations();
    assert!(
        after_two_timeouts[0].pending > 0,
        "the flaky one is still busy"
    );
    assert!(dispatcher.flush(Duration::from_secs(5)).await.is_complete());
    let flaky = &dispatcher.destinations()[0];
    assert_eq!((flaky.sent, flaky.failed, flaky.timed_out), (1, 2, 2));
    assert!(!flaky.hung, "delivering again");
    let text = logs.text();
    assert_eq!(
        text.matches("alert destination hung").count(),
        1,
        "one warning per episode: {text}"
    );
    assert!(
        text.contains("alert destination delivering again"),
        "{text}"
    );
}

#[tokio::test]
async fn destinations_with_the_same_name_are_told_apart() {
    let server = TestServer::start(vec![]).await;
    let dispatcher = Dispatcher::spawn(
        config(0),
        vec![
            webhook(&server.base, "webhook", Duration::from_secs(5)),
            webhook(&server.base, "webhook", Duration::from_secs(5)),
            webhook(&server.base, "webhook-2", Duration::from_secs(5)),
        ],
    )
    .unwrap();
    let names: Vec<String> = dispatcher
        .destinations()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["webhook", "webhook-2", "webhook-2-2"]);
    assert!(
        dispatcher
            .shutdown(Duration::from_secs(1))
            .await
            .is_complete()
    );
}
