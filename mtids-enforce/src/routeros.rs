//! [`RouterOsEnforcer`]: bans on a RouterOS router's address lists, through one API
//! connection, recorded in the [`BanLedger`].
//!
//! How it stays fast on a router with tens of thousands of entries (see ROUTEROS.md §2):
//! adds are optimistic (no `print` first: a duplicate answers a trap, which is handled),
//! every command of a batch is in flight at once on the one connection (tags), and the
//! list lives in a local cache rebuilt by one `print` in [`reconcile`](Enforcer::reconcile),
//! so an unblock never needs a `print` of its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mtids_detect::IpPrefix;
use routeros_proto::net::{Client, Error as NetError, Response};
use routeros_proto::{Command, Query, Reply};

use crate::ban::{format_timeout, menu_of, parse_routeros_duration, render_target};
use crate::{
    Ban, BanId, BanLedger, BanState, Blocked, EnforceError, Enforced, Enforcer, NewBan,
    ReconcileReport, Recorded,
};

/// Where time comes from: the system clock by default, a fake one in tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How much earlier than the ledger says a listed entry may end before reconcile
/// extends it (the router prints whole seconds; commands take time).
const EXTEND_SLACK: Duration = Duration::from_secs(60);

/// The list mtids uses unless configured otherwise.
pub const DEFAULT_LIST: &str = "mtids-blocked";

/// How a [`RouterOsEnforcer`] works on one router.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RouterOsConfig {
    /// The router's name (in the ledger, logs and errors).
    pub router: String,
    /// The address list IPv4 bans go on (the firewall drops what is on it).
    pub list: String,
    /// The address list IPv6 bans go on (`/ipv6/firewall/address-list`).
    pub list_v6: String,
    /// Whether a new ban may shorten an entry that is already listed for longer.
    /// Off by default: a repeat decision never shortens a ban.
    pub allow_shorten: bool,
    /// How long one add, set or remove may take.
    pub command_timeout: Duration,
    /// How long one `print` (of a whole list or the connection table) may take.
    pub print_timeout: Duration,
}

impl RouterOsConfig {
    /// Defaults for router `router`: list [`DEFAULT_LIST`] for both families, never
    /// shorten, 10 s per command, 120 s per print.
    pub fn new(router: impl Into<String>) -> Self {
        RouterOsConfig {
            router: router.into(),
            list: DEFAULT_LIST.to_owned(),
            list_v6: DEFAULT_LIST.to_owned(),
            allow_shorten: false,
            command_timeout: Duration::from_secs(10),
            print_timeout: Duration::from_secs(120),
        }
    }

    /// Uses address list `list` for both families; a later [`list_v6`](Self::list_v6)
    /// gives IPv6 a list of its own.
    #[must_use]
    pub fn list(mut self, list: impl Into<String>) -> Self {
        self.list = list.into();
        self.list_v6.clone_from(&self.list);
        self
    }

    /// Uses address list `list` for IPv6 bans only.
    #[must_use]
    pub fn list_v6(mut self, list: impl Into<String>) -> Self {
        self.list_v6 = list.into();
        self
    }

    /// The list a ban of `target` goes on: [`list`](Self::list) for IPv4,
    /// [`list_v6`](Self::list_v6) for IPv6.
    pub fn list_for(&self, target: &IpPrefix) -> &str {
        match target.addr() {
            IpAddr::V4(_) => &self.list,
            IpAddr::V6(_) => &self.list_v6,
        }
    }

    /// Lets a new, shorter ban shorten an entry already listed.
    #[must_use]
    pub fn allow_shorten(mut self, allow: bool) -> Self {
        self.allow_shorten = allow;
        self
    }
}

/// What the cache knows of one entry.
#[derive(Clone, Debug)]
struct CachedEntry {
    id: String,
    expires: Option<SystemTime>,
    /// Shared by every router the ban went to (one copy per ban, not per router).
    comment: Arc<str>,
}

/// Enforcement on one RouterOS router through a shared [`Client`].
///
/// Every ban is recorded in the ledger before it is sent and marked applied or failed
/// after; a ban whose command was lost with the connection stays pending and is
/// re-applied by the next [`reconcile`](Enforcer::reconcile). Call `reconcile` after
/// connecting: it fills the cache, learns the router's own addresses (never banned) and
/// re-applies what the ledger says is missing.
pub struct RouterOsEnforcer {
    client: Client,
    config: RouterOsConfig,
    ledger: Arc<Mutex<BanLedger>>,
    clock: Clock,
    cache: Mutex<HashMap<IpPrefix, CachedEntry>>,
    /// The cache size at which expired entries are next swept out.
    sweep_at: AtomicUsize,
    own: Mutex<Vec<IpAddr>>,
    last_uptime: Mutex<Option<Duration>>,
    /// Shared by every router of a fleet: address-list commands in flight at once,
    /// fleet-wide (see [`RouterOsEnforcer::with_send_limit`]).
    send_limit: Option<Arc<tokio::sync::Semaphore>>,
    /// Shared by every router of a fleet: writes "applied" for many routers' batches in
    /// one ledger transaction (see [`AppliedWriter`]).
    applied_writer: Option<AppliedWriter>,
}

/// The "applied" marks of many routers, written in one ledger transaction (group
/// commit): a ban on 5,000 routers is 5,000 answered batches, and one transaction each
/// was most of its fan-out (each behind the ledger's one lock). A router's batch is
/// reported only once its marks are written, as before; until then the ban is pending,
/// which a restart re-applies, so nothing is lost by waiting for the group.
#[derive(Clone, Debug)]
pub(crate) struct AppliedWriter {
    marks: tokio::sync::mpsc::UnboundedSender<AppliedMarks>,
}

