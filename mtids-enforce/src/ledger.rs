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

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, params};

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
];

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

    fn setup(mut conn: Connection) -> Result<Self, LedgerError> {
        // WAL: readers (the CLI's `bans list`) never block the daemon's writes, and a
        // crash mid-write rolls back cleanly. NORMAL sync is crash-safe in WAL mode.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(BanLedger { conn })
    }

    /// The schema version this build writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Records a ban decision.
    ///
    /// If the target already has an active ban on that router and list, that ban is
    /// extended to the later of the two ends (never shortened; a permanent ban stays
    /// permanent) and takes the new reason, and no second ban is recorded. An active ban
    /// whose time has run out by `ban.created` is marked expired first.
    pub fn record(&mut self, ban: &NewBan<'_>) -> Result<Recorded, LedgerError> {
        let tx = self.conn.transaction()?;
        let outcome = record_in(&tx, ban)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Records many decisions in one transaction (all or none), as [`record`](Self::record)
    /// does one by one: a burst of decisions costs one disk sync, not one each.
    pub fn record_all(&mut self, bans: &[NewBan<'_>]) -> Result<Vec<Recorded>, LedgerError> {
        let tx = self.conn.transaction()?;
        let outcomes = bans
            .iter()
            .map(|ban| record_in(&tx, ban))
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(outcomes)
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
        let now = to_ms(now);
        let tx = self.conn.transaction()?;
        for &(id, router_item) in applied {
            let n = tx.execute(
                "UPDATE bans SET state = 'applied', router_item = ?2, last_error = NULL,
                                 updated_ms = ?3
                 WHERE id = ?1",
                params![id.0, router_item, now],
            )?;
            if n == 0 {
                return Err(LedgerError::NoSuchBan(id));
            }
            add_event(&tx, id.0, now, "applied", router_item.unwrap_or(""))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks a ban as failed, keeping the reason (shown by `mtids bans` and in alerts).
    pub fn mark_failed(
        &mut self,
        id: BanId,
        error: &str,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE bans SET state = 'failed', last_error = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id.0, error, to_ms(now)],
        )?;
        if n == 0 {
            return Err(LedgerError::NoSuchBan(id));
        }
        add_event(&tx, id.0, to_ms(now), "failed", error)?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a ban as removed before its time (an operator unblocked the target).
    pub fn mark_removed(
        &mut self,
        id: BanId,
        why: &str,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        if tx
            .query_row("SELECT 1 FROM bans WHERE id = ?1", [id.0], |_| Ok(()))
            .optional()?
            .is_none()
        {
            return Err(LedgerError::NoSuchBan(id));
        }
        set_state(&tx, id.0, to_ms(now), BanState::Removed, why)?;
        tx.commit()?;
        Ok(())
    }

    /// Marks every active ban whose time ran out by `now` as expired; returns how many.
    pub fn expire_due(&mut self, now: SystemTime) -> Result<usize, LedgerError> {
        let now = to_ms(now);
        let tx = self.conn.transaction()?;
        let due: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM bans WHERE state IN ('pending', 'applied')
                   AND expires_ms IS NOT NULL AND expires_ms <= ?1",
            )?;
            stmt.query_map([now], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in &due {
            set_state(&tx, *id, now, BanState::Expired, "ran out")?;
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

    /// One ban by id.
    pub fn get(&self, id: BanId) -> Result<BanRecord, LedgerError> {
        let sql = format!("{SELECT_BAN} WHERE id = ?1");
        self.query_bans(&sql, params![id.0])?
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
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .and_then(|()| tx.commit())
            .map_err(|source| LedgerError::Migrate { version, source })?;
    }
    Ok(())
}

fn record_in(tx: &rusqlite::Transaction<'_>, ban: &NewBan<'_>) -> Result<Recorded, LedgerError> {
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
            add_event(tx, id, now, &state, "extended by a new decision")?;
            return Ok(Recorded::Extended(BanId(id)));
        }
        // It ran out but was not swept yet.
        set_state(tx, id, now, BanState::Expired, "ran out")?;
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
    add_event(tx, id, now, "pending", "decided")?;
    Ok(Recorded::New(BanId(id)))
}

fn set_state(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    now: i64,
    state: BanState,
    detail: &str,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE bans SET state = ?2, updated_ms = ?3 WHERE id = ?1",
        params![id, state.as_str(), now],
    )?;
    add_event(tx, id, now, state.as_str(), detail)
}

fn add_event(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    now: i64,
    state: &str,
    detail: &str,
) -> Result<(), LedgerError> {
    tx.prepare_cached(
        "INSERT INTO ban_events (ban_id, at_ms, state, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, now, state, detail])?;
    Ok(())
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
