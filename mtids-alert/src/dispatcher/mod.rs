//! The [`Dispatcher`]: a bounded queue in front of the notifiers, so detection and
//! enforcement never wait on the network.

mod destination;
mod throttle;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::alert::{Alert, Notification};
use crate::config::duration_str;
use crate::error::AlertError;
use crate::notifier::Notifier;
use destination::Destination;
pub use destination::DestinationStats;
use throttle::{Limits, Throttle, Verdict};

/// Dispatcher settings. Durations are written `"60s"`, `"10m"` in configuration files.
///
/// ```
/// # use mtids_alert::DispatcherConfig;
/// let config: DispatcherConfig = toml::from_str(r#"max_messages_per_window = 10
/// dedupe_window = "5m""#).unwrap();
/// assert_eq!(config.queue_capacity, 256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Notifications waiting for delivery, per destination; when a destination's queue
    /// is full, its oldest is dropped. Default 256.
    pub queue_capacity: usize,
    /// Alerts delivered per `window`; the rest become one summary at the window's end, so
    /// a window sends at most this many messages plus one. 0 turns the limit off. Default 20 (Telegram allows about 20 messages a minute in a
    /// group).
    pub max_messages_per_window: u32,
    /// The rate-limit window. Default `60s`.
    #[serde(with = "duration_str")]
    pub window: Duration,
    /// An alert with the same source and threat as one accepted within this time is
    /// dropped as a duplicate. `"0s"` turns dedupe off. Default `10m`.
    #[serde(with = "duration_str")]
    pub dedupe_window: Duration,
    /// How long one notifier may take over one notification, retries included, before
    /// the dispatcher gives up on it, reports the destination hung and moves on to its
    /// next notification. Other destinations are never delayed by it. Default `60s`.
    #[serde(with = "duration_str")]
    pub delivery_timeout: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            max_messages_per_window: 20,
            window: Duration::from_secs(60),
            dedupe_window: Duration::from_secs(600),
            delivery_timeout: Duration::from_secs(60),
        }
    }
}

impl DispatcherConfig {
    fn validate(&self) -> Result<(), AlertError> {
        if self.queue_capacity == 0 {
            return Err(AlertError::InvalidConfig {
                field: "dispatcher.queue_capacity",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.window.is_zero() {
            return Err(AlertError::InvalidConfig {
                field: "dispatcher.window",
                reason: "must be longer than zero".to_owned(),
            });
        }
        if self.delivery_timeout.is_zero() {
            return Err(AlertError::InvalidConfig {
                field: "dispatcher.delivery_timeout",
                reason: "must be longer than zero".to_owned(),
            });
        }
        Ok(())
    }
}

/// What [`Dispatcher::submit`] did with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Submitted {
    /// Queued for delivery.
    Queued,
    /// Queued, and the oldest queued notification was dropped to make room.
    QueuedDroppingOldest,
    /// Same source and threat as a recent alert: not sent again.
    Duplicate,
    /// Over the rate limit: counted into the summary sent at the window's end.
    Aggregated,
    /// The dispatcher is shut down: dropped (and counted as dropped).
    Closed,
}

/// Counters for metrics, from [`Dispatcher::stats`]. All only ever grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatcherStats {
    /// Alerts handed to [`Dispatcher::submit`].
    pub submitted: u64,
    /// Notifications a notifier delivered (one per notifier per notification).
    pub sent: u64,
    /// Notifications a notifier failed to deliver (error or delivery timeout).
    pub failed: u64,
    /// Notifications dropped because a destination's queue was full (one per
    /// destination), or alerts submitted after shutdown.
    pub dropped: u64,
    /// Alerts held back by the rate limit and counted into a summary.
    pub aggregated: u64,
    /// Alerts dropped as duplicates.
    pub deduplicated: u64,
    /// Summaries queued.
    pub summaries: u64,
}

/// The result of [`Dispatcher::flush`] or [`Dispatcher::shutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct FlushOutcome {
    /// Notifications still queued or being delivered when the deadline passed.
    pub undelivered: usize,
}