#[derive(Debug)]
struct AppliedMarks {
    router: String,
    applied: Vec<(BanId, Option<String>)>,
    now: SystemTime,
    written: tokio::sync::oneshot::Sender<()>,
}

impl AppliedWriter {
    /// Starts the writer task (inside a tokio runtime); it ends with the last clone.
    pub(crate) fn start(ledger: Arc<Mutex<BanLedger>>) -> Self {
        let (marks, mut inbox) = tokio::sync::mpsc::unbounded_channel::<AppliedMarks>();
        tokio::spawn(async move {
            while let Some(first) = inbox.recv().await {
                let mut group = vec![first];
                while let Ok(more) = inbox.try_recv() {
                    group.push(more);
                }
                write_applied(&ledger, &group);
                for marks in group {
                    let _ = marks.written.send(());
                }
            }
        });
        AppliedWriter { marks }
    }
}

/// Writes a group's marks in one transaction; if that fails (one router's ban unknown),
/// each router's on its own, so one bad mark does not hold back the others.
fn write_applied(ledger: &Mutex<BanLedger>, group: &[AppliedMarks]) {
    let now = group
        .iter()
        .map(|m| m.now)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let all: Vec<(BanId, Option<&str>)> = group
        .iter()
        .flat_map(|m| m.applied.iter().map(|(id, item)| (*id, item.as_deref())))
        .collect();
    let mut ledger = lock(ledger);
    if group.len() == 1 || ledger.mark_applied_all(&all, now).is_err() {
        for marks in group {
            let applied: Vec<(BanId, Option<&str>)> = marks
                .applied
                .iter()
                .map(|(id, item)| (*id, item.as_deref()))
                .collect();
            if let Err(e) = ledger.mark_applied_all(&applied, marks.now) {
                tracing::error!(router = %marks.router, "ban ledger: {e}");
            }
        }
    }
}

impl std::fmt::Debug for RouterOsEnforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterOsEnforcer")
            .field("config", &self.config)
            .field("cached", &lock(&self.cache).len())
            .finish_non_exhaustive()
    }
}

/// Most address-list commands one router has in flight at once (see `send_all`).
pub(crate) const SEND_WINDOW: usize = 16;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data: go on with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How one command ended, classified for the ban it belongs to.
enum Trapped {
    Duplicate,
    NoSuchItem,
    Other(EnforceError),
}

impl RouterOsEnforcer {
    /// An enforcer on `client`'s connection, recording in `ledger` (shared by every
    /// router of a daemon). Run [`reconcile`](Enforcer::reconcile) before the first ban.
    pub fn new(client: Client, config: RouterOsConfig, ledger: Arc<Mutex<BanLedger>>) -> Self {
        RouterOsEnforcer {
            client,
            config,
            ledger,
            clock: Arc::new(SystemTime::now),
            cache: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(MIN_SWEEP),
            own: Mutex::new(Vec::new()),
            last_uptime: Mutex::new(None),
            send_limit: None,
            applied_writer: None,
        }
    }

    /// Writes the "applied" marks through `writer`, grouped with other routers'.
    #[must_use]
    pub(crate) fn with_applied_writer(mut self, writer: AppliedWriter) -> Self {
        self.applied_writer = Some(writer);
        self
    }

    /// Takes a permit of `limit` for each address-list command of a batch: one
    /// semaphore shared by every router of a fleet bounds the commands in flight
    /// fleet-wide. Each one holds a reply channel, its future and its route in the
    /// client (several KiB), so 5,000 routers with 16 commands each out at
    /// once would be a burst of hundreds of MiB, which the allocator then keeps.
    #[must_use]
    pub fn with_send_limit(mut self, limit: Arc<tokio::sync::Semaphore>) -> Self {
        self.send_limit = Some(limit);
        self
    }

    /// Forgets the cached entries whose timeout ran out (the router dropped them): the
    /// cache holds the bans in force, and what it held for bans that ended is freed.
    pub fn sweep_expired(&self) {
        let now = self.now();
        let mut cache = lock(&self.cache);
        let left = forget_expired(&mut cache, now);
        self.sweep_at
            .store((left * 2).max(MIN_SWEEP), Ordering::Relaxed);
    }

    /// Uses `clock` instead of the system clock (ban times, remaining times).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The router's uptime seen by an earlier connection, so that the first
    /// [`reconcile`](Enforcer::reconcile) of this one can tell a reboot.
    #[must_use]
    pub fn with_last_uptime(self, uptime: Option<Duration>) -> Self {
        *lock(&self.last_uptime) = uptime;
        self
    }

    /// The router's uptime as of the last reconcile.
    pub fn last_uptime(&self) -> Option<Duration> {
        *lock(&self.last_uptime)
    }

    /// The configuration.
    pub fn config(&self) -> &RouterOsConfig {
        &self.config
    }

