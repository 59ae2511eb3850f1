//! The control socket of `mtids run`: a Unix socket (mode 0600, nothing on the network)
//! that `mtids status`, `reload`, `bans` and `alert test` talk to.
//!
//! # Protocol
//! One JSON object per line each way, any number of requests per connection, answered in
//! order. A request names its `command`:
//!
//! | request | answer (besides `"ok": true`) |
//! |---|---|
//! | `{"command":"status"}` | `routers`, `counters`, `active_bans`, `alerts`, `ledger`, `pid`, `uptime_secs`, `dry_run` |
//! | `{"command":"reload"}` | `applied` (sections changed live), `restart_needed` (changed sections that need a restart), `notes` |
//! | `{"command":"ban","target":"198.51.100.7","routers":[],"duration_secs":3600,"reason":"..."}` | `results`: one `{router, ok, detail}` per router |
//! | `{"command":"unban","target":"198.51.100.7","routers":[]}` | `results` as above |
//! | `{"command":"alert_test"}` | `results`: one `{destination, ok, detail}` per destination |
//!
//! `routers: []` means every router. A failure answers `{"ok":false,"error":"..."}`; a
//! `reload` that failed also leaves the daemon on its previous configuration. A line
//! longer than [`MAX_REQUEST`] bytes or not a request ends the connection after the error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mtids_alert::{Action, Alert, Dispatcher, Notification, Notifier, Threat};
use mtids_detect::{DetectionEngine, IpPrefix, Timestamp};
use mtids_enforce::{BanOrder, Fleet, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Shared, timestamp};
use crate::config::Config;
use crate::error::CliError;

/// The longest request line read.
pub const MAX_REQUEST: u64 = 64 * 1024;

/// How long one destination may take to answer `alert test`.
const ALERT_TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a manual ban waits for each router's answer before it is reported pending.
const BAN_WAIT: Duration = Duration::from_secs(10);

/// A request on the control socket (see the module documentation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Request {
    /// Where the daemon stands.
    Status,
    /// Re-read the configuration and apply what can change live.
    Reload,
    /// Ban an address on routers (all when `routers` is empty).
    Ban {
        /// The address or prefix, already checked against the guard by the client.
        target: String,
        /// Router names; empty for all.
        #[serde(default)]
        routers: Vec<String>,
        /// How long.
        duration_secs: u64,
        /// Why.
        reason: String,
    },
    /// Lift a ban on routers (all when `routers` is empty).
    Unban {
        /// The address or prefix.
        target: String,
        /// Router names; empty for all.
        #[serde(default)]
        routers: Vec<String>,
    },
    /// One test alert to every configured destination.
    AlertTest,
}

/// What the detection task does for the control socket (it owns the engine).
pub(crate) enum EngineCommand {
    /// Use this engine from now on (a reload changed `[detection]`).
    Replace(Box<DetectionEngine>, oneshot::Sender<()>),
    /// Forget that `target` is banned, so its next attack is banned again.
    LiftBan(IpPrefix),
    /// Remember that `target` is banned until `until` (a manual ban).
    RestoreBan(IpPrefix, Timestamp),
}

/// Re-reads the configuration (file, `.env`, environment) as the daemon was started.
pub type Reloader = Arc<dyn Fn() -> Result<Config, CliError> + Send + Sync>;

/// What `mtids status` shows of each router besides the engine's status.
#[derive(Default)]
pub(crate) struct Live {
    /// Per event source (routers by index, then `syslog`): when the last event arrived,
    /// in ms since the epoch (0: never).
    last_event_ms: Vec<AtomicU64>,
    /// Per event source: the last event's delay from its own time to its arrival, ms.
    lag_ms: Vec<AtomicU64>,
    /// Since when each router is connected (by name).
    since: Mutex<HashMap<String, SystemTime>>,
}

