//! [`DryRunEnforcer`]: records what it would do and sends nothing.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use mtids_detect::IpPrefix;

use crate::{Ban, Blocked, EnforceError, Enforced, Enforcer, ReconcileReport};

/// One thing a [`DryRunEnforcer`] was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DryRunAction {
    /// Would add (or extend) an address-list entry.
    Block {
        /// The ban, as asked.
        ban: Ban,
        /// The comment that would be written (sanitised).
        comment: String,
    },
    /// Would remove the target's entry.
    Unblock(IpPrefix),
    /// Would remove the target's tracked connections.
    DropConnections(IpPrefix),
}

/// An [`Enforcer`] that changes nothing: it records each action (for `mtids simulate`,
/// replays and `--dry-run`) and keeps the list it would have built, so
/// [`enforced`](Enforcer::enforced) answers as a router would.
#[derive(Debug, Default)]
pub struct DryRunEnforcer {
    state: Mutex<DryRunState>,
}

#[derive(Debug, Default)]
struct DryRunState {
    actions: Vec<DryRunAction>,
    listed: BTreeMap<IpPrefix, Ban>,
}

impl DryRunEnforcer {
    /// An enforcer with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything asked so far, in order.
    pub fn actions(&self) -> Vec<DryRunAction> {
        self.lock().actions.clone()
    }

    /// Takes the recorded actions, leaving none.
    pub fn take_actions(&self) -> Vec<DryRunAction> {
        std::mem::take(&mut self.lock().actions)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DryRunState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Enforcer for DryRunEnforcer {
    async fn block(&self, ban: &Ban) -> Result<Blocked, EnforceError> {
        let mut state = self.lock();
        state.actions.push(DryRunAction::Block {
            ban: ban.clone(),
            comment: ban.comment(),
        });
        state.listed.insert(ban.target, ban.clone());
        Ok(Blocked::WouldAdd)
    }

    async fn block_all(&self, bans: &[Ban]) -> Vec<Result<Blocked, EnforceError>> {
        let mut out = Vec::with_capacity(bans.len());
        for ban in bans {
            out.push(self.block(ban).await);
        }
        out
    }

    async fn unblock(&self, target: IpPrefix) -> Result<bool, EnforceError> {
        let mut state = self.lock();
        state.actions.push(DryRunAction::Unblock(target));
        Ok(state.listed.remove(&target).is_some())
    }

    async fn drop_connections(&self, target: IpPrefix) -> Result<usize, EnforceError> {
        self.lock()
            .actions
            .push(DryRunAction::DropConnections(target));
        Ok(0)
    }

    async fn enforced(&self) -> Result<Vec<Enforced>, EnforceError> {
        Ok(self
            .lock()
            .listed
            .values()
            .map(|ban| Enforced {
                id: String::new(),
                target: ban.target,
                timeout: ban.duration,
                comment: ban.comment(),
            })
            .collect())
    }

    async fn reconcile(&self) -> Result<ReconcileReport, EnforceError> {
        Ok(ReconcileReport {
            listed: self.lock().listed.len(),
            ..ReconcileReport::default()
        })
    }
}
