//! [`Fleet`]: the one engine that runs routers. Bans go to one router, a group, or all,
//! each router on a task and a connection of its own, so that a slow or unreachable
//! router never holds up the others.
//!
//! Per router, a task:
//! - connects, with exponential backoff and jitter between attempts; the backoff starts
//!   over after a healthy session (reconciled and answering at least one liveness check);
//! - reconciles (which re-applies what the ledger says is missing), then applies queued
//!   bans in batches, every batch in flight at once;
//! - runs the router's [`RouterInput`] hook (log follow, polls) on the same connection,
//!   alongside; the hook failing ends the session;
//! - sends a cheap liveness command (`/system/resource/print =.proplist=uptime`) every
//!   [`FleetConfig::liveness_interval`] with a deadline of
//!   [`FleetConfig::liveness_timeout`]: a stalled link (socket open, no bytes) is dropped
//!   and reconnected; the same uptime tells a reboot, after which the bans are re-applied.
//!
//! Nothing accepted is lost: [`Fleet::order`] records the ban in the ledger (pending)
//! before it is queued. Whatever the connection does next (connecting, backing off, lost
//! mid-batch), the ban stays pending and is applied once the router is back, and its
//! outcome is reported as a [`FleetEvent`]. A ban is never answered "failed" because the
//! link is down: [`FleetEvent::Failed`] means the router refused it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mtids_detect::IpPrefix;
use routeros_proto::Command;
use routeros_proto::net::{Client, ClientConfig, Error as NetError};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::routeros::{AppliedWriter, lock, record_on_routers};
use crate::{
    Ban, BanId, BanLedger, Blocked, Clock, EnforceError, Enforcer, ReconcileReport, RouterOsConfig,
    RouterOsEnforcer, parse_routeros_duration,
};

/// How the fleet runs its routers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FleetConfig {
    /// Work items waiting per router before new bans are not queued (they stay pending in
    /// the ledger and a reconcile applies them once the router has caught up).
    pub queue: usize,
    /// Most bans taken from the queue as one batch (sent 16 at a time, then marked
    /// applied together). Small, because a batch holds its commands and results for
    /// every router at once: the rest wait in the queue, one shared copy per ban.
    pub batch: usize,
    /// First wait after a failed connection; doubles (with jitter) up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts.
    pub backoff_max: Duration,
    /// How often a connected router is sent the liveness command (which is also the
    /// reboot check).
    pub liveness_interval: Duration,
    /// How long the liveness command may take before the link is declared dead.
    pub liveness_timeout: Duration,
    /// Most address-list commands in flight at once over the whole fleet (each router
    /// also has at most 16). Every command out holds a few KiB until answered; without a
    /// fleet-wide bound a burst of bans on thousands of routers takes hundreds of MiB,
    /// which the allocator keeps afterwards.
    pub max_in_flight: usize,
}

impl Default for FleetConfig {
    /// 10,000 queued per router, batches of 16, backoff 200 ms to 30 s, a liveness
    /// check every 5 s answered within 10 s (a dead link is noticed within 15 s), 1,024
    /// address-list commands in flight fleet-wide.
    fn default() -> Self {
        FleetConfig {
            queue: 10_000,
            batch: 16,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            liveness_interval: Duration::from_secs(5),
            liveness_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
        }
    }
}

impl FleetConfig {
    /// Sets the backoff bounds.
    #[must_use]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Sets the queue size per router.
    #[must_use]
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue.max(1);
        self
    }

    /// Sets the most address-list commands in flight at once over the whole fleet.
    #[must_use]
    pub fn max_in_flight(mut self, commands: usize) -> Self {
        self.max_in_flight = commands.max(1);
        self
    }

    /// Sets how often the liveness command is sent and how long it may take.
    #[must_use]
    pub fn liveness(mut self, interval: Duration, timeout: Duration) -> Self {
        self.liveness_interval = interval.max(Duration::from_millis(1));
        self.liveness_timeout = timeout.max(Duration::from_millis(1));
        self
    }
}

/// The wait before reconnection attempt `attempt` (0 for the first after a healthy
/// session): `min * 2^attempt`, capped at `max`, then a random 50-100 % of that, so that
/// many routers lost together do not all come back in the same instant.
pub fn backoff_delay(attempt: u32, min: Duration, max: Duration) -> Duration {
    let full = min
        .checked_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    // Jitter from the clock's low bits: enough to spread reconnects of many routers.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    full.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
}

/// One connected session of a router, handed to its [`RouterInput`] hook.
#[derive(Debug)]
pub struct Session {
    client: Client,
    router: String,
    connection: u64,
}

impl Session {
    /// The logged-in connection (shared with the engine's ban commands).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The router's name.
    pub fn router(&self) -> &str {
        &self.router
    }

    /// Which connection of this router it is: 1 for the first, then one more per
    /// reconnect.
    pub fn connection(&self) -> u64 {
        self.connection
    }
}

/// The input side of a router (log follow, table polls), run by the engine on every
/// connected session alongside its ban-serving loop, on the same connection.
#[async_trait]
pub trait RouterInput: Send + Sync {
    /// Runs for one session. `Err(reason)` ends the session as lost (the engine
    /// reconnects with backoff); `Ok(())` means the input is done, and the engine goes on
    /// serving bans on the connection.
    async fn run(&self, session: &Session) -> Result<(), String>;

    /// How a failed connection attempt is described in [`FleetEvent::Lost`] (for
    /// example naming the configuration key that fixes it).
    fn describe_connect_error(&self, error: &NetError) -> String {
        error.to_string()
    }
}