    /// The client (shared with whoever else uses this connection).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    fn router(&self) -> String {
        self.config.router.clone()
    }

    /// Sorts a failed command into what the caller handles and what it reports.
    fn classify(&self, command: &str, error: NetError) -> Trapped {
        let router = self.router();
        match error {
            NetError::Trap { trap, .. } => {
                let message = trap.message;
                if message.contains("already have such entry") {
                    Trapped::Duplicate
                } else if message.contains("no such item") {
                    Trapped::NoSuchItem
                } else if message.contains("not enough permissions") {
                    let policy = if command.ends_with("/print") {
                        "read"
                    } else {
                        "write"
                    };
                    Trapped::Other(EnforceError::MissingPolicy {
                        router,
                        command: command.to_owned(),
                        policy,
                    })
                } else {
                    Trapped::Other(EnforceError::Refused {
                        router,
                        command: command.to_owned(),
                        message,
                    })
                }
            }
            NetError::MalformedReply { error, .. } => Trapped::Other(EnforceError::Refused {
                router,
                command: command.to_owned(),
                message: format!("unreadable reply: {error}"),
            }),
            source => Trapped::Other(EnforceError::Connection { router, source }),
        }
    }

    fn fail(&self, command: &str, error: NetError) -> EnforceError {
        match self.classify(command, error) {
            Trapped::Other(e) => e,
            Trapped::Duplicate => self.refused(command, "failure: already have such entry"),
            Trapped::NoSuchItem => self.refused(command, "no such item"),
        }
    }

    async fn call(&self, command: Command, timeout: Duration) -> Result<Response, NetError> {
        self.client.call_with_timeout(command, Some(timeout)).await
    }

    async fn print(&self, command: Command) -> Result<Vec<Reply>, EnforceError> {
        let path = String::from_utf8_lossy(command.path()).into_owned();
        self.call(command, self.config.print_timeout)
            .await
            .map(|r| r.rows)
            .map_err(|e| self.fail(&path, e))
    }

    /// Removes item `id` with `path` (a `.../remove` command). `Ok(false)` when it was
    /// gone already (`no such item`: expired, or removed by someone else), which is the
    /// outcome we wanted anyway.
    async fn remove_by_id(&self, path: &str, id: &str) -> Result<bool, EnforceError> {
        let remove = Command::new(path).id(id);
        match self.call(remove, self.config.command_timeout).await {
            Ok(_) => Ok(true),
            Err(e) => match self.classify(path, e) {
                Trapped::NoSuchItem | Trapped::Duplicate => Ok(false),
                Trapped::Other(e) => Err(e),
            },
        }
    }

    /// Refuses a target that covers one of the router's own addresses.
    fn check_own(&self, target: &IpPrefix) -> Result<(), EnforceError> {
        match lock(&self.own).iter().find(|ip| target.contains(**ip)) {
            Some(ip) => Err(EnforceError::OwnAddress {
                router: self.router(),
                target: *target,
                own: IpPrefix::host(*ip),
            }),
            None => Ok(()),
        }
    }

    /// The `add` command that puts `target` on the list, and its path for errors. The
    /// only place an address enters an add: rendered from a typed, masked `IpPrefix`.
    fn add_command(
        &self,
        target: &IpPrefix,
        duration: Option<Duration>,
        comment: &str,
    ) -> (String, Command) {
        let path = format!("{}/add", menu_of(target));
        let mut add = Command::new(&path)
            .attr("list", self.config.list_for(target))
            .attr("address", render_target(target))
            .attr("comment", comment);
        if let Some(d) = duration {
            add = add.attr("timeout", format_timeout(d));
        }
        (path, add)
    }

    /// Puts `target` on the list for `duration` with `comment`: an optimistic add, and on
    /// the duplicate trap an update of the entry already there.
    async fn apply(
        &self,
        target: IpPrefix,
        duration: Option<Duration>,
        comment: &Arc<str>,
    ) -> Result<Blocked, EnforceError> {
        let (path, add) = self.add_command(&target, duration, comment);
        match self.call(add, self.config.command_timeout).await {
            Ok(response) => {
                let id = response.ret_str().unwrap_or_default();
                self.remember(target, id.clone(), duration, comment);
                Ok(Blocked::Added { id })
            }
            Err(e) => match self.classify(&path, e) {
                // Boxed: the rare path would otherwise make every command's future (up
                // to a fleet's worth in flight) as large as its own.
                Trapped::Duplicate => Box::pin(self.update(target, duration, comment)).await,
                Trapped::NoSuchItem => Err(self.refused(&path, "no such item")),
                Trapped::Other(e) => Err(e),
            },
        }
    }

    fn refused(&self, command: &str, message: &str) -> EnforceError {
        EnforceError::Refused {
            router: self.router(),
            command: command.to_owned(),
            message: message.to_owned(),
        }
    }

    fn remember(
        &self,
        target: IpPrefix,
        id: String,
        duration: Option<Duration>,
        comment: &Arc<str>,
    ) {
        let now = self.now();
        let expires = duration.map(|d| now + d);
        let mut cache = lock(&self.cache);
        cache.insert(
            target,
            CachedEntry {
                id,
                expires,
                comment: Arc::clone(comment),
            },
        );
        let sweep_at = self.sweep_at.load(Ordering::Relaxed);
        if cache.len() >= sweep_at {
            let left = forget_expired(&mut cache, now);
            self.sweep_at
                .store((left * 2).max(MIN_SWEEP), Ordering::Relaxed);
        }
    }

    /// The target is listed already: make its entry last at least `duration` (never
    /// shorter unless configured) and carry `comment`.
    async fn update(
        &self,
        target: IpPrefix,
        duration: Option<Duration>,
        comment: &Arc<str>,
    ) -> Result<Blocked, EnforceError> {
        let menu = menu_of(&target);
        let cached = lock(&self.cache).get(&target).cloned();
        let entry = match cached {
            Some(entry) => entry,
            None => match self.find(target).await? {
                Some(entry) => entry,
                None => {
                    return Err(EnforceError::Refused {
                        router: self.router(),
                        command: format!("{menu}/add"),
                        message: "the router reports a duplicate entry but lists none".to_owned(),
                    });
                }
            },
        };
        let now = self.now();
        let remaining = entry
            .expires
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO));
        if duration.is_none() && remaining.is_some() {
            // Permanent over a timed entry: RouterOS has no portable way to clear a
            // timeout with `set`, so the entry is replaced.
            self.remove_by_id(&format!("{menu}/remove"), &entry.id)
                .await?;
            lock(&self.cache).remove(&target);
            let (path, add) = self.add_command(&target, None, comment);
            let response = self
                .call(add, self.config.command_timeout)
                .await
                .map_err(|e| self.fail(&path, e))?;
            let id = response.ret_str().unwrap_or_default();
            self.remember(target, id.clone(), None, comment);
            return Ok(Blocked::Updated { id });
        }
        let longer = match (duration, remaining) {
            (Some(new), Some(old)) => new > old || self.config.allow_shorten,
            (Some(_), None) => self.config.allow_shorten,
            (None, _) => false,
        };
        let path = format!("{menu}/set");
        let mut set = Command::new(&path)
            .id(&entry.id)
            .attr("comment", &**comment);
        if let (true, Some(d)) = (longer, duration) {
            set = set.attr("timeout", format_timeout(d));
        }
        match self.call(set, self.config.command_timeout).await {
            Ok(_) => {
                let expires = if longer {
                    duration.map(|d| now + d)
                } else {
                    entry.expires
                };
                lock(&self.cache).insert(
                    target,
                    CachedEntry {
                        id: entry.id.clone(),
                        expires,
                        comment: Arc::clone(comment),
                    },
                );
                Ok(Blocked::Updated { id: entry.id })
            }
            Err(e) => match self.classify(&path, e) {
                // It ran out between the add and the set: add it afresh, once.
                Trapped::NoSuchItem => {
                    lock(&self.cache).remove(&target);
                    let (path, add) = self.add_command(&target, duration, comment);
                    let response = self
                        .call(add, self.config.command_timeout)
                        .await
                        .map_err(|e| self.fail(&path, e))?;
                    let id = response.ret_str().unwrap_or_default();
                    self.remember(target, id.clone(), duration, comment);
                    Ok(Blocked::Added { id })
                }
                Trapped::Other(e) => Err(e),
                Trapped::Duplicate => Err(self.refused(&path, "failure: already have such entry")),
            },
        }
    }

    /// One targeted `print` for an entry the cache does not know.
    async fn find(&self, target: IpPrefix) -> Result<Option<CachedEntry>, EnforceError> {
        let rendered = render_target(&target);
        // The router may store a host with its full length (`/128`): ask for both forms.
        let full = format!("{}/{}", target.addr(), target.prefix_len());
        let query = Query::new()
            .eq("list", self.config.list_for(&target))
            .eq("address", &rendered)
            .eq("address", &full)
            .or();
        let print = Command::new(format!("{}/print", menu_of(&target)))
            .proplist([".id", "address", "timeout", "comment"])
            .query(query);
        let rows = self.print(print).await?;
        let now = self.now();
        Ok(rows
            .iter()
            .filter_map(|row| parse_entry(row, now))
            .find(|(prefix, _)| *prefix == target)
            .map(|(_, entry)| entry))
    }

    fn record(
        &self,
        bans: &[Ban],
        now: SystemTime,
    ) -> Result<Vec<(BanId, Option<Duration>)>, EnforceError> {
        record_bans(&self.ledger, &self.config, bans, now)
    }

    /// Reads the router's uptime and, if it went down since the last reconcile (the
    /// router rebooted and lost every entry with a timeout), reconciles.
    ///
    /// # Errors
    /// As [`reconcile`](Enforcer::reconcile).
    pub async fn check_reboot(&self) -> Result<Option<ReconcileReport>, EnforceError> {
        let uptime = self.read_uptime().await?;
        let last = *lock(&self.last_uptime);
        match (last, uptime) {
            (Some(old), Some(new)) if new < old => self.reconcile().await.map(Some),
            (_, Some(new)) => {
                *lock(&self.last_uptime) = Some(new);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Records the listed entries that carry mtids' comment but that the ledger does not
    /// know (a ledger moved aside as corrupt, or lost): the router still enforces them,
    /// so the ledger learns them back, as applied, with the time they have left.
    fn adopt(&self, active: &[crate::BanRecord], now: SystemTime) -> usize {
        let orphans: Vec<(IpPrefix, CachedEntry, String)> = {
            let cache = lock(&self.cache);
            cache
                .iter()
                .filter(|(target, entry)| {
                    let text = render_target(target);
                    crate::ban::parse_comment(&entry.comment).is_some()
                        && entry.expires.is_none_or(|at| at > now)
                        && !active
                            .iter()
                            .any(|b| b.target == text && b.list == self.config.list_for(target))
                })
                .map(|(target, entry)| (*target, entry.clone(), render_target(target)))
                .collect()
        };
        if orphans.is_empty() {
            return 0;
        }
        let new: Vec<NewBan<'_>> = orphans
            .iter()
            .filter_map(|(target, entry, text)| {
                let (detector, reason) = crate::ban::parse_comment(&entry.comment)?;
                Some(NewBan {
                    router: &self.config.router,
                    list: self.config.list_for(target),
                    target: text,
                    reason,
                    detector,
                    created: now,
                    duration: entry
                        .expires
                        .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO)),
                })
            })
            .collect();
        let mut ledger = lock(&self.ledger);
        let recorded = match ledger.record_all(&new) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(router = %self.config.router, error = %e, "ban ledger: cannot adopt the router's entries");
                return 0;
            }
        };
        let applied: Vec<(BanId, Option<&str>)> = recorded
            .iter()
            .zip(&orphans)
            .map(|(r, (_, entry, _))| (r.id(), Some(entry.id.as_str())))
            .collect();
        if let Err(e) = ledger.mark_applied_all(&applied, now) {
            tracing::error!(router = %self.config.router, error = %e, "ban ledger: cannot mark adopted entries applied");
        }
        tracing::warn!(
            router = %self.config.router,
            adopted = applied.len(),
            "the router holds mtids bans the ledger did not know: recorded them"
        );
        applied.len()
    }

    /// Sends bans already recorded in the ledger (by [`crate::Fleet`], when it accepted
    /// them), all in flight at once, and marks them applied or failed; one result per
    /// ban, in order. A connection failure leaves the ban pending.
    pub(crate) async fn block_recorded(
        &self,
        bans: Vec<(BanId, IpPrefix, Option<Duration>, Arc<str>)>,
    ) -> Vec<Result<Blocked, EnforceError>> {
        self.send_all(bans).await
    }

    /// Sends every `(target, duration, comment)` at once and marks the ledger bans
    /// applied or failed. Connection failures leave the ban pending (re-applied on
    /// reconnect).
    async fn send_all(
        &self,
        items: Vec<(BanId, IpPrefix, Option<Duration>, Arc<str>)>,
    ) -> Vec<Result<Blocked, EnforceError>> {
        let n = items.len();
        let mut results: Vec<Option<Result<Blocked, EnforceError>>> =
            std::iter::repeat_with(|| None).take(n).collect();
        // At most SEND_WINDOW commands out at once: each one in flight holds its future,
        // its reply channel and its route in the client, and the allocator keeps what a
        // burst took (100 bans sent at once to each of 1,000 routers left the daemon
        // 596 MiB larger; see docs/performance.md). Still one round trip per
        // SEND_WINDOW bans. With a fleet-wide limit, each command also takes a permit;
        // a router waits for one only while it has nothing in flight (so no router
        // holds permits while waiting for more, and none can starve the others).
        let mut pending = items
            .iter()
            .enumerate()
            .map(|(i, (_, target, duration, comment))| (i, *target, *duration, comment));
        let mut in_flight = FuturesUnordered::new();
        let mut next = pending.next();
        loop {
            while in_flight.len() < SEND_WINDOW
                && let Some(item) = next.take()
            {
                let permit = match &self.send_limit {
                    None => None,
                    Some(limit) => match Arc::clone(limit).try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) if in_flight.is_empty() => {
                            Arc::clone(limit).acquire_owned().await.ok()
                        }
                        Err(_) => {
                            next = Some(item);
                            break;
                        }
                    },
                };
                let (i, target, duration, comment) = item;
                in_flight.push(self.send_one(i, target, duration, comment, permit));
                next = pending.next();
            }
            let Some((i, result)) = in_flight.next().await else {
                break;
            };
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(result);
            }
        }
        drop(in_flight);
        let now = self.now();
        let mut applied = Vec::new();
        let mut failed = Vec::new();
        for ((id, ..), result) in items.iter().zip(&results) {
            match result {
                Some(Ok(Blocked::Added { id: item } | Blocked::Updated { id: item })) => {
                    applied.push((*id, Some(item.as_str())));
                }
                Some(Err(e)) if !e.is_connection() => failed.push((*id, e.to_string())),
                _ => {}
            }
        }
        self.mark_applied(&applied, now).await;
        if !failed.is_empty() {
            let mut ledger = lock(&self.ledger);
            for (id, why) in failed {
                if let Err(e) = ledger.mark_failed(id, &why, now) {
                    tracing::error!(router = %self.config.router, "ban ledger: {e}");
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(EnforceError::Stopped(self.config.router.clone()))))
            .collect()
    }

    /// Marks `applied` in the ledger: through the fleet's group writer when there is
    /// one (returning once written), else at once.
    async fn mark_applied(&self, applied: &[(BanId, Option<&str>)], now: SystemTime) {
        if applied.is_empty() {
            return;
        }
        if let Some(writer) = &self.applied_writer {
            let (written, done) = tokio::sync::oneshot::channel();
            let marks = AppliedMarks {
                router: self.config.router.clone(),
                applied: applied
                    .iter()
                    .map(|(id, item)| (*id, item.map(str::to_owned)))
                    .collect(),
                now,
                written,
            };
            if writer.marks.send(marks).is_ok() && done.await.is_ok() {
                return;
            }
        }
        if let Err(e) = lock(&self.ledger).mark_applied_all(applied, now) {
            tracing::error!(router = %self.config.router, "ban ledger: {e}");
        }
    }

    /// One command of [`send_all`](Self::send_all): the ban's add (or update), holding
    /// its fleet-wide permit until answered; `i` comes back with the result.
    async fn send_one(
        &self,
        i: usize,
        target: IpPrefix,
        duration: Option<Duration>,
        comment: &Arc<str>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> (usize, Result<Blocked, EnforceError>) {
        let result = match self.check_own(&target) {
            Ok(()) => self.apply(target, duration, comment).await,
            Err(e) => Err(e),
        };
        drop(permit);
        (i, result)
    }

    /// A `print` of a menu the router may lack (`/ipv6/...` without IPv6 support):
    /// `Ok(None)` when the router answers that there is no such command.
    async fn print_if_present(&self, command: Command) -> Result<Option<Vec<Reply>>, EnforceError> {
        let path = String::from_utf8_lossy(command.path()).into_owned();
        match self.call(command, self.config.print_timeout).await {
            Ok(response) => Ok(Some(response.rows)),
            Err(NetError::Trap { trap, .. }) if trap.message.contains("no such command") => {
                tracing::warn!(
                    router = %self.config.router,
                    command = %path,
                    "the router has no such menu (no IPv6 support?): skipped"
                );
                Ok(None)
            }
            Err(e) => Err(self.fail(&path, e)),
        }
    }

    /// Each family's list in one `print` (IPv6 skipped on a router without it). Rows of
    /// the wrong family are ignored: a list holds only its own family's addresses.
    async fn print_lists(&self) -> Result<Vec<(IpPrefix, CachedEntry)>, EnforceError> {
        let mut entries = Vec::new();
        for (menu, list, v6) in [
            ("/ip/firewall/address-list", &self.config.list, false),
            ("/ipv6/firewall/address-list", &self.config.list_v6, true),
        ] {
            let print = Command::new(format!("{menu}/print"))
                .proplist([".id", "address", "timeout", "comment"])
                .query(Query::new().eq("list", list));
            let rows = if v6 {
                self.print_if_present(print).await?.unwrap_or_default()
            } else {
                self.print(print).await?
            };
            let now = self.now();
            entries.extend(
                rows.iter()
                    .filter_map(|row| parse_entry(row, now))
                    .filter(|(target, _)| target.addr().is_ipv6() == v6),
            );
        }
        Ok(entries)
    }

    async fn read_uptime(&self) -> Result<Option<Duration>, EnforceError> {
        let print = Command::new("/system/resource/print").proplist(["uptime"]);
        let rows = self.print(print).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get_str("uptime"))
            .and_then(|u| parse_routeros_duration(&u)))
    }

    async fn read_own_addresses(&self) -> Result<Vec<IpAddr>, EnforceError> {
        let mut own = Vec::new();
        for (menu, v6) in [("/ip/address", false), ("/ipv6/address", true)] {
            let print = Command::new(format!("{menu}/print")).proplist(["address"]);
            let rows = if v6 {
                self.print_if_present(print).await?.unwrap_or_default()
            } else {
                self.print(print).await?
            };
            for row in rows {
                let Some(text) = row.get_str("address") else {
                    continue;
                };
                let ip = text.split('/').next().unwrap_or_default();
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    own.push(ip);
                }
            }
        }
        Ok(own)
    }
}