impl FlushOutcome {
    /// Whether everything was delivered (or failed for good) before the deadline.
    pub fn is_complete(&self) -> bool {
        self.undelivered == 0
    }
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    aggregated: AtomicU64,
    deduplicated: AtomicU64,
    summaries: AtomicU64,
    /// Alerts submitted after shutdown.
    refused: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What `submit` decides under one lock: the throttle, and whether it is still open.
struct Front {
    throttle: Throttle,
    /// No more submissions.
    closed: bool,
    /// The summary timer must exit.
    stop: bool,
}

struct Shared {
    config: DispatcherConfig,
    front: Mutex<Front>,
    destinations: Vec<Arc<Destination>>,
    /// Wakes flushers: a destination finished something or went idle.
    progress: Arc<Notify>,
    /// Wakes the summary timer: alerts were held back, or it must stop.
    timer: Notify,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Front> {
        // A panic elsewhere while holding the lock leaves plain data; keep going.
        self.front
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `notification` for every destination; whether any dropped its oldest.
    /// Called with the front lock held, so every destination sees the same order.
    fn broadcast(&self, notification: Notification) -> bool {
        if matches!(notification, Notification::Summary(_)) {
            bump(&self.counters.summaries);
        }
        let notification = Arc::new(notification);
        let mut dropped = false;
        for destination in &self.destinations {
            dropped |= destination.push(Arc::clone(&notification));
        }
        dropped
    }

    fn undelivered(&self) -> usize {
        self.destinations.iter().map(|d| d.pending()).sum()
    }
}

struct Workers {
    timer: JoinHandle<()>,
    destinations: Vec<JoinHandle<()>>,
}

struct Inner {
    shared: Arc<Shared>,
    workers: Mutex<Option<Workers>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone without shutdown: the destinations deliver what is queued,
        // then end; the summary timer ends now.
        {
            let mut front = self.shared.lock();
            front.closed = true;
            front.stop = true;
        }
        self.shared.timer.notify_one();
        for destination in &self.shared.destinations {
            destination.close();
        }
    }
}

/// A bounded, rate-limited front for one or more [`Notifier`]s, each with its own queue.
///
/// [`Dispatcher::submit`] is synchronous and never waits: it takes a short lock, decides
/// (duplicate? over the rate limit?) and queues the alert for every destination. Each
/// destination (each notifier) has its own bounded queue and its own Tokio task that
/// delivers one notification at a time under `delivery_timeout`, so a destination that
/// hangs delays no other. When a destination's queue is full its oldest notification is
/// dropped and counted. A destination whose delivery times out or whose queue overflows
/// is reported with a warning naming it (never its token or URL) and shows as `hung` in
/// [`Dispatcher::destinations`] until it delivers again. Over the rate limit, alerts are
/// counted and sent as one [`crate::Summary`] when the window ends (or on
/// [`Dispatcher::flush`]). Cloning is cheap and shares the queues.
///
/// Call [`Dispatcher::shutdown`] before exiting to deliver what is queued.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.inner.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// `name`, or `name-2`, `name-3`... when an earlier destination already has it.
fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = name.to_owned();
    let mut n = 1u32;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{name}-{n}");
    }
    taken.insert(candidate.clone());
    candidate
}

