//! The [`Dispatcher`]: a bounded queue in front of the notifiers, so detection and
//! enforcement never wait on the network.

mod throttle;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::alert::{Alert, Notification};
use crate::config::duration_str;
use crate::error::AlertError;
use crate::notifier::Notifier;
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
    /// Notifications waiting for delivery; when full, the oldest is dropped. Default 256.
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
    /// the dispatcher gives up on it and moves on. Default `60s`.
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
    /// Notifications dropped because the queue was full, or submitted after shutdown.
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
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    aggregated: AtomicU64,
    deduplicated: AtomicU64,
    summaries: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct State {
    queue: VecDeque<Notification>,
    throttle: Throttle,
    in_flight: bool,
    /// No more submissions; the worker exits once the queue is empty.
    closed: bool,
    /// The worker must stop now, even mid-delivery.
    stop: bool,
    /// Send what the rate limit holds back now instead of at the window's end.
    flush_requested: bool,
}

impl State {
    fn push(&mut self, notification: Notification, capacity: usize, counters: &Counters) -> bool {
        let mut dropped = false;
        while self.queue.len() >= capacity {
            self.queue.pop_front();
            bump(&counters.dropped);
            dropped = true;
        }
        if matches!(notification, Notification::Summary(_)) {
            bump(&counters.summaries);
        }
        self.queue.push_back(notification);
        dropped
    }

    fn undelivered(&self) -> usize {
        self.queue.len() + usize::from(self.in_flight)
    }
}

struct Shared {
    config: DispatcherConfig,
    state: Mutex<State>,
    /// Wakes the worker: new work, flush, close, stop.
    wake: Notify,
    /// Wakes flushers: the worker finished something or went idle.
    progress: Notify,
    /// Interrupts a delivery in progress on shutdown.
    stop: Notify,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Inner {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone without shutdown: let the worker deliver what is queued, then end.
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// A bounded, rate-limited queue in front of one or more [`Notifier`]s.
///
/// [`Dispatcher::submit`] is synchronous and never waits: it takes a short lock, decides
/// (duplicate? over the rate limit?) and queues. A background Tokio task delivers each
/// notification to every notifier concurrently, each under `delivery_timeout`. When the
/// queue is full the oldest notification is dropped and counted. Over the rate limit,
/// alerts are counted and sent as one [`crate::Summary`] when the window ends (or on
/// [`Dispatcher::flush`]). Cloning is cheap and shares the queue.
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

impl Dispatcher {
    /// Starts the delivery task on the current Tokio runtime.
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(config.queue_capacity.min(4096)),
                throttle: Throttle::new(limits),
                in_flight: false,
                closed: false,
                stop: false,
                flush_requested: false,
            }),
            config,
            wake: Notify::new(),
            progress: Notify::new(),
            stop: Notify::new(),
            counters: Counters::default(),
        });
        let worker = runtime.spawn(run_worker(Arc::clone(&shared), notifiers));
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                worker: Mutex::new(Some(worker)),
            }),
        })
    }

    /// Hands an alert over for delivery. Never blocks and never fails; the result says
    /// what happened to it.
    pub fn submit(&self, alert: Alert) -> Submitted {
        let shared = &self.inner.shared;
        bump(&shared.counters.submitted);
        let now = Instant::now();
        let mut state = shared.lock();
        if state.closed {
            bump(&shared.counters.dropped);
            return Submitted::Closed;
        }
        let capacity = shared.config.queue_capacity;
        let mut dropped = false;
        if let Some(summary) = state.throttle.poll_summary(now) {
            dropped |= state.push(summary.into(), capacity, &shared.counters);
        }
        let outcome = match state.throttle.admit(now, &alert) {
            Verdict::Duplicate => {
                bump(&shared.counters.deduplicated);
                Submitted::Duplicate
            }
            Verdict::HeldBack => {
                bump(&shared.counters.aggregated);
                Submitted::Aggregated
            }
            Verdict::Deliver => {
                dropped |= state.push(alert.into(), capacity, &shared.counters);
                if dropped {
                    Submitted::QueuedDroppingOldest
                } else {
                    Submitted::Queued
                }
            }
        };
        drop(state);
        if matches!(outcome, Submitted::Queued | Submitted::QueuedDroppingOldest) {
            shared.wake.notify_one();
        }
        outcome
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DispatcherStats {
        let c = &self.inner.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DispatcherStats {
            submitted: get(&c.submitted),
            sent: get(&c.sent),
            failed: get(&c.failed),
            dropped: get(&c.dropped),
            aggregated: get(&c.aggregated),
            deduplicated: get(&c.deduplicated),
            summaries: get(&c.summaries),
        }
    }

    /// Notifications queued or being delivered right now.
    pub fn pending(&self) -> usize {
        self.inner.shared.lock().undelivered()
    }

    /// Sends what the rate limit holds back as a summary now, then waits until the queue
    /// is empty or `within` has passed, whichever comes first.
    pub async fn flush(&self, within: Duration) -> FlushOutcome {
        let shared = &self.inner.shared;
        let deadline = Instant::now() + within;
        shared.lock().flush_requested = true;
        shared.wake.notify_one();
        loop {
            let progress = shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let state = shared.lock();
                // Done once the worker took the flush request and has nothing left.
                let worker_gone = self.worker_finished();
                if (!state.flush_requested || worker_gone) && state.undelivered() == 0 {
                    return FlushOutcome { undelivered: 0 };
                }
                if worker_gone {
                    return FlushOutcome {
                        undelivered: state.undelivered(),
                    };
                }
            }
            tokio::select! {
                () = &mut progress => {}
                () = tokio::time::sleep_until(deadline) => {
                    return FlushOutcome { undelivered: shared.lock().undelivered() };
                }
            }
        }
    }

    /// Stops taking alerts ([`Submitted::Closed`] from now on), delivers what it can
    /// within `within` (held-back alerts as a final summary), then stops the delivery
    /// task, abandoning whatever is left.
    pub async fn shutdown(&self, within: Duration) -> FlushOutcome {
        let shared = &self.inner.shared;
        shared.lock().closed = true;
        let outcome = self.flush(within).await;
        shared.lock().stop = true;
        shared.wake.notify_one();
        shared.stop.notify_one();
        let worker = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mut worker) = worker {
            // The worker checks `stop` at its next await point; abort is the backstop.
            if tokio::time::timeout(Duration::from_secs(1), &mut worker)
                .await
                .is_err()
            {
                worker.abort();
                tracing::warn!("alert delivery task did not stop in time; aborted");
            }
        }
        if !outcome.is_complete() {
            tracing::warn!(
                undelivered = outcome.undelivered,
                "alerts left undelivered at shutdown"
            );
        }
        outcome
    }

    fn worker_finished(&self) -> bool {
        self.inner
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }
}

