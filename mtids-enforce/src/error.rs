//! The one error type of enforcement.

use mtids_detect::IpPrefix;

use crate::LedgerError;

/// What can go wrong while enforcing. Each variant says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnforceError {
    /// The API user may not do this: its group lacks a policy.
    #[error(
        "router {router}: the API user may not run `{command}` (not enough permissions): add \
         the `{policy}` policy to the user's group (`/user group set GROUP \
         policy=api,read,{policy}`), or log in as a user of group `write` or `full`"
    )]
    MissingPolicy {
        /// The router's name.
        router: String,
        /// The command refused.
        command: String,
        /// The policy it needs: `write` for add/set/remove, `read` for print.
        policy: &'static str,
    },

    /// The router refused the command for another reason (its message is kept).
    #[error("router {router} refused `{command}`: {message}")]
    Refused {
        /// The router's name.
        router: String,
        /// The command refused.
        command: String,
        /// The router's `!trap` message.
        message: String,
    },

    /// The connection to the router failed or was lost. Bans recorded in the ledger stay
    /// pending and are re-applied when the connection is back.
    #[error(
        "router {router}: {source} (bans stay pending in the ledger and are re-applied on \
         reconnect)"
    )]
    Connection {
        /// The router's name.
        router: String,
        /// What the client said.
        #[source]
        source: routeros_proto::net::Error,
    },

    /// A target covers one of the router's own addresses: it is never banned (the router
    /// would lock itself, or its administrator, out).
    #[error(
        "refusing to ban {target} on router {router}: it covers the router's own address \
         {own}; add it to the allowlist if a detector keeps deciding this"
    )]
    OwnAddress {
        /// The router's name.
        router: String,
        /// The ban's target.
        target: IpPrefix,
        /// The router's address it covers.
        own: IpPrefix,
    },

    /// The ban ledger failed; nothing was sent to the router for this decision.
    #[error("ban ledger: {0}")]
    Ledger(#[from] LedgerError),

    /// The ledger could not record the decisions of a batch, so none was sent.
    #[error(
        "the ban ledger could not record the decision ({reason}); nothing was sent: check \
         the ledger file's disk and permissions"
    )]
    NotRecorded {
        /// What the ledger said.
        reason: String,
    },

    /// A fleet operation named a router that is not configured.
    #[error("no router named `{0}` in the fleet; check the router names in the configuration")]
    UnknownRouter(String),

    /// A fleet operation named a group that is not configured.
    #[error("no router group named `{0}` in the fleet; check the group names in the configuration")]
    UnknownGroup(String),

    /// A router's queue was full (the router is far behind): the ban stays pending in the
    /// ledger and is applied by a reconcile once the router has caught up.
    #[error(
        "router {router} is {queued} bans behind (queue full): ban of {target} kept pending \
         in the ledger, applied once the router catches up; check the router or raise \
         `FleetConfig::queue`"
    )]
    QueueFull {
        /// The router's name.
        router: String,
        /// The ban's target.
        target: IpPrefix,
        /// The queue's capacity.
        queued: usize,
    },

    /// The router cannot be reached just now; the fleet keeps retrying with backoff.
    #[error("router {router} is unreachable ({reason}); retrying with backoff")]
    Unavailable {
        /// The router's name.
        router: String,
        /// The last connection error.
        reason: String,
    },

    /// The fleet runs without a ledger (dry run, input only): it sends no ban and
    /// changes no address list.
    #[error("the fleet enforces nothing on router {0} (no ban ledger: dry run or input only)")]
    NotEnforcing(String),

    /// The fleet's task for this router has stopped (the fleet is shutting down).
    #[error("the fleet's task for router {0} has stopped")]
    Stopped(String),
}

impl EnforceError {
    /// Whether this is a lost or failed connection (worth retrying after reconnecting),
    /// as opposed to the router refusing the command (retrying would not help).
    pub fn is_connection(&self) -> bool {
        matches!(self, EnforceError::Connection { .. })
    }
}
