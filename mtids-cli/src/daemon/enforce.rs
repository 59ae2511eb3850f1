//! The daemon's side of enforcement. The routers are run by mtids-enforce's [`Fleet`] (the
//! one engine: connect with backoff, reconcile, liveness, bans recorded first and applied
//! whenever the router is back); this turns its [`FleetEvent`]s into metrics, reports,
//! counters, and the "blocked on routers [..]" alert once every router answered a ban (or
//! after [`ALERT_DEADLINE`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mtids_alert::Action;
use mtids_detect::Finding;
use mtids_enforce::{Fleet, FleetEvent};
use tokio::sync::mpsc;

use super::detection::alert_for;
use super::{Report, Shared, Stats};

/// How long the "blocked" alert of a ban waits for routers that have not answered (one
/// that is away gets the ban when it is back; the alert names only those that had it).
pub(crate) const ALERT_DEADLINE: Duration = Duration::from_secs(10);

/// A ban decision waiting for its routers' answers, for its alert.
struct Pending {
    finding: Finding,
    duration: Duration,
    reason: String,
    waiting: BTreeSet<String>,
    applied: Vec<String>,
    deadline: Instant,
}

/// The ban decisions whose alert waits for the routers, by [`mtids_enforce::BanOrder`] tag.
#[derive(Default)]
pub(crate) struct Tracker {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

impl Tracker {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for `routers`' answers about a ban; returns the order's tag.
    pub(crate) fn track(
        &self,
        finding: Finding,
        duration: Duration,
        reason: String,
        routers: &[String],
    ) -> u64 {
        let tag = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending().insert(
            tag,
            Pending {
                finding,
                duration,
                reason,
                waiting: routers.iter().cloned().collect(),
                applied: Vec::new(),
                deadline: Instant::now() + ALERT_DEADLINE,
            },
        );
        tag
    }

    /// `router` answered ban `tag`; the alert goes once every router has.
    pub(crate) fn answered(&self, shared: &Shared, tag: u64, router: &str, applied: bool) {
        if !applied {
            shared.metrics.block_failed(router);
        }
        let done = {
            let mut pending = self.pending();
            let Some(ban) = pending.get_mut(&tag) else {
                return;
            };
            if !ban.waiting.remove(router) {
                return;
            }
            if applied {
                ban.applied.push(router.to_owned());
            }
            if ban.waiting.is_empty() {
                pending.remove(&tag)
            } else {
                None
            }
        };
        if let Some(ban) = done {
            alert(shared, ban);
        }
    }

    /// Alerts about the bans past their deadline; routers that did not answer count as a
    /// failed block.
    fn expire(&self, shared: &Shared, now: Instant) {
        let due: Vec<Pending> = {
            let mut pending = self.pending();
            let tags: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(tag, _)| *tag)
                .collect();
            tags.iter().filter_map(|t| pending.remove(t)).collect()
        };
        for ban in due {
            for router in &ban.waiting {
                shared.metrics.block_failed(router);
            }
            alert(shared, ban);
        }
    }
}

fn alert(shared: &Shared, ban: Pending) {
    let enforced = !ban.applied.is_empty();
    let mut alert = alert_for(
        &ban.finding,
        Action::Blocked {
            duration: Some(ban.duration),
            routers: ban.applied,
        },
        ban.reason,
    );
    if enforced {
        alert = alert.with_enforced_at(shared.now());
    }
    shared.alerts.submit(alert);
}

/// Turns the fleet's events into metrics, reports and alerts, until the fleet stops.
pub(crate) async fn run_events(
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    mut events: mpsc::UnboundedReceiver<FleetEvent>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                handle(&shared, &tracker, event);
            }
            _ = tick.tick() => tracker.expire(&shared, Instant::now()),
        }
    }
    // Stopping: alert about what is still waiting, now.
    tracker.expire(&shared, Instant::now() + ALERT_DEADLINE);
}

fn handle(shared: &Shared, tracker: &Tracker, event: FleetEvent) {
    match event {
        FleetEvent::Connected { router, .. } => {
            Stats::bump(&shared.stats.connects);
            shared.metrics.router_connected(&router, true);
            shared.live.connected(&router, Some(shared.now()));
            shared.report(Report::Connected { router });
        }
        FleetEvent::Lost {
            router,
            reason,
            retry_in,
        } => {
            shared.metrics.router_connected(&router, false);
            shared.live.connected(&router, None);
            shared.report(Report::Disconnected {
                router,
                error: reason,
                retry_in,
            });
        }
        FleetEvent::Reconciled { router, report } if report.reapplied > 0 => {
            shared
                .stats
                .blocks_restored
                .fetch_add(report.reapplied as u64, Ordering::Relaxed);
            tracing::info!(%router, reapplied = report.reapplied, "re-applied bans missing from the router");
        }
        FleetEvent::Applied {
            router,
            tag,
            ban,
            latency,
            ..
        } => {
            Stats::bump(&shared.stats.blocks_applied);
            shared.metrics.block_latency(latency);
            let target = ban.target.to_string();
            tracing::info!(%router, address = %target, latency_ms = latency.as_secs_f64() * 1e3, "blocked");
            tracker.answered(shared, tag, &router, true);
            shared.report(Report::Blocked {
                router,
                target,
                detector: ban.detector,
                latency,
                dry_run: false,
            });
        }
        FleetEvent::Failed {
            router,
            tag,
            ban,
            error,
        } => {
            Stats::bump(&shared.stats.blocks_failed);
            let target = ban.target.to_string();
            tracing::warn!(%router, address = %target, %error, "block refused by the router");
            tracker.answered(shared, tag, &router, false);
            shared.report(Report::BlockFailed {
                router,
                target,
                error,
            });
        }
        FleetEvent::ConnectionsDropped {
            router,
            target,
            result,
            ..
        } => match result {
            Ok(n) => {
                shared
                    .stats
                    .connections_removed
                    .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%router, address = %target, %error, "removing connections failed");
            }
        },
        _ => {}
    }
}

/// Orders `ban` on every router, for the alert tracked under `tag`. A router that cannot
/// queue it (too far behind: it stays pending in the ledger) counts as not applied.
pub(crate) fn order(
    shared: &Shared,
    fleet: &Fleet,
    tracker: &Tracker,
    order: &mtids_enforce::BanOrder,
) {
    match fleet.order(&mtids_enforce::Scope::All, order) {
        Ok(per_router) => {
            for (router, result) in per_router {
                if let Err(e) = result {
                    Stats::bump(&shared.stats.blocks_failed);
                    tracing::warn!(%router, address = %order.ban.target, error = %e, "ban not queued");
                    shared.report(Report::BlockFailed {
                        router: router.clone(),
                        target: order.ban.target.to_string(),
                        error: e.to_string(),
                    });
                    tracker.answered(shared, order.tag, &router, false);
                }
            }
        }
        Err(e) => tracing::error!(address = %order.ban.target, error = %e, "ban not ordered"),
    }
}
