//! The daemon behind `mtids run` and `mtids simulate`: the routers run by mtids-enforce's
//! [`Fleet`] engine (one task and connection per router: backoff, liveness, reconcile,
//! bans; the daemon's input hook follows the log and polls on the same connection), one
//! detection task (the [`DetectionEngine`], the policy, the alerts), and one task turning
//! the engine's events into metrics, reports and alerts.
//!
//! ```text
//!  router engine ──events──▶ detection task ──ban orders──▶ router engine ──▶ router
//!  (input hook: log follow,  (engine, policy,              (ledger first, address-list
//!   polls)                    alerts)                        add, connection remove)
//!        └──────────── fleet events ──▶ outcome task (metrics, reports, alerts)
//! ```
//!
//! Time comes from a [`Clock`] so `mtids simulate` can run the daemon on the simulated
//! router's compressed time.

pub mod control;
mod crowdsec;
mod detection;
mod enforce;
mod ledger_sync;
mod limits;
mod log_follow;
mod router;
mod syslog;
mod web;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mtids_alert::{Dispatcher, Notifier};
use mtids_detect::{DetectionEngine, Outcome, Timestamp};
use mtids_enforce::{BanLedger, Fleet, FleetConfig, FleetRouter, RouterOsConfig};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::control::{Control, EngineCommand, Reloader};

use crate::config::Config;
use crate::error::CliError;
use crate::metrics::{EventCounters, Metrics, MetricsServer};

/// Where the daemon reads the time: the system clock, or a simulated router's.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// `t` as a detection [`Timestamp`] (milliseconds since the UNIX epoch).
pub fn timestamp(t: SystemTime) -> Timestamp {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_millis(ms)
}

/// A [`Timestamp`] back as a `SystemTime`.
pub fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.as_millis())
}

/// What the daemon reports as it works, for `mtids simulate`, tests and progress output.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Report {
    /// Logged in to a router.
    Connected {
        /// The router's name.
        router: String,
    },
    /// Lost a router; it will be retried after `retry_in`.
    Disconnected {
        /// The router's name.
        router: String,
        /// Why.
        error: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// The engine decided something about a finding.
    Outcome {
        /// The decision or suppression, with its finding.
        outcome: Box<Outcome>,
        /// When the event that completed the finding arrived (real time).
        observed: Instant,
    },
    /// A ban reached a router (or was simulated in dry-run mode).
    Blocked {
        /// The router's name.
        router: String,
        /// The address or prefix.
        target: String,
        /// The detector that decided it.
        detector: String,
        /// From the arrival of the deciding event to the router's answer.
        latency: Duration,
        /// Dry run: nothing was sent.
        dry_run: bool,
    },
    /// A router refused a ban (its `!trap`, or the ban covers the router's own address),
    /// or could not queue it (too far behind: it stays pending in the ledger and a
    /// reconcile applies it). A router that is merely away never causes this: its bans
    /// are applied, and reported [`Report::Blocked`], once it is back.
    BlockFailed {
        /// The router's name.
        router: String,
        /// The address or prefix.
        target: String,
        /// Why.
        error: String,
    },
}