/// Records `bans` in the ledger (one transaction), all pending, with each ban's
/// effective duration: a ban that extended one already recorded lasts as long as the
/// ledger now says (the longest expiry wins), so the router gets that, not the shorter
/// new decision.
pub(crate) fn record_bans(
    ledger: &Mutex<BanLedger>,
    config: &RouterOsConfig,
    bans: &[Ban],
    now: SystemTime,
) -> Result<Vec<(BanId, Option<Duration>)>, EnforceError> {
    let pairs: Vec<(&RouterOsConfig, &Ban)> = bans.iter().map(|b| (config, b)).collect();
    record_on_routers(ledger, &pairs, now)
}

/// Records each `(router, ban)` pair in the ledger, all in ONE transaction (one lock, one
/// disk sync): the fan-out of one ban to thousands of routers costs one write, not one
/// per router. Effective durations as [`record_bans`].
pub(crate) fn record_on_routers(
    ledger: &Mutex<BanLedger>,
    pairs: &[(&RouterOsConfig, &Ban)],
    now: SystemTime,
) -> Result<Vec<(BanId, Option<Duration>)>, EnforceError> {
    // One rendering per distinct target (a fan-out is one ban on many routers).
    let mut rendered: Vec<(IpPrefix, String)> = Vec::new();
    for (_, b) in pairs {
        if !rendered.iter().any(|(t, _)| *t == b.target) {
            rendered.push((b.target, render_target(&b.target)));
        }
    }
    let text = |target: &IpPrefix| {
        rendered
            .iter()
            .find(|(t, _)| t == target)
            .map_or("", |(_, s)| s.as_str())
    };
    let new: Vec<NewBan<'_>> = pairs
        .iter()
        .map(|(config, b)| NewBan {
            router: &config.router,
            list: config.list_for(&b.target),
            target: text(&b.target),
            reason: &b.reason,
            detector: &b.detector,
            created: now,
            duration: b.duration,
        })
        .collect();
    let mut ledger = lock(ledger);
    let recorded = ledger.record_all(&new)?;
    // The evidence, rendered once per distinct ban, kept in one more transaction.
    let mut evidence: Vec<(&Ban, String)> = Vec::new();
    for (_, b) in pairs {
        if let Some(e) = &b.evidence
            && !evidence.iter().any(|(seen, _)| std::ptr::eq(*seen, *b))
        {
            evidence.push((b, e.to_string()));
        }
    }
    let kept: Vec<(BanId, &str)> = recorded
        .iter()
        .zip(pairs)
        .filter_map(|(r, (_, b))| {
            let (_, text) = evidence.iter().find(|(seen, _)| std::ptr::eq(*seen, *b))?;
            Some((r.id(), text.as_str()))
        })
        .collect();
    if !kept.is_empty()
        && let Err(e) = ledger.set_evidence_all(&kept)
    {
        tracing::warn!(error = %e, "ban ledger: the evidence of a ban was not kept");
    }
    Ok(recorded
        .into_iter()
        .zip(pairs)
        .map(|(r, (_, b))| match r {
            Recorded::New(id) => (id, b.duration),
            Recorded::Extended(id) => match ledger.get(id) {
                Ok(record) => (id, record.remaining(now)),
                Err(_) => (id, b.duration),
            },
        })
        .collect())
}

