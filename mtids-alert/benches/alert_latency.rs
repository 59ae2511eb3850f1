//! Latency from `Dispatcher::submit` to the request arriving at a local HTTP server
//! (Telegram notifier, real loopback TCP). Criterion measures the mean; a second pass
//! prints p50/p99 over individual alerts (target: p99 < 50 ms).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use mtids_alert::{
    Action, Alert, ChatId, Dispatcher, DispatcherConfig, Notifier, TelegramConfig,
    TelegramNotifier, Threat,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

struct Setup {
    runtime: Runtime,
    dispatcher: Dispatcher,
    arrivals: mpsc::UnboundedReceiver<Instant>,
    next: u32,
}

impl Setup {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, arrivals) = mpsc::unbounded_channel();
        let dispatcher = runtime.block_on(async move {
            let app = axum::Router::new().fallback(move || {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Instant::now());
                    r#"{"ok":true,"result":{}}"#
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let mut telegram = TelegramConfig::new("123456:bench-token", ChatId::Id(1));
            telegram.api_url = format!("http://{addr}");
            let notifiers: Vec<Arc<dyn Notifier>> =
                vec![Arc::new(TelegramNotifier::new(telegram).unwrap())];
            let mut config = DispatcherConfig::default();
            config.max_messages_per_window = 0;
            config.dedupe_window = Duration::ZERO;
            Dispatcher::spawn(config, notifiers).unwrap()
        });
        Self {
            runtime,
            dispatcher,
            arrivals,
            next: 0,
        }
    }

    /// One alert through the dispatcher; the time until the server saw it.
    fn one(&mut self) -> Duration {
        self.next = self.next.wrapping_add(1);
        let alert = Alert::new(
            Threat::LoginBruteForce,
            format!("10.9.{}.{}", (self.next >> 8) & 255, self.next & 255),
            Action::Blocked {
                duration: Some(Duration::from_secs(3600)),
                routers: vec!["core-1".into()],
            },
            "12 failed logins for admin via ssh in 60 s",
            SystemTime::now(),
        );
        let _entered = self.runtime.enter();
        let start = Instant::now();
        self.dispatcher.submit(alert);
        let arrived = self.runtime.block_on(self.arrivals.recv()).unwrap();
        arrived.saturating_duration_since(start)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let mut setup = Setup::new();
    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("alert_latency/submit_to_request", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| setup.one()).sum())
    });
    criterion.final_summary();

    for _ in 0..200 {
        setup.one();
    }
    let mut samples: Vec<Duration> = (0..5_000).map(|_| setup.one()).collect();
    samples.sort_unstable();
    println!(
        "alert_latency/submit_to_request percentiles over {} alerts: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
}
