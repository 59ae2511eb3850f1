//! The record of what this process pushed, so that the bouncer can recognise its own bans
//! when they come back from the LAPI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mtids_detect::IpPrefix;

/// How many pushed targets are remembered at most (each entry is a few dozen bytes).
const MAX_REMEMBERED: usize = 200_000;

/// Targets this process pushed to the LAPI (origin `mtids`), until their ban ends.
///
/// The LAPI's decision stream does not say which machine made a decision (crowdsec 1.4.6's
/// `FormatDecisions` sends id, origin, type, scope, value, duration and scenario only), so
/// a [`Watcher`](crate::Watcher) records what it submits here and a
/// [`Bouncer`](crate::Bouncer) sharing the same `OwnBans` marks a pulled ban
/// [`Ban::pushed_by_us`](crate::Ban::pushed_by_us) when its origin is `mtids` and its
/// target was pushed by us and has not expired. Clones share one record.
///
/// The record lives in memory: after a restart, the integrator's own ledger is what tells
/// its bans from pulled ones.
#[derive(Clone, Debug, Default)]
pub struct OwnBans {
    inner: Arc<Mutex<HashMap<IpPrefix, Instant>>>,
}

impl OwnBans {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `target` was pushed with a ban of `duration`, at `now`.
    pub fn record(&self, target: IpPrefix, duration: Duration, now: Instant) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A minute of grace: the LAPI's view of the end can lag ours.
        let until = now + duration + Duration::from_secs(60);
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, end| *end > now);
            if map.len() >= MAX_REMEMBERED {
                tracing::warn!(
                    max = MAX_REMEMBERED,
                    "too many pushed bans to remember; this one will not be recognised when pulled"
                );
                return;
            }
        }
        let entry = map.entry(target).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Whether `target` was pushed by us and its ban has not ended at `now`.
    pub fn contains(&self, target: &IpPrefix, now: Instant) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(target).is_some_and(|end| *end > now)
    }

    /// How many targets are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