/// One router of the fleet: how to reach it, how to enforce on it, its groups, its input.
#[derive(Clone)]
#[non_exhaustive]
pub struct FleetRouter {
    /// How to connect (the password never shows in `Debug`).
    pub client: ClientConfig,
    /// The router's name, list and enforcement settings.
    pub enforce: RouterOsConfig,
    /// The groups it belongs to (`edge`, `branch-offices`, ...).
    pub groups: Vec<String>,
    /// The input hook run on each session, if any.
    pub input: Option<Arc<dyn RouterInput>>,
}

impl FleetRouter {
    /// A router in no group, with no input hook.
    pub fn new(client: ClientConfig, enforce: RouterOsConfig) -> Self {
        FleetRouter {
            client,
            enforce,
            groups: Vec::new(),
            input: None,
        }
    }

    /// Sets the groups it belongs to.
    #[must_use]
    pub fn groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Runs `input` on every session of this router.
    #[must_use]
    pub fn input(mut self, input: Arc<dyn RouterInput>) -> Self {
        self.input = Some(input);
        self
    }
}

impl std::fmt::Debug for FleetRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetRouter")
            .field("client", &self.client)
            .field("enforce", &self.enforce)
            .field("groups", &self.groups)
            .field("input", &self.input.is_some())
            .finish()
    }
}

/// One result per router of a fleet operation, by router name.
pub type PerRouter<T> = Vec<(String, Result<T, EnforceError>)>;

/// Which routers a fleet operation is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One router, by name.
    Router(String),
    /// Every router in a group.
    Group(String),
    /// Every router.
    All,
}

/// A ban to apply, with what the caller wants back in the [`FleetEvent`]s.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BanOrder {
    /// The ban.
    pub ban: Ban,
    /// The caller's tag, repeated in every event about this order (0 by default).
    pub tag: u64,
    /// Where latency is measured from (by default, when the order was made).
    pub since: Instant,
    /// Also remove the target's tracked connections once the ban is on the router.
    pub drop_connections: bool,
}

impl BanOrder {
    /// An order for `ban`, tag 0, latency from now, connections kept.
    pub fn new(ban: Ban) -> Self {
        BanOrder {
            ban,
            tag: 0,
            since: Instant::now(),
            drop_connections: false,
        }
    }

    /// Sets the tag.
    #[must_use]
    pub fn tag(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }

    /// Measures latency from `since` (for example the arrival of the deciding event).
    #[must_use]
    pub fn since(mut self, since: Instant) -> Self {
        self.since = since;
        self
    }

    /// Removes the target's connections after the ban.
    #[must_use]
    pub fn drop_connections(mut self, drop: bool) -> Self {
        self.drop_connections = drop;
        self
    }
}

/// What the engine reports as it works (sent to [`FleetBuilder::events`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum FleetEvent {
    /// Logged in to a router.
    Connected {
        /// The router's name.
        router: String,
        /// Which connection (1 for the first).
        connection: u64,
    },
    /// A reconcile ran (after a connect, a reboot, or a queue overflow).
    Reconciled {
        /// The router's name.
        router: String,
        /// What it found and did.
        report: ReconcileReport,
    },
    /// A connection attempt failed or a session was lost (the link stalled, closed, was
    /// reset, or the input hook failed); the next attempt is in `retry_in`.
    Lost {
        /// The router's name.
        router: String,
        /// Why.
        reason: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// A ban is on the router (sent now, or re-applied by the reconcile after a
    /// reconnect when it was accepted while the link was down).
    Applied {
        /// The router's name.
        router: String,
        /// The order's tag.
        tag: u64,
        /// The ban (without its evidence when the ledger recorded it: read it there,
        /// [`crate::BanLedger::evidence`]).
        ban: Ban,
        /// What the router did.
        blocked: Blocked,
        /// From the order's `since` to the router's answer.
        latency: Duration,
    },
    /// The router refused the ban (not a link loss: those are retried). The ledger has it
    /// as failed, with the reason.
    Failed {
        /// The router's name.
        router: String,
        /// The order's tag.
        tag: u64,
        /// The ban.
        ban: Ban,
        /// Why.
        error: String,
    },
    /// The target's connections were removed after its ban ([`BanOrder::drop_connections`]).
    ConnectionsDropped {
        /// The router's name.
        router: String,
        /// The order's tag.
        tag: u64,
        /// The ban's target.
        target: IpPrefix,
        /// How many were removed, or why it failed.
        result: Result<usize, String>,
    },
}

/// Where one router's task stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStatus {
    /// Whether it is connected and reconciled.
    pub connected: bool,
    /// Connections made so far (1 after the first).
    pub connections: u64,
    /// Bans the router confirmed since the fleet started.
    pub applied: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// What the last reconcile found.
    pub last_reconcile: Option<ReconcileReport>,
}

/// A ban accepted for one router, recorded in the ledger (`id`; `None` when the ledger
/// could not record it, then the enforcer records it when it is sent).
///
/// The order is shared by every router it went to (one copy per ban, not per router per
/// ban: with thousands of routers behind on a burst of bans, the copies were most of the
/// daemon's memory); what differs per router is beside it.
#[derive(Clone, Debug)]
struct Queued {
    order: Arc<BanOrder>,
    /// The ban's duration on this router (a repeat ban lasts as long as the ledger says).
    duration: Option<Duration>,
    id: Option<BanId>,
    /// The entry's comment, shared like the order (the routers' caches keep it).
    comment: Arc<str>,
}

impl Queued {
    /// The ban as this router gets it.
    fn ban(&self) -> Ban {
        Ban {
            duration: self.duration,
            ..self.order.ban.clone()
        }
    }
}

