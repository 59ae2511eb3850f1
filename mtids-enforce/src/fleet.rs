//! [`Fleet`]: bans applied to one router, a group, or all, each router on a task of its
//! own so that a slow or unreachable router never holds up the others.
//!
//! Per router: one connection, a bounded queue of work, a task that connects (with
//! exponential backoff), reconciles (which re-applies what the ledger says is missing),
//! then applies queued bans in batches, every batch in flight at once. Nothing accepted is
//! lost: a ban is recorded in the ledger as soon as the task takes it; if the connection
//! drops before the router confirms it, it stays pending and the reconcile after the
//! reconnect applies it. A ban refused because the queue is full is recorded as failed,
//! with that reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mtids_detect::IpPrefix;
use routeros_proto::net::{Client, ClientConfig};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::routeros::{lock, record_bans};
use crate::{
    Ban, BanLedger, Clock, EnforceError, Enforcer, ReconcileReport, RouterOsConfig,
    RouterOsEnforcer,
};

/// How the fleet runs its routers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FleetConfig {
    /// Work items waiting per router before new bans are refused (and recorded as failed).
    pub queue: usize,
    /// Most bans sent as one batch (all in flight at once).
    pub batch: usize,
    /// First wait after a failed connection; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts.
    pub backoff_max: Duration,
    /// How often a connected router's uptime is checked for a reboot.
    pub reboot_check: Duration,
}

