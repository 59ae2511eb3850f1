//! The watcher side: push mtids' own bans to the LAPI as alerts, from a bounded queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use mtids_detect::IpPrefix;
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{MachineCredentials, ResolvedConfig};
use crate::decision::{BanScope, MTIDS_ORIGIN};
use crate::error::CrowdsecError;
use crate::go_duration::format_go_duration;
use crate::http::{bounded, build_client, endpoint, read_body, status_error};
use crate::own::OwnBans;

/// Evidence kept per alert: events, key/value pairs per event, and their lengths.
const MAX_EVENTS: usize = 16;
const MAX_META: usize = 16;
const MAX_KEY: usize = 64;
const MAX_VALUE: usize = 512;
/// Tries for an alert batch the LAPI answers with 5xx, 401 (login refused) or 429, about two
/// minutes with the default backoff. Other 4xx are not retried; a LAPI that cannot be
/// reached is retried until it is back (the queue being bounded).
const MAX_STATUS_ATTEMPTS: u32 = 10;

/// How the watcher queues and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatcherConfig {
    /// Alerts waiting at most (plus one batch being sent); a full queue drops its oldest.
    pub queue_capacity: usize,
    /// Alerts sent in one `POST /v1/alerts`.
    pub batch_size: usize,
    /// First wait after a failure; doubled up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between two tries.
    pub max_backoff: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_size: 50,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// One ban mtids decided, to be pushed as a CrowdSec alert with one decision.
///
/// The alert has origin `mtids`, scenario `mtids/<detector>`, type `ban`, scope `Ip` for a
/// single address and `Range` for a wider prefix, and the evidence as its events.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BanReport {
    /// What is banned.
    pub target: IpPrefix,
    /// For how long (at least one second is sent).
    pub duration: Duration,
    /// The detector, e.g. `brute_force` (lower-case letters, digits, `_` and `-` are
    /// kept, anything else becomes `_`).
    pub detector: String,
    /// One human-readable line.
    pub message: String,
    /// The evidence; at most 16 events of 16 key/value pairs are sent.
    pub events: Vec<Evidence>,
    /// First event seen.
    pub started_at: SystemTime,
    /// Last event seen (or the decision time).
    pub stopped_at: SystemTime,
}

impl BanReport {
    /// A report without evidence; add some with [`BanReport::with_event`].
    pub fn new(
        target: IpPrefix,
        duration: Duration,
        detector: impl Into<String>,
        message: impl Into<String>,
        at: SystemTime,
    ) -> Self {
        Self {
            target,
            duration,
            detector: detector.into(),
            message: message.into(),
            events: Vec::new(),
            started_at: at,
            stopped_at: at,
        }
    }

    /// Adds one piece of evidence.
    #[must_use]
    pub fn with_event(mut self, event: Evidence) -> Self {
        self.started_at = self.started_at.min(event.timestamp);
        self.stopped_at = self.stopped_at.max(event.timestamp);
        self.events.push(event);
        self
    }

    /// The scenario pushed: `mtids/<detector>`.
    pub fn scenario(&self) -> String {
        let detector: String = self
            .detector
            .chars()
            .take(64)
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
                _ => '_',
            })
            .collect();
        let detector = if detector.is_empty() {
            "unknown".to_owned()
        } else {
            detector
        };
        format!("{MTIDS_ORIGIN}/{detector}")
    }

    /// The `POST /v1/alerts` item, with the fields crowdsec 1.4.6 requires.
    ///
    /// Required in `Alert` (crowdsec v1.4.6 `pkg/models/localapi_swagger.yaml`): scenario,
    /// scenario_hash, scenario_version, message, events_count, start_at, stop_at, capacity,
    /// leakspeed, simulated, events, source; in `Decision`: origin, type, scope, value,
    /// duration, scenario; in `Event`: timestamp, meta. Times are RFC 3339 (the LAPI parses
    /// `start_at`/`stop_at` with `time.RFC3339`).
    pub fn to_alert_json(&self) -> Value {
        let scenario = self.scenario();
        let scope = BanScope::of(&self.target);
        let value = self.target.to_string();
        let mut events: Vec<Value> = self
            .events
            .iter()
            .take(MAX_EVENTS)
            .map(|event| {
                let meta: Vec<Value> = event
                    .meta
                    .iter()
                    .take(MAX_META)
                    .map(|(k, v)| json!({"key": bounded(k, MAX_KEY), "value": bounded(v, MAX_VALUE)}))
                    .collect();
                json!({"timestamp": rfc3339(event.timestamp), "meta": meta})
            })
            .collect();
        if events.is_empty() {
            events.push(json!({
                "timestamp": rfc3339(self.stopped_at),
                "meta": [{"key": "source", "value": value}],
            }));
        }
        let mut source = json!({"scope": scope.as_str(), "value": value});
        match scope {
            BanScope::Ip => source["ip"] = json!(value),
            BanScope::Range => source["range"] = json!(value),
        }
        json!({
            "scenario": scenario,
            "scenario_hash": "",
            "scenario_version": env!("CARGO_PKG_VERSION"),
            "message": bounded(&self.message, 1024),
            "events_count": i32::try_from(self.events.len().max(1)).unwrap_or(i32::MAX),
            "start_at": rfc3339(self.started_at),
            "stop_at": rfc3339(self.stopped_at),
            "capacity": 0,
            "leakspeed": "0",
            "simulated": false,
            "remediation": true,
            "events": events,
            "source": source,
            "decisions": [{
                "origin": MTIDS_ORIGIN,
                "type": "ban",
                "scope": scope.as_str(),
                "value": value,
                "duration": format_go_duration(self.duration.max(Duration::from_secs(1))),
                "scenario": scenario,
            }],
        })
    }
}