/// No sweep of the cache below this many entries (a sweep would free little).
const MIN_SWEEP: usize = 64;

/// Drops the cached entries whose timeout has run out at `now` (the router has removed
/// them); returns how many are left. Run once the cache has doubled since the last sweep
/// (`sweep_at`): per router, the cache holds about the bans in force, not every ban since
/// the connection came up, at an amortized cost of O(1) per ban. A target no longer
/// cached is looked up on the router when needed.
fn forget_expired(cache: &mut HashMap<IpPrefix, CachedEntry>, now: SystemTime) -> usize {
    cache.retain(|_, e| e.expires.is_none_or(|t| t > now));
    if cache.len() * 4 < cache.capacity() {
        cache.shrink_to(cache.len() * 2);
    }
    cache.len()
}

/// Reads one address-list row; rows with an address that does not parse are skipped
/// (they are not ours: everything mtids writes is a valid address).
fn parse_entry(row: &Reply, now: SystemTime) -> Option<(IpPrefix, CachedEntry)> {
    let id = row.id()?.into_owned();
    let target: IpPrefix = row.get_str("address")?.parse().ok()?;
    let expires = row
        .get_str("timeout")
        .and_then(|t| parse_routeros_duration(&t))
        .map(|d| now + d);
    let comment: Arc<str> = row.get_str("comment").map_or_else(|| "".into(), Arc::from);
    Some((
        target,
        CachedEntry {
            id,
            expires,
            comment,
        },
    ))
}