impl Default for FleetConfig {
    /// 10,000 queued per router, batches of 1,000, backoff 200 ms to 30 s, a reboot check
    /// every 30 s.
    fn default() -> Self {
        FleetConfig {
            queue: 10_000,
            batch: 1_000,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            reboot_check: Duration::from_secs(30),
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

    /// Sets how often uptime is checked for a reboot.
    #[must_use]
    pub fn reboot_check(mut self, every: Duration) -> Self {
        self.reboot_check = every;
        self
    }
}

/// One router of the fleet: how to reach it, how to enforce on it, its groups.
#[derive(Clone, Debug)]
pub struct FleetRouter {
    /// How to connect (the password never shows in `Debug`).
    pub client: ClientConfig,
    /// The router's name, list and enforcement settings.
    pub enforce: RouterOsConfig,
    /// The groups it belongs to (`edge`, `branch-offices`, ...).
    pub groups: Vec<String>,
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

enum Job {
    Block(Ban),
    Unblock(IpPrefix, oneshot::Sender<Result<bool, EnforceError>>),
    DropConnections(IpPrefix, oneshot::Sender<Result<usize, EnforceError>>),
    /// Answered once everything queued before it is done.
    Flush(oneshot::Sender<()>),
}

struct RouterHandle {
    groups: Vec<String>,
    /// The router's enforcement settings (the lists a refused ban is recorded on).
    enforce: RouterOsConfig,
    jobs: mpsc::Sender<Job>,
    status: watch::Receiver<RouterStatus>,
    task: JoinHandle<()>,
}

/// Enforcement on many routers, each on its own task and connection.
///
/// Must be started inside a tokio runtime. Dropping it (or [`Fleet::shutdown`]) stops the
/// tasks after the work already queued.
pub struct Fleet {
    routers: BTreeMap<String, RouterHandle>,
    ledger: Arc<Mutex<BanLedger>>,
    config: FleetConfig,
    clock: Clock,
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
    /// Starts a task per router (each connects at once, in the background).
    pub fn start(
        routers: Vec<FleetRouter>,
        ledger: Arc<Mutex<BanLedger>>,
        config: FleetConfig,
    ) -> Self {
        Self::start_with_clock(routers, ledger, config, Arc::new(SystemTime::now))
    }

    /// As [`Fleet::start`], with ban times from `clock`.
    pub fn start_with_clock(
        routers: Vec<FleetRouter>,
        ledger: Arc<Mutex<BanLedger>>,
        config: FleetConfig,
        clock: Clock,
    ) -> Self {
        let mut handles = BTreeMap::new();
        for router in routers {
            let (jobs, inbox) = mpsc::channel(config.queue.max(1));
            let (status_tx, status) = watch::channel(RouterStatus::default());
            let name = router.enforce.router.clone();
            let enforce = router.enforce.clone();
            let groups = router.groups.clone();
            let task = tokio::spawn(
                RouterTask {
                    router,
                    ledger: ledger.clone(),
                    config: config.clone(),
                    clock: clock.clone(),
                    inbox,
                    status: status_tx,
                }
                .run(),
            );
            handles.insert(
                name,
                RouterHandle {
                    groups,
                    enforce,
                    jobs,
                    status,
                    task,
                },
            );
        }
        Fleet {
            routers: handles,
            ledger,
            config,
            clock,
        }
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

    /// Queues `ban` for every router of `scope`, without waiting for any router. Per
    /// router: `Ok` once queued; [`EnforceError::QueueFull`] (also recorded in the ledger
    /// as a failed ban) when that router is too far behind.
    ///
    /// # Errors
    /// An unknown router or group.
    pub fn apply(&self, scope: &Scope, ban: &Ban) -> Result<PerRouter<()>, EnforceError> {
        let names = self.resolve(scope)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Some(handle) = self.routers.get(&name) else {
                continue;
            };
            let result = match handle.jobs.try_send(Job::Block(ban.clone())) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let error = EnforceError::QueueFull {
                        router: name.clone(),
                        target: ban.target,
                        queued: self.config.queue,
                    };
                    self.record_failed(&handle.enforce, ban, &error);
                    Err(error)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Err(EnforceError::Stopped(name.clone()))
                }
            };
            out.push((name, result));
        }
        Ok(out)
    }

    fn record_failed(&self, config: &RouterOsConfig, ban: &Ban, error: &EnforceError) {
        let router = config.router.as_str();
        let now = (self.clock)();
        let recorded = record_bans(&self.ledger, config, std::slice::from_ref(ban), now);
        let result = recorded.and_then(|ids| {
            let mut ledger = lock(&self.ledger);
            for id in ids {
                ledger.mark_failed(id, &error.to_string(), now)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(router, "cannot record a refused ban: {e}");
        }
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
    /// left pending in the ledger for the next reconcile).
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

    /// Stops every router's task after the work already queued, and waits for them.
    pub async fn shutdown(self) {
        let mut tasks = Vec::new();
        for (_, handle) in self.routers {
            drop(handle.jobs);
            tasks.push(handle.task);
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The task that owns one router's connection.
struct RouterTask {
    router: FleetRouter,
    ledger: Arc<Mutex<BanLedger>>,
    config: FleetConfig,
    clock: Clock,
    inbox: mpsc::Receiver<Job>,
    status: watch::Sender<RouterStatus>,
}

/// Why the serving loop ended.
enum Ended {
    /// The fleet dropped its handle: stop.
    Stop,
    /// The connection was lost: reconnect.
    Lost(String),
}

impl RouterTask {
    fn name(&self) -> &str {
        &self.router.enforce.router
    }

    async fn run(mut self) {
        let mut backoff = self.config.backoff_min;
        let mut last_uptime = None;
        loop {
            let error = match Client::connect(&self.router.client).await {
                Ok(client) => {
                    let enforcer = RouterOsEnforcer::new(
                        client.clone(),
                        self.router.enforce.clone(),
                        self.ledger.clone(),
                    )
                    .with_clock(self.clock.clone())
                    .with_last_uptime(last_uptime);
                    match enforcer.reconcile().await {
                        Ok(report) => {
                            backoff = self.config.backoff_min;
                            tracing::info!(
                                router = self.name(),
                                ?report,
                                "connected and reconciled"
                            );
                            self.status.send_modify(|s| {
                                s.connected = true;
                                s.connections += 1;
                                s.applied += report.reapplied as u64;
                                s.last_error = None;
                                s.last_reconcile = Some(report);
                            });
                            let ended = self.serve(&enforcer).await;
                            last_uptime = enforcer.last_uptime();
                            client.close().await;
                            match ended {
                                Ended::Stop => return,
                                Ended::Lost(why) => why,
                            }
                        }
                        Err(e) => {
                            client.close().await;
                            e.to_string()
                        }
                    }
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(
                router = self.name(),
                "router connection: {error}; retrying in {backoff:?}"
            );
            self.status.send_modify(|s| {
                s.connected = false;
                s.last_error = Some(error.clone());
            });
            if !self.wait_disconnected(backoff, &error).await {
                return;
            }
            backoff = backoff.saturating_mul(2).min(self.config.backoff_max);
        }
    }

    /// Waits `backoff` while disconnected, recording bans that arrive meanwhile as
    /// pending (the reconcile after the reconnect applies them). `false`: stop.
    async fn wait_disconnected(&mut self, backoff: Duration, error: &str) -> bool {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                job = self.inbox.recv() => {
                    let Some(job) = job else { return false };
                    self.answer_while_lost(job, error);
                }
            }
        }
    }

    async fn serve(&mut self, enforcer: &RouterOsEnforcer) -> Ended {
        let mut check = tokio::time::interval(self.config.reboot_check);
        check.tick().await;
        loop {
            tokio::select! {
                job = self.inbox.recv() => {
                    let Some(job) = job else { return Ended::Stop };
                    if let Some(lost) = self.handle(enforcer, job).await {
                        return Ended::Lost(lost);
                    }
                }
                _ = check.tick() => {
                    if enforcer.client().is_closed() {
                        return Ended::Lost("the connection closed".to_owned());
                    }
                    match enforcer.check_reboot().await {
                        Ok(Some(report)) => {
                            tracing::warn!(router = self.name(), ?report, "router rebooted: bans re-applied");
                            self.status.send_modify(|s| {
                                s.applied += report.reapplied as u64;
                                s.last_reconcile = Some(report);
                            });
                        }
                        Ok(None) => {}
                        Err(e) if e.is_connection() => return Ended::Lost(e.to_string()),
                        Err(e) => tracing::warn!(router = self.name(), "reboot check: {e}"),
                    }
                }
            }
        }
    }

    /// Handles one job (a block takes the bans queued behind it into the same batch).
    /// `Some(reason)` when the connection was lost.
    async fn handle(&mut self, enforcer: &RouterOsEnforcer, job: Job) -> Option<String> {
        match job {
            Job::Block(first) => {
                let mut bans = vec![first];
                let mut after = None;
                while bans.len() < self.config.batch {
                    match self.inbox.try_recv() {
                        Ok(Job::Block(ban)) => bans.push(ban),
                        Ok(other) => {
                            after = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let results = enforcer.block_all(&bans).await;
                let mut lost = None;
                let mut applied = 0;
                for result in &results {
                    match result {
                        Ok(_) => applied += 1,
                        Err(e) if e.is_connection() => {
                            lost.get_or_insert_with(|| e.to_string());
                        }
                        Err(e) => {
                            tracing::warn!(router = self.name(), "ban failed: {e}");
                            self.status
                                .send_modify(|s| s.last_error = Some(e.to_string()));
                        }
                    }
                }
                self.status.send_modify(|s| s.applied += applied);
                if lost.is_some() {
                    if let Some(job) = after {
                        self.answer_while_lost(job, "connection lost");
                    }
                    return lost;
                }
                match after {
                    Some(job) => Box::pin(self.handle(enforcer, job)).await,
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

    /// A job that cannot reach the router (lost for `reason`): a ban is recorded as
    /// pending for the reconcile after the reconnect; everything else is answered now.
    fn answer_while_lost(&self, job: Job, reason: &str) {
        let unavailable = || EnforceError::Unavailable {
            router: self.name().to_owned(),
            reason: reason.to_owned(),
        };
        match job {
            Job::Block(ban) => {
                let now = (self.clock)();
                if let Err(e) = record_bans(&self.ledger, &self.router.enforce, &[ban], now) {
                    tracing::error!(router = self.name(), "cannot record a ban: {e}");
                }
            }
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
}

fn lost_reason<T>(result: &Result<T, EnforceError>) -> Option<String> {
    match result {
        Err(e) if e.is_connection() => Some(e.to_string()),
        _ => None,
    }
}