/// One piece of evidence: when, and what (key/value pairs such as `user`, `service`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Evidence {
    /// When it happened.
    pub timestamp: SystemTime,
    /// What was seen.
    pub meta: Vec<(String, String)>,
}

impl Evidence {
    /// Evidence at `timestamp` with these key/value pairs.
    pub fn new(timestamp: SystemTime, meta: Vec<(String, String)>) -> Self {
        Self { timestamp, meta }
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// What [`Watcher::submit`] did with a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Submitted {
    /// Queued.
    Queued,
    /// Queued; the queue was full and its oldest report was dropped.
    DroppedOldest,
    /// The watcher is shut down; nothing was queued.
    Closed,
}

/// Counters of a [`Watcher`], for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatcherStats {
    /// Reports submitted.
    pub submitted: u64,
    /// Reports dropped because the queue was full.
    pub dropped: u64,
    /// Alerts the LAPI accepted.
    pub delivered: u64,
    /// Alerts the LAPI refused, not retried.
    pub rejected: u64,
    /// Failed tries that were retried.
    pub retries: u64,
    /// Successful logins (the first, renewals, and after a 401).
    pub logins: u64,
    /// Reports waiting now.
    pub queued: u64,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    logins: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<BanReport>>,
    capacity: usize,
    wake: Notify,
    closed: AtomicBool,
    counters: Counters,
    /// Reports taken from the queue and not yet delivered or given up.
    in_flight: AtomicU64,
}

