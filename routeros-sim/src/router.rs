//! The [`Router`] handle: one simulated router shared by all API sessions, tests and
//! scenarios, and the synchronous core that answers a parsed command.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, watch};

use crate::clock::{Clock, SystemClock};
use crate::error::SimError;
use crate::logline::{self, FirewallLogLine, Service};
use crate::model::address_list::{AddressListEntry, AddressListTable, Family, normalize_address};
use crate::model::config::ConfigTable;
use crate::model::connection::{Connection, ConnectionRow, ConnectionTable, PortStyle};
use crate::model::log::{LogEntry, LogRing};
use crate::model::resource::{OwnAddress, Resource, ResourceRow, RouterOsVersion};
use crate::model::users::{Policies, Policy, User, challenge_response, hex_encode};
use crate::model::{self, PrintOptions, Trap, requested_ids};
use crate::query::Query;
use crate::sentence::{Request, Sentence, TrapCategory};

mod menus;
mod remote_log;

pub use remote_log::RemoteLogStats;

/// How `/login` works on the simulated router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoginMethod {
    /// RouterOS 6.43 and later: `/login =name= =password=`.
    #[default]
    Plain,
    /// Before 6.43: `/login` returns a challenge, then `/login =name= =response=`.
    LegacyChallenge,
}

/// Settings fixed when the router is created.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The RouterOS version to emulate: decides `!empty` unless `empty_reply` is set, and
    /// the `/system/logging/action` menu (`bsd-syslog` before 7.18, `remote-log-format`
    /// and `remote-protocol` from 7.18). Default `7.20.4`.
    pub version: RouterOsVersion,
    /// `board-name` in `/system/resource`.
    pub board_name: String,
    /// `/system/identity` name.
    pub identity: String,
    /// Login method.
    pub login: LoginMethod,
    /// Force `!empty` on or off; `None` follows the version (7.18 and later send it).
    pub empty_reply: Option<bool>,
    /// `max-sessions` of the `api` and `api-ssl` services (their first `/ip/service` value).
    pub max_sessions: usize,
    /// Entries kept in the log ring.
    pub log_capacity: usize,
    /// How the connection table prints endpoints.
    pub port_style: PortStyle,
    /// Whether the router has IPv6. Without it (the package disabled or absent) every
    /// `/ipv6/...` command answers `no such command prefix`.
    pub ipv6: bool,
    /// Whether [`Router::reboot`] starts the log's `.id`s again from `*1`. The log is
    /// kept in RAM (<https://help.mikrotik.com/docs/display/ROS/Log>: "Logs can be saved
    /// in routers memory (RAM)"), so a reboot empties it and a real router numbers the new
    /// boot's lines afresh (seen on routers in issue 11). Off by default: ids keep rising.
    pub restart_log_ids_on_reboot: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            // A current stable release (`/system/resource` prints `7.20.4 (stable)`).
            version: RouterOsVersion::new(7, 20, 4),
            board_name: "RB5009UG+S+".to_owned(),
            identity: "MikroTik".to_owned(),
            login: LoginMethod::Plain,
            empty_reply: None,
            max_sessions: 20,
            log_capacity: 1_000,
            port_style: PortStyle::Combined,
            ipv6: true,
            restart_log_ids_on_reboot: false,
        }
    }
}

impl RouterConfig {
    /// Whether prints without rows answer `!empty` before `!done`.
    pub fn sends_empty(&self) -> bool {
        self.empty_reply
            .unwrap_or_else(|| self.version.sends_empty())
    }
}

/// Something every session must act on at once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Send `!fatal REASON` and close.
    Fatal(String),
    /// Close the socket without a word (reboot, power loss).
    Disconnect,
}

/// One API session's login state, kept by the server per connection.
#[derive(Debug)]
pub struct Session {
    peer: IpAddr,
    service: Service,
    user: Option<(String, Policies)>,
    challenge: Option<Vec<u8>>,
    /// Ended by a reboot: nobody logs a logout then.
    lost: bool,
}

impl Session {
    /// A new, not yet logged in session from `peer` on `service` (`api` or `api-ssl`).
    pub fn new(peer: IpAddr, service: Service) -> Self {
        Self {
            peer,
            service,
            user: None,
            challenge: None,
            lost: false,
        }
    }

    /// The logged-in user name, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|(n, _)| n.as_str())
    }

    /// Marks the session as cut by a reboot (no logout is logged).
    pub(crate) fn mark_lost(&mut self) {
        self.lost = true;
    }
}