impl Live {
    pub(crate) fn new(sources: usize) -> Live {
        Live {
            last_event_ms: (0..sources).map(|_| AtomicU64::new(0)).collect(),
            lag_ms: (0..sources).map(|_| AtomicU64::new(0)).collect(),
            since: Mutex::new(HashMap::new()),
        }
    }

    /// An event of `source`, stamped `at`, arrived at `now`.
    pub(crate) fn event(&self, source: usize, at: Timestamp, now: SystemTime) {
        let now = timestamp(now).as_millis();
        if let Some(last) = self.last_event_ms.get(source) {
            last.store(now, Ordering::Relaxed);
        }
        if let Some(lag) = self.lag_ms.get(source) {
            lag.store(now.saturating_sub(at.as_millis()), Ordering::Relaxed);
        }
    }

    /// `router` connected (`Some(now)`) or was lost (`None`).
    pub(crate) fn connected(&self, router: &str, at: Option<SystemTime>) {
        let mut since = lock(&self.since);
        match at {
            Some(at) => {
                since.insert(router.to_owned(), at);
            }
            None => {
                since.remove(router);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Everything the control socket's requests act on.
pub(crate) struct Control {
    pub(crate) shared: Arc<Shared>,
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) engine: mpsc::Sender<EngineCommand>,
    pub(crate) reloader: Option<Reloader>,
    /// The configuration last applied (what a reload compares with).
    pub(crate) applied: tokio::sync::Mutex<Config>,
    /// Notifiers given by the caller (simulate, tests): kept across reloads.
    pub(crate) extra_notifiers: Vec<Arc<dyn Notifier>>,
    pub(crate) started: SystemTime,
}

/// Binds the control socket at `path` with mode 0600. A socket file left by a process
/// that is gone is replaced; one that answers belongs to a running daemon: an error.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, CliError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(CliError::Usage(format!(
                "the control socket {} is in use by another running mtids (set [control] socket to another path)",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| {
            CliError::io(
                format!("removing the stale control socket {}", path.display()),
                e,
            )
        })?;
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::io(
                format!("creating the control socket's directory {}", dir.display()),
                e,
            )
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| CliError::io(format!("binding the control socket {}", path.display()), e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        CliError::io(
            format!("setting the mode of the control socket {}", path.display()),
            e,
        )
    })?;
    Ok(listener)
}

