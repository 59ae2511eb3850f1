//! Enforcement for mtids on MikroTik RouterOS, with a durable record of every ban.
//!
//! The [`BanLedger`] records each ban decision in an SQLite file before it is sent to a
//! router, follows its state (pending, applied, failed, expired, removed), and answers
//! what must be re-applied after a daemon restart or a router reboot.
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

mod ledger;

pub use ledger::{BanEvent, BanId, BanLedger, BanRecord, BanState, LedgerError, NewBan, Recorded};