/// What the server must do with a command's answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Send these sentences; the command is finished.
    Reply(Vec<Sentence>),
    /// Send `initial`, then keep the command running and send what
    /// [`Router::poll_follow`] yields whenever [`Router::change_watch`] fires, until
    /// cancelled.
    Follow {
        /// Rows already there (`=follow=`); empty for `=follow-only=`.
        initial: Vec<Sentence>,
        /// The running follow.
        follow: Follow,
    },
    /// `/cancel`: stop the command tagged `target` (all when `None`), then answer `!done`
    /// with `tag`.
    Cancel {
        /// The tag to stop.
        target: Option<Vec<u8>>,
        /// The `/cancel`'s own tag.
        tag: Option<Vec<u8>>,
    },
    /// `/quit` or abuse: send this `!fatal` and close.
    Close(Sentence),
}

/// A running print with `=follow=` or `=follow-only=`: on `/log`, the address lists or
/// the connection table.
#[derive(Debug, Clone)]
pub struct Follow {
    target: FollowTarget,
    query: Query,
    proplist: Option<Vec<String>>,
    /// Next log id, or next change sequence number of the table.
    next: u64,
    tag: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowTarget {
    Log,
    AddressList(Family),
    Connections { v6: bool },
}

impl Follow {
    /// The tag of the following command.
    pub fn tag(&self) -> Option<&[u8]> {
        self.tag.as_deref()
    }
}

#[derive(Debug)]
struct State {
    config: RouterConfig,
    /// The configuration menus (`/user`, `/ip/firewall/filter`, ...).
    menus: Vec<ConfigTable>,
    /// Key material of signed certificates.
    signed: Vec<menus::SignedKey>,
    v4: AddressListTable,
    v6: AddressListTable,
    connections: ConnectionTable,
    log: LogRing,
    resource: Resource,
    own: Vec<OwnAddress>,
}

impl State {
    /// The remote logging messages of a new log entry.
    fn remote_log(
        &self,
        now: SystemTime,
        topics: &str,
        message: &[u8],
    ) -> Vec<remote_log::Outgoing> {
        let address = self
            .own
            .iter()
            .filter_map(|a| a.address.split('/').next()?.parse::<IpAddr>().ok())
            .find(IpAddr::is_ipv4)
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let origin = remote_log::Origin {
            identity: &self.config.identity,
            board: &self.resource.board_name,
            version: format!("{} (stable)", self.resource.version),
            address,
        };
        self.remote_messages(&origin, now, topics, message)
    }

    fn table(&mut self, family: Family) -> &mut AddressListTable {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

#[derive(Debug)]
struct Faults {
    latency_micros: AtomicU64,
    /// `u64::MAX` when off.
    drop_after: AtomicU64,
    stall: AtomicBool,
    omit_done_after_empty: AtomicBool,
}

struct Inner {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// Bumped on every log append and table change: following prints wake on it.
    changes: watch::Sender<u64>,
    control: broadcast::Sender<Control>,
    faults: Faults,
    /// Open sessions of the `api` and the `api-ssl` service.
    sessions: [AtomicUsize; 2],
    /// The queues towards remote logging actions.
    remote: remote_log::Forwarder,
    /// What the router sent, by command path: the cost of each kind of request.
    sent: Mutex<std::collections::HashMap<String, SentCount>>,
}

/// What a router sent in answer to one command path ([`Router::sent`]): the router's cost
/// of being asked, in reply sentences and bytes on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentCount {
    /// Commands answered.
    pub commands: u64,
    /// Reply sentences sent (`!re`, `!done`, `!trap`, `!empty`).
    pub sentences: u64,
    /// Bytes of those sentences on the wire (length prefixes included).
    pub bytes: u64,
}

/// A simulated RouterOS router. Cheap to clone: every clone is the same router.
///
/// Tests and scenarios drive the model through its methods (fill the connection table,
/// append log lines, set the CPU load, reboot, inject faults); API sessions reach it
/// through [`Router::execute`], which the [`server`](crate::server) calls for every
/// command sentence.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("sessions", &self.session_count())
            .finish_non_exhaustive()
    }
}

const KNOWN_COMMANDS: &[(&str, &[&str])] = &[
    (
        "/ip/firewall/address-list",
        &[
            "print", "getall", "add", "set", "remove", "enable", "disable",
        ],
    ),
    (
        "/ipv6/firewall/address-list",
        &[
            "print", "getall", "add", "set", "remove", "enable", "disable",
        ],
    ),
    ("/ip/firewall/connection", &["print", "getall", "remove"]),
    ("/ipv6/firewall/connection", &["print", "getall", "remove"]),
    (
        "/log",
        &["print", "getall", "info", "warning", "error", "debug"],
    ),
    ("/system/resource", &["print", "getall"]),
    ("/system/identity", &["print", "getall"]),
    ("/system", &["reboot"]),
    ("/ip/address", &["print", "getall"]),
    ("/ipv6/address", &["print", "getall"]),
];

