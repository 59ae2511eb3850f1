//! The ban ledger: a durable record of every ban, in an SQLite file.
//!
//! Address-list entries with a timeout are dynamic on RouterOS: a router reboot erases
//! them, and a daemon restart forgets what it had added. The ledger is the source of
//! truth that survives both: each decision is recorded before it is sent to a router, its
//! state follows what the router answered, and after a restart or a reboot the active
//! bans are re-applied with their remaining time.
//!
//! Durability: the file uses SQLite's write-ahead log with `synchronous=NORMAL`. Every
//! change is one transaction, so a crash of the daemon at any point leaves either the
//! whole change or none of it. A power cut may lose the last few commits but never
//! corrupts the file; a lost ban is re-detected the next time the source attacks.
//!
//! The ledger never stands between a decision and the router: when the file cannot be
//! written (locked by another process past the busy timeout, read-only, corrupt, disk
//! full), a write is kept in a bounded in-memory backlog, a ban gets a provisional
//! (negative) id, and the backlog is replayed in order, in one transaction, at the next
//! write after [`RETRY_EVERY`] or at [`BanLedger::flush_backlog`].
//! [`BanLedger::health`] tells the caller, which raises the alarm.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

/// Errors from the ban ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database file could not be opened or created.
    #[error(
        "cannot open the ban ledger at {path}: {source} (check the directory exists and is writable)"
    )]
    Open {
        /// The file that was being opened.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer mtids whose schema this version does not know.
    #[error(
        "the ban ledger has schema version {found}, newer than the {supported} this mtids knows: upgrade mtids or point it at another ledger file"
    )]
    NewerSchema {
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// Upgrading the schema failed; the file is left as it was.
    #[error("cannot upgrade the ban ledger to schema version {version}: {source}")]
    Migrate {
        /// The schema version that failed to apply.
        version: i64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A row holds a value this version cannot read (edited by hand, or corrupted).
    #[error("the ban ledger holds an unreadable {what}: {value:?}")]
    Corrupt {
        /// Which column or value.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// The file is there but cannot serve as the ledger: zero length, corrupt, or
    /// unwritable. [`BanLedger::open_or_recover`] moves such a file aside.
    #[error("the ban ledger at {path} cannot be used: {reason}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No ban has this id.
    #[error("no ban with id {0} in the ledger")]
    NoSuchBan(BanId),
    /// Any other database error.
    #[error("ban ledger database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The ledger's id of one ban decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BanId(pub i64);

impl BanId {
    /// Whether this is a provisional id, handed out while the file could not be written
    /// (negative; [`BanLedger::resolve`] gives the real one once it is recorded).
    pub fn is_provisional(self) -> bool {
        self.0 < 0
    }
}

impl std::fmt::Display for BanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a ban stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BanState {
    /// Decided and recorded, not yet confirmed by the router.
    Pending,
    /// The router confirmed the address-list entry.
    Applied,
    /// The router refused it, or it could not be sent; the reason is kept.
    Failed,
    /// Its time ran out.
    Expired,
    /// Removed before its time (unblocked by an operator).
    Removed,
}

impl BanState {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            BanState::Pending => "pending",
            BanState::Applied => "applied",
            BanState::Failed => "failed",
            BanState::Expired => "expired",
            BanState::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Result<Self, LedgerError> {
        Ok(match s {
            "pending" => BanState::Pending,
            "applied" => BanState::Applied,
            "failed" => BanState::Failed,
            "expired" => BanState::Expired,
            "removed" => BanState::Removed,
            other => {
                return Err(LedgerError::Corrupt {
                    what: "ban state",
                    value: other.to_owned(),
                });
            }
        })
    }

    /// Whether the ban is meant to be on the router now.
    pub fn is_active(self) -> bool {
        matches!(self, BanState::Pending | BanState::Applied)
    }
}

impl std::fmt::Display for BanState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ban decision to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBan<'a> {
    /// The router's name in the configuration.
    pub router: &'a str,
    /// The address list on that router.
    pub list: &'a str,
    /// The address or prefix banned, in canonical text form (`198.51.100.7`, `2001:db8::/64`).
    pub target: &'a str,
    /// Why, in a few words (becomes part of the address-list comment).
    pub reason: &'a str,
    /// The detector that decided it.
    pub detector: &'a str,
    /// When it was decided.
    pub created: SystemTime,
    /// How long it lasts; `None` for a permanent ban.
    pub duration: Option<Duration>,
}

/// What [`BanLedger::record`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new ban was recorded, in state [`BanState::Pending`].
    New(BanId),
    /// The target was already banned on that router and list; that ban now lasts at least
    /// until the new decision's end (a ban is never shortened), and carries its reason.
    Extended(BanId),
}

impl Recorded {
    /// The id of the ban, new or extended.
    pub fn id(self) -> BanId {
        match self {
            Recorded::New(id) | Recorded::Extended(id) => id,
        }
    }
}

/// One ban as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    /// The ledger's id.
    pub id: BanId,
    /// The router's name.
    pub router: String,
    /// The address list.
    pub list: String,
    /// The address or prefix banned.
    pub target: String,
    /// Why.
    pub reason: String,
    /// Which detector decided it.
    pub detector: String,
    /// When it was decided.
    pub created: SystemTime,
    /// When it ends; `None` for a permanent ban.
    pub expires: Option<SystemTime>,
    /// Where it stands.
    pub state: BanState,
    /// The router's `.id` of the address-list entry, once applied.
    pub router_item: Option<String>,
    /// The last error, for a failed ban.
    pub last_error: Option<String>,
    /// When the state last changed.
    pub updated: SystemTime,
}