impl Dispatcher {
    /// Starts one delivery task per notifier (and a timer for rate-limit summaries) on
    /// the current Tokio runtime.
    ///
    /// # Errors
    /// [`AlertError::InvalidConfig`] for a bad setting, [`AlertError::NoRuntime`] when
    /// called outside a Tokio runtime.
    pub fn spawn(
        config: DispatcherConfig,
        notifiers: Vec<Arc<dyn Notifier>>,
    ) -> Result<Self, AlertError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let limits = Limits {
            max_per_window: config.max_messages_per_window,
            window: config.window,
            dedupe_window: config.dedupe_window,
        };
        let mut taken = HashSet::new();
        let destinations: Vec<Arc<Destination>> = notifiers
            .into_iter()
            .map(|notifier| {
                let name = unique_name(notifier.name(), &mut taken);
                Arc::new(Destination::new(
                    name,
                    notifier,
                    config.queue_capacity,
                    config.delivery_timeout,
                ))
            })
            .collect();
        let shared = Arc::new(Shared {
            front: Mutex::new(Front {
                throttle: Throttle::new(limits),
                closed: false,
                stop: false,
            }),
            config,
            destinations,
            progress: Arc::new(Notify::new()),
            timer: Notify::new(),
            counters: Counters::default(),
        });
        let destinations = shared
            .destinations
            .iter()
            .map(|d| runtime.spawn(Arc::clone(d).run(Arc::clone(&shared.progress))))
            .collect();
        let timer = runtime.spawn(run_summary_timer(Arc::clone(&shared)));
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                workers: Mutex::new(Some(Workers {
                    timer,
                    destinations,
                })),
            }),
        })
    }

    /// Hands an alert over for delivery. Never blocks and never fails; the result says
    /// what happened to it.
    pub fn submit(&self, alert: Alert) -> Submitted {
        let shared = &self.inner.shared;
        bump(&shared.counters.submitted);
        let now = Instant::now();
        let mut front = shared.lock();
        if front.closed {
            bump(&shared.counters.refused);
            return Submitted::Closed;
        }
        let mut dropped = false;
        if let Some(summary) = front.throttle.poll_summary(now) {
            dropped |= shared.broadcast(summary.into());
        }
        let outcome = match front.throttle.admit(now, &alert) {
            Verdict::Duplicate => {
                bump(&shared.counters.deduplicated);
                Submitted::Duplicate
            }
            Verdict::HeldBack => {
                bump(&shared.counters.aggregated);
                Submitted::Aggregated
            }
            Verdict::Deliver => {
                dropped |= shared.broadcast(alert.into());
                if dropped {
                    Submitted::QueuedDroppingOldest
                } else {
                    Submitted::Queued
                }
            }
        };
        drop(front);
        if outcome == Submitted::Aggregated {
            // The window's summary may now be due: let the timer learn its deadline.
            shared.timer.notify_one();
        }
        outcome
    }

    /// A snapshot of the counters, summed over the destinations.
    pub fn stats(&self) -> DispatcherStats {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut stats = DispatcherStats {
            submitted: get(&c.submitted),
            aggregated: get(&c.aggregated),
            deduplicated: get(&c.deduplicated),
            summaries: get(&c.summaries),
            dropped: get(&c.refused),
            ..DispatcherStats::default()
        };
        for destination in &shared.destinations {
            let d = destination.stats();
            stats.sent += d.sent;
            stats.failed += d.failed;
            stats.dropped += d.dropped;
        }
        stats
    }

    /// Per-destination counters, in the order the notifiers were given to
    /// [`Dispatcher::spawn`].
    pub fn destinations(&self) -> Vec<DestinationStats> {
        self.inner
            .shared
            .destinations
            .iter()
            .map(|d| d.stats())
            .collect()
    }

    /// Deliveries queued or in progress right now, summed over the destinations (one
    /// alert waiting for two destinations counts twice).
    pub fn pending(&self) -> usize {
        self.inner.shared.undelivered()
    }

    /// Sends what the rate limit holds back as a summary now, then waits until every
    /// destination's queue is empty or `within` has passed, whichever comes first.
    pub async fn flush(&self, within: Duration) -> FlushOutcome {
        let shared = &self.inner.shared;
        let deadline = Instant::now() + within;
        {
            let mut front = shared.lock();
            let now = Instant::now();
            if let Some(summary) = front.throttle.poll_summary(now) {
                shared.broadcast(summary.into());
            }
            if let Some(summary) = front.throttle.take_summary() {
                shared.broadcast(summary.into());
            }
        }
        loop {
            let progress = shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let undelivered = shared.undelivered();
            if undelivered == 0 || self.workers_finished() {
                return FlushOutcome { undelivered };
            }
            tokio::select! {
                () = &mut progress => {}
                () = tokio::time::sleep_until(deadline) => {
                    return FlushOutcome { undelivered: shared.undelivered() };
                }
            }
        }
    }

    /// Stops taking alerts ([`Submitted::Closed`] from now on), delivers what it can
    /// within `within` (held-back alerts as a final summary), then stops the delivery
    /// tasks, abandoning whatever is left. A hung destination does not hold the others
    /// up, and the whole call returns about `within` (plus at most a second) after it
    /// started.
    pub async fn shutdown(&self, within: Duration) -> FlushOutcome {
        let shared = &self.inner.shared;
        shared.lock().closed = true;
        let outcome = self.flush(within).await;
        for destination in &shared.destinations {
            destination.close();
        }
        shared.lock().stop = true;
        shared.timer.notify_one();
        for destination in &shared.destinations {
            destination.stop();
        }
        let workers = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(workers) = workers {
            // The tasks see `stop` at their next await point; abort is the backstop.
            let deadline = Instant::now() + Duration::from_secs(1);
            for mut worker in workers
                .destinations
                .into_iter()
                .chain(std::iter::once(workers.timer))
            {
                if tokio::time::timeout_at(deadline, &mut worker)
                    .await
                    .is_err()
                {
                    worker.abort();
                    tracing::warn!("alert delivery task did not stop in time; aborted");
                }
            }
        }
        if !outcome.is_complete() {
            let hung: Vec<String> = self
                .destinations()
                .into_iter()
                .filter(|d| d.hung)
                .map(|d| d.name)
                .collect();
            tracing::warn!(
                undelivered = outcome.undelivered,
                hung_destinations = ?hung,
                "alerts left undelivered at shutdown"
            );
        }
        outcome
    }

    fn workers_finished(&self) -> bool {
        self.inner
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .is_none_or(|w| w.destinations.iter().all(JoinHandle::is_finished))
    }
}

