//! How fast `Dispatcher::submit` accepts a burst of 100k alerts from distinct sources
//! (the engine's side of an attack), with the delivery task running.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mtids_alert::{
    Action, Alert, AlertError, Dispatcher, DispatcherConfig, Notification, Notifier, Threat,
};

const BURST: usize = 100_000;

/// Delivers instantly: the bench measures the dispatcher, not a network.
struct NullNotifier;

#[async_trait]
impl Notifier for NullNotifier {
    fn name(&self) -> &str {
        "null"
    }

    async fn notify(&self, _: &Notification) -> Result<(), AlertError> {
        Ok(())
    }
}

fn burst() -> Vec<Alert> {
    (0..BURST)
        .map(|i| {
            Alert::new(
                Threat::PortScan,
                format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                Action::Blocked {
                    duration: Some(Duration::from_secs(3600)),
                    routers: vec!["core-1".into()],
                },
                "40 ports in 10 s",
                SystemTime::now(),
            )
        })
        .collect()
}

fn submit_burst(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut unlimited = DispatcherConfig::default();
    unlimited.max_messages_per_window = 0;
    unlimited.dedupe_window = Duration::ZERO;
    let mut group = c.benchmark_group("dispatcher");
    group.throughput(Throughput::Elements(BURST as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, config) in [
        // Default: 20 a minute, the rest aggregated into a summary.
        ("submit_burst_100k/defaults", DispatcherConfig::default()),
        // No rate limit or dedupe: every alert is queued, the queue drops its oldest.
        ("submit_burst_100k/unlimited", unlimited),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let _entered = runtime.enter();
                    let notifiers: Vec<Arc<dyn Notifier>> = vec![Arc::new(NullNotifier)];
                    (
                        Dispatcher::spawn(config.clone(), notifiers).unwrap(),
                        burst(),
                    )
                },
                |(dispatcher, alerts)| {
                    let _entered = runtime.enter();
                    for alert in alerts {
                        dispatcher.submit(alert);
                    }
                    dispatcher
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, submit_burst);
criterion_main!(benches);