impl BanRecord {
    /// Time left at `now`: `None` for a permanent ban, zero once it has run out.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.expires
            .map(|end| end.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// Where a router's log was read up to (saved in the ledger so that a restarted daemon
/// reads what the router logged while it was down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// The numeric part of the last log line's `.id` (`*1A` is 26).
    pub last_id: u64,
    /// That line's own time, if it could be read.
    pub last_time: Option<SystemTime>,
    /// When the router booted (its clock time minus its uptime): a later boot means it
    /// rebooted since, and its log ids started again from `*1`.
    pub boot: Option<SystemTime>,
}

/// One change of a ban's state, for an address's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanEvent {
    /// The ban it belongs to.
    pub ban: BanId,
    /// When it happened.
    pub at: SystemTime,
    /// The state entered (or kept, for an extension).
    pub state: BanState,
    /// What happened, in a few words.
    pub detail: String,
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: bans and their state changes.
    "CREATE TABLE bans (
        id          INTEGER PRIMARY KEY,
        router      TEXT NOT NULL,
        list        TEXT NOT NULL,
        target      TEXT NOT NULL,
        reason      TEXT NOT NULL,
        detector    TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        expires_ms  INTEGER,
        state       TEXT NOT NULL,
        router_item TEXT,
        last_error  TEXT,
        updated_ms  INTEGER NOT NULL
    );
    -- At most one active ban per router, list and target: a repeat decision extends it.
    CREATE UNIQUE INDEX bans_one_active ON bans (router, list, target)
        WHERE state IN ('pending', 'applied');
    CREATE INDEX bans_by_target ON bans (target, created_ms);
    CREATE INDEX bans_by_state ON bans (state, router);
    CREATE TABLE ban_events (
        ban_id  INTEGER NOT NULL REFERENCES bans (id),
        at_ms   INTEGER NOT NULL,
        state   TEXT NOT NULL,
        detail  TEXT NOT NULL
    );
    CREATE INDEX ban_events_by_ban ON ban_events (ban_id, at_ms);",
    // 2: who wrote each event (a daemon learns of `mtids bans` changes it did not make),
    // and where each router's log was read up to.
    "ALTER TABLE ban_events ADD COLUMN writer INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE log_positions (
        router       TEXT PRIMARY KEY,
        last_id      INTEGER NOT NULL,
        last_time_ms INTEGER,
        boot_ms      INTEGER,
        updated_ms   INTEGER NOT NULL
    );",
    // 3: the evidence of the finding behind a ban (JSON, bounded), for `mtids bans show`.
    "CREATE TABLE ban_evidence (
        ban_id   INTEGER PRIMARY KEY REFERENCES bans (id),
        evidence TEXT NOT NULL
    );",
];

/// The longest evidence text kept per ban, in bytes.
pub const MAX_EVIDENCE_LEN: usize = 16 * 1024;

const SELECT_BAN: &str = "SELECT id, router, list, target, reason, detector, created_ms, expires_ms, \
     state, router_item, last_error, updated_ms FROM bans";

/// The durable record of bans: one SQLite file, shared by every router of a daemon.
///
/// All methods are synchronous and take `now` (or a decision's time) as an argument;
/// each write is one transaction of well under a millisecond, so async callers can call
/// them from a blocking task or under a mutex.
#[derive(Debug)]
pub struct BanLedger {
    conn: Connection,
    /// Tags this connection's events, so that [`changes_by_others`](Self::changes_by_others)
    /// can tell them from another process's.
    writer: i64,
    busy_timeout: Duration,
    backlog: Backlog,
}

/// How often a write retries a ledger that failed (besides [`BanLedger::flush_backlog`]).
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How many writes the in-memory backlog keeps while the file cannot be written; later
/// ones are dropped (counted in [`LedgerHealth::dropped`]) so memory stays bounded.
pub const MAX_BACKLOG: usize = 100_000;

/// The busy timeout while the ledger is failing: short, so a caller holding the ledger's
/// mutex is not stalled for the full timeout on every retry.
const OUTAGE_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// How the ledger's writes fare, for logs, metrics and alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LedgerHealth {
    /// Writes that failed since the ledger was opened (each retry that fails counts).
    pub errors_total: u64,
    /// Writes kept in memory, waiting for the file to take them.
    pub backlog: usize,
    /// Writes dropped because the backlog was full.
    pub dropped: u64,
    /// Since when the file cannot be written, if it cannot now.
    pub failing_since: Option<SystemTime>,
    /// The last write error.
    pub last_error: Option<String>,
}

/// Writes waiting for the file (see the module's documentation).
#[derive(Debug, Default)]
struct Backlog {
    writes: VecDeque<Write>,
    /// The last provisional id handed out (they count down from -1).
    last_provisional: i64,
    /// Provisional ids of replayed bans and their real ones.
    resolved: HashMap<i64, i64>,
    errors_total: u64,
    dropped: u64,
    failing_since: Option<SystemTime>,
    last_error: Option<String>,
    last_attempt: Option<Instant>,
}