/// Counters, readable while the daemon runs.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Log rows received (API follow).
    pub log_rows: AtomicU64,
    /// Connection-table rows received.
    pub connection_rows: AtomicU64,
    /// Resource samples received.
    pub resource_rows: AtomicU64,
    /// Rows that could not be read (counted and skipped).
    pub malformed_rows: AtomicU64,
    /// Log rows skipped because they had been seen before a reconnect.
    pub duplicate_rows: AtomicU64,
    /// Events that reached the engine.
    pub events: AtomicU64,
    /// Findings.
    pub findings: AtomicU64,
    /// Ban decisions.
    pub bans: AtomicU64,
    /// Bans applied on a router.
    pub blocks_applied: AtomicU64,
    /// Bans a router refused or could not take.
    pub blocks_failed: AtomicU64,
    /// Bans re-applied from the ledger after a (re)connect or a reboot.
    pub blocks_restored: AtomicU64,
    /// Connections removed from connection tables.
    pub connections_removed: AtomicU64,
    /// Successful logins to routers (the first and every reconnect).
    pub connects: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` at once: the syslog listeners count once per read, not once per line.
    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// How the daemon runs, beyond the configuration.
#[non_exhaustive]
pub struct Options {
    /// Where time comes from.
    pub clock: Clock,
    /// Notifiers besides the configured ones (simulate's recorder, tests' sinks).
    pub extra_notifiers: Vec<Arc<dyn Notifier>>,
    /// Where to send [`Report`]s, if anyone listens.
    pub reports: Option<mpsc::UnboundedSender<Report>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: system_clock(),
            extra_notifiers: Vec::new(),
            reports: None,
        }
    }
}

/// Shared by every task of the daemon.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    pub(crate) stats: Arc<Stats>,
    pub(crate) reports: Option<mpsc::UnboundedSender<Report>>,
    /// `None` in dry-run mode: nothing is recorded.
    pub(crate) ledger: Option<Arc<Mutex<BanLedger>>>,
    /// The alert dispatcher; a reload may replace it.
    pub(crate) alerts: LiveAlerts,
    /// Router connections and event times, for `mtids status`.
    pub(crate) live: control::Live,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) metrics: Metrics,
    /// `mtids_events_total` counters per event source: one per configured router (same
    /// index as `config.routers`), then [`Shared::syslog_source`]'s fallback `syslog`.
    pub(crate) event_counters: Vec<EventCounters>,
    /// Configured routers whose host is an IP address, to label syslog events by sender.
    syslog_senders: HashMap<IpAddr, usize>,
    /// The CrowdSec LAPI clients, with a `[crowdsec]` section.
    pub(crate) crowdsec: Option<crowdsec::Crowdsec>,
    /// Recent outcomes and the 24 h series for the web page.
    pub(crate) web: web::Recorder,
}

impl Shared {
    pub(crate) fn now(&self) -> SystemTime {
        (self.clock)()
    }

    pub(crate) fn report(&self, report: Report) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(report); // Nobody listening any more is fine.
        }
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.config.enforcement.dry_run
    }

    /// The event source of a syslog line from `sender`: the configured router whose host
    /// is that address, else the `syslog` source (a host name is not resolved for this).
    pub(crate) fn syslog_source(&self, sender: IpAddr) -> usize {
        self.syslog_senders
            .get(&sender.to_canonical())
            .copied()
            .unwrap_or(self.config.routers.len())
    }

    /// Refreshes the gauges computed from state; called when the metrics are rendered.
    fn refresh_gauges(&self, metrics: &Metrics) {
        metrics.set_alert_queue(self.alerts.pending());
        metrics.set_alert_destinations(&self.alerts.destinations());
        crowdsec::refresh_metrics(self);
        // Dry run keeps no ledger: the detection task counts its decisions in force.
        if self.ledger.is_some() {
            let now = self.now();
            if let Some((active, by_router)) = self.with_ledger("counting active bans", |l| {
                Ok((l.count_active_targets(now)?, l.count_active_by_router(now)?))
            }) {
                metrics.set_active_bans(active);
                metrics.set_active_bans_by_router(by_router.iter().map(|(r, n)| (r.as_str(), *n)));
            }
        }
    }

    /// Runs `f` on the ledger, logging (not propagating) a failure: a ledger error must
    /// not stop detection or blocking.
    pub(crate) fn with_ledger<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut BanLedger) -> Result<T, mtids_enforce::LedgerError>,
    ) -> Option<T> {
        let ledger = self.ledger.as_ref()?;
        let mut guard = match ledger.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match f(&mut guard) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "ban ledger: {what} failed");
                None
            }
        }
    }
}

/// The alert dispatcher in use: the same calls as [`Dispatcher`]'s, and a reload can put
/// a new one in place.
pub(crate) struct LiveAlerts(std::sync::RwLock<Dispatcher>);

impl LiveAlerts {
    fn new(dispatcher: Dispatcher) -> LiveAlerts {
        LiveAlerts(std::sync::RwLock::new(dispatcher))
    }

    /// The dispatcher in use now.
    pub(crate) fn current(&self) -> Dispatcher {
        match self.0.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `next` in place; returns the previous one (to shut down).
    pub(crate) fn replace(&self, next: Dispatcher) -> Dispatcher {
        let mut slot = match self.0.write() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *slot, next)
    }

    /// See [`Dispatcher::submit`].
    pub(crate) fn submit(&self, alert: mtids_alert::Alert) -> mtids_alert::Submitted {
        self.current().submit(alert)
    }

    /// See [`Dispatcher::pending`].
    pub(crate) fn pending(&self) -> usize {
        self.current().pending()
    }

    /// See [`Dispatcher::destinations`].
    pub(crate) fn destinations(&self) -> Vec<mtids_alert::DestinationStats> {
        self.current().destinations()
    }
}

/// A running daemon. Stop it with [`Daemon::shutdown`].
pub struct Daemon {
    shared: Arc<Shared>,
    syslog_udp: Option<std::net::SocketAddr>,
    syslog_tcp: Option<std::net::SocketAddr>,
    syslog_tls: Option<std::net::SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    metrics_server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    web_addr: Option<SocketAddr>,
    web_server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    stop: watch::Sender<bool>,
    /// The syslog listeners.
    listeners: Vec<JoinHandle<()>>,
    detection: JoinHandle<()>,
    /// Held while the daemon runs: one daemon per ledger.
    _ledger_lock: Option<ledger_sync::LedgerLock>,
    fleet: Arc<Fleet>,
    /// Turns the fleet's events into metrics, reports and alerts.
    outcomes: JoinHandle<()>,
    /// Commands to the detection task (for the control socket).
    engine: mpsc::Sender<EngineCommand>,
    /// The control socket's task, once [`Daemon::serve_control`] started it.
    control: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Opens the ledger, starts the alert dispatcher, the detection task, one task per
    /// router and, with `metrics.listen` set, the Prometheus endpoint. Returns at once;
    /// routers connect in the background (with backoff).
    ///
    /// # Errors
    /// The engine, the ledger, the alerts, a syslog listener or the metrics endpoint
    /// could not be set up.
    pub fn start(config: Config, options: Options) -> Result<Daemon, CliError> {
        limits::raise_descriptor_limit(config.routers.len());
        let engine = DetectionEngine::new(&config.detection)
            .map_err(|e| CliError::config("configuration", "detection", e.to_string()))?;
        let mut ledger_lock = None;
        let ledger = if config.enforcement.dry_run {
            None
        } else {
            if let Some(dir) = config.ledger.path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    CliError::io(
                        format!("creating the ledger directory {}", dir.display()),
                        e,
                    )
                })?;
            }
            // The lock first: a second daemon must not even recover "its" ledger.
            ledger_lock = Some(ledger_sync::lock_ledger(&config.ledger.path)?);
            let ledger: BanLedger = ledger_sync::open_ledger(&config, (options.clock)())?;
            Some(Arc::new(Mutex::new(ledger)))
        };
        let syslog_listeners = syslog::bind(&config.input)?;
        let syslog_udp = syslog_listeners.udp_addr();
        let syslog_tcp = syslog_listeners.tcp_addr();
        let syslog_tls = syslog_listeners.tls_addr();
        let mut notifiers = config.alert.notifiers()?;
        notifiers.extend(options.extra_notifiers);
        let metrics = Metrics::new();
        // Bound before anything is spawned, so a taken port fails `start` cleanly.
        let metrics_server = config
            .metrics
            .listen
            .map(|addr| MetricsServer::bind_now(addr, metrics.clone()))
            .transpose()?;
        let web_auth = match config.web.listen {
            Some(_) => web::expected_auth(&config.web)?,
            None => None,
        };
        let web_listener = config.web.listen.map(web::bind).transpose()?;
        let web_tls = match (&config.web.tls_cert, &config.web.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(syslog::server_tls(
                cert,
                key,
                ("web.tls_cert", "web.tls_key"),
            )?),
            (cert, _) => {
                let missing = if cert.is_some() {
                    "web.tls_key"
                } else {
                    "web.tls_cert"
                };
                return Err(CliError::config(
                    "configuration",
                    missing,
                    "web TLS needs both web.tls_cert and web.tls_key",
                ));
            }
        };
        let alerts = Dispatcher::spawn(config.alert.dispatcher.clone(), notifiers)?;
        let crowdsec = match (&config.crowdsec_resolved, &config.crowdsec) {
            (Some(resolved), _) => Some(resolved.clone()),
            // Set in code rather than loaded: its secrets from the process environment.
            (None, Some(_)) => {
                let vars = crate::config::Variables::from_process(&mut Vec::new())?;
                config.resolve_crowdsec("configuration", &vars, &mut Vec::new())?
            }
            (None, None) => None,
        }
        .map(|resolved| {
            let group = config.crowdsec.as_ref().and_then(|c| c.group.as_deref());
            crowdsec::Crowdsec::new(&resolved, group)
        })
        .transpose()?;
        let (stop, shutdown) = watch::channel(false);
        let mut event_counters = Vec::with_capacity(config.routers.len() + 1);
        let mut syslog_senders = HashMap::new();
        for (index, router) in config.routers.iter().enumerate() {
            event_counters.push(metrics.event_counters(&router.name));
            // Every router is known (as down) before its first connection attempt.
            metrics.router_connected(&router.name, false);
            if let Ok(ip) = router.host.parse::<IpAddr>() {
                syslog_senders.entry(ip.to_canonical()).or_insert(index);
            }
        }
        event_counters.push(metrics.event_counters("syslog"));
        let live = control::Live::new(config.routers.len() + 1);
        let shared = Arc::new(Shared {
            config,
            clock: options.clock,
            stats: Arc::new(Stats::default()),
            reports: options.reports,
            ledger,
            alerts: LiveAlerts::new(alerts),
            live,
            shutdown,
            metrics,
            event_counters,
            syslog_senders,
            crowdsec,
            web: web::Recorder::default(),
        });
        let weak = Arc::downgrade(&shared);
        shared.metrics.on_render(move |metrics| {
            if let Some(shared) = weak.upgrade() {
                shared.refresh_gauges(metrics);
            }
        });
        let metrics_addr = metrics_server.as_ref().and_then(MetricsServer::local_addr);
        let metrics_server = metrics_server.map(|server| {
            if let Some(addr) = metrics_addr {
                tracing::info!(%addr, "metrics endpoint listening");
            }
            // Its own stop signal: the endpoint outlives the other tasks during a
            // shutdown. Dropping the daemon drops the sender, which stops it too.
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = server.serve(shutdown).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            });
            (stop, task)
        });

        let (events_tx, events_rx) = mpsc::channel(16_384);
        let (fleet_events, fleet_events_rx) = mpsc::unbounded_channel();
        let input = &shared.config.input;
        let fleet_config = FleetConfig::default()
            .backoff(Duration::from_millis(200), input.max_backoff)
            .liveness(input.liveness_interval, input.liveness_timeout);
        let mut fleet = Fleet::builder()
            .config(fleet_config)
            .clock(Arc::clone(&shared.clock))
            .events(fleet_events);
        if let Some(ledger) = &shared.ledger {
            fleet = fleet.ledger(Arc::clone(ledger));
        }
        let mut members = Vec::with_capacity(shared.config.routers.len());
        for (index, router) in shared.config.routers.iter().enumerate() {
            let client = router::client_config(router).map_err(|(key, reason)| {
                CliError::config(
                    "configuration",
                    format!("routers.{}.{key}", router.name),
                    reason,
                )
            })?;
            let lists = &shared.config.enforcement;
            let enforce = RouterOsConfig::new(router.name.clone())
                .list(lists.address_list.clone())
                .list_v6(lists.address_list_v6.clone());
            let session = router::RouterSession::new(
                Arc::clone(&shared),
                index,
                detection::EventSender::new(index, events_tx.clone()),
            );
            members.push(
                FleetRouter::new(client, enforce)
                    .groups(router.group.iter().cloned())
                    .input(Arc::new(session)),
            );
        }
        let fleet = Arc::new(fleet.start(members));
        let web_addr = web_listener.as_ref().and_then(|l| l.local_addr().ok());
        let web_server = web_listener.map(|listener| {
            if let Some(addr) = web_addr {
                tracing::info!(%addr, "web page listening");
            }
            let (shared, fleet) = (Arc::clone(&shared), Arc::clone(&fleet));
            match web_tls {
                Some(acceptor) => web::spawn(
                    web::TlsListener::new(listener, acceptor),
                    shared,
                    fleet,
                    web_auth,
                ),
                None => web::spawn(listener, shared, fleet, web_auth),
            }
        });
        let tracker = Arc::new(enforce::Tracker::default());
        let outcomes = tokio::spawn(enforce::run_events(
            Arc::clone(&shared),
            Arc::clone(&tracker),
            fleet_events_rx,
        ));
        let mut listeners = Vec::new();
        syslog::spawn(&shared, syslog_listeners, &events_tx, &mut listeners);
        if let Some(pulls) = shared
            .crowdsec
            .as_ref()
            .and_then(|c| c.spawn_pulls(&shared, events_tx.clone()))
        {
            listeners.push(pulls);
        }
        drop(events_tx);
        let (engine_tx, engine_rx) = mpsc::channel(16);
        let detection = tokio::spawn(detection::run_detection(
            Arc::clone(&shared),
            engine,
            events_rx,
            detection::Enforcement {
                fleet: Arc::clone(&fleet),
                tracker,
                commands: engine_rx,
            },
        ));
        Ok(Daemon {
            shared,
            syslog_udp,
            syslog_tcp,
            syslog_tls,
            metrics_addr,
            metrics_server,
            web_addr,
            web_server,
            stop,
            listeners,
            detection,
            _ledger_lock: ledger_lock,
            fleet,
            outcomes,
            engine: engine_tx,
            control: None,
        })
    }

    /// Serves the control socket (`[control] socket`, see [`control`]) until shutdown;
    /// `reloader` re-reads the configuration for `mtids reload` and SIGHUP. `config` is
    /// the configuration as loaded (before command-line overrides such as `--dry-run`),
    /// what a reload compares with. Returns the socket's path.
    ///
    /// # Errors
    /// The socket could not be bound (another daemon answers on it, or a file error).
    pub fn serve_control(
        &mut self,
        config: Config,
        reloader: Option<Reloader>,
        extra_notifiers: Vec<Arc<dyn Notifier>>,
    ) -> Result<std::path::PathBuf, CliError> {
        let path = self.shared.config.control_socket();
        let listener = control::bind(&path)?;
        let control = Arc::new(Control {
            shared: Arc::clone(&self.shared),
            fleet: Arc::clone(&self.fleet),
            engine: self.engine.clone(),
            reloader,
            applied: tokio::sync::Mutex::new(config),
            extra_notifiers,
            started: self.shared.now(),
        });
        tracing::info!(socket = %path.display(), "control socket listening");
        self.control = Some(tokio::spawn(control::serve(
            listener,
            path.clone(),
            control,
            self.shared.shutdown.clone(),
        )));
        Ok(path)
    }

    /// Re-reads the configuration as `mtids reload` does (SIGHUP); returns the answer
    /// that `mtids reload` prints. Without a control socket, there is nothing to reload.
    pub async fn reload(&self) -> Result<serde_json::Value, CliError> {
        let path = self.shared.config.control_socket();
        crate::status::request(&path, &control::Request::Reload)
            .await?
            .ok_or_else(|| CliError::Usage("the control socket is not served".to_owned()))
    }

    /// The bound syslog UDP address, if listening (the real port when 0 was configured).
    pub fn syslog_udp_addr(&self) -> Option<std::net::SocketAddr> {
        self.syslog_udp
    }

    /// The bound syslog TCP address, if listening.
    pub fn syslog_tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.syslog_tcp
    }

    /// The bound syslog TLS address, if listening.
    pub fn syslog_tls_addr(&self) -> Option<std::net::SocketAddr> {
        self.syslog_tls
    }

    /// The bound address of the Prometheus endpoint, if `metrics.listen` is set (the real
    /// port when 0 was configured).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The bound address of the web page, if `web.listen` is set (the real port when 0
    /// was configured).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// The daemon's Prometheus metrics (rendered by the endpoint, or read directly with
    /// [`Metrics::render`]).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.shared.stats)
    }

    /// The alert dispatcher in use (for its counters).
    pub fn alerts(&self) -> Dispatcher {
        self.shared.alerts.current()
    }

    /// Stops every task, delivers pending alerts (for at most `within`) and closes the
    /// ledger.
    pub async fn shutdown(self, within: Duration) {
        let _ = self.stop.send(true);
        if let Some(control) = self.control {
            let _ = control.await;
        }
        for task in self.listeners {
            let _ = task.await;
        }
        let _ = self.detection.await;
        // Bans still queued stay pending in the ledger for the next start.
        self.fleet.shutdown().await;
        drop(self.fleet);
        if tokio::time::timeout(Duration::from_secs(2), self.outcomes)
            .await
            .is_err()
        {
            tracing::warn!("the router event task did not stop within 2 s");
        }
        crowdsec::shutdown(&self.shared, within).await;
        let outcome = self.shared.alerts.current().shutdown(within).await;
        if outcome.undelivered > 0 {
            tracing::warn!(
                undelivered = outcome.undelivered,
                "alerts not delivered before shutdown"
            );
        }
        if let Some((stop, server)) = self.web_server {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                tracing::warn!("web page did not stop within 2 s");
            }
        }
        // Last, so a scrape during the shutdown still answers. A scraper holding a
        // request open cannot keep the process alive.
        if let Some((stop, server)) = self.metrics_server {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                tracing::warn!("metrics endpoint did not stop within 2 s");
            }
        }
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(system_time(timestamp(t)), t);
    }
}