/// A CrowdSec watcher: logs in as a machine and pushes [`BanReport`]s as alerts.
///
/// [`submit`](Self::submit) is synchronous and returns at once: reports wait in a bounded
/// queue (a full queue drops its oldest) and a background task sends them in batches, logs
/// in (`POST /v1/watchers/login`), renews the JWT before it expires and after a 401 (the
/// LAPI draws a new signing secret at each start unless `CS_LAPI_SECRET` is set, so a
/// restarted LAPI refuses old tokens), and retries with exponential backoff while the LAPI
/// is unreachable. A LAPI that is down never delays the caller.
///
/// Every submitted target is recorded in the watcher's [`OwnBans`], which the bouncer uses
/// to mark bans that come back as [`pushed_by_us`](crate::Ban::pushed_by_us).
///
/// Dropping the watcher abandons what is queued; [`shutdown`](Self::shutdown) delivers
/// first, within a deadline.
#[derive(Debug)]
pub struct Watcher {
    shared: Arc<Shared>,
    own: OwnBans,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Watcher {
    /// Starts the watcher's task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`CrowdsecError::Client`] if the HTTP client cannot be built. The LAPI is not
    /// contacted here: a LAPI that is down at start is retried like any other outage.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(
        url: &Url,
        machine: MachineCredentials,
        config: WatcherConfig,
        own: OwnBans,
    ) -> Result<Watcher, CrowdsecError> {
        let client = build_client(url, config.request_timeout)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            capacity: config.queue_capacity.max(1),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            in_flight: AtomicU64::new(0),
        });
        let session = Session {
            client,
            login_url: endpoint(url, "v1/watchers/login"),
            alerts_url: endpoint(url, "v1/alerts"),
            machine,
            token: None,
        };
        let task = tokio::spawn(deliver(Arc::clone(&shared), session, config));
        Ok(Watcher {
            shared,
            own,
            task: Mutex::new(Some(task)),
        })
    }

    /// The watcher a resolved `[crowdsec]` section asks for; `None` when `push` is off.
    pub fn from_config(
        config: &ResolvedConfig,
        watcher: WatcherConfig,
        own: OwnBans,
    ) -> Result<Option<Watcher>, CrowdsecError> {
        match (&config.machine, config.push) {
            (Some(machine), true) => {
                Watcher::spawn(&config.url, machine.clone(), watcher, own).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Queues a report for the LAPI; never waits.
    pub fn submit(&self, report: BanReport) -> Submitted {
        if self.shared.closed.load(Ordering::Acquire) {
            return Submitted::Closed;
        }
        self.own
            .record(report.target, report.duration, Instant::now());
        self.shared
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        let dropped = {
            let mut queue = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let dropped = if queue.len() >= self.shared.capacity {
                queue.pop_front().is_some()
            } else {
                false
            };
            queue.push_back(report);
            dropped
        };
        self.shared.wake.notify_one();
        if dropped {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                capacity = self.shared.capacity,
                "CrowdSec alert queue full; dropped the oldest alert"
            );
            Submitted::DroppedOldest
        } else {
            Submitted::Queued
        }
    }

    /// The record of submitted targets (give it to the [`Bouncer`](crate::Bouncer)).
    pub fn own_bans(&self) -> &OwnBans {
        &self.own
    }

    /// Counters so far.
    pub fn stats(&self) -> WatcherStats {
        let c = &self.shared.counters;
        WatcherStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            logins: c.logins.load(Ordering::Relaxed),
            queued: self.pending(),
        }
    }

    fn pending(&self) -> u64 {
        let queued = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len() as u64;
        queued + self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Stops taking reports and delivers what is queued, for at most `deadline`.
    ///
    /// # Errors
    ///
    /// [`CrowdsecError::Undelivered`] with the number of reports left when time ran out.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), CrowdsecError> {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else { return Ok(()) };
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            task.abort();
            let undelivered = usize::try_from(self.pending()).unwrap_or(usize::MAX);
            return Err(CrowdsecError::Undelivered {
                undelivered,
                waited: deadline,
            });
        }
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The background task: batches from the queue to the LAPI.
async fn deliver(shared: Arc<Shared>, mut session: Session, config: WatcherConfig) {
    loop {
        let batch: Vec<BanReport> = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let n = queue.len().min(config.batch_size.max(1));
            let batch = queue.drain(..n).collect();
            shared.in_flight.store(n as u64, Ordering::Relaxed);
            batch
        };
        if batch.is_empty() {
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        let body = Value::Array(batch.iter().map(BanReport::to_alert_json).collect()).to_string();
        let count = batch.len() as u64;
        let mut backoff = config.min_backoff;
        let mut status_failures = 0;
        loop {
            match session.push(&body, &shared.counters).await {
                Ok(()) => {
                    shared
                        .counters
                        .delivered
                        .fetch_add(count, Ordering::Relaxed);
                    tracing::debug!(alerts = count, "alerts pushed to the CrowdSec LAPI");
                    break;
                }
                Err(error) => {
                    let refused = match &error {
                        CrowdsecError::Status { status, .. } => {
                            status_failures += 1;
                            (400..500).contains(status) && *status != 401 && *status != 429
                                || status_failures >= MAX_STATUS_ATTEMPTS
                        }
                        _ => false,
                    };
                    if refused {
                        shared.counters.rejected.fetch_add(count, Ordering::Relaxed);
                        tracing::error!(%error, alerts = count, "CrowdSec LAPI refused alerts; dropped");
                        break;
                    }
                    shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in = ?backoff, alerts = count, "cannot push alerts to the CrowdSec LAPI; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(config.max_backoff);
                }
            }
        }
        shared.in_flight.store(0, Ordering::Relaxed);
    }
}

/// The JWT session with the LAPI.
struct Session {
    client: Client,
    login_url: Url,
    alerts_url: Url,
    machine: MachineCredentials,
    /// The bearer token and when to renew it.
    token: Option<(crate::Secret, Instant)>,
}

impl Session {
    /// Posts one batch, logging in first when there is no token or it is due for renewal,
    /// and once more after a 401.
    async fn push(&mut self, body: &str, counters: &Counters) -> Result<(), CrowdsecError> {
        for attempt in 0..2 {
            let token = self.token(counters).await?;
            let response = self
                .client
                .post(self.alerts_url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned())
                .send()
                .await
                .map_err(|e| CrowdsecError::Unreachable {
                    during: "alerts",
                    reason: mtids_http::describe_error(e),
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                tracing::info!("CrowdSec LAPI refused the token (401); logging in again");
                self.token = None;
                continue;
            }
            return Err(status_error(response, "alerts").await);
        }
        Err(CrowdsecError::Status {
            during: "alerts",
            status: 401,
            message: "token refused right after login".to_owned(),
        })
    }

    async fn token(&mut self, counters: &Counters) -> Result<crate::Secret, CrowdsecError> {
        if let Some((token, renew_at)) = &self.token {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let response = self
            .client
            .post(self.login_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(
                json!({
                    "machine_id": self.machine.machine_id,
                    "password": self.machine.password.expose(),
                })
                .to_string(),
            )
            .send()
            .await
            .map_err(|e| CrowdsecError::Unreachable {
                during: "login",
                reason: mtids_http::describe_error(e),
            })?;
        if !response.status().is_success() {
            return Err(status_error(response, "login").await);
        }
        let body = read_body(response, 64 * 1024, "login").await?;
        #[derive(serde::Deserialize)]
        struct Login {
            token: String,
            #[serde(default)]
            expire: Option<String>,
        }
        let login: Login = serde_json::from_slice(&body).map_err(|e| CrowdsecError::Malformed {
            during: "login",
            reason: e.to_string(),
        })?;
        let renew_in = renew_in(login.expire.as_deref(), SystemTime::now());
        let token = crate::Secret::new(login.token);
        self.token = Some((token.clone(), Instant::now() + renew_in));
        counters.logins.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(renew_in = ?renew_in, "logged in to the CrowdSec LAPI");
        Ok(token)
    }
}

/// When to renew a token that expires at `expire` (RFC 3339, as the LAPI answers): a fifth
/// of its life (at most 5 minutes) before. Without a readable expiry, after 10 minutes
/// (1.4.6's tokens live one hour: `Timeout: time.Hour` in `pkg/apiserver/middlewares/v1/jwt.go`).
pub(crate) fn renew_in(expire: Option<&str>, now: SystemTime) -> Duration {
    let Some(expire) = expire.and_then(|e| humantime::parse_rfc3339_weak(e).ok()) else {
        return Duration::from_secs(600);
    };
    let life = expire.duration_since(now).unwrap_or(Duration::ZERO);
    life.saturating_sub((life / 5).min(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_has_every_field_146_requires() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let report = BanReport::new(
            "198.51.100.7".parse().unwrap(),
            Duration::from_secs(3600),
            "Brute Force!",
            "12 failed logins",
            at,
        )
        .with_event(Evidence::new(at, vec![("user".into(), "admin".into())]));
        let alert = report.to_alert_json();
        for key in [
            "scenario",
            "scenario_hash",
            "scenario_version",
            "message",
            "events_count",
            "start_at",
            "stop_at",
            "capacity",
            "leakspeed",
            "simulated",
            "events",
            "source",
        ] {
            assert!(alert.get(key).is_some(), "{key} missing");
        }
        assert_eq!(alert["scenario"], "mtids/brute_force_");
        assert_eq!(alert["start_at"], "2027-01-15T08:00:00Z");
        assert_eq!(alert["source"]["ip"], "198.51.100.7");
        let d = &alert["decisions"][0];
        assert_eq!(d["origin"], "mtids");
        assert_eq!(d["scope"], "Ip");
        assert_eq!(d["duration"], "1h0m0s");
        assert_eq!(alert["events"][0]["meta"][0]["key"], "user");

        let range = BanReport::new(
            "203.0.113.0/24".parse().unwrap(),
            Duration::from_millis(10),
            "",
            "m",
            at,
        );
        let alert = range.to_alert_json();
        assert_eq!(alert["decisions"][0]["scope"], "Range");
        assert_eq!(alert["decisions"][0]["value"], "203.0.113.0/24");
        assert_eq!(alert["decisions"][0]["duration"], "1s");
        assert_eq!(alert["scenario"], "mtids/unknown");
        assert_eq!(
            alert["events"].as_array().unwrap().len(),
            1,
            "a synthesised event"
        );
    }

    #[test]
    fn renewal_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // One hour: renew 5 minutes before.
        assert_eq!(
            renew_in(
                Some("2027-01-15T08:00:00Z"),
                now - Duration::from_secs(3600)
            ),
            Duration::from_secs(3300)
        );
        assert_eq!(renew_in(Some("2000-01-01T00:00:00Z"), now), Duration::ZERO);
        assert_eq!(renew_in(Some("garbage"), now), Duration::from_secs(600));
        assert_eq!(renew_in(None, now), Duration::from_secs(600));
    }
}
