//! The daemon's side of the ledger: the lock that keeps a second daemon off it, opening
//! (and recovering) it at start, and a once-a-second look at it from the detection task:
//! replay writes kept in memory, raise the alarm while it cannot be written, and learn
//! of `mtids bans add` / `remove` made by another process.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mtids_alert::{Action, Alert, Severity, Threat};
use mtids_detect::{DetectionEngine, IpPrefix, Timestamp};
use mtids_enforce::{BanLedger, BanOrder, BanState, Fleet, Scope};

use super::{Shared, timestamp};
use crate::config::{Config, OnCorrupt};
use crate::error::CliError;

/// How often the detection task looks at the ledger.
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The exclusive lock on `<ledger>.lock`, held while the daemon runs (released by the
/// kernel when the process ends, however it ends).
#[derive(Debug)]
pub(crate) struct LedgerLock {
    _file: std::fs::File,
}

/// The lock file beside `ledger`.
pub(crate) fn lock_path(ledger: &Path) -> PathBuf {
    let mut name = ledger.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the ledger's lock file, or says which process holds it. Only `mtids run` takes
/// it: `mtids bans` works beside a running daemon (SQLite serialises the writes).
pub(crate) fn lock_ledger(ledger: &Path) -> Result<LedgerLock, CliError> {
    let path = lock_path(ledger);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            CliError::io(
                format!("opening the ledger lock file {}", path.display()),
                e,
            )
        })?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("process {holder}")
            };
            return Err(CliError::Usage(format!(
                "the ban ledger {} is in use by another `mtids run` ({holder} holds {}): \
                 one daemon per ledger",
                ledger.display(),
                path.display()
            )));
        }
        Err(fs4::TryLockError::Error(e)) => {
            return Err(CliError::io(
                format!("locking the ledger lock file {}", path.display()),
                e,
            ));
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    if let Err(e) = written {
        return Err(CliError::io(
            format!("writing the pid to {}", path.display()),
            e,
        ));
    }
    Ok(LedgerLock { _file: file })
}

/// Opens the daemon's ledger as `ledger.on_corrupt` says: an unusable file is moved
/// aside (and the routers' lists learned back at reconcile), or the start fails.
pub(crate) fn open_ledger(
    config: &Config,
    now: std::time::SystemTime,
) -> Result<BanLedger, CliError> {
    let path = &config.ledger.path;
    match config.ledger.on_corrupt {
        OnCorrupt::Stop => BanLedger::open_checked(path).map_err(|e| {
            CliError::config(
                "configuration",
                "ledger.on_corrupt",
                format!(
                    "{e} (`stop` is set: mtids does not start; move the file away or set `recover`)"
                ),
            )
        }),
        OnCorrupt::Recover => Ok(BanLedger::open_or_recover(path, now)?.0),
    }
}

/// What the detection task keeps between two looks at the ledger.
pub(crate) struct LedgerSync {
    /// The last ban event seen.
    cursor: i64,
    /// Whether the current outage was alerted (one alert per outage, not per ban).
    alerted: bool,
}

impl LedgerSync {
    /// Starts after every event already in the ledger (`restore_bans` read those).
    pub(crate) fn new(shared: &Shared) -> LedgerSync {
        let cursor = shared
            .with_ledger("reading the last ban event", |l| l.last_event())
            .unwrap_or(0);
        LedgerSync {
            cursor,
            alerted: false,
        }
    }

    /// One look: replay, alarm, and changes made by others.
    ///
    /// Changes by `mtids bans` are polled from the ledger's `ban_events` (rows another
    /// connection wrote), not pushed over a socket: this works whether or not the daemon
    /// runs when the command does, needs no new listener, and the ledger is where both
    /// already write.
    pub(crate) fn tick(
        &mut self,
        shared: &Arc<Shared>,
        engine: &mut DetectionEngine,
        fleet: &Fleet,
    ) {
        let cursor = self.cursor;
        let Some((health, changes)) = shared.with_ledger("looking for changes", |l| {
            if l.health().backlog > 0 {
                // Its own failure is in the health below.
                let _ = l.flush_backlog();
            }
            let changes = l.changes_by_others(cursor)?;
            Ok((l.health(), changes))
        }) else {
            return;
        };
        shared.metrics.set_ledger_errors(health.errors_total);
        match (health.failing_since, self.alerted) {
            (Some(since), false) => {
                self.alerted = true;
                let error = health.last_error.clone().unwrap_or_default();
                tracing::error!(%error, kept = health.backlog, "ban ledger cannot be written: bans still go to the routers, the ledger catches up when it can");
                shared.alerts.submit(
                    Alert::new(
                        Threat::Other("ban ledger unwritable".to_owned()),
                        shared.config.ledger.path.display().to_string(),
                        Action::Suppressed {
                            reason: "ledger writes kept in memory; bans still reach the routers"
                                .to_owned(),
                        },
                        error,
                        since,
                    )
                    .with_severity(Severity::High),
                );
            }
            (None, true) => {
                self.alerted = false;
                tracing::warn!("ban ledger writable again");
            }
            _ => {}
        }
        let (bans, last) = changes;
        self.cursor = last;
        let now_sys = shared.now();
        let now = timestamp(now_sys);
        let mut pushed = std::collections::BTreeSet::new();
        for ban in bans {
            let Ok(target) = ban.target.parse::<IpPrefix>() else {
                continue;
            };
            let policy = engine.policy_mut();
            if ban.state.is_active() && ban.remaining(now_sys) != Some(Duration::ZERO) {
                let until = ban
                    .expires
                    .map_or(Timestamp::from_millis(u64::MAX), timestamp);
                policy.restore_ban(now, target, until, 1);
                tracing::info!(address = %ban.target, router = %ban.router, "ban made outside the daemon learned from the ledger");
                // One push per target (the ledger has a row per router).
                if let Some(left) = ban.remaining(now_sys)
                    && pushed.insert(target)
                {
                    super::crowdsec::push_manual(shared, target, left, &ban.detector, &ban.reason);
                }
                if ban.state == BanState::Pending {
                    // Not on the router yet (`--ledger-only`, or the command could not
                    // reach it): the daemon puts it there.
                    send_manual(shared, fleet, &ban, target, now_sys);
                }
            } else if ban.state == BanState::Removed {
                policy.lift_ban(&target);
                tracing::info!(address = %ban.target, "ban lifted outside the daemon: the next attack is banned again");
            }
        }
    }
}

fn send_manual(
    shared: &Shared,
    fleet: &Fleet,
    ban: &mtids_enforce::BanRecord,
    target: IpPrefix,
    now: std::time::SystemTime,
) {
    if shared.dry_run() {
        return;
    }
    let order = BanOrder::new(mtids_enforce::Ban::new(
        target,
        ban.remaining(now),
        ban.detector.clone(),
        ban.reason.clone(),
    ));
    // Recording it again finds the pending row and extends it (same expiry): the engine
    // then applies it like any other ban, whenever the router is connected.
    if let Err(e) = fleet.order(&Scope::Router(ban.router.clone()), &order) {
        tracing::warn!(address = %ban.target, router = %ban.router, error = %e, "a ban made outside the daemon could not be ordered");
    }
}