impl Router {
    /// A router with the given settings on the system clock, with user `admin` (no
    /// password, group full) as a fresh RouterOS has.
    pub fn new(config: RouterConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A router whose time comes from `clock` (a [`ManualClock`](crate::ManualClock) in
    /// tests, a [`ScaledClock`](crate::ScaledClock) for time-compressed scenarios).
    pub fn with_clock(config: RouterConfig, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let mut state = State {
            menus: crate::model::menus::defaults(config.version),
            signed: Vec::new(),
            v4: AddressListTable::new(Family::V4),
            v6: AddressListTable::new(Family::V6),
            connections: ConnectionTable::default(),
            log: LogRing::new(config.log_capacity),
            resource: Resource {
                version: config.version,
                board_name: config.board_name.clone(),
                cpu_load: 1,
                boot_time: now,
            },
            own: vec![
                OwnAddress {
                    id: 1,
                    address: "192.0.2.1/24".to_owned(),
                    interface: "ether1".to_owned(),
                },
                OwnAddress {
                    id: 2,
                    address: "10.0.0.1/24".to_owned(),
                    interface: "bridge".to_owned(),
                },
                OwnAddress {
                    id: 3,
                    address: "2001:db8::1/64".to_owned(),
                    interface: "ether1".to_owned(),
                },
            ],
            config,
        };
        state.put_user(&User::new("admin", "", Policies::FULL));
        state.set_service_limits(state.config.max_sessions);
        let (changes, _) = watch::channel(0);
        let (control, _) = broadcast::channel(16);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                clock,
                changes,
                control,
                faults: Faults {
                    latency_micros: AtomicU64::new(0),
                    drop_after: AtomicU64::new(u64::MAX),
                    stall: AtomicBool::new(false),
                    omit_done_after_empty: AtomicBool::new(false),
                },
                sessions: [AtomicUsize::new(0), AtomicUsize::new(0)],
                remote: remote_log::Forwarder::default(),
                sent: Mutex::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough tables for a simulator.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The router's current time.
    pub fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// A copy of the settings.
    pub fn config(&self) -> RouterConfig {
        self.state().config.clone()
    }

    /// Forces `!empty` on or off (`None`: follow the version).
    pub fn set_empty_reply(&self, on: Option<bool>) {
        self.state().config.empty_reply = on;
    }

    /// Takes IPv6 away (or gives it back): while off, every `/ipv6/...` command answers
    /// `no such command prefix`, as on a router without the IPv6 package.
    pub fn set_ipv6(&self, on: bool) {
        self.state().config.ipv6 = on;
    }

    /// Sets [`RouterConfig::restart_log_ids_on_reboot`].
    pub fn set_restart_log_ids_on_reboot(&self, on: bool) {
        self.state().config.restart_log_ids_on_reboot = on;
    }

    // ---- users ----

    /// Adds a user to `/user`, replacing one of the same name. Its group is an existing
    /// one with exactly its policies (`full` for every policy), or else a group named
    /// after the user.
    pub fn add_user(&self, user: User) {
        self.state().put_user(&user);
    }

    /// Removes a user; returns whether it existed.
    pub fn remove_user(&self, name: &str) -> bool {
        self.state().remove_user(name)
    }

    // ---- resource and own addresses ----

    /// Sets `cpu-load` (percent, capped at 100).
    pub fn set_cpu_load(&self, percent: u8) {
        self.state().resource.cpu_load = percent.min(100);
    }

    /// The current `cpu-load`.
    pub fn cpu_load(&self) -> u8 {
        self.state().resource.cpu_load
    }

    /// Time since the last (simulated) boot.
    pub fn uptime(&self) -> Duration {
        let boot = self.state().resource.boot_time;
        self.now().duration_since(boot).unwrap_or(Duration::ZERO)
    }

    /// Adds one of the router's own addresses (`ip/prefix`) on `interface`.
    pub fn add_own_address(&self, address: &str, interface: &str) -> Result<u64, SimError> {
        let (ip, _) = address.split_once('/').unwrap_or((address, ""));
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| SimError::Refused(format!("invalid address {address}")))?;
        let mut s = self.state();
        let id = s.own.iter().map(|a| a.id).max().unwrap_or(0) + 1;
        let address = if address.contains('/') {
            address.to_owned()
        } else if ip.is_ipv4() {
            format!("{ip}/32")
        } else {
            format!("{ip}/128")
        };
        s.own.push(OwnAddress {
            id,
            address,
            interface: interface.to_owned(),
        });
        Ok(id)
    }

    /// The router's own addresses.
    pub fn own_addresses(&self) -> Vec<OwnAddress> {
        self.state().own.clone()
    }

    // ---- connection table ----

    /// Adds a tracked connection; returns its id.
    pub fn add_connection(&self, conn: Connection) -> u64 {
        let id = self.state().connections.insert(conn);
        self.changed();
        id
    }

    /// Adds many connections under one lock (fast for big tables).
    pub fn add_connections(&self, conns: impl IntoIterator<Item = Connection>) {
        {
            let mut s = self.state();
            for c in conns {
                s.connections.insert(c);
            }
        }
        self.changed();
    }

    /// Removes a connection by id.
    pub fn remove_connection(&self, id: u64) -> Option<Connection> {
        let conn = self.state().connections.remove_one(id);
        self.changed();
        conn
    }

    /// Empties the connection table.
    pub fn clear_connections(&self) {
        self.state().connections.clear();
        self.changed();
    }

    /// A copy of the connection table.
    pub fn connections(&self) -> Vec<Connection> {
        self.state().connections.snapshot()
    }

    /// Number of tracked connections.
    pub fn connection_count(&self) -> usize {
        self.state().connections.len()
    }

    // ---- address lists ----

    /// Adds an address-list entry as a client would (the same checks and the same
    /// duplicate refusal); the family follows the address.
    pub fn add_address_list_entry(
        &self,
        list: &str,
        address: &str,
        timeout: Option<Duration>,
        comment: Option<&str>,
    ) -> Result<u64, SimError> {
        let family = if address.contains(':') {
            Family::V6
        } else {
            Family::V4
        };
        let normalized = normalize_address(address, family).ok_or_else(|| {
            SimError::Refused(format!("invalid value for argument address: {address}"))
        })?;
        let now = self.now();
        let mut s = self.state();
        let table = s.table(family);
        table.expire(now);
        let added = table
            .insert(
                list.to_owned(),
                normalized,
                timeout,
                comment.map(|c| c.as_bytes().to_vec()),
                false,
                now,
            )
            .map_err(|t| SimError::Refused(t.message));
        drop(s);
        self.changed();
        added
    }

    /// The entries of one address-list menu, expired ones dropped first.
    pub fn address_list(&self, family: Family) -> Vec<AddressListEntry> {
        let now = self.now();
        let mut s = self.state();
        let table = s.table(family);
        table.expire(now);
        table.entries().cloned().collect()
    }

    /// Whether `address` (normalised as the router stores it) is on `list`.
    pub fn is_listed(&self, list: &str, address: &str) -> bool {
        let family = if address.contains(':') {
            Family::V6
        } else {
            Family::V4
        };
        let Some(normalized) = normalize_address(address, family) else {
            return false;
        };
        // Looked up in place, not on a copy of the table: a fleet bench asks this of
        // thousands of routers at every change.
        let now = self.now();
        let mut s = self.state();
        let table = s.table(family);
        table.expire(now);
        table
            .entries()
            .any(|e| e.list == list && e.address == normalized)
    }

    /// How many entries `list` holds in `family`'s menu (expired ones dropped first),
    /// counted in place.
    pub fn listed_count(&self, family: Family, list: &str) -> usize {
        let now = self.now();
        let mut s = self.state();
        let table = s.table(family);
        table.expire(now);
        table.entries().filter(|e| e.list == list).count()
    }

    // ---- log ----

    /// Appends a log entry with `topics` (e.g. `system,info`) and `message`; every
    /// following session receives it.
    ///
    /// The entry also goes to every remote logging action a `/system/logging` rule sends
    /// its topics to (see [`Router::remote_log_stats`]).
    pub fn log(&self, topics: &str, message: impl AsRef<[u8]>) -> u64 {
        let now = self.now();
        let (id, remote) = {
            let mut s = self.state();
            let id = s.log.push(now, topics, message.as_ref());
            (id, s.remote_log(now, topics, message.as_ref()))
        };
        self.inner.remote.dispatch(remote);
        self.changed();
        id
    }

    /// What remote logging action `name` has sent and dropped (`None` before its first
    /// message).
    pub fn remote_log_stats(&self, name: &str) -> Option<RemoteLogStats> {
        self.inner.remote.stats(name)
    }

    /// Trusts `cert` (DER) as a certificate authority for remote logging over TLS with
    /// `check-certificate=yes`, as importing it into `/certificate` does on a router.
    pub fn trust_certificate(&self, cert: rustls::pki_types::CertificateDer<'static>) {
        self.inner.remote.trust(cert);
    }

    /// Appends a firewall rule's log line (topics `firewall,info`).
    pub fn log_firewall(&self, line: &FirewallLogLine) -> u64 {
        self.log(logline::FIREWALL_TOPICS, line.to_string())
    }

    /// Appends `login failure for user USER from ADDR via SERVICE`.
    pub fn log_login_failure(&self, user: &str, from: IpAddr, via: Service) -> u64 {
        self.log(
            logline::LOGIN_FAILURE_TOPICS,
            logline::login_failure(user, from, via),
        )
    }

    /// Appends `login failure for user USER from MAC via SERVICE`, as a MAC-winbox login
    /// failure is logged (a MAC, never an IP: count it, never block it).
    pub fn log_login_failure_mac(&self, user: &str, mac: &str, via: Service) -> u64 {
        self.log(
            logline::LOGIN_FAILURE_TOPICS,
            logline::login_failure(user, mac, via),
        )
    }

    /// Appends `user USER logged in from ADDR via SERVICE`.
    pub fn log_login(&self, user: &str, from: IpAddr, via: Service) -> u64 {
        self.log(logline::ACCOUNT_TOPICS, logline::logged_in(user, from, via))
    }

    /// Appends `user USER logged out from ADDR via SERVICE`.
    pub fn log_logout(&self, user: &str, from: IpAddr, via: Service) -> u64 {
        self.log(
            logline::ACCOUNT_TOPICS,
            logline::logged_out(user, from, via),
        )
    }

    /// A copy of the log ring, oldest first.
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.state().log.entries().cloned().collect()
    }

    /// Fires whenever a log entry is appended or a followed table changes.
    pub fn change_watch(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What a running follow has to send since its last poll, each as a tagged `!re`: new
    /// log entries, or added and changed table items (removed ones as `=.dead=true`).
    pub fn poll_follow(&self, follow: &mut Follow) -> Vec<Sentence> {
        let now = self.now();
        let mut s = self.state();
        let tag = follow.tag.clone();
        let mut out = Vec::new();
        let mut emit = |row: Option<&dyn model::Record>, id: u64| match row {
            Some(row) => {
                if follow.query.matches(|n| row.field(n, now)) {
                    out.push(
                        model::row_sentence(row, follow.proplist.as_deref(), now)
                            .with_tag(tag.as_deref()),
                    );
                }
            }
            None => out.push(model::dead_sentence(id).with_tag(tag.as_deref())),
        };
        match follow.target {
            FollowTarget::Log => {
                for entry in s.log.since(follow.next) {
                    emit(Some(entry), entry.id);
                }
                follow.next = s.log.next_id();
            }
            FollowTarget::AddressList(family) => {
                let table = s.table(family);
                table.expire(now);
                for id in table.feed().since(follow.next) {
                    emit(table.get(id).map(|e| e as &dyn model::Record), id);
                }
                follow.next = table.feed().next_seq();
            }
            FollowTarget::Connections { v6 } => {
                let style = s.config.port_style;
                let table = &s.connections;
                for id in table.feed().since(follow.next) {
                    match table.get(id) {
                        Some(conn) if conn.src.is_ipv6() != v6 => {}
                        Some(conn) => emit(Some(&ConnectionRow { conn, style }), id),
                        None => emit(None, id),
                    }
                }
                follow.next = table.feed().next_seq();
            }
        }
        out
    }

    // ---- faults and lifecycle ----

    /// Delays every answer by `latency` (round trip plus service time).
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.inner
            .faults
            .latency_micros
            .store(micros, Ordering::Relaxed);
    }

    /// What the router has sent in answer to `path` (e.g.
    /// `/ip/firewall/connection/print`) since it started, or since [`reset_sent`](Self::reset_sent).
    pub fn sent(&self, path: &str) -> SentCount {
        self.inner
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    /// Zeroes every [`sent`](Self::sent) count.
    pub fn reset_sent(&self) {
        self.inner
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Counts `sentences` sent in answer to one `path` command (the server calls it).
    pub(crate) fn count_sent(&self, path: &str, sentences: &[Sentence]) {
        let bytes: usize = sentences.iter().map(|s| s.wire().len()).sum();
        let mut sent = self
            .inner
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = match sent.get_mut(path) {
            Some(count) => count,
            None => sent.entry(path.to_owned()).or_default(),
        };
        count.commands += 1;
        count.sentences += sentences.len() as u64;
        count.bytes += bytes as u64;
    }

    /// The added latency per command.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.inner.faults.latency_micros.load(Ordering::Relaxed))
    }

    /// Closes each connection once it has sent `n` reply sentences (`None`: never).
    pub fn set_drop_after(&self, n: Option<u64>) {
        self.inner
            .faults
            .drop_after
            .store(n.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The drop-after threshold, if set.
    pub fn drop_after(&self) -> Option<u64> {
        let n = self.inner.faults.drop_after.load(Ordering::Relaxed);
        (n != u64::MAX).then_some(n)
    }

    /// While stalled the router reads commands and never answers them.
    pub fn set_stall(&self, stall: bool) {
        self.inner.faults.stall.store(stall, Ordering::Relaxed);
    }

    /// Answers `!empty` without the `!done` that should follow, as one RouterOS release
    /// was reported to do (clients need a timeout for it).
    pub fn set_omit_done_after_empty(&self, omit: bool) {
        self.inner
            .faults
            .omit_done_after_empty
            .store(omit, Ordering::Relaxed);
    }

    /// Whether the router is stalled.
    pub fn stalled(&self) -> bool {
        self.inner.faults.stall.load(Ordering::Relaxed)
    }

    /// Sends `!fatal REASON` on every session and closes them.
    pub fn send_fatal(&self, reason: &str) {
        let _ = self.inner.control.send(Control::Fatal(reason.to_owned()));
    }

    /// Reboots: dynamic address-list entries are erased, uptime restarts, the connection
    /// table and the memory log empty (the log then starts with `router rebooted`), and
    /// every session is dropped without a word. Log ids go on increasing.
    pub fn reboot(&self) {
        let now = self.now();
        {
            let mut s = self.state();
            s.v4.erase_dynamic();
            s.v6.erase_dynamic();
            s.connections.clear();
            if s.config.restart_log_ids_on_reboot {
                s.log = LogRing::new(s.config.log_capacity);
            } else {
                s.log.clear();
            }
            s.resource.boot_time = now;
        }
        let _ = self.inner.control.send(Control::Disconnect);
        self.log("system,info", "router rebooted");
    }

    /// Events every session must act on (fatal, disconnect).
    pub fn control(&self) -> broadcast::Receiver<Control> {
        self.inner.control.subscribe()
    }

    /// Open API sessions (`api` and `api-ssl`).
    pub fn session_count(&self) -> usize {
        self.inner
            .sessions
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    fn session_counter(&self, service: Service) -> &AtomicUsize {
        let i = usize::from(service == Service::ApiSsl);
        &self.inner.sessions[i]
    }

    /// Reserves a session slot on `service` (`api` or `api-ssl`); `false` when the
    /// service is disabled in `/ip/service` or its `max-sessions` is reached.
    pub(crate) fn open_session(&self, service: Service) -> bool {
        let Some(max) = self.state().service_limit(service.as_str()) else {
            return false;
        };
        self.session_counter(service)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Frees a session slot and logs the logout of its user.
    pub(crate) fn close_session(&self, session: &Session) {
        self.session_counter(session.service)
            .fetch_sub(1, Ordering::AcqRel);
        if let Some(user) = session.user().filter(|_| !session.lost) {
            self.log_logout(user, session.peer, session.service);
        }
    }

    // ---- the command core ----

    /// Answers one command sentence for `session`. Synchronous and side-effect free
    /// beyond the model: the server sends what it returns.
    pub fn execute(&self, session: &mut Session, request: &Request) -> Outcome {
        let tag = request.tag.as_deref();
        let finish = |result: Result<Vec<Sentence>, Trap>| -> Outcome {
            let mut sentences = match result {
                Ok(s) => s,
                Err(trap) => vec![
                    Sentence::trap(trap.category, trap.message),
                    Sentence::done(),
                ],
            };
            if self
                .inner
                .faults
                .omit_done_after_empty
                .load(Ordering::Relaxed)
                && sentences
                    .first()
                    .is_some_and(|s| s.reply_word() == b"!empty")
            {
                sentences.truncate(1);
            }
            Outcome::Reply(sentences.into_iter().map(|s| s.with_tag(tag)).collect())
        };
        match request.command.as_str() {
            "/login" => return finish(self.login(session, request)),
            "/quit" => return Outcome::Close(Sentence::fatal("session terminated on request")),
            _ => {}
        }
        let Some((_, policies)) = session.user.clone() else {
            return finish(Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "not logged in",
            )));
        };
        if request.command == "/cancel" {
            return Outcome::Cancel {
                target: request.get("tag").map(<[u8]>::to_vec),
                tag: request.tag.clone(),
            };
        }
        let (menu, verb) = request
            .command
            .rsplit_once('/')
            .unwrap_or(("", request.command.as_str()));
        if (menu == "/ipv6" || menu.starts_with("/ipv6/")) && !self.state().config.ipv6 {
            return finish(Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "no such command prefix",
            )));
        }
        let version = self.state().config.version;
        if let Some(config_menu) = menus::menu(menu, version) {
            return finish(self.config_menu_command(config_menu, verb, &policies, request));
        }
        let Some((_, verbs)) = KNOWN_COMMANDS.iter().find(|(m, _)| *m == menu) else {
            let is_menu = !menu.is_empty()
                && KNOWN_COMMANDS.iter().any(|(m, _)| {
                    m.starts_with(menu) && m.as_bytes().get(menu.len()) == Some(&b'/')
                });
            let message = if is_menu {
                "no such command"
            } else {
                "no such command prefix"
            };
            return finish(Err(Trap::new(Some(TrapCategory::MissingItem), message)));
        };
        if !verbs.contains(&verb) {
            return finish(Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "no such command",
            )));
        }
        let needed = match verb {
            "print" | "getall" => Policy::Read,
            "reboot" => Policy::Reboot,
            _ => Policy::Write,
        };
        if !policies.contains(needed) {
            return finish(Err(Trap::new(None, "not enough permissions (9)")));
        }
        let now = self.now();
        if matches!(verb, "print" | "getall")
            && (request.has("follow") || request.has("follow-only"))
        {
            let target = match menu {
                "/log" => FollowTarget::Log,
                "/ip/firewall/address-list" => FollowTarget::AddressList(Family::V4),
                "/ipv6/firewall/address-list" => FollowTarget::AddressList(Family::V6),
                "/ip/firewall/connection" => FollowTarget::Connections { v6: false },
                "/ipv6/firewall/connection" => FollowTarget::Connections { v6: true },
                _ => {
                    return finish(Err(Trap::new(
                        Some(TrapCategory::General),
                        "follow is not simulated on this menu",
                    )));
                }
            };
            return self.start_follow(target, request, now);
        }
        let result = match (menu, verb) {
            ("/ip/firewall/address-list" | "/ipv6/firewall/address-list", _) => {
                let family = if menu.starts_with("/ipv6") {
                    Family::V6
                } else {
                    Family::V4
                };
                self.address_list_command(family, verb, request, now)
            }
            ("/ip/firewall/connection" | "/ipv6/firewall/connection", _) => {
                let v6 = menu.starts_with("/ipv6");
                self.connection_command(v6, verb, request, now)
            }
            ("/log", "print" | "getall") => {
                let s = self.state();
                let opts = PrintOptions {
                    request,
                    empty_reply: s.config.sends_empty(),
                    now,
                };
                model::print(s.log.entries(), &opts)
            }
            ("/log", level) => self.script_log(level, request),
            ("/system/resource", _) => {
                let s = self.state();
                let uptime = now
                    .duration_since(s.resource.boot_time)
                    .unwrap_or(Duration::ZERO);
                let row = ResourceRow {
                    resource: &s.resource,
                    uptime,
                };
                let opts = PrintOptions {
                    request,
                    empty_reply: s.config.sends_empty(),
                    now,
                };
                model::print(std::iter::once(&row), &opts)
            }
            ("/system/identity", _) => {
                let mut re = Sentence::re();
                re.push_attr("name", self.state().config.identity.as_bytes());
                Ok(vec![re, Sentence::done()])
            }
            ("/system", "reboot") => {
                self.reboot();
                Ok(vec![Sentence::done()])
            }
            ("/ip/address" | "/ipv6/address", _) => {
                let v6 = menu.starts_with("/ipv6");
                let s = self.state();
                let opts = PrintOptions {
                    request,
                    empty_reply: s.config.sends_empty(),
                    now,
                };
                model::print(
                    s.own.iter().filter(|a| a.address.contains(':') == v6),
                    &opts,
                )
            }
            _ => Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "no such command",
            )),
        };
        if needed == Policy::Write {
            self.changed();
        }
        finish(result)
    }

    fn config_menu_command(
        &self,
        menu: &'static crate::model::config::Menu,
        verb: &str,
        policies: &Policies,
        request: &Request,
    ) -> Result<Vec<Sentence>, Trap> {
        if !menu.verbs.contains(&verb) {
            return Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "no such command",
            ));
        }
        let reads = matches!(verb, "print" | "getall");
        if reads && (request.has("follow") || request.has("follow-only")) {
            return Err(Trap::new(
                Some(TrapCategory::General),
                "follow is not simulated on this menu",
            ));
        }
        let needed: &[Policy] = match (reads, menu.needs_policy) {
            (true, _) => &[Policy::Read],
            (false, false) => &[Policy::Write],
            (false, true) => &[Policy::Write, Policy::Policy],
        };
        if !needed.iter().all(|p| policies.contains(*p)) {
            return Err(Trap::new(None, "not enough permissions (9)"));
        }
        let result = self.config_command(menu, verb, request, self.now());
        if !reads {
            self.changed();
        }
        result
    }

    fn start_follow(&self, target: FollowTarget, request: &Request, now: SystemTime) -> Outcome {
        let tag = request.tag.as_deref();
        let query = match Query::parse(&request.queries) {
            Ok(q) => q,
            Err(e) => {
                return Outcome::Reply(vec![
                    Sentence::trap(
                        Some(TrapCategory::ArgumentValue),
                        format!("invalid query word {}", e.word),
                    )
                    .with_tag(tag),
                    Sentence::done().with_tag(tag),
                ]);
            }
        };
        let proplist = request.proplist();
        let mut s = self.state();
        let mut initial = Vec::new();
        let only = request.has("follow-only");
        let mut add = |row: &dyn model::Record| {
            if !only && query.matches(|n| row.field(n, now)) {
                initial.push(model::row_sentence(row, proplist.as_deref(), now).with_tag(tag));
            }
        };
        let next = match target {
            FollowTarget::Log => {
                s.log.entries().for_each(|e| add(e));
                s.log.next_id()
            }
            FollowTarget::AddressList(family) => {
                let table = s.table(family);
                table.expire(now);
                table.entries().for_each(|e| add(e));
                table.feed().next_seq()
            }
            FollowTarget::Connections { v6 } => {
                let style = s.config.port_style;
                s.connections
                    .rows(v6)
                    .for_each(|conn| add(&ConnectionRow { conn, style }));
                s.connections.feed().next_seq()
            }
        };
        let follow = Follow {
            target,
            query,
            proplist,
            next,
            tag: request.tag.clone(),
        };
        Outcome::Follow { initial, follow }
    }

    fn login(&self, session: &mut Session, request: &Request) -> Result<Vec<Sentence>, Trap> {
        let method = self.state().config.login;
        let name = request.get_str("name").unwrap_or_default();
        let ok = match method {
            LoginMethod::Plain => {
                let Some(password) = request.get("password") else {
                    return self.login_failed(session, &name);
                };
                self.state()
                    .check_login(&name, session.peer, |p| p == password)
            }
            LoginMethod::LegacyChallenge => {
                let Some(response) = request.get("response") else {
                    // A pre-6.43 router ignores any other arguments and hands out a challenge.
                    let mut challenge = [0u8; 16];
                    ring::rand::SecureRandom::fill(
                        &ring::rand::SystemRandom::new(),
                        &mut challenge,
                    )
                    .map_err(|_| {
                        Trap::new(
                            Some(TrapCategory::General),
                            "no randomness for the challenge",
                        )
                    })?;
                    session.challenge = Some(challenge.to_vec());
                    return Ok(vec![Sentence::done_ret(hex_encode(&challenge))]);
                };
                let Some(challenge) = session.challenge.take() else {
                    return self.login_failed(session, &name);
                };
                let response = String::from_utf8_lossy(response).to_ascii_lowercase();
                self.state().check_login(&name, session.peer, |p| {
                    challenge_response(p, &challenge) == response
                })
            }
        };
        match ok {
            Some(policies) if policies.contains(Policy::Api) => {
                session.user = Some((name.clone(), policies));
                self.log_login(&name, session.peer, session.service);
                Ok(vec![Sentence::done()])
            }
            _ => self.login_failed(session, &name),
        }
    }

    fn login_failed(&self, session: &Session, name: &str) -> Result<Vec<Sentence>, Trap> {
        self.log_login_failure(name, session.peer, session.service);
        Err(Trap::new(None, "invalid user name or password (6)"))
    }

    fn script_log(&self, level: &str, request: &Request) -> Result<Vec<Sentence>, Trap> {
        let message = request.get("message").unwrap_or_default();
        let topics = match level {
            "info" => "script,info",
            "warning" => "script,warning",
            "error" => "script,error",
            _ => "script,debug",
        };
        self.log(topics, message);
        Ok(vec![Sentence::done()])
    }

    fn address_list_command(
        &self,
        family: Family,
        verb: &str,
        request: &Request,
        now: SystemTime,
    ) -> Result<Vec<Sentence>, Trap> {
        let mut s = self.state();
        let empty_reply = s.config.sends_empty();
        let table = s.table(family);
        table.expire(now);
        match verb {
            "print" | "getall" => {
                let opts = PrintOptions {
                    request,
                    empty_reply,
                    now,
                };
                model::print(table.entries(), &opts)
            }
            "add" => {
                let id = table.add(request, now)?;
                Ok(vec![Sentence::done_ret(model::format_id(id))])
            }
            "set" => {
                let ids = requested_ids(request)?;
                table.set(&ids, request, now)?;
                Ok(vec![Sentence::done()])
            }
            "enable" | "disable" => {
                let ids = requested_ids(request)?;
                let value = if verb == "disable" { "yes" } else { "no" };
                let set = Request::new("set").attr("disabled", value);
                table.set(&ids, &set, now)?;
                Ok(vec![Sentence::done()])
            }
            "remove" => {
                let ids = requested_ids(request)?;
                table.remove(&ids)?;
                Ok(vec![Sentence::done()])
            }
            _ => Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "no such command",
            )),
        }
    }

    fn connection_command(
        &self,
        v6: bool,
        verb: &str,
        request: &Request,
        now: SystemTime,
    ) -> Result<Vec<Sentence>, Trap> {
        let mut s = self.state();
        match verb {
            "remove" => {
                let ids = requested_ids(request)?;
                s.connections.remove(&ids, v6)?;
                Ok(vec![Sentence::done()])
            }
            _ => {
                let style = s.config.port_style;
                let opts = PrintOptions {
                    request,
                    empty_reply: s.config.sends_empty(),
                    now,
                };
                let rows: Vec<ConnectionRow<'_>> = s
                    .connections
                    .rows(v6)
                    .map(|conn| ConnectionRow { conn, style })
                    .collect();
                model::print(rows.iter(), &opts)
            }
        }
    }
}