/// Queues the rate limit's summary when a window with held-back alerts ends.
async fn run_summary_timer(shared: Arc<Shared>) {
    loop {
        let deadline = {
            let mut front = shared.lock();
            if front.stop {
                return;
            }
            if let Some(summary) = front.throttle.poll_summary(Instant::now()) {
                shared.broadcast(summary.into());
            }
            front.throttle.next_deadline()
        };
        match deadline {
            Some(at) => tokio::select! {
                () = shared.timer.notified() => {}
                () = tokio::time::sleep_until(at) => {}
            },
            None => shared.timer.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Action, Threat};
    use crate::notifier::MockNotifier;
    use std::time::SystemTime;

    fn alert(source: &str) -> Alert {
        Alert::new(
            Threat::PortScan,
            source,
            Action::DryRun {
                duration: None,
                routers: vec![],
            },
            "e",
            SystemTime::UNIX_EPOCH,
        )
    }

    #[tokio::test]
    async fn mock_notifier_sees_each_alert_once_and_errors_are_counted() {
        let mut mock = MockNotifier::new();
        mock.expect_name().return_const("mock".to_owned());
        let mut calls = 0;
        mock.expect_notify().times(2).returning(move |n| {
            calls += 1;
            assert!(matches!(n, Notification::Alert(a) if a.source == format!("10.0.0.{calls}")));
            if calls == 1 {
                Ok(())
            } else {
                Err(AlertError::Rejected {
                    notifier: "mock".into(),
                    status: 403,
                    description: "blocked".into(),
                })
            }
        });
        let dispatcher =
            Dispatcher::spawn(DispatcherConfig::default(), vec![Arc::new(mock)]).unwrap();
        assert_eq!(dispatcher.submit(alert("10.0.0.1")), Submitted::Queued);
        assert_eq!(dispatcher.submit(alert("10.0.0.1")), Submitted::Duplicate);
        assert_eq!(dispatcher.submit(alert("10.0.0.2")), Submitted::Queued);
        assert!(
            dispatcher
                .shutdown(Duration::from_secs(5))
                .await
                .is_complete()
        );
        let stats = dispatcher.stats();
        assert_eq!(
            (
                stats.submitted,
                stats.sent,
                stats.failed,
                stats.deduplicated
            ),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn spawn_outside_a_runtime_and_bad_config_are_errors() {
        let err = Dispatcher::spawn(DispatcherConfig::default(), vec![]).unwrap_err();
        assert!(matches!(err, AlertError::NoRuntime), "{err:?}");
        let config: Result<DispatcherConfig, _> = toml::from_str("queue_capacity = 0");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let err = Dispatcher::spawn(config.unwrap(), vec![])
            .unwrap_err()
            .to_string();
        assert!(err.contains("dispatcher.queue_capacity"), "{err}");
        let err = toml::from_str::<DispatcherConfig>("rate = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate"), "{err}");
    }
}