/// Splits an endpoint as the connection table prints it (`198.51.100.7`,
/// `198.51.100.7:40384`, `[2001:db8::1]:22`, `2001:db8::1`) into its address.
pub(crate) fn endpoint_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[async_trait]
impl Enforcer for RouterOsEnforcer {
    async fn block(&self, ban: &Ban) -> Result<Blocked, EnforceError> {
        self.block_all(std::slice::from_ref(ban))
            .await
            .pop()
            .unwrap_or_else(|| Err(EnforceError::Stopped(self.router())))
    }

    async fn block_all(&self, bans: &[Ban]) -> Vec<Result<Blocked, EnforceError>> {
        let now = self.now();
        let ids = match self.record(bans, now) {
            Ok(ids) => ids,
            Err(e) => {
                let message = e.to_string();
                return bans
                    .iter()
                    .map(|_| {
                        Err(EnforceError::NotRecorded {
                            reason: message.clone(),
                        })
                    })
                    .collect();
            }
        };
        let items = ids
            .into_iter()
            .zip(bans)
            .map(|((id, duration), b)| (id, b.target, duration, Arc::from(b.comment())))
            .collect();
        self.send_all(items).await
    }

    async fn unblock(&self, target: IpPrefix) -> Result<bool, EnforceError> {
        let cached = lock(&self.cache).get(&target).cloned();
        let now = self.now();
        let listed = match cached {
            Some(entry) => {
                self.remove_by_id(&format!("{}/remove", menu_of(&target)), &entry.id)
                    .await?;
                lock(&self.cache).remove(&target);
                true
            }
            None => false,
        };
        let rendered = render_target(&target);
        let mut ledger = lock(&self.ledger);
        if let Some(ban) = ledger.find_active(
            &self.config.router,
            self.config.list_for(&target),
            &rendered,
            now,
        )? {
            ledger.mark_removed(ban.id, "unblocked", now)?;
        }
        Ok(listed)
    }

