//! Enforcement for mtids on MikroTik RouterOS: a ban decided by detection becomes an
//! address-list entry on the router, certain, fast and recorded.
//!
//! - [`Enforcer`] is what any backend does: block, unblock, drop a target's connections,
//!   list what is enforced, reconcile. [`RouterOsEnforcer`] does it on a router through
//!   `routeros_proto::net::Client`; [`DryRunEnforcer`] records what it would do (for
//!   simulate, replay and `--dry-run`); `MockEnforcer` (feature `mock`) is a mockall mock
//!   for other crates' unit tests.
//! - [`BanLedger`] records every decision in an SQLite file before it is sent and follows
//!   its state (pending, applied, failed, expired, removed), so bans survive a daemon
//!   restart and are re-applied with their remaining time after a reconnect or a router
//!   reboot (entries with a timeout are dynamic: a reboot erases them).
//! - [`Fleet`] is the engine that runs routers: each on a task and a connection of its
//!   own (so a slow or unreachable router never delays the others), reconnecting with
//!   backoff, checking liveness and reboots, applying bans to one router, a group or all
//!   (recorded first, applied whenever the router is back), running a [`RouterInput`]
//!   hook (log follow, polls) on each session and reporting [`FleetEvent`]s.
//!
//! Adds are optimistic (no `print` first; the `already have such entry` trap is answered
//! with a `set` of a longer timeout and the new comment), every command of a batch is in
//! flight at once on the one connection, and the list lives in a local cache rebuilt by
//! one `print` per list on connect: 30,000 bans take under 3 s against a router that
//! answers each command 2 ms late, where one at a time they take two minutes.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use mtids_enforce::{Ban, BanLedger, Enforcer, RouterOsConfig, RouterOsEnforcer};
//! use routeros_proto::net::{Client, ClientConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = Arc::new(Mutex::new(BanLedger::open("/var/lib/mtids/bans.db")?));
//! let client = Client::connect(&ClientConfig::new("192.0.2.1", "mtids", "secret")).await?;
//! let enforcer = RouterOsEnforcer::new(client, RouterOsConfig::new("gw"), ledger);
//! // Fill the cache, learn the router's own addresses, re-apply what is missing.
//! let report = enforcer.reconcile().await?;
//! println!("{} listed, {} re-applied", report.listed, report.reapplied);
//!
//! let ban = Ban::new(
//!     "198.51.100.7".parse()?,
//!     Some(Duration::from_secs(3600)),
//!     "brute_force",
//!     "5 login failures in 60s",
//! );
//! enforcer.block(&ban).await?;
//! enforcer.drop_connections(ban.target).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A fleet: each router on its own task, with an input hook on each session and the
//! outcomes as events.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use mtids_enforce::{
//!     Ban, BanLedger, BanOrder, Fleet, FleetConfig, FleetEvent, FleetRouter, RouterInput,
//!     RouterOsConfig, Scope, Session,
//! };
//! use routeros_proto::net::ClientConfig;
//!
//! struct FollowLog;
//!
//! #[async_trait::async_trait]
//! impl RouterInput for FollowLog {
//!     async fn run(&self, session: &Session) -> Result<(), String> {
//!         // Read from `session.client()` until the connection fails.
//!         # let _ = session;
//!         Err("log follow ended".to_owned())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = Arc::new(Mutex::new(BanLedger::open("/var/lib/mtids/bans.db")?));
//! let (events, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
//! let gw = FleetRouter::new(
//!     ClientConfig::new("192.0.2.1", "mtids", "secret"),
//!     RouterOsConfig::new("gw"),
//! )
//! .groups(["edge"])
//! .input(Arc::new(FollowLog));
//! let fleet = Fleet::builder()
//!     .config(FleetConfig::default().liveness(Duration::from_secs(5), Duration::from_secs(10)))
//!     .ledger(ledger)
//!     .events(events)
//!     .start(vec![gw]);
//! let ban = Ban::new("198.51.100.7".parse()?, Some(Duration::from_secs(3600)), "brute_force", "");
//! // Recorded in the ledger now; applied whenever `gw` is connected.
//! fleet.order(&Scope::Group("edge".into()), &BanOrder::new(ban).tag(1))?;
//! while let Some(event) = outcomes.recv().await {
//!     if let FleetEvent::Applied { router, tag: 1, latency, .. } = event {
//!         println!("on {router} after {latency:?}");
//!         break;
//!     }
//! }
//! fleet.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The same calls without a router, recording instead:
//!
//! ```
//! use mtids_enforce::{Ban, DryRunAction, DryRunEnforcer, Enforcer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dry = DryRunEnforcer::new();
//! dry.block(&Ban::new("2001:db8::/64".parse()?, None, "port_scan", "40 ports in 5s")).await?;
//! let DryRunAction::Block { comment, .. } = &dry.actions()[0] else { unreachable!() };
//! assert_eq!(comment, "mtids port_scan: 40 ports in 5s");
//! # Ok(())
//! # }
//! ```
//!
//! The ledger on its own:
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use mtids_enforce::{BanLedger, BanState, NewBan, Recorded};
//!
//! # fn main() -> Result<(), mtids_enforce::LedgerError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let mut ledger = BanLedger::open(dir.path().join("bans.db"))?;
//! // Times are stored to the millisecond.
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let ban = NewBan {
//!     router: "gw",
//!     list: "mtids-blocked",
//!     target: "198.51.100.7",
//!     reason: "ssh brute force: 12 failures in 60s",
//!     detector: "brute-force",
//!     created: now,
//!     duration: Some(Duration::from_secs(3600)),
//! };
//! let Recorded::New(id) = ledger.record(&ban)? else { unreachable!() };
//! ledger.mark_applied(id, Some("*1A"), now)?;
//!
//! // After a restart: what is meant to be on the router, with its remaining time.
//! let active = ledger.active(Some("gw"), now)?;
//! assert_eq!(active[0].state, BanState::Applied);
//! assert_eq!(active[0].remaining(now), Some(Duration::from_secs(3600)));
//! # Ok(())
//! # }
//! ```

mod ban;
mod dry_run;
mod enforcer;
mod error;
mod fleet;
mod ledger;
mod routeros;

pub use ban::{
    Ban, COMMENT_MARKER, MAX_COMMENT_LEN, MAX_EVIDENCE_SAMPLES, evidence_json, format_timeout,
    parse_routeros_duration,
};
pub use dry_run::{DryRunAction, DryRunEnforcer};
#[cfg(feature = "mock")]
pub use enforcer::MockEnforcer;
pub use enforcer::{Blocked, Enforced, Enforcer, ReconcileReport};
pub use error::EnforceError;
pub use fleet::{
    BanOrder, Fleet, FleetBuilder, FleetConfig, FleetEvent, FleetRouter, PerRouter, RouterInput,
    RouterStatus, Scope, Session, backoff_delay,
};
pub use ledger::{
    BanEvent, BanId, BanLedger, BanRecord, BanState, LedgerError, LedgerHealth, LogPosition,
    MAX_BACKLOG, MAX_EVIDENCE_LEN, NewBan, RETRY_EVERY, Recorded,
};
pub use mtids_detect::IpPrefix;
pub use routeros::{Clock, DEFAULT_LIST, RouterOsConfig, RouterOsEnforcer};