/// One write kept in the backlog.
#[derive(Debug)]
enum Write {
    Record {
        provisional: i64,
        ban: OwnedBan,
    },
    Applied {
        id: i64,
        item: Option<String>,
        at: i64,
    },
    Failed {
        id: i64,
        error: String,
        at: i64,
    },
    Removed {
        id: i64,
        why: String,
        at: i64,
    },
}

/// A [`NewBan`] kept past its borrow.
#[derive(Debug)]
struct OwnedBan {
    router: String,
    list: String,
    target: String,
    reason: String,
    detector: String,
    created: SystemTime,
    duration: Option<Duration>,
}

impl OwnedBan {
    fn from(ban: &NewBan<'_>) -> Self {
        OwnedBan {
            router: ban.router.to_owned(),
            list: ban.list.to_owned(),
            target: ban.target.to_owned(),
            reason: ban.reason.to_owned(),
            detector: ban.detector.to_owned(),
            created: ban.created,
            duration: ban.duration,
        }
    }

    fn as_new(&self) -> NewBan<'_> {
        NewBan {
            router: &self.router,
            list: &self.list,
            target: &self.target,
            reason: &self.reason,
            detector: &self.detector,
            created: self.created,
            duration: self.duration,
        }
    }
}

/// Whether an error means the file cannot take writes now (the write is worth keeping
/// for later), rather than that this write is wrong.
fn is_storage_error(e: &LedgerError) -> bool {
    let LedgerError::Sql(rusqlite::Error::SqliteFailure(failure, _)) = e else {
        return false;
    };
    matches!(
        failure.code,
        ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::ReadOnly
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory
            | ErrorCode::PermissionDenied
    )
}

/// A ledger connection's writer tag: different for every open, in and across processes.
fn new_writer_tag() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static OPENED: AtomicI64 = AtomicI64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::from(d.subsec_nanos()));
    let pid = i64::from(std::process::id());
    // Never 0: that is the tag of events written before schema 2.
    (pid << 32 | (nanos & 0xffff_ff00) | (OPENED.fetch_add(1, Ordering::Relaxed) & 0xff)).max(1)
}