/// `order` as one router's queue holds it. Once the ledger has recorded the ban (with its
/// evidence), the evidence is not copied into every router's queue and events: on a
/// fleet that was a JSON tree per router per ban. Unrecorded, the enforcer records it
/// when it is sent, evidence included.
fn queued_order(order: &BanOrder, recorded: bool) -> BanOrder {
    let ban = &order.ban;
    BanOrder {
        ban: Ban {
            target: ban.target,
            duration: ban.duration,
            detector: ban.detector.clone(),
            reason: ban.reason.clone(),
            evidence: if recorded { None } else { ban.evidence.clone() },
        },
        tag: order.tag,
        since: order.since,
        drop_connections: order.drop_connections,
    }
}

enum Job {
    /// Boxed: a router's queue allocates its slots 32 at a time and keeps a few blocks
    /// after a burst; a slot the size of a whole ban, times every router, was most of
    /// what a fleet kept per ban.
    Block(Box<Queued>),
    Unblock(IpPrefix, oneshot::Sender<Result<bool, EnforceError>>),
    DropConnections(IpPrefix, oneshot::Sender<Result<usize, EnforceError>>),
    /// Answered once everything queued before it is done.
    Flush(oneshot::Sender<()>),
}

struct RouterHandle {
    groups: Vec<String>,
    /// The router's enforcement settings (the lists a ban is recorded on).
    enforce: RouterOsConfig,
    jobs: mpsc::Sender<Job>,
    status: watch::Receiver<RouterStatus>,
    /// Set when a ban could not be queued: the task reconciles once its queue is empty.
    overflow: Arc<AtomicBool>,
}

/// How a [`Fleet`] is started: [`Fleet::builder`], then the options, then
/// [`FleetBuilder::start`].
pub struct FleetBuilder {
    config: FleetConfig,
    ledger: Option<Arc<Mutex<BanLedger>>>,
    clock: Clock,
    events: Option<mpsc::UnboundedSender<FleetEvent>>,
}

