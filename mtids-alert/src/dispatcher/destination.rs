//! One destination (one [`Notifier`]) with its own bounded queue and delivery task, so a
//! destination that hangs delays no other.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::alert::Notification;
use crate::error::AlertError;
use crate::notifier::Notifier;

/// Counters of one destination, from [`crate::Dispatcher::destinations`]. The counts only
/// ever grow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DestinationStats {
    /// The notifier's name (`telegram`, a webhook's `name`), made unique with `-2`, `-3`
    /// when two destinations share one. Never a token or URL.
    pub name: String,
    /// Notifications queued for this destination or being delivered to it right now.
    pub pending: usize,
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications that failed (an error, or no answer within `delivery_timeout`).
    pub failed: u64,
    /// Of `failed`, those that hit `delivery_timeout`.
    pub timed_out: u64,
    /// Notifications dropped because this destination's queue was full.
    pub dropped: u64,
    /// The destination is reported hung: its last delivery timed out or its queue
    /// overflowed, and nothing has been delivered to it since.
    pub hung: bool,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Arc<Notification>>,
    in_flight: bool,
    /// No more notifications; the worker exits once the queue is empty.
    closed: bool,
    /// The worker must stop now, even mid-delivery.
    stop: bool,
}

/// A destination's queue, counters and the state its worker shares with the dispatcher.
pub(super) struct Destination {
    name: String,
    notifier: Arc<dyn Notifier>,
    capacity: usize,
    timeout: Duration,
    lane: Mutex<Lane>,
    /// Wakes the worker: new work, close, stop.
    wake: Notify,
    /// Interrupts a delivery in progress on stop.
    interrupt: Notify,
    sent: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
    hung: AtomicBool,
}

impl Destination {
    pub(super) fn new(
        name: String,
        notifier: Arc<dyn Notifier>,
        capacity: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            name,
            notifier,
            capacity,
            timeout,
            lane: Mutex::new(Lane {
                queue: VecDeque::with_capacity(capacity.min(4096)),
                ..Lane::default()
            }),
            wake: Notify::new(),
            interrupt: Notify::new(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            hung: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lane> {
        // A panic elsewhere while holding the lock leaves plain data; keep going.
        self.lane
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `notification`, dropping the oldest when full. Returns whether one was dropped.
    pub(super) fn push(&self, notification: Arc<Notification>) -> bool {
        let mut dropped = 0u64;
        {
            let mut lane = self.lock();
            if lane.closed {
                return false;
            }
            while lane.queue.len() >= self.capacity {
                lane.queue.pop_front();
                dropped += 1;
            }
            lane.queue.push_back(notification);
        }
        self.wake.notify_one();
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            if !self.hung.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    destination = %self.name,
                    capacity = self.capacity,
                    "alert destination hung: its queue is full, dropping its oldest alerts \
                     (other destinations are not delayed)"
                );
            }
        }
        dropped > 0
    }

    /// Notifications queued or being delivered.
    pub(super) fn pending(&self) -> usize {
        let lane = self.lock();
        lane.queue.len() + usize::from(lane.in_flight)
    }

    /// Takes no more notifications; the worker delivers what is queued, then exits.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The worker stops now, abandoning what is queued and any delivery in progress.
    pub(super) fn stop(&self) {
        {
            let mut lane = self.lock();
            lane.closed = true;
            lane.stop = true;
        }
        self.wake.notify_one();
        self.interrupt.notify_one();
    }

    pub(super) fn stats(&self) -> DestinationStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DestinationStats {
            name: self.name.clone(),
            pending: self.pending(),
            sent: get(&self.sent),
            failed: get(&self.failed),
            timed_out: get(&self.timed_out),
            dropped: get(&self.dropped),
            hung: self.hung.load(Ordering::Relaxed),
        }
    }

    /// The delivery task: one notification at a time, each under the delivery timeout.
    /// `progress` is notified whenever a delivery ends or the queue runs empty.
    pub(super) async fn run(self: Arc<Self>, progress: Arc<Notify>) {
        loop {
            let next = {
                let mut lane = self.lock();
                if lane.stop {
                    None
                } else {
                    match lane.queue.pop_front() {
                        Some(notification) => {
                            lane.in_flight = true;
                            Some(Some(notification))
                        }
                        None if lane.closed => None,
                        None => Some(None),
                    }
                }
            };
            match next {
                None => {
                    progress.notify_waiters();
                    return;
                }
                Some(None) => {
                    progress.notify_waiters();
                    self.wake.notified().await;
                }
                Some(Some(notification)) => {
                    let stopped = tokio::select! {
                        () = self.deliver(&notification) => false,
                        () = self.interrupt.notified() => true,
                    };
                    self.lock().in_flight = false;
                    progress.notify_waiters();
                    if stopped {
                        return;
                    }
                }
            }
        }
    }

    async fn deliver(&self, notification: &Notification) {
        let result =
            match tokio::time::timeout(self.timeout, self.notifier.notify(notification)).await {
                Ok(result) => result,
                Err(_) => Err(AlertError::TimedOut {
                    notifier: self.name.clone(),
                    after: self.timeout,
                }),
            };
        let error = match result {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                if self.hung.swap(false, Ordering::Relaxed) {
                    tracing::info!(destination = %self.name, "alert destination delivering again");
                }
                return;
            }
            Err(error) => error,
        };
        self.failed.fetch_add(1, Ordering::Relaxed);
        let timed_out = matches!(error, AlertError::TimedOut { .. });
        if timed_out {
            self.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        if timed_out && !self.hung.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                destination = %self.name,
                %error,
                queued = self.lock().queue.len(),
                "alert destination hung: no answer within dispatcher.delivery_timeout \
                 (other destinations are not delayed)"
            );
        } else {
            tracing::error!(notifier = %self.name, %error, "alert not delivered");
        }
    }
}