impl BanLedger {
    /// Opens the ledger at `path`, creating the file and its schema when missing and
    /// upgrading an older schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(|source| LedgerError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::setup(conn).map_err(|e| match e {
            LedgerError::Sql(source) => LedgerError::Open {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Opens the ledger at `path` as [`open`](Self::open) does, and refuses a file that
    /// cannot serve: an existing zero-length file (SQLite would take it as a new, empty
    /// ledger, but mtids never leaves one: it was truncated), a file that fails SQLite's
    /// `quick_check`, or one that cannot be written.
    pub fn open_checked(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref();
        let unusable = |reason: String| LedgerError::Unusable {
            path: path.to_owned(),
            reason,
        };
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(unusable("the file is empty (zero length)".to_owned()));
        }
        let ledger = Self::open(path).map_err(|e| match e {
            LedgerError::Open { source, .. } | LedgerError::Migrate { source, .. } => {
                unusable(source.to_string())
            }
            other => other,
        })?;
        let check: String = ledger
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| unusable(format!("integrity check failed: {e}")))?;
        if check != "ok" {
            return Err(unusable(format!("corrupt: {check}")));
        }
        // A write that changes nothing, to learn now whether writes work at all.
        let version: i64 = ledger
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        ledger
            .conn
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; PRAGMA user_version = {version}; COMMIT;"
            ))
            .map_err(|e| {
                let _ = ledger.conn.execute_batch("ROLLBACK");
                unusable(format!("cannot be written: {e}"))
            })?;
        Ok(ledger)
    }

    /// Opens the ledger at `path`; when the file is unusable ([`open_checked`](Self::open_checked)),
    /// moves it (and its `-wal` and `-shm` files) aside as `<path>.corrupt-<UTC time>`,
    /// e.g. `mtids-bans.db.corrupt-20261207T012233Z`, and starts a new ledger. Returns
    /// where the old file went, if it was moved. The routers' lists keep the bans: a
    /// reconcile records them back ([`ReconcileReport::adopted`](crate::ReconcileReport::adopted)).
    ///
    /// # Errors
    /// The file could not be moved aside, or the new ledger could not be created.
    pub fn open_or_recover(
        path: impl AsRef<Path>,
        now: SystemTime,
    ) -> Result<(Self, Option<PathBuf>), LedgerError> {
        let path = path.as_ref();
        let reason = match Self::open_checked(path) {
            Ok(ledger) => return Ok((ledger, None)),
            Err(LedgerError::Unusable { reason, .. }) => reason,
            Err(e) => return Err(e),
        };
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".corrupt-{}", compact_utc(now)));
        let aside = PathBuf::from(aside);
        let move_aside = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|e| LedgerError::Unusable {
                path: path.to_owned(),
                reason: format!("{reason}; moving it aside to {} failed: {e}", to.display()),
            })
        };
        move_aside(path, &aside)?;
        for side in ["-wal", "-shm"] {
            let mut from = path.as_os_str().to_owned();
            from.push(side);
            let mut to = aside.as_os_str().to_owned();
            to.push(side);
            if Path::new(&from).exists() {
                move_aside(Path::new(&from), Path::new(&to))?;
            }
        }
        tracing::error!(
            path = %path.display(),
            moved_to = %aside.display(),
            %reason,
            "the ban ledger was unusable: moved aside, starting a new one (the routers' lists are learned back at reconcile)"
        );
        let ledger = Self::open_checked(path)?;
        Ok((ledger, Some(aside)))
    }

    fn setup(mut conn: Connection) -> Result<Self, LedgerError> {
        // WAL: readers (the CLI's `bans list`) never block the daemon's writes, and a
        // crash mid-write rolls back cleanly. NORMAL sync is crash-safe in WAL mode.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(BanLedger {
            conn,
            writer: new_writer_tag(),
            busy_timeout: Duration::from_secs(5),
            backlog: Backlog::default(),
        })
    }

    /// How long a write waits for another process's lock before it counts as failed
    /// (and is kept in the backlog): 5 s unless changed.
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> Result<(), LedgerError> {
        self.busy_timeout = timeout;
        let effective = if self.backlog.failing_since.is_some() {
            timeout.min(OUTAGE_BUSY_TIMEOUT)
        } else {
            timeout
        };
        self.conn.busy_timeout(effective)?;
        Ok(())
    }

    /// How the writes fare: failures so far, writes waiting in memory.
    pub fn health(&self) -> LedgerHealth {
        LedgerHealth {
            errors_total: self.backlog.errors_total,
            backlog: self.backlog.writes.len(),
            dropped: self.backlog.dropped,
            failing_since: self.backlog.failing_since,
            last_error: self.backlog.last_error.clone(),
        }
    }

    /// Tries to write the backlog now (call it periodically while
    /// [`health`](Self::health) shows one). Returns how many writes were replayed.
    pub fn flush_backlog(&mut self) -> Result<usize, LedgerError> {
        if self.backlog.writes.is_empty() {
            return Ok(0);
        }
        let n = self.backlog.writes.len();
        self.replay()?;
        Ok(n)
    }

    /// The real id of a ban recorded with a provisional id, once the backlog reached
    /// the file (the id itself for a real one).
    pub fn resolve(&self, id: BanId) -> Option<BanId> {
        if id.is_provisional() {
            self.backlog.resolved.get(&id.0).copied().map(BanId)
        } else {
            Some(id)
        }
    }

    /// Runs `write` in one `BEGIN IMMEDIATE` transaction (so the busy timeout applies
    /// to taking the write lock; a deferred one that reads first gets `SQLITE_BUSY` at
    /// once in WAL mode). While the file fails, or when it fails now, `keep` puts the
    /// write in the backlog instead and says what to answer.
    fn write<T>(
        &mut self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, LedgerError>,
        keep: impl FnOnce(&mut Backlog) -> T,
        at: SystemTime,
    ) -> Result<T, LedgerError> {
        if !self.backlog.writes.is_empty() {
            let due = self
                .backlog
                .last_attempt
                .is_none_or(|t| t.elapsed() >= RETRY_EVERY);
            if !due || self.replay().is_err() {
                return Ok(self.keep(keep, at));
            }
        }
        match self.in_transaction(write) {
            Ok(v) => Ok(v),
            Err(e) if is_storage_error(&e) => {
                self.failed(&e, at);
                Ok(self.keep(keep, at))
            }
            Err(e) => Err(e),
        }
    }

    fn in_transaction<T>(
        &mut self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = write(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    fn keep<T>(&mut self, keep: impl FnOnce(&mut Backlog) -> T, at: SystemTime) -> T {
        self.backlog.failing_since.get_or_insert(at);
        let before = self.backlog.writes.len();
        let answer = keep(&mut self.backlog);
        let backlog = &mut self.backlog;
        if backlog.writes.len() > MAX_BACKLOG {
            let extra = backlog.writes.len() - MAX_BACKLOG.max(before);
            backlog.writes.truncate(MAX_BACKLOG.max(before));
            backlog.dropped += extra as u64;
            tracing::error!(
                dropped = backlog.dropped,
                "ban ledger: the in-memory backlog is full ({MAX_BACKLOG} writes): a write was dropped (the bans still reach the routers)"
            );
        }
        answer
    }

    fn failed(&mut self, e: &LedgerError, at: SystemTime) {
        let backlog = &mut self.backlog;
        backlog.errors_total += 1;
        backlog.last_error = Some(e.to_string());
        backlog.last_attempt = Some(Instant::now());
        if backlog.failing_since.is_none() {
            backlog.failing_since = Some(at);
            let _ = self
                .conn
                .busy_timeout(self.busy_timeout.min(OUTAGE_BUSY_TIMEOUT));
        }
        tracing::error!(
            error = %e,
            backlog = self.backlog.writes.len() + 1,
            "ban ledger write failed: kept in memory and retried; bans still go to the routers"
        );
    }

    /// Writes the backlog in order in one transaction. A write that is wrong in itself
    /// (its ban vanished) is dropped with an error; a storage error keeps them all.
    fn replay(&mut self) -> Result<(), LedgerError> {
        self.backlog.last_attempt = Some(Instant::now());
        let writer = self.writer;
        let writes = &self.backlog.writes;
        let resolved = &self.backlog.resolved;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut new_ids: HashMap<i64, i64> = HashMap::new();
            for w in writes {
                let id_of = |id: i64| {
                    if id < 0 {
                        new_ids.get(&id).or_else(|| resolved.get(&id)).copied()
                    } else {
                        Some(id)
                    }
                };
                let outcome = match w {
                    Write::Record { provisional, ban } => record_in(&tx, &ban.as_new(), writer)
                        .map(|r| {
                            new_ids.insert(*provisional, r.id().0);
                        }),
                    Write::Applied { id, item, at } => match id_of(*id) {
                        Some(id) => applied_in(&tx, id, item.as_deref(), *at, writer),
                        None => Err(LedgerError::NoSuchBan(BanId(*id))),
                    },
                    Write::Failed { id, error, at } => match id_of(*id) {
                        Some(id) => failed_in(&tx, id, error, *at, writer),
                        None => Err(LedgerError::NoSuchBan(BanId(*id))),
                    },
                    Write::Removed { id, why, at } => match id_of(*id) {
                        Some(id) => removed_in(&tx, id, why, *at, writer),
                        None => Err(LedgerError::NoSuchBan(BanId(*id))),
                    },
                };
                match outcome {
                    Ok(()) => {}
                    Err(e) if is_storage_error(&e) => return Err(e),
                    Err(e) => tracing::error!(error = %e, "ban ledger: a kept write was dropped"),
                }
            }
            tx.commit()?;
            Ok(new_ids)
        })();
        match result {
            Ok(new_ids) => {
                let replayed = self.backlog.writes.len();
                self.backlog.writes.clear();
                if self.backlog.resolved.len() > MAX_BACKLOG {
                    self.backlog.resolved.clear();
                }
                self.backlog.resolved.extend(new_ids);
                if let Some(since) = self.backlog.failing_since.take() {
                    let _ = self.conn.busy_timeout(self.busy_timeout);
                    tracing::warn!(
                        replayed,
                        failing_for_ms = to_ms(SystemTime::now()).saturating_sub(to_ms(since)),
                        "ban ledger writable again: the writes kept in memory are recorded"
                    );
                }
                self.backlog.last_error = None;
                Ok(())
            }
            Err(e) => {
                if is_storage_error(&e) {
                    let backlog = &mut self.backlog;
                    backlog.errors_total += 1;
                    backlog.last_error = Some(e.to_string());
                    tracing::error!(error = %e, backlog = backlog.writes.len(), "ban ledger still cannot be written");
                }
                Err(e)
            }
        }
    }

    /// The schema version this build writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Records a ban decision.
    ///
    /// If the target already has an active ban on that router and list, that ban is
    /// extended to the later of the two ends (never shortened; a permanent ban stays
    /// permanent) and takes the new reason, and no second ban is recorded. An active ban
    /// whose time has run out by `ban.created` is marked expired first.
    ///
    /// When the file cannot be written the decision is kept in memory and gets a
    /// provisional id ([`BanId::is_provisional`]); see [`health`](Self::health).
    pub fn record(&mut self, ban: &NewBan<'_>) -> Result<Recorded, LedgerError> {
        let mut all = self.record_all(std::slice::from_ref(ban))?;
        all.pop().ok_or(LedgerError::Corrupt {
            what: "record outcome",
            value: String::new(),
        })
    }

    /// Records many decisions in one transaction (all or none), as [`record`](Self::record)
    /// does one by one: a burst of decisions costs one disk sync, not one each.
    pub fn record_all(&mut self, bans: &[NewBan<'_>]) -> Result<Vec<Recorded>, LedgerError> {
        let writer = self.writer;
        let at = bans.first().map_or(UNIX_EPOCH, |b| b.created);
        self.write(
            |tx| bans.iter().map(|ban| record_in(tx, ban, writer)).collect(),
            |backlog| {
                bans.iter()
                    .map(|ban| {
                        backlog.last_provisional -= 1;
                        let provisional = backlog.last_provisional;
                        backlog.writes.push_back(Write::Record {
                            provisional,
                            ban: OwnedBan::from(ban),
                        });
                        Recorded::New(BanId(provisional))
                    })
                    .collect()
            },
            at,
        )
    }

    /// Marks a ban as applied on the router, with the router's `.id` of the entry.
    pub fn mark_applied(
        &mut self,
        id: BanId,
        router_item: Option<&str>,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        self.mark_applied_all(&[(id, router_item)], now)
    }

    /// Marks many bans as applied in one transaction (all or none).
    pub fn mark_applied_all(
        &mut self,
        applied: &[(BanId, Option<&str>)],
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let at = now;
        let now = to_ms(now);
        let writer = self.writer;
        let resolved: Vec<(BanId, Option<BanId>, Option<&str>)> = applied
            .iter()
            .map(|&(id, item)| (id, self.resolve(id), item))
            .collect();
        // A provisional id not replayed yet waits in the backlog with its record.
        let all_real = resolved.iter().all(|(_, real, _)| real.is_some());
        if !all_real && self.backlog.writes.is_empty() {
            if let Some((id, ..)) = resolved.iter().find(|(_, real, _)| real.is_none()) {
                return Err(LedgerError::NoSuchBan(*id));
            }
        }
        self.write(
            |tx| {
                for &(id, real, item) in &resolved {
                    let id = real.ok_or(LedgerError::NoSuchBan(id))?;
                    applied_in(tx, id.0, item, now, writer)?;
                }
                Ok(())
            },
            |backlog| {
                for &(id, _, item) in &resolved {
                    backlog.writes.push_back(Write::Applied {
                        id: id.0,
                        item: item.map(str::to_owned),
                        at: now,
                    });
                }
            },
            at,
        )
    }

    /// Marks a ban as failed, keeping the reason (shown by `mtids bans` and in alerts).
    pub fn mark_failed(
        &mut self,
        id: BanId,
        error: &str,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let writer = self.writer;
        let at = to_ms(now);
        let real = self.resolve(id);
        if real.is_none() && self.backlog.writes.is_empty() {
            return Err(LedgerError::NoSuchBan(id));
        }
        self.write(
            |tx| {
                failed_in(
                    tx,
                    real.ok_or(LedgerError::NoSuchBan(id))?.0,
                    error,
                    at,
                    writer,
                )
            },
            |backlog| {
                backlog.writes.push_back(Write::Failed {
                    id: id.0,
                    error: error.to_owned(),
                    at,
                });
            },
            now,
        )
    }

    /// Marks a ban as removed before its time (an operator unblocked the target).
    pub fn mark_removed(
        &mut self,
        id: BanId,
        why: &str,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let writer = self.writer;
        let at = to_ms(now);
        let real = self.resolve(id);
        if real.is_none() && self.backlog.writes.is_empty() {
            return Err(LedgerError::NoSuchBan(id));
        }
        self.write(
            |tx| {
                removed_in(
                    tx,
                    real.ok_or(LedgerError::NoSuchBan(id))?.0,
                    why,
                    at,
                    writer,
                )
            },
            |backlog| {
                backlog.writes.push_back(Write::Removed {
                    id: id.0,
                    why: why.to_owned(),
                    at,
                });
            },
            now,
        )
    }

    /// Marks every active ban whose time ran out by `now` as expired; returns how many.
    pub fn expire_due(&mut self, now: SystemTime) -> Result<usize, LedgerError> {
        let now = to_ms(now);
        let writer = self.writer;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let due: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM bans WHERE state IN ('pending', 'applied')
                   AND expires_ms IS NOT NULL AND expires_ms <= ?1",
            )?;
            stmt.query_map([now], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in &due {
            set_state(&tx, *id, now, BanState::Expired, "ran out", writer)?;
        }
        tx.commit()?;
        Ok(due.len())
    }

    /// The bans meant to be on the routers at `now` (pending or applied, time left),
    /// for one router or all, oldest first. These are what a reconnect or a router
    /// reboot re-applies, each with [`BanRecord::remaining`] as its timeout.
    pub fn active(
        &self,
        router: Option<&str>,
        now: SystemTime,
    ) -> Result<Vec<BanRecord>, LedgerError> {
        let sql = format!(
            "{SELECT_BAN} WHERE state IN ('pending', 'applied')
               AND (expires_ms IS NULL OR expires_ms > ?1)
               AND (?2 IS NULL OR router = ?2)
             ORDER BY created_ms, id"
        );
        self.query_bans(&sql, params![to_ms(now), router])
    }

    /// How many bans [`active`](Self::active) would return, counted by SQLite without
    /// reading them (for a gauge scraped every few seconds).
    pub fn count_active(&self, router: Option<&str>, now: SystemTime) -> Result<u64, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM bans WHERE state IN ('pending', 'applied')
               AND (expires_ms IS NULL OR expires_ms > ?1)
               AND (?2 IS NULL OR router = ?2)",
        )?;
        let n: i64 = stmt.query_row(params![to_ms(now), router], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many distinct addresses have an active ban on at least one router at `now`:
    /// one ban fanned out to 5,000 routers counts once.
    pub fn count_active_targets(&self, now: SystemTime) -> Result<u64, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(DISTINCT target) FROM bans WHERE state IN ('pending', 'applied')
               AND (expires_ms IS NULL OR expires_ms > ?1)",
        )?;
        let n: i64 = stmt.query_row(params![to_ms(now)], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// [`count_active`](Self::count_active) of every router that has active bans at
    /// `now`, in one query, by router name.
    pub fn count_active_by_router(
        &self,
        now: SystemTime,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT router, COUNT(*) FROM bans WHERE state IN ('pending', 'applied')
               AND (expires_ms IS NULL OR expires_ms > ?1)
             GROUP BY router ORDER BY router",
        )?;
        let rows = stmt.query_map(params![to_ms(now)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (router, n) = row?;
            out.push((router, u64::try_from(n).unwrap_or(0)));
        }
        Ok(out)
    }

    /// The active ban (pending or applied, time left at `now`) of `target` on that
    /// router and list, if any.
    pub fn find_active(
        &self,
        router: &str,
        list: &str,
        target: &str,
        now: SystemTime,
    ) -> Result<Option<BanRecord>, LedgerError> {
        let sql = format!(
            "{SELECT_BAN} WHERE router = ?1 AND list = ?2 AND target = ?3
               AND state IN ('pending', 'applied')
               AND (expires_ms IS NULL OR expires_ms > ?4)"
        );
        Ok(self
            .query_bans(&sql, params![router, list, target, to_ms(now)])?
            .pop())
    }

    /// Every ban ever recorded for `target`, oldest first.
    pub fn history(&self, target: &str) -> Result<Vec<BanRecord>, LedgerError> {
        let sql = format!("{SELECT_BAN} WHERE target = ?1 ORDER BY created_ms, id");
        self.query_bans(&sql, params![target])
    }

    /// The state changes of one ban, oldest first.
    pub fn events(&self, id: BanId) -> Result<Vec<BanEvent>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT ban_id, at_ms, state, detail FROM ban_events
             WHERE ban_id = ?1 ORDER BY at_ms, rowid",
        )?;
        let rows = stmt.query_map([id.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        rows.map(|row| {
            let (ban, at, state, detail) = row?;
            Ok(BanEvent {
                ban: BanId(ban),
                at: from_ms(at),
                state: BanState::parse(&state)?,
                detail,
            })
        })
        .collect()
    }

    /// How many bans `target` received since `since` (any router, any state but
    /// failed): the repeat-offence count for escalating ban times across restarts.
    pub fn offences_since(&self, target: &str, since: SystemTime) -> Result<u32, LedgerError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM bans WHERE target = ?1 AND created_ms >= ?2 AND state != 'failed'",
            params![target, to_ms(since)],
            |r| r.get(0),
        )?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The newest ban event's number: where [`changes_by_others`](Self::changes_by_others)
    /// starts for a reader that already knows every ban.
    pub fn last_event(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM ban_events", [], |r| {
                r.get(0)
            })?)
    }

    /// The bans another connection changed (another process: `mtids bans add` or
    /// `remove` beside a running daemon) in events after number `after`, each once, as
    /// they stand now; with the number of the last event read, to pass next time.
    pub fn changes_by_others(&self, after: i64) -> Result<(Vec<BanRecord>, i64), LedgerError> {
        let last = self.last_event()?;
        let sql = format!(
            "{SELECT_BAN} WHERE id IN (SELECT ban_id FROM ban_events
                                       WHERE rowid > ?1 AND rowid <= ?2 AND writer != ?3)
             ORDER BY id"
        );
        let bans = self.query_bans(&sql, params![after, last, self.writer])?;
        Ok((bans, last))
    }

    /// Where the log of `router` was read up to, if it was.
    pub fn log_position(&self, router: &str) -> Result<Option<LogPosition>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_id, last_time_ms, boot_ms FROM log_positions WHERE router = ?1",
                [router],
                |r| {
                    Ok(LogPosition {
                        last_id: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        last_time: r.get::<_, Option<i64>>(1)?.map(from_ms),
                        boot: r.get::<_, Option<i64>>(2)?.map(from_ms),
                    })
                },
            )
            .optional()?)
    }

    /// Records where the log of `router` was read up to. Not kept in the backlog when the
    /// file fails: a newer position comes with the next line.
    pub fn save_log_position(
        &mut self,
        router: &str,
        position: &LogPosition,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO log_positions (router, last_id, last_time_ms, boot_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (router) DO UPDATE SET last_id = ?2, last_time_ms = ?3,
                                                boot_ms = ?4, updated_ms = ?5",
            params![
                router,
                i64::try_from(position.last_id).unwrap_or(i64::MAX),
                position.last_time.map(to_ms),
                position.boot.map(to_ms),
                to_ms(now)
            ],
        )?;
        Ok(())
    }

    /// Keeps the evidence of ban `id` (JSON text from [`crate::Ban::evidence`]). Evidence
    /// longer than [`MAX_EVIDENCE_LEN`] is not kept; a ban the file could not record yet
    /// (a provisional id) gets none. Not kept in the backlog: evidence is an aid, the ban
    /// is what matters.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn set_evidence(&mut self, id: BanId, evidence: &str) -> Result<bool, LedgerError> {
        Ok(self.set_evidence_all(&[(id, evidence)])? == 1)
    }

    /// As [`set_evidence`](Self::set_evidence) for many bans, in one transaction (the
    /// fan-out of one ban to many routers); how many were kept.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn set_evidence_all(&mut self, items: &[(BanId, &str)]) -> Result<usize, LedgerError> {
        let items: Vec<(i64, &str)> = items
            .iter()
            .filter(|(_, evidence)| evidence.len() <= MAX_EVIDENCE_LEN)
            .filter_map(|&(id, evidence)| {
                let real = self.resolve(id).filter(|id| !id.is_provisional())?;
                Some((real.0, evidence))
            })
            .collect();
        if items.is_empty() {
            return Ok(0);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ban_evidence (ban_id, evidence) VALUES (?1, ?2)
                 ON CONFLICT (ban_id) DO UPDATE SET evidence = ?2",
            )?;
            for (id, evidence) in &items {
                insert.execute(params![id, evidence])?;
            }
        }
        tx.commit()?;
        Ok(items.len())
    }

    /// The evidence kept for ban `id`, if any.
    ///
    /// # Errors
    /// The file could not be read.
    pub fn evidence(&self, id: BanId) -> Result<Option<String>, LedgerError> {
        let Some(real) = self.resolve(id) else {
            return Ok(None);
        };
        Ok(self
            .conn
            .query_row(
                "SELECT evidence FROM ban_evidence WHERE ban_id = ?1",
                params![real.0],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// One ban by id.
    pub fn get(&self, id: BanId) -> Result<BanRecord, LedgerError> {
        let real = self.resolve(id).ok_or(LedgerError::NoSuchBan(id))?;
        let sql = format!("{SELECT_BAN} WHERE id = ?1");
        self.query_bans(&sql, params![real.0])?
            .pop()
            .ok_or(LedgerError::NoSuchBan(id))
    }

    fn query_bans(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<BanRecord>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, RawBan::from_row)?;
        rows.map(|raw| raw?.into_record()).collect()
    }
}

/// A row as SQLite returns it, before the state is parsed.
struct RawBan {
    id: i64,
    router: String,
    list: String,
    target: String,
    reason: String,
    detector: String,
    created_ms: i64,
    expires_ms: Option<i64>,
    state: String,
    router_item: Option<String>,
    last_error: Option<String>,
    updated_ms: i64,
}

impl RawBan {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawBan {
            id: r.get(0)?,
            router: r.get(1)?,
            list: r.get(2)?,
            target: r.get(3)?,
            reason: r.get(4)?,
            detector: r.get(5)?,
            created_ms: r.get(6)?,
            expires_ms: r.get(7)?,
            state: r.get(8)?,
            router_item: r.get(9)?,
            last_error: r.get(10)?,
            updated_ms: r.get(11)?,
        })
    }

    fn into_record(self) -> Result<BanRecord, LedgerError> {
        Ok(BanRecord {
            id: BanId(self.id),
            router: self.router,
            list: self.list,
            target: self.target,
            reason: self.reason,
            detector: self.detector,
            created: from_ms(self.created_ms),
            expires: self.expires_ms.map(from_ms),
            state: BanState::parse(&self.state)?,
            router_item: self.router_item,
            last_error: self.last_error,
            updated: from_ms(self.updated_ms),
        })
    }
}

fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = BanLedger::SCHEMA_VERSION;
    if found > supported {
        return Err(LedgerError::NewerSchema { found, supported });
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS.iter())
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .and_then(|()| tx.commit())
            .map_err(|source| LedgerError::Migrate { version, source })?;
    }
    Ok(())
}

fn record_in(
    tx: &rusqlite::Transaction<'_>,
    ban: &NewBan<'_>,
    writer: i64,
) -> Result<Recorded, LedgerError> {
    let now = to_ms(ban.created);
    let expires = ban.duration.map(|d| now.saturating_add(duration_ms(d)));
    let existing: Option<(i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT id, expires_ms FROM bans
             WHERE router = ?1 AND list = ?2 AND target = ?3
               AND state IN ('pending', 'applied')",
        )?
        .query_row(params![ban.router, ban.list, ban.target], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((id, old_expires)) = existing {
        if old_expires.is_none_or(|end| end > now) {
            let new_expires = match (old_expires, expires) {
                (None, _) | (_, None) => None,
                (Some(a), Some(b)) => Some(a.max(b)),
            };
            tx.execute(
                "UPDATE bans SET expires_ms = ?2, reason = ?3, detector = ?4, updated_ms = ?5
                 WHERE id = ?1",
                params![id, new_expires, ban.reason, ban.detector, now],
            )?;
            let state: String =
                tx.query_row("SELECT state FROM bans WHERE id = ?1", [id], |r| r.get(0))?;
            add_event(tx, id, now, &state, "extended by a new decision", writer)?;
            return Ok(Recorded::Extended(BanId(id)));
        }
        // It ran out but was not swept yet.
        set_state(tx, id, now, BanState::Expired, "ran out", writer)?;
    }
    tx.prepare_cached(
        "INSERT INTO bans (router, list, target, reason, detector, created_ms,
                           expires_ms, state, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?6)",
    )?
    .execute(params![
        ban.router,
        ban.list,
        ban.target,
        ban.reason,
        ban.detector,
        now,
        expires
    ])?;
    let id = tx.last_insert_rowid();
    add_event(tx, id, now, "pending", "decided", writer)?;
    Ok(Recorded::New(BanId(id)))
}