impl std::fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("config", &self.config)
            .field("ledger", &self.ledger.is_some())
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl FleetBuilder {
    /// Sets how the routers are run.
    #[must_use]
    pub fn config(mut self, config: FleetConfig) -> Self {
        self.config = config;
        self
    }

    /// Enforces, recording in `ledger`. Without a ledger the fleet only connects and runs
    /// the input hooks (dry run): nothing is sent, bans are refused with
    /// [`EnforceError::NotEnforcing`].
    #[must_use]
    pub fn ledger(mut self, ledger: Arc<Mutex<BanLedger>>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Takes ban times from `clock` instead of the system clock.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends every [`FleetEvent`] to `events`.
    #[must_use]
    pub fn events(mut self, events: mpsc::UnboundedSender<FleetEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Starts a task per router (each connects at once, in the background). Must be
    /// called inside a tokio runtime.
    pub fn start(self, routers: Vec<FleetRouter>) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let send_limit = Arc::new(tokio::sync::Semaphore::new(
            self.config
                .max_in_flight
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        ));
        let applied_writer = self.ledger.clone().map(AppliedWriter::start);
        let mut handles = BTreeMap::new();
        let mut tasks = Vec::new();
        for router in routers {
            let (jobs, inbox) = mpsc::channel(self.config.queue.max(1));
            let (status_tx, status) = watch::channel(RouterStatus::default());
            let overflow = Arc::new(AtomicBool::new(false));
            let name = router.enforce.router.clone();
            handles.insert(
                name,
                RouterHandle {
                    groups: router.groups.clone(),
                    enforce: router.enforce.clone(),
                    jobs,
                    status,
                    overflow: Arc::clone(&overflow),
                },
            );
            tasks.push(tokio::spawn(
                RouterTask {
                    router,
                    ledger: self.ledger.clone(),
                    config: self.config.clone(),
                    clock: self.clock.clone(),
                    inbox,
                    status: status_tx,
                    events: self.events.clone(),
                    stop: stopped.clone(),
                    overflow,
                    held: VecDeque::new(),
                    sending: Vec::new(),
                    send_limit: Arc::clone(&send_limit),
                    applied_writer: applied_writer.clone(),
                }
                .run(),
            ));
        }
        Fleet {
            routers: handles,
            ledger: self.ledger,
            config: self.config,
            clock: self.clock,
            stop,
            tasks: Mutex::new(tasks),
        }
    }
}

/// Enforcement (and input) on many routers, each on its own task and connection.
///
/// Must be started inside a tokio runtime. [`Fleet::shutdown`] (or dropping it) stops the
/// tasks; bans still queued stay pending in the ledger.
pub struct Fleet {
    routers: BTreeMap<String, RouterHandle>,
    ledger: Option<Arc<Mutex<BanLedger>>>,
    config: FleetConfig,
    clock: Clock,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("routers", &self.routers.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A builder with the default configuration, no ledger (dry run), the system clock
    /// and no event receiver.
    pub fn builder() -> FleetBuilder {
        FleetBuilder {
            config: FleetConfig::default(),
            ledger: None,
            clock: Arc::new(SystemTime::now),
            events: None,
        }
    }

    /// Starts a task per router, enforcing with `ledger` (each connects at once, in the
    /// background).
    pub fn start(
        routers: Vec<FleetRouter>,
        ledger: Arc<Mutex<BanLedger>>,
        config: FleetConfig,
    ) -> Self {
        Self::builder().config(config).ledger(ledger).start(routers)
    }

    /// As [`Fleet::start`], with ban times from `clock`.
    pub fn start_with_clock(
        routers: Vec<FleetRouter>,
        ledger: Arc<Mutex<BanLedger>>,
        config: FleetConfig,
        clock: Clock,
    ) -> Self {
        Self::builder()
            .config(config)
            .ledger(ledger)
            .clock(clock)
            .start(routers)
    }

    /// The routers a scope names.
    ///
    /// # Errors
    /// [`EnforceError::UnknownRouter`] or [`EnforceError::UnknownGroup`].
    pub fn resolve(&self, scope: &Scope) -> Result<Vec<String>, EnforceError> {
        match scope {
            Scope::All => Ok(self.routers.keys().cloned().collect()),
            Scope::Router(name) if self.routers.contains_key(name) => Ok(vec![name.clone()]),
            Scope::Router(name) => Err(EnforceError::UnknownRouter(name.clone())),
            Scope::Group(group) => {
                let names: Vec<String> = self
                    .routers
                    .iter()
                    .filter(|(_, h)| h.groups.iter().any(|g| g == group))
                    .map(|(n, _)| n.clone())
                    .collect();
                if names.is_empty() {
                    Err(EnforceError::UnknownGroup(group.clone()))
                } else {
                    Ok(names)
                }
            }
        }
    }

    /// [`Fleet::order`] of `ban` with the default order options.
    ///
    /// # Errors
    /// As [`Fleet::order`].
    pub fn apply(&self, scope: &Scope, ban: &Ban) -> Result<PerRouter<()>, EnforceError> {
        self.order(scope, &BanOrder::new(ban.clone()))
    }

    /// Records `order`'s ban in the ledger (pending) for every router of `scope`, then
    /// queues it, without waiting for any router. Its outcome comes as a
    /// [`FleetEvent::Applied`] or [`FleetEvent::Failed`] once the router has it, however
    /// long the router is away. Per router: `Ok` once queued;
    /// [`EnforceError::QueueFull`] when that router is too far behind (the ban stays
    /// pending and is applied by a reconcile once the queue has drained, without an
    /// event).
    ///
    /// # Errors
    /// An unknown router or group; [`EnforceError::NotEnforcing`] without a ledger.
    pub fn order(&self, scope: &Scope, order: &BanOrder) -> Result<PerRouter<()>, EnforceError> {
        let names = self.resolve(scope)?;
        let Some(ledger) = &self.ledger else {
            return Err(EnforceError::NotEnforcing(names.join(", ")));
        };
        let now = (self.clock)();
        let handles: Vec<(String, &RouterHandle)> = names
            .into_iter()
            .filter_map(|name| self.routers.get(&name).map(|h| (name, h)))
            .collect();
        // The whole fan-out in one ledger transaction: one lock and one sync, not a
        // write per router.
        let pairs: Vec<(&RouterOsConfig, &Ban)> = handles
            .iter()
            .map(|(_, h)| (&h.enforce, &order.ban))
            .collect();
        let recorded = match record_on_routers(ledger, &pairs, now) {
            Ok(ids) => ids.into_iter().map(Some).collect(),
            Err(e) => {
                tracing::error!(
                    routers = handles.len(),
                    "cannot record a ban before queueing it: {e}"
                );
                vec![None; handles.len()]
            }
        };
        let mut out = Vec::with_capacity(handles.len());
        let shared = Arc::new(queued_order(order, true));
        let comment: Arc<str> = Arc::from(order.ban.comment());
        let mut unrecorded = None;
        for ((name, handle), recorded) in handles.into_iter().zip(recorded) {
            let queued = match recorded {
                // A repeat ban extended the one recorded: the router gets the longest
                // expiry, as the ledger says.
                Some((id, duration)) => Queued {
                    order: Arc::clone(&shared),
                    duration,
                    id: Some(id),
                    comment: Arc::clone(&comment),
                },
                None => Queued {
                    order: Arc::clone(
                        unrecorded.get_or_insert_with(|| Arc::new(queued_order(order, false))),
                    ),
                    duration: order.ban.duration,
                    id: None,
                    comment: Arc::clone(&comment),
                },
            };
            let job = Job::Block(Box::new(queued));
            let result = match handle.jobs.try_send(job) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    handle.overflow.store(true, Ordering::Relaxed);
                    Err(EnforceError::QueueFull {
                        router: name.clone(),
                        target: order.ban.target,
                        queued: self.config.queue,
                    })
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Err(EnforceError::Stopped(name.clone()))
                }
            };
            out.push((name, result));
        }
        Ok(out)
    }

    /// Removes `target` from every router of `scope`; waits for each router's answer.
    ///
    /// # Errors
    /// An unknown router or group.
    pub async fn unblock(
        &self,
        scope: &Scope,
        target: IpPrefix,
    ) -> Result<PerRouter<bool>, EnforceError> {
        self.ask(scope, |tx| Job::Unblock(target, tx)).await
    }

    /// Drops `target`'s connections on every router of `scope`.
    ///
    /// # Errors
    /// An unknown router or group.
    pub async fn drop_connections(
        &self,
        scope: &Scope,
        target: IpPrefix,
    ) -> Result<PerRouter<usize>, EnforceError> {
        self.ask(scope, |tx| Job::DropConnections(target, tx)).await
    }

    async fn ask<T>(
        &self,
        scope: &Scope,
        job: impl Fn(oneshot::Sender<Result<T, EnforceError>>) -> Job,
    ) -> Result<PerRouter<T>, EnforceError> {
        let names = self.resolve(scope)?;
        let mut waiting = Vec::new();
        for name in names {
            let Some(handle) = self.routers.get(&name) else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            let sent = handle.jobs.send(job(tx)).await.is_ok();
            waiting.push((name, sent.then_some(rx)));
        }
        let mut out = Vec::new();
        for (name, rx) in waiting {
            let result = match rx {
                Some(rx) => rx
                    .await
                    .unwrap_or_else(|_| Err(EnforceError::Stopped(name.clone()))),
                None => Err(EnforceError::Stopped(name.clone())),
            };
            out.push((name, result));
        }
        Ok(out)
    }

    /// Waits until `router` has handled everything queued for it so far (applied, or
    /// held pending in the ledger until the router is back).
    ///
    /// # Errors
    /// An unknown router, or its task has stopped.
    pub async fn flush(&self, router: &str) -> Result<(), EnforceError> {
        let handle = self
            .routers
            .get(router)
            .ok_or_else(|| EnforceError::UnknownRouter(router.to_owned()))?;
        let (tx, rx) = oneshot::channel();
        handle
            .jobs
            .send(Job::Flush(tx))
            .await
            .map_err(|_| EnforceError::Stopped(router.to_owned()))?;
        rx.await
            .map_err(|_| EnforceError::Stopped(router.to_owned()))
    }

    /// Where a router's task stands.
    pub fn status(&self, router: &str) -> Option<RouterStatus> {
        self.routers.get(router).map(|h| h.status.borrow().clone())
    }

    /// A receiver of a router's status, to wait for a change (connected, reconciled).
    pub fn watch_status(&self, router: &str) -> Option<watch::Receiver<RouterStatus>> {
        self.routers.get(router).map(|h| h.status.clone())
    }

    /// Stops every router's task (closing its connection) and waits for them. Bans still
    /// queued stay pending in the ledger, for the next start.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The task that owns one router's connection.
struct RouterTask {
    router: FleetRouter,
    ledger: Option<Arc<Mutex<BanLedger>>>,
    config: FleetConfig,
    clock: Clock,
    inbox: mpsc::Receiver<Job>,
    status: watch::Sender<RouterStatus>,
    events: Option<mpsc::UnboundedSender<FleetEvent>>,
    stop: watch::Receiver<bool>,
    overflow: Arc<AtomicBool>,
    /// Bans accepted while the router could not take them (pending in the ledger): their
    /// outcome is reported after the reconcile of the next session.
    held: VecDeque<Queued>,
    /// The batch in flight, held again if the session ends before it is answered.
    sending: Vec<Queued>,
    /// Address-list commands in flight, fleet-wide ([`FleetConfig::max_in_flight`]).
    send_limit: Arc<tokio::sync::Semaphore>,
    /// Writes "applied" for many routers in one ledger transaction.
    applied_writer: Option<AppliedWriter>,
}

/// Why a session ended.
enum Ended {
    /// The fleet stops.
    Stop,
    /// The connection was lost: reconnect.
    Lost(String),
}

/// The liveness command: the cheapest print there is, whose uptime also tells a reboot.
/// An uptime lower than the last one seen means the router restarted, and every
/// address-list entry with a timeout (a dynamic entry) is gone (ROUTEROS.md, the table of
/// API commands: "entries with a timeout are dynamic: a router reboot erases them"; "an
/// uptime that went down means the router rebooted").
fn liveness_command() -> Command {
    Command::new("/system/resource/print").proplist(["uptime"])
}

impl RouterTask {
    fn name(&self) -> &str {
        &self.router.enforce.router
    }

    fn emit(&self, event: FleetEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event); // Nobody listening any more is fine.
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut last_uptime = None;
        let mut connections = 0;
        let mut stop = self.stop.clone();
        loop {
            if self.stopping() {
                return;
            }
            let connected = tokio::select! {
                r = Client::connect(&self.router.client) => r,
                _ = stop.changed() => return,
            };
            let reason = match connected {
                Ok(client) => {
                    connections += 1;
                    tracing::info!(router = self.name(), connections, "connected");
                    self.status.send_modify(|s| s.connections = connections);
                    self.emit(FleetEvent::Connected {
                        router: self.name().to_owned(),
                        connection: connections,
                    });
                    let (ended, healthy) =
                        self.session(&client, connections, &mut last_uptime).await;
                    self.status.send_modify(|s| s.connected = false);
                    // The batch in flight when the session ended is pending: held again.
                    let unanswered = std::mem::take(&mut self.sending);
                    self.held.extend(unanswered);
                    if healthy {
                        attempt = 0;
                    }
                    match ended {
                        Ended::Stop => {
                            close(&client).await;
                            return;
                        }
                        Ended::Lost(why) => {
                            // Reported before the close, which may wait on a dead link.
                            let retry_in = self.lost(&why, &mut attempt);
                            close(&client).await;
                            if !self.wait_disconnected(retry_in, &why).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
                Err(e) => match &self.router.input {
                    Some(input) => input.describe_connect_error(&e),
                    None => e.to_string(),
                },
            };
            let retry_in = self.lost(&reason, &mut attempt);
            if !self.wait_disconnected(retry_in, &reason).await {
                return;
            }
        }
    }

    /// Reports a failed attempt or a lost session; returns the backoff before the next.
    fn lost(&self, reason: &str, attempt: &mut u32) -> Duration {
        let retry_in = backoff_delay(*attempt, self.config.backoff_min, self.config.backoff_max);
        *attempt = attempt.saturating_add(1);
        let retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
        if self.status.borrow().connected {
            tracing::warn!(router = self.name(), error = %reason, retry_in_ms, "router connection lost");
        } else {
            // Never connected (or not since the last loss): an attempt that failed.
            tracing::warn!(router = self.name(), error = %reason, retry_in_ms, "router connection failed");
        }
        self.status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(reason.to_owned());
        });
        self.emit(FleetEvent::Lost {
            router: self.name().to_owned(),
            reason: reason.to_owned(),
            retry_in,
        });
        retry_in
    }

    /// Waits `backoff` while disconnected, holding bans that arrive meanwhile (recorded
    /// pending; the reconcile after the reconnect applies them). `false`: stop.
    async fn wait_disconnected(&mut self, backoff: Duration, reason: &str) -> bool {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                _ = stop.changed() => return false,
                job = self.inbox.recv() => {
                    let Some(job) = job else { return false };
                    self.answer_while_lost(job, reason);
                }
            }
        }
    }

    /// One logged-in session: the input hook, the liveness check and the ban-serving
    /// loop side by side, so a batch or a print waiting on a dead link never delays the
    /// liveness check. Returns why it ended and whether it was healthy (reconciled and
    /// answered a liveness check), which resets the backoff.
    async fn session(
        &mut self,
        client: &Client,
        connection: u64,
        last_uptime: &mut Option<Duration>,
    ) -> (Ended, bool) {
        let session = Session {
            client: client.clone(),
            router: self.name().to_owned(),
            connection,
        };
        let input = self.router.input.clone();
        let hook = async {
            match &input {
                Some(input) => match input.run(&session).await {
                    Ok(()) => std::future::pending().await,
                    Err(reason) => reason,
                },
                None => std::future::pending().await,
            }
        };
        let enforcer = self.ledger.as_ref().map(|ledger| {
            let enforcer = RouterOsEnforcer::new(
                client.clone(),
                self.router.enforce.clone(),
                Arc::clone(ledger),
            )
            .with_clock(self.clock.clone())
            .with_last_uptime(*last_uptime)
            .with_send_limit(Arc::clone(&self.send_limit));
            match &self.applied_writer {
                Some(writer) => enforcer.with_applied_writer(writer.clone()),
                None => enforcer,
            }
        });
        let probe = Liveness {
            client,
            router: self.name().to_owned(),
            interval: self.config.liveness_interval,
            timeout: self.config.liveness_timeout,
            // Without a ledger there is nothing to reconcile.
            reconciled: AtomicBool::new(enforcer.is_none()),
            healthy: AtomicBool::new(false),
            rebooted: Notify::new(),
            uptime: Mutex::new(None),
            enforcer: enforcer.as_ref(),
        };
        let mut stop = self.stop.clone();
        let ended = tokio::select! {
            reason = hook => Ended::Lost(reason),
            reason = probe.run() => Ended::Lost(reason),
            ended = self.serve(enforcer.as_ref(), &probe) => ended,
            _ = stop.changed() => Ended::Stop,
        };
        let seen = *lock(&probe.uptime);
        *last_uptime = seen
            .or_else(|| enforcer.as_ref().and_then(RouterOsEnforcer::last_uptime))
            .or(*last_uptime);
        (ended, probe.healthy.load(Ordering::Relaxed))
    }

    /// Reconciles, then serves the queue (and the reconciles a reboot asks for) until the
    /// session ends.
    async fn serve(&mut self, enforcer: Option<&RouterOsEnforcer>, probe: &Liveness<'_>) -> Ended {
        if let Some(enforcer) = enforcer {
            let report = match enforcer.reconcile().await {
                Ok(report) => report,
                Err(e) => return Ended::Lost(format!("reconcile: {e}")),
            };
            self.reconciled(&report);
            probe.reconciled.store(true, Ordering::Relaxed);
            if let Some(lost) = self.settle_held(enforcer, &report).await {
                return Ended::Lost(lost);
            }
        }
        self.status.send_modify(|s| {
            s.connected = true;
            s.last_error = None;
        });
        loop {
            if let Some(enforcer) = enforcer
                && self.inbox.is_empty()
                && self.overflow.swap(false, Ordering::Relaxed)
            {
                // Bans that found the queue full are pending in the ledger: apply them.
                if let Some(lost) = self.reconcile(enforcer, "after a full queue").await {
                    return Ended::Lost(lost);
                }
            }
            tokio::select! {
                job = self.inbox.recv() => {
                    let Some(job) = job else { return Ended::Stop };
                    if let Some(lost) = self.handle(enforcer, job).await {
                        return Ended::Lost(lost);
                    }
                }
                () = probe.rebooted.notified() => {
                    tracing::warn!(router = self.name(), "router rebooted: re-applying bans");
                    if let Some(enforcer) = enforcer
                        && let Some(lost) = self.reconcile(enforcer, "after a reboot").await
                    {
                        return Ended::Lost(lost);
                    }
                }
            }
        }
    }

    /// A reconcile in the middle of a session; `Some(reason)` when the link was lost.
    async fn reconcile(&self, enforcer: &RouterOsEnforcer, why: &str) -> Option<String> {
        match enforcer.reconcile().await {
            Ok(report) => {
                self.reconciled(&report);
                None
            }
            Err(e) if e.is_connection() => Some(e.to_string()),
            Err(e) => {
                tracing::warn!(router = self.name(), "reconcile {why}: {e}");
                None
            }
        }
    }

    fn reconciled(&self, report: &ReconcileReport) {
        if report.reapplied > 0 || report.rebooted || !report.failed.is_empty() {
            tracing::info!(router = self.name(), ?report, "reconciled");
        }
        self.status.send_modify(|s| {
            s.applied += report.reapplied as u64;
            s.last_reconcile = Some(report.clone());
        });
        self.emit(FleetEvent::Reconciled {
            router: self.name().to_owned(),
            report: report.clone(),
        });
    }

    /// After a reconcile: the bans held while the router was away were re-applied by it
    /// (they were pending in the ledger); report each one's outcome. Any the reconcile
    /// did not cover are sent now. `Some(reason)` when the connection was lost.
    async fn settle_held(
        &mut self,
        enforcer: &RouterOsEnforcer,
        report: &ReconcileReport,
    ) -> Option<String> {
        if self.held.is_empty() {
            return None;
        }
        let listed: HashMap<IpPrefix, String> = enforcer
            .enforced()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.target, e.id))
            .collect();
        let failed: HashMap<IpPrefix, &String> =
            report.failed.iter().map(|(t, why)| (*t, why)).collect();
        let mut resend = Vec::new();
        let mut settled = Vec::new();
        for queued in std::mem::take(&mut self.held) {
            let target = queued.order.ban.target;
            if let Some(why) = failed.get(&target) {
                self.emit(FleetEvent::Failed {
                    router: self.name().to_owned(),
                    tag: queued.order.tag,
                    ban: queued.ban(),
                    error: (*why).clone(),
                });
            } else if let Some(id) = listed.get(&target) {
                let blocked = if report.missing.contains(&target) {
                    Blocked::Added { id: id.clone() }
                } else {
                    Blocked::Updated { id: id.clone() }
                };
                settled.push((queued, blocked));
            } else {
                resend.push(queued);
            }
        }
        let mut lost = None;
        for (queued, blocked) in settled {
            if let Some(why) = self.applied(enforcer, queued, blocked).await {
                lost.get_or_insert(why);
            }
        }
        if lost.is_some() {
            self.held.extend(resend);
            return lost;
        }
        if resend.is_empty() {
            None
        } else {
            self.send_batch(enforcer, resend).await
        }
    }

    /// Reports one ban on the router, then removes its target's connections if asked.
    /// `Some(reason)` when the connection was lost doing that.
    async fn applied(
        &self,
        enforcer: &RouterOsEnforcer,
        queued: Queued,
        blocked: Blocked,
    ) -> Option<String> {
        let ban = queued.ban();
        let order = queued.order;
        let target = order.ban.target;
        self.emit(FleetEvent::Applied {
            router: self.name().to_owned(),
            tag: order.tag,
            latency: order.since.elapsed(),
            ban,
            blocked,
        });
        if !order.drop_connections {
            return None;
        }
        let result = enforcer.drop_connections(target).await;
        let lost = lost_reason(&result);
        self.emit(FleetEvent::ConnectionsDropped {
            router: self.name().to_owned(),
            tag: order.tag,
            target,
            result: result.map_err(|e| e.to_string()),
        });
        lost
    }

    /// Sends one batch, all in flight at once, and reports each outcome. Bans whose
    /// command was lost with the connection are held for the next session.
    async fn send_batch(
        &mut self,
        enforcer: &RouterOsEnforcer,
        batch: Vec<Queued>,
    ) -> Option<String> {
        self.sending = batch;
        let recorded: Vec<(BanId, IpPrefix, Option<Duration>, Arc<str>)> = self
            .sending
            .iter()
            .filter_map(|q| {
                q.id.map(|id| (id, q.order.ban.target, q.duration, Arc::clone(&q.comment)))
            })
            .collect();
        let mut results = enforcer.block_recorded(recorded).await.into_iter();
        let unrecorded: Vec<Ban> = self
            .sending
            .iter()
            .filter(|q| q.id.is_none())
            .map(Queued::ban)
            .collect();
        let mut late = if unrecorded.is_empty() {
            Vec::new()
        } else {
            enforcer.block_all(&unrecorded).await
        }
        .into_iter();
        let batch = std::mem::take(&mut self.sending);
        let mut lost = None;
        let mut applied = 0;
        for queued in batch {
            let result = if queued.id.is_some() {
                results.next()
            } else {
                late.next()
            };
            let result =
                result.unwrap_or_else(|| Err(EnforceError::Stopped(self.name().to_owned())));
            match result {
                Ok(blocked) => {
                    applied += 1;
                    if lost.is_some() {
                        // Reported; its connections are removed on no dead link.
                        self.emit(FleetEvent::Applied {
                            router: self.name().to_owned(),
                            tag: queued.order.tag,
                            latency: queued.order.since.elapsed(),
                            ban: queued.ban(),
                            blocked,
                        });
                    } else if let Some(why) = self.applied(enforcer, queued, blocked).await {
                        lost = Some(why);
                    }
                }
                Err(e) if e.is_connection() => {
                    lost.get_or_insert_with(|| e.to_string());
                    self.hold(queued);
                }
                Err(e) => {
                    tracing::warn!(router = self.name(), "ban refused: {e}");
                    let error = e.to_string();
                    self.status
                        .send_modify(|s| s.last_error = Some(error.clone()));
                    self.emit(FleetEvent::Failed {
                        router: self.name().to_owned(),
                        tag: queued.order.tag,
                        ban: queued.ban(),
                        error,
                    });
                }
            }
        }
        self.status.send_modify(|s| s.applied += applied);
        lost
    }

    /// Keeps a ban accepted while the router cannot take it, for the next session (at
    /// most `queue` of them: beyond, the ban stays pending in the ledger and the
    /// reconcile applies it, without an event).
    fn hold(&mut self, queued: Queued) {
        if self.held.len() < self.config.queue {
            self.held.push_back(queued);
        } else {
            tracing::warn!(
                router = self.name(),
                target = %queued.order.ban.target,
                "too many bans held for a router away: this one is applied from the ledger on reconnect, unreported"
            );
        }
    }

    /// Handles one job (a block takes the bans queued behind it into the same batch).
    /// `Some(reason)` when the connection was lost.
    async fn handle(&mut self, enforcer: Option<&RouterOsEnforcer>, job: Job) -> Option<String> {
        let Some(enforcer) = enforcer else {
            self.answer_without_ledger(job);
            return None;
        };
        match job {
            Job::Block(first) => {
                let mut bans = vec![*first];
                let mut after = None;
                while bans.len() < self.config.batch {
                    match self.inbox.try_recv() {
                        Ok(Job::Block(queued)) => bans.push(*queued),
                        Ok(other) => {
                            after = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Some(lost) = self.send_batch(enforcer, bans).await {
                    if let Some(job) = after {
                        self.answer_while_lost(job, &lost);
                    }
                    return Some(lost);
                }
                match after {
                    Some(job) => Box::pin(self.handle(Some(enforcer), job)).await,
                    None => None,
                }
            }
            Job::Unblock(target, tx) => {
                let result = enforcer.unblock(target).await;
                let lost = lost_reason(&result);
                let _ = tx.send(result);
                lost
            }
            Job::DropConnections(target, tx) => {
                let result = enforcer.drop_connections(target).await;
                let lost = lost_reason(&result);
                let _ = tx.send(result);
                lost
            }
            Job::Flush(tx) => {
                let _ = tx.send(());
                None
            }
        }
    }

    /// A job that cannot reach the router (lost for `reason`): a ban is held (it is
    /// pending in the ledger already); everything else is answered now.
    fn answer_while_lost(&mut self, job: Job, reason: &str) {
        let unavailable = || EnforceError::Unavailable {
            router: self.name().to_owned(),
            reason: reason.to_owned(),
        };
        match job {
            Job::Block(queued) => self.hold(*queued),
            Job::Unblock(_, tx) => {
                let _ = tx.send(Err(unavailable()));
            }
            Job::DropConnections(_, tx) => {
                let _ = tx.send(Err(unavailable()));
            }
            Job::Flush(tx) => {
                let _ = tx.send(());
            }
        }
    }

    /// Without a ledger nothing is enforced (no block job can be queued then).
    fn answer_without_ledger(&self, job: Job) {
        let refused = || EnforceError::NotEnforcing(self.name().to_owned());
        match job {
            Job::Block(_) => {}
            Job::Unblock(_, tx) => {
                let _ = tx.send(Err(refused()));
            }
            Job::DropConnections(_, tx) => {
                let _ = tx.send(Err(refused()));
            }
            Job::Flush(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

/// The liveness check of one session.
struct Liveness<'a> {
    client: &'a Client,
    router: String,
    interval: Duration,
    timeout: Duration,
    /// Set once the session's first reconcile is done.
    reconciled: AtomicBool,
    /// Set by a liveness answer after the reconcile: the session was healthy.
    healthy: AtomicBool,
    /// Told when the uptime went down (the router rebooted).
    rebooted: Notify,
    /// The last uptime the router reported in this session.
    uptime: Mutex<Option<Duration>>,
    /// The session's enforcer, whose cache each answer sweeps of bans that ran out.
    enforcer: Option<&'a RouterOsEnforcer>,
}

impl Liveness<'_> {
    /// Sends the liveness command every `interval`, each with a deadline of `timeout`;
    /// returns why the link is dead. A lower uptime than before means a reboot.
    async fn run(&self) -> String {
        let mut every = tokio::time::interval(self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let answer = tokio::time::timeout(
                self.timeout,
                self.client
                    .call_with_timeout(liveness_command(), Some(self.timeout)),
            )
            .await;
            let uptime = match answer {
                Err(_) | Ok(Err(NetError::Timeout { .. })) => {
                    return format!(
                        "no answer to the liveness check within {:?}: link stalled",
                        self.timeout
                    );
                }
                // The router answered, if only to refuse: the link is alive.
                Ok(Err(NetError::Trap { .. })) => None,
                Ok(Err(e)) => return format!("liveness check: {e}"),
                Ok(Ok(response)) => response
                    .rows
                    .first()
                    .and_then(|r| r.get_str("uptime"))
                    .and_then(|u| parse_routeros_duration(&u)),
            };
            if self.reconciled.load(Ordering::Relaxed) {
                self.healthy.store(true, Ordering::Relaxed);
            }
            // What the cache held for bans that ended is freed within an interval of
            // their end, not at the next burst of bans.
            if let Some(enforcer) = self.enforcer {
                enforcer.sweep_expired();
            }
            let Some(uptime) = uptime else { continue };
            let before = lock(&self.uptime).replace(uptime);
            if before.is_some_and(|before| uptime < before) {
                tracing::warn!(router = %self.router, "the router's uptime went down: it rebooted");
                self.rebooted.notify_one();
            }
        }
    }
}

/// Closes a session without waiting long on a dead link.
async fn close(client: &Client) {
    let _ = tokio::time::timeout(Duration::from_secs(1), client.close()).await;
}

fn lost_reason<T>(result: &Result<T, EnforceError>) -> Option<String> {
    match result {
        Err(e) if e.is_connection() => Some(e.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 0..40 {
            let d = backoff_delay(attempt, min, max);
            let full = min
                .checked_mul(1u32 << attempt.min(20))
                .unwrap_or(max)
                .min(max);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff_delay(30, min, max) <= max);
        assert!(backoff_delay(0, min, max) <= min);
    }
}