    async fn drop_connections(&self, target: IpPrefix) -> Result<usize, EnforceError> {
        let menu = match target.addr() {
            IpAddr::V4(_) => "/ip/firewall/connection",
            IpAddr::V6(_) => "/ipv6/firewall/connection",
        };
        let print =
            Command::new(format!("{menu}/print")).proplist([".id", "src-address", "dst-address"]);
        let rows = self.print(print).await?;
        let hit = |row: &Reply, field: &str| {
            row.get_str(field)
                .and_then(|a| endpoint_ip(&a))
                .is_some_and(|ip| target.contains(ip))
        };
        let ids: Vec<String> = rows
            .iter()
            .filter(|row| hit(row, "src-address") || hit(row, "dst-address"))
            .filter_map(|row| row.id().map(|id| id.into_owned()))
            .collect();
        let path = format!("{menu}/remove");
        let mut removals: FuturesUnordered<_> =
            ids.iter().map(|id| self.remove_by_id(&path, id)).collect();
        let mut removed = 0;
        let mut first_error = None;
        while let Some(result) = removals.next().await {
            match result {
                Ok(true) => removed += 1,
                // Gone already (closed, or timed out): that is what we wanted.
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    async fn enforced(&self) -> Result<Vec<Enforced>, EnforceError> {
        let now = self.now();
        let mut out: Vec<Enforced> = lock(&self.cache)
            .iter()
            .filter(|(_, e)| e.expires.is_none_or(|at| at > now))
            .map(|(target, e)| Enforced {
                id: e.id.clone(),
                target: *target,
                timeout: e
                    .expires
                    .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO)),
                comment: e.comment.to_string(),
            })
            .collect();
        out.sort_by_key(|e| e.target);
        Ok(out)
    }

    async fn reconcile(&self) -> Result<ReconcileReport, EnforceError> {
        let mut report = ReconcileReport::default();
        let uptime = self.read_uptime().await?;
        {
            let mut last = lock(&self.last_uptime);
            report.rebooted = matches!((*last, uptime), (Some(old), Some(new)) if new < old);
            if uptime.is_some() {
                *last = uptime;
            }
        }
        let own = self.read_own_addresses().await?;
        *lock(&self.own) = own;
        let entries = self.print_lists().await?;
        report.listed = entries.len();
        *lock(&self.cache) = entries.into_iter().collect();

        let now = self.now();
        let active = lock(&self.ledger).active(Some(&self.config.router), now)?;
        report.adopted = self.adopt(&active, now);
        let mut confirm = Vec::new();
        let mut missing = Vec::new();
        let mut short = Vec::new();
        {
            let cache = lock(&self.cache);
            for ban in &active {
                // A ban recorded on another list (the configuration changed) is not ours
                // to re-apply.
                let Ok(target) = ban.target.parse::<IpPrefix>() else {
                    continue;
                };
                if ban.list != self.config.list_for(&target) {
                    continue;
                }
                match cache.get(&target) {
                    Some(entry) => {
                        if ban.state == BanState::Pending {
                            confirm.push((ban.id, entry.id.clone()));
                        }
                        // Listed, but ending well before the ledger says (an extension
                        // lost with a connection): extend it.
                        let ends_early = match (entry.expires, ban.expires) {
                            (Some(listed), Some(meant)) => listed + EXTEND_SLACK < meant,
                            (Some(_), None) => true,
                            (None, _) => false,
                        };
                        if ends_early {
                            let comment =
                                Ban::new(target, None, &*ban.detector, &*ban.reason).comment();
                            let comment = Arc::from(comment);
                            short.push((ban.id, target, ban.remaining(now), comment));
                        }
                    }
                    None => {
                        let comment =
                            Ban::new(target, None, ban.detector.clone(), ban.reason.clone())
                                .comment();
                        let comment = Arc::from(comment);
                        missing.push((ban.id, target, ban.remaining(now), comment));
                    }
                }
            }
        }
        if !confirm.is_empty() {
            let applied: Vec<_> = confirm
                .iter()
                .map(|(id, item)| (*id, Some(item.as_str())))
                .collect();
            lock(&self.ledger).mark_applied_all(&applied, now)?;
            report.confirmed = confirm.len();
        }
        report.missing = missing.iter().map(|(_, t, ..)| *t).collect();
        if !missing.is_empty() {
            tracing::info!(
                router = %self.config.router,
                missing = missing.len(),
                rebooted = report.rebooted,
                "re-applying bans missing from the router"
            );
        }
        let targets: Vec<IpPrefix> = report.missing.clone();
        for (target, result) in targets.into_iter().zip(self.send_all(missing).await) {
            match result {
                Ok(_) => report.reapplied += 1,
                Err(e) => report.failed.push((target, e.to_string())),
            }
        }
        let targets: Vec<IpPrefix> = short.iter().map(|(_, t, ..)| *t).collect();
        for (target, result) in targets.into_iter().zip(self.send_all(short).await) {
            match result {
                Ok(_) => report.extended += 1,
                Err(e) => report.failed.push((target, e.to_string())),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_ip;

    #[test]
    fn expired_entries_leave_the_cache_and_free_its_memory() {
        use super::{CachedEntry, HashMap, IpPrefix, forget_expired};
        use std::time::{Duration, SystemTime};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut cache = HashMap::new();
        for i in 0..10_000u32 {
            let target: IpPrefix = std::net::Ipv4Addr::from(0x0b00_0000 + i)
                .to_string()
                .parse()
                .unwrap();
            // One in a hundred still in force (one of them permanent), the rest run out.
            let expires = match i % 100 {
                0 if i == 0 => None,
                0 => Some(now + Duration::from_secs(60)),
                _ => Some(now - Duration::from_secs(1)),
            };
            let entry = CachedEntry {
                id: format!("*{i:X}"),
                expires,
                comment: "mtids brute_force: 10 failures".into(),
            };
            cache.insert(target, entry);
        }
        assert_eq!(forget_expired(&mut cache, now), 100);
        assert_eq!(cache.len(), 100);
        assert!(cache.capacity() < 1_000, "capacity {}", cache.capacity());
        assert!(cache.values().filter(|e| e.expires.is_none()).count() == 1);
    }

    #[test]
    fn endpoints_in_every_printed_form() {
        let v4 = "198.51.100.7".parse().ok();
        let v6 = "2001:db8::1".parse().ok();
        assert_eq!(endpoint_ip("198.51.100.7"), v4);
        assert_eq!(endpoint_ip("198.51.100.7:40384"), v4);
        assert_eq!(endpoint_ip("[2001:db8::1]:22"), v6);
        assert_eq!(endpoint_ip("2001:db8::1"), v6);
        assert_eq!(endpoint_ip("198.51.100.7:x"), None);
        assert_eq!(endpoint_ip("[2001:db8::1"), None);
        assert_eq!(endpoint_ip("garbage"), None);
    }
}
