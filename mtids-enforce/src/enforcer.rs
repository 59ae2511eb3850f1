//! The [`Enforcer`] trait: what any enforcement backend does.

use std::time::Duration;

use async_trait::async_trait;
use mtids_detect::IpPrefix;

use crate::{Ban, EnforceError};

/// What a successful block did on the router.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Blocked {
    /// A new address-list entry, with the router's `.id`.
    Added {
        /// The entry's `.id` (`*1A`).
        id: String,
    },
    /// The target was listed already: its entry now lasts at least as long as the new
    /// ban and carries the new comment.
    Updated {
        /// The entry's `.id`.
        id: String,
    },
    /// Nothing was sent (dry run).
    WouldAdd,
}

/// One address-list entry as the enforcer knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforced {
    /// The router's `.id` (empty for a dry run).
    pub id: String,
    /// The address or prefix listed.
    pub target: IpPrefix,
    /// Time left, as the router last said (`None`: permanent).
    pub timeout: Option<Duration>,
    /// The entry's comment.
    pub comment: String,
}

impl Enforced {
    /// Whether mtids wrote this entry (its comment starts with the mtids marker).
    pub fn is_mtids(&self) -> bool {
        self.comment.starts_with(crate::COMMENT_MARKER)
    }
}

/// What [`Enforcer::reconcile`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Entries on the router's lists (IPv4 and IPv6 together).
    pub listed: usize,
    /// Active ledger bans that were missing on the router.
    pub missing: Vec<IpPrefix>,
    /// How many of the missing ones were re-applied (with their remaining time).
    pub reapplied: usize,
    /// Listed entries that ended well before the ledger says (an extension lost with a
    /// connection), extended to the ledger's end.
    pub extended: usize,
    /// Missing (or short) ones that could not be re-applied, with the reason.
    pub failed: Vec<(IpPrefix, String)>,
    /// Pending ledger bans found on the router (sent before a crash): marked applied.
    pub confirmed: usize,
    /// Entries carrying mtids' comment that the ledger did not know (it was lost or
    /// started afresh): recorded as applied bans with their remaining time.
    pub adopted: usize,
    /// Whether the router's uptime went down since the last reconcile: it rebooted, and
    /// every entry with a timeout was gone.
    pub rebooted: bool,
}

/// An enforcement backend: a RouterOS router, or a dry run that only records.
///
/// Implementations are cheap to share (`&self` everywhere) and safe to call from many
/// tasks at once. With the `mock` feature, `MockEnforcer` (mockall) implements it for
/// unit tests of other crates.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Enforcer: Send + Sync {
    /// Puts one ban on the router's address list (or extends the entry already there).
    async fn block(&self, ban: &Ban) -> Result<Blocked, EnforceError>;

    /// Puts many bans on at once, all in flight together; one result per ban, in order.
    async fn block_all(&self, bans: &[Ban]) -> Vec<Result<Blocked, EnforceError>>;

    /// Removes the target's entry; `Ok(false)` if it was not listed.
    async fn unblock(&self, target: IpPrefix) -> Result<bool, EnforceError>;

    /// Removes every tracked connection from or to the target; returns how many.
    async fn drop_connections(&self, target: IpPrefix) -> Result<usize, EnforceError>;

    /// What is on the list now (from the enforcer's cache, kept up to date by every
    /// command and rebuilt by [`reconcile`](Enforcer::reconcile)).
    async fn enforced(&self) -> Result<Vec<Enforced>, EnforceError>;

    /// Reads the router's list in one `print`, rebuilds the cache, and re-applies the
    /// active ledger bans that are missing (after a reconnect, a reboot, a restart).
    async fn reconcile(&self) -> Result<ReconcileReport, EnforceError>;
}
