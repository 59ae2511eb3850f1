//! Bans on one router through mtids-enforce's [`RouterOsEnforcer`] (optimistic adds,
//! duplicates extended, the ledger kept, reconciliation after a reconnect or a reboot),
//! plus the connection-table clean-up for asymmetric connections.

use std::sync::Arc;
use std::time::Instant;

use mtids_enforce::{Ban, Blocked, Enforcer, RouterOsEnforcer};
use tokio::sync::oneshot;

use super::{Report, Shared, Stats};

/// One ban for one router, from the detection task.
pub(crate) struct BlockRequest {
    pub(crate) ban: Ban,
    pub(crate) remove_connections: bool,
    pub(crate) observed: Instant,
    pub(crate) reply: oneshot::Sender<BlockOutcome>,
}

/// What became of a ban on one router.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockOutcome {
    /// On the router's address list; the entry's `.id` when the router said.
    Applied {
        /// The address-list entry's `.id`.
        item: Option<String>,
    },
    /// The router refused or could not be reached; the ledger keeps it pending.
    Failed {
        /// Why.
        error: String,
    },
}

/// Applies one request with `enforcer` (which records it in the ledger) and answers the
/// requester.
pub(crate) async fn apply(
    shared: Arc<Shared>,
    router: String,
    enforcer: Arc<RouterOsEnforcer>,
    request: BlockRequest,
) {
    let target = request.ban.target.to_string();
    let outcome = match enforcer.block(&request.ban).await {
        Ok(blocked) => {
            let latency = request.observed.elapsed();
            Stats::bump(&shared.stats.blocks_applied);
            shared.metrics.block_latency(latency);
            let item = match blocked {
                Blocked::Added { id } | Blocked::Updated { id } => Some(id),
                _ => None,
            };
            tracing::info!(%router, address = %target, latency_ms = latency.as_secs_f64() * 1e3, "blocked");
            shared.report(Report::Blocked {
                router: router.clone(),
                target: target.clone(),
                detector: request.ban.detector.clone(),
                latency,
                dry_run: false,
            });
            if request.remove_connections {
                match enforcer.drop_connections(request.ban.target).await {
                    Ok(n) => {
                        shared.stats.connections_removed.fetch_add(
                            u64::try_from(n).unwrap_or(u64::MAX),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                    }
                    Err(e) => {
                        tracing::warn!(%router, address = %target, error = %e, "removing connections failed");
                    }
                }
            }
            BlockOutcome::Applied { item }
        }
        Err(e) => {
            Stats::bump(&shared.stats.blocks_failed);
            let error = e.to_string();
            tracing::warn!(%router, address = %target, %error, "block failed; pending bans are retried on reconnect");
            shared.report(Report::BlockFailed {
                router,
                target,
                error: error.clone(),
            });
            BlockOutcome::Failed { error }
        }
    };
    let _ = request.reply.send(outcome);
}