/// Serves the control socket until `shutdown`, then removes its file.
pub(crate) async fn serve(
    listener: UnixListener,
    path: PathBuf,
    control: Arc<Control>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let control = Arc::clone(&control);
                    tokio::spawn(async move { connection(stream, &control).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn connection(stream: UnixStream, control: &Control) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_REQUEST + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = line.len() as u64 > MAX_REQUEST;
        let request = if too_long {
            Err(format!("request longer than {MAX_REQUEST} bytes"))
        } else {
            serde_json::from_slice::<Request>(&line).map_err(|e| format!("bad request: {e}"))
        };
        let (answer, fatal) = match request {
            Ok(request) => (control.handle(request).await, false),
            Err(e) => (json!({"ok": false, "error": e}), true),
        };
        let mut text = answer.to_string();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() || fatal {
            return;
        }
    }
}

fn fmt_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn millis_time(ms: u64) -> Option<SystemTime> {
    (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

/// `Debug` texts compared to find what a reload changed (secrets print redacted, so a
/// changed password alone is not seen; passwords belong to routers, which need a restart).
fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

impl Control {
    async fn handle(&self, request: Request) -> Value {
        let result = match request {
            Request::Status => Ok(self.status()),
            Request::Reload => self.reload().await,
            Request::Ban {
                target,
                routers,
                duration_secs,
                reason,
            } => {
                self.ban(
                    &target,
                    &routers,
                    Duration::from_secs(duration_secs),
                    &reason,
                )
                .await
            }
            Request::Unban { target, routers } => self.unban(&target, &routers).await,
            Request::AlertTest => Ok(self.alert_test().await),
        };
        match result {
            Ok(mut value) => {
                if let Some(object) = value.as_object_mut() {
                    object.insert("ok".to_owned(), Value::Bool(true));
                }
                value
            }
            Err(error) => json!({"ok": false, "error": error}),
        }
    }

    fn status(&self) -> Value {
        status_snapshot(&self.shared, &self.fleet, self.started)
    }

    /// Re-reads the configuration; checks every live part before applying any, so a bad
    /// file changes nothing.
    async fn reload(&self) -> Result<Value, String> {
        let Some(reloader) = &self.reloader else {
            return Err("this daemon cannot re-read its configuration".to_owned());
        };
        let fresh = match reloader() {
            Ok(config) => config,
            Err(e) => {
                let error = format!("{e}");
                tracing::error!(%error, "reload failed: still running with the previous configuration");
                return Err(format!(
                    "{error}\n(the daemon keeps running with the previous configuration)"
                ));
            }
        };
        let mut applied = self.applied.lock().await;
        let fail = |error: String| {
            tracing::error!(%error, "reload failed: still running with the previous configuration");
            Err(format!(
                "{error}\n(the daemon keeps running with the previous configuration)"
            ))
        };
        // Check (and build) everything first.
        let detection_changed = differs(&applied.detection, &fresh.detection);
        let engine = if detection_changed {
            match DetectionEngine::new(&fresh.detection) {
                Ok(engine) => Some(engine),
                Err(e) => return fail(format!("configuration: detection: {e}")),
            }
        } else {
            None
        };
        let level_changed = applied.log.level != fresh.log.level;
        if level_changed && let Err(e) = tracing_subscriber::EnvFilter::try_new(&fresh.log.level) {
            return fail(format!(
                "configuration: log.level `{}`: {e}",
                fresh.log.level
            ));
        }
        let alert_changed = differs(&applied.alert, &fresh.alert);
        let dispatcher = if alert_changed {
            let built = fresh.alert.notifiers().and_then(|mut notifiers| {
                notifiers.extend(self.extra_notifiers.iter().cloned());
                Dispatcher::spawn(fresh.alert.dispatcher.clone(), notifiers)
            });
            match built {
                Ok(d) => Some(d),
                Err(e) => return fail(format!("configuration: alert: {e}")),
            }
        } else {
            None
        };
        // Apply.
        let mut live = Vec::new();
        let mut notes = Vec::new();
        if let Some(engine) = engine {
            let (done, applied_engine) = oneshot::channel();
            if self
                .engine
                .send(EngineCommand::Replace(Box::new(engine), done))
                .await
                .is_err()
                || applied_engine.await.is_err()
            {
                return fail("the detection task has stopped".to_owned());
            }
            applied.detection = fresh.detection.clone();
            live.push("detection");
            notes.push(
                "detection: thresholds, guard (allowlist) and policy replaced; counting windows restarted empty, active bans kept from the ledger"
                    .to_owned(),
            );
        }
        if let Some(dispatcher) = dispatcher {
            let old = self.shared.alerts.replace(dispatcher);
            // Whatever the old destinations still hold goes out, in the background.
            tokio::spawn(async move {
                let _ = old.shutdown(Duration::from_secs(5)).await;
            });
            applied.alert = fresh.alert.clone();
            live.push("alert");
        }
        if level_changed {
            if let Err(e) = crate::logging::set_level(&fresh.log.level) {
                notes.push(format!("log.level not changed: {e}"));
            } else {
                applied.log.level = fresh.log.level.clone();
                live.push("log.level");
            }
        }
        let mut restart = Vec::new();
        if differs(&applied.routers, &fresh.routers) {
            restart.push("router");
        }
        if differs(&applied.input, &fresh.input) {
            restart.push("input");
        }
        if differs(&applied.enforcement, &fresh.enforcement) {
            restart.push("enforcement");
        }
        if applied.ledger.path != fresh.ledger.path {
            restart.push("ledger.path");
        }
        if differs(&applied.ledger.on_corrupt, &fresh.ledger.on_corrupt) {
            restart.push("ledger.on_corrupt");
        }
        if differs(&applied.web, &fresh.web) {
            restart.push("web");
        }
        if differs(&applied.crowdsec, &fresh.crowdsec) {
            restart.push("crowdsec");
        }
        if differs(&applied.metrics, &fresh.metrics) {
            restart.push("metrics");
        }
        if applied.control_socket() != fresh.control_socket() {
            restart.push("control.socket");
        }
        if differs(&applied.log.format, &fresh.log.format) {
            restart.push("log.format");
        }
        tracing::info!(
            applied = ?live,
            restart_needed = ?restart,
            "configuration reloaded"
        );
        Ok(json!({"applied": live, "restart_needed": restart, "notes": notes}))
    }

    fn scope(&self, routers: &[String]) -> Result<Vec<String>, String> {
        let known: Vec<&str> = self
            .shared
            .config
            .routers
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        if routers.is_empty() {
            return Ok(known.iter().map(|s| (*s).to_owned()).collect());
        }
        for r in routers {
            if !known.contains(&r.as_str()) {
                return Err(format!(
                    "no router named `{r}` in the daemon's configuration"
                ));
            }
        }
        Ok(routers.to_vec())
    }

    async fn ban(
        &self,
        target: &str,
        routers: &[String],
        duration: Duration,
        reason: &str,
    ) -> Result<Value, String> {
        let prefix: IpPrefix = target
            .parse()
            .map_err(|e| format!("`{target}` is not an IP address or prefix: {e}"))?;
        let guard = mtids_detect::Guard::new(&self.applied.lock().await.detection.guard)
            .map_err(|e| format!("configuration: detection.guard: {e}"))?;
        if let Some(reason) = guard.check_prefix(&prefix) {
            return Err(format!(
                "refusing to ban {prefix}: {reason} (see [detection.guard])"
            ));
        }
        let names = self.scope(routers)?;
        let text = crate::bans::target_text(&prefix);
        let order = BanOrder::new(mtids_enforce::Ban::new(
            prefix,
            Some(duration),
            "manual",
            reason,
        ));
        let now = self.shared.now();
        let until = Timestamp::from_millis(
            timestamp(now)
                .as_millis()
                .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
        );
        let _ = self
            .engine
            .send(EngineCommand::RestoreBan(prefix, until))
            .await;
        let enforcement = &self.shared.config.enforcement;
        let list = if prefix.addr().is_ipv4() {
            enforcement.address_list.as_str()
        } else {
            enforcement.address_list_v6.as_str()
        };
        let mut results = Vec::new();
        for name in names {
            let outcome = match self.fleet.order(&Scope::Router(name.clone()), &order) {
                Err(e) => Err(e.to_string()),
                Ok(per) => per
                    .into_iter()
                    .next()
                    .map_or(Ok(()), |(_, r)| r.map_err(|e| e.to_string())),
            };
            let detail = match outcome {
                Err(e) => {
                    results.push(json!({"router": name, "ok": false, "detail": e}));
                    continue;
                }
                Ok(()) => {
                    let _ = tokio::time::timeout(BAN_WAIT, self.fleet.flush(&name)).await;
                    let state = self
                        .shared
                        .with_ledger("reading the ban", |l| {
                            l.find_active(&name, list, &text, now)
                        })
                        .flatten();
                    match state {
                        Some(b) => format!("{} (ban {})", b.state, b.id),
                        None if self.shared.dry_run() => "dry run: nothing sent".to_owned(),
                        None => "ordered".to_owned(),
                    }
                }
            };
            results.push(json!({"router": name, "ok": true, "detail": detail}));
        }
        Ok(json!({"target": text, "results": results}))
    }

    async fn unban(&self, target: &str, routers: &[String]) -> Result<Value, String> {
        let prefix: IpPrefix = target
            .parse()
            .map_err(|e| format!("`{target}` is not an IP address or prefix: {e}"))?;
        let names = self.scope(routers)?;
        let text = crate::bans::target_text(&prefix);
        let mut results = Vec::new();
        let mut lifted_everywhere = true;
        for name in names {
            let answer = match self
                .fleet
                .unblock(&Scope::Router(name.clone()), prefix)
                .await
            {
                Err(e) => Err(e.to_string()),
                Ok(per) => per
                    .into_iter()
                    .next()
                    .map_or(Ok(false), |(_, r)| r.map_err(|e| e.to_string())),
            };
            match answer {
                Ok(found) => {
                    // The enforcer marks the bans it knew of; any other active row for
                    // this router and address is lifted too.
                    let now = self.shared.now();
                    self.shared.with_ledger("marking the ban removed", |l| {
                        for b in l.active(Some(&name), now)? {
                            if b.target == text {
                                l.mark_removed(b.id, "removed by operator (mtids bans)", now)?;
                            }
                        }
                        Ok(())
                    });
                    let detail = if found {
                        "removed from the router"
                    } else {
                        "not on the router; ledger updated"
                    };
                    results.push(json!({"router": name, "ok": true, "detail": detail}));
                }
                Err(e) => {
                    lifted_everywhere = false;
                    results.push(json!({"router": name, "ok": false, "detail": e}));
                }
            }
        }
        if lifted_everywhere {
            let _ = self.engine.send(EngineCommand::LiftBan(prefix)).await;
        }
        Ok(json!({"target": text, "results": results}))
    }

    async fn alert_test(&self) -> Value {
        let config = self.applied.lock().await.alert.clone();
        json!({ "results": alert_test(&config).await })
    }
}

/// Sends one test alert to every destination of `config` (not through the dispatcher:
/// each destination's own answer is shown); one `{destination, ok, detail}` each.
pub async fn alert_test(config: &mtids_alert::AlertConfig) -> Vec<Value> {
    let notifiers = match config.notifiers() {
        Ok(n) => n,
        Err(e) => {
            return vec![json!({"destination": "alert", "ok": false, "detail": e.to_string()})];
        }
    };
    let notification = Notification::from(
        Alert::new(
            Threat::Other("test alert".to_owned()),
            "mtids alert test",
            Action::Suppressed {
                reason: "test only: nothing was banned".to_owned(),
            },
            "a test alert sent by `mtids alert test`; no action needed",
            SystemTime::now(),
        )
        .with_detector("test"),
    );
    let mut results = Vec::new();
    for notifier in notifiers {
        let outcome =
            tokio::time::timeout(ALERT_TEST_TIMEOUT, notifier.notify(&notification)).await;
        let (ok, detail) = match outcome {
            Ok(Ok(())) => (true, "delivered".to_owned()),
            Ok(Err(e)) => (false, e.to_string()),
            Err(_) => (
                false,
                format!("no answer within {}s", ALERT_TEST_TIMEOUT.as_secs()),
            ),
        };
        results.push(json!({"destination": notifier.name(), "ok": ok, "detail": detail}));
    }
    results
}

/// Runs one [`EngineCommand`] in the detection task (`own`: the routers' own addresses,
/// given again to a new engine).
pub(crate) fn apply(
    shared: &Shared,
    engine: &mut DetectionEngine,
    own: &std::collections::BTreeMap<usize, Vec<mtids_detect::InterfaceAddress>>,
    command: EngineCommand,
) {
    match command {
        EngineCommand::Replace(fresh, done) => {
            *engine = *fresh;
            engine.set_router_addresses(own.values().flatten().copied().collect());
            // The policy learns the active bans again, as at start.
            super::detection::restore_bans(shared, engine);
            let _ = done.send(());
        }
        EngineCommand::LiftBan(target) => {
            engine.policy_mut().lift_ban(&target);
            tracing::info!(address = %target, "ban lifted by the operator: the next attack is banned again");
        }
        EngineCommand::RestoreBan(target, until) => {
            let now = timestamp(shared.now());
            engine.policy_mut().restore_ban(now, target, until, 1);
        }
    }
}

/// The status snapshot: the control socket's `status` answer and the web page's
/// `status` field.
pub(crate) fn status_snapshot(shared: &Shared, fleet: &Fleet, started: SystemTime) -> Value {
    let now = shared.now();
    let since = lock(&shared.live.since).clone();
    let routers: Vec<Value> = shared
        .config
        .routers
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let status = fleet.status(&r.name).unwrap_or_default();
            let last = shared
                .live
                .last_event_ms
                .get(index)
                .map_or(0, |a| a.load(Ordering::Relaxed));
            let lag = shared
                .live
                .lag_ms
                .get(index)
                .map_or(0, |a| a.load(Ordering::Relaxed));
            json!({
                "name": r.name,
                "connected": status.connected,
                "since": since.get(&r.name).copied().map(fmt_time),
                "connections": status.connections,
                "reconnects": status.connections.saturating_sub(1),
                "last_error": status.last_error,
                "last_event": millis_time(last).map(fmt_time),
                "lag_ms": millis_time(last).map(|_| lag),
                "bans_applied": status.applied,
            })
        })
        .collect();
    let syslog_last = shared
        .live
        .last_event_ms
        .get(shared.config.routers.len())
        .map_or(0, |a| a.load(Ordering::Relaxed));
    let stats = &shared.stats;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let counters = json!({
        "events": get(&stats.events),
        "log_rows": get(&stats.log_rows),
        "connection_rows": get(&stats.connection_rows),
        "malformed_rows": get(&stats.malformed_rows),
        "findings": get(&stats.findings),
        "bans": get(&stats.bans),
        "blocks_applied": get(&stats.blocks_applied),
        "blocks_failed": get(&stats.blocks_failed),
        "blocks_restored": get(&stats.blocks_restored),
        "connections_removed": get(&stats.connections_removed),
    });
    let (active_bans, active_addresses, ledger) = match &shared.ledger {
        None => (None, None, Value::Null),
        Some(_) => {
            let active = shared
                .with_ledger("listing active bans", |l| l.active(None, now))
                .unwrap_or_default();
            let mut addresses: Vec<&str> = active.iter().map(|b| b.target.as_str()).collect();
            addresses.sort_unstable();
            addresses.dedup();
            let health = shared
                .with_ledger("reading its health", |l| Ok(l.health()))
                .unwrap_or_default();
            (
                Some(active.len()),
                Some(addresses.len()),
                json!({
                    "path": shared.config.ledger.path.display().to_string(),
                    "backlog": health.backlog,
                    "errors_total": health.errors_total,
                    "dropped": health.dropped,
                    "failing_since": health.failing_since.map(fmt_time),
                    "last_error": health.last_error,
                }),
            )
        }
    };
    let alerts: Vec<Value> = shared
        .alerts
        .destinations()
        .into_iter()
        .map(|d| {
            json!({
                "name": d.name,
                "pending": d.pending,
                "sent": d.sent,
                "failed": d.failed,
                "dropped": d.dropped,
                "hung": d.hung,
            })
        })
        .collect();
    json!({
        "pid": std::process::id(),
        "started": fmt_time(started),
        "uptime_secs": now.duration_since(started).map_or(0, |d| d.as_secs()),
        "dry_run": shared.dry_run(),
        "routers": routers,
        "syslog_last_event": millis_time(syslog_last).map(fmt_time),
        "counters": counters,
        "active_bans": active_bans,
        "active_addresses": active_addresses,
        "alert_queue": shared.alerts.pending(),
        "alerts": alerts,
        "ledger": ledger,
    })
}