fn set_state(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    now: i64,
    state: BanState,
    detail: &str,
    writer: i64,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE bans SET state = ?2, updated_ms = ?3 WHERE id = ?1",
        params![id, state.as_str(), now],
    )?;
    add_event(tx, id, now, state.as_str(), detail, writer)
}

fn applied_in(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    router_item: Option<&str>,
    now: i64,
    writer: i64,
) -> Result<(), LedgerError> {
    let n = tx.execute(
        "UPDATE bans SET state = 'applied', router_item = ?2, last_error = NULL,
                         updated_ms = ?3
         WHERE id = ?1",
        params![id, router_item, now],
    )?;
    if n == 0 {
        return Err(LedgerError::NoSuchBan(BanId(id)));
    }
    add_event(tx, id, now, "applied", router_item.unwrap_or(""), writer)
}

fn failed_in(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    error: &str,
    now: i64,
    writer: i64,
) -> Result<(), LedgerError> {
    let n = tx.execute(
        "UPDATE bans SET state = 'failed', last_error = ?2, updated_ms = ?3 WHERE id = ?1",
        params![id, error, now],
    )?;
    if n == 0 {
        return Err(LedgerError::NoSuchBan(BanId(id)));
    }
    add_event(tx, id, now, "failed", error, writer)
}

fn removed_in(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    why: &str,
    now: i64,
    writer: i64,
) -> Result<(), LedgerError> {
    if tx
        .query_row("SELECT 1 FROM bans WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_none()
    {
        return Err(LedgerError::NoSuchBan(BanId(id)));
    }
    set_state(tx, id, now, BanState::Removed, why, writer)
}

fn add_event(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    now: i64,
    state: &str,
    detail: &str,
    writer: i64,
) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "INSERT INTO ban_events (ban_id, at_ms, state, detail, writer)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, now, state, detail, writer])?;
    Ok(())
}

/// `t` as `20261207T012233Z` (UTC), for file names.
fn compact_utc(t: SystemTime) -> String {
    let ms = u64::try_from(to_ms(t)).unwrap_or(0);
    let date = mtids_detect::Date::of(mtids_detect::Timestamp::from_millis(ms));
    let secs = (ms / 1000) % 86_400;
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        date.year,
        date.month,
        date.day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Milliseconds since the UNIX epoch; times before it (a broken clock) count as the epoch.
fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(duration_ms).unwrap_or(0)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