enum Next {
    Deliver(Notification),
    Idle(Option<Instant>),
    Exit,
}

async fn run_worker(shared: Arc<Shared>, notifiers: Vec<Arc<dyn Notifier>>) {
    let capacity = shared.config.queue_capacity;
    loop {
        let next = {
            let mut state = shared.lock();
            let now = Instant::now();
            if state.stop {
                Next::Exit
            } else {
                if let Some(summary) = state.throttle.poll_summary(now) {
                    state.push(summary.into(), capacity, &shared.counters);
                }
                if state.flush_requested || state.closed {
                    if let Some(summary) = state.throttle.take_summary() {
                        state.push(summary.into(), capacity, &shared.counters);
                    }
                    state.flush_requested = false;
                }
                match state.queue.pop_front() {
                    Some(notification) => {
                        state.in_flight = true;
                        Next::Deliver(notification)
                    }
                    None if state.closed => Next::Exit,
                    None => Next::Idle(state.throttle.next_deadline()),
                }
            }
        };
        match next {
            Next::Exit => {
                shared.progress.notify_waiters();
                return;
            }
            Next::Deliver(notification) => {
                tokio::select! {
                    () = deliver(&shared, &notifiers, &notification) => {}
                    () = shared.stop.notified() => {
                        shared.lock().in_flight = false;
                        shared.progress.notify_waiters();
                        return;
                    }
                }
                shared.lock().in_flight = false;
                shared.progress.notify_waiters();
            }
            Next::Idle(deadline) => {
                shared.progress.notify_waiters();
                match deadline {
                    Some(at) => tokio::select! {
                        () = shared.wake.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    },
                    None => shared.wake.notified().await,
                }
            }
        }
    }
}

/// Delivers to every notifier at once, each under the delivery timeout.
async fn deliver(shared: &Shared, notifiers: &[Arc<dyn Notifier>], notification: &Notification) {
    let timeout = shared.config.delivery_timeout;
    let mut pending: Vec<Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>>> = notifiers
        .iter()
        .map(|notifier| {
            let one: Pin<Box<dyn Future<Output = ()> + Send + '_>> = Box::pin(async move {
                let result =
                    match tokio::time::timeout(timeout, notifier.notify(notification)).await {
                        Ok(result) => result,
                        Err(_) => Err(AlertError::TimedOut {
                            notifier: notifier.name().to_owned(),
                            after: timeout,
                        }),
                    };
                match result {
                    Ok(()) => bump(&shared.counters.sent),
                    Err(error) => {
                        bump(&shared.counters.failed);
                        tracing::error!(notifier = notifier.name(), %error, "alert not delivered");
                    }
                }
            });
            Some(one)
        })
        .collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in &mut pending {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    all_done = false;
                }
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
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
