//! The optional Prometheus endpoint (`[metrics] listen = "127.0.0.1:9184"`).
//!
//! [`Metrics`] holds the counters and gauges the daemon updates; [`MetricsServer`]
//! exposes them as OpenMetrics text on `GET /metrics`. Cloning a `Metrics` is cheap and
//! every clone updates the same values, so each task keeps its own handle. Per-source
//! event counters are created once ([`Metrics::event_counters`]) so counting an event
//! is one atomic add, without a label lookup or an allocation.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mtids_events_total` | counter | `router` (a configured router, or `syslog`), `kind` (firewall, auth, connection, resource, unrecognized) |
//! | `mtids_findings_total` | counter | `detector` |
//! | `mtids_decisions_total` | counter | `outcome` (ban, suppressed) |
//! | `mtids_active_bans` | gauge | |
//! | `mtids_active_bans_by_router` | gauge | `router` |
//! | `mtids_detection_to_block_seconds` | histogram | |
//! | `mtids_block_failures_total` | counter | `router` |
//! | `mtids_router_connected` | gauge (0/1) | `router` |
//! | `mtids_alert_queue` | gauge | |
//! | `mtids_alert_destination_queue` | gauge | `destination` (a notifier: `telegram`, a webhook's name) |
//! | `mtids_alerts_dropped_total` | counter | `destination` |
//! | `mtids_alerts_failed_total` | counter | `destination` |
//! | `mtids_alert_destination_hung` | gauge (0/1) | `destination` |
//! | `mtids_syslog_lines_total` | counter | `outcome` (recognized, unrecognized, too_long, malformed) |
//! | `mtids_syslog_dropped_total` | counter | |
//! | `mtids_ledger_errors_total` | counter | |
//!
//! Gauges computed from state (active bans, the alert queues, the kernel's syslog drop
//! count) are refreshed by hooks ([`Metrics::on_render`]) each time the metrics are
//! rendered, i.e. at scrape time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::CliError;

type Labels = Vec<(&'static str, String)>;

/// The event kinds of `mtids_detect::Event::kind`, each with a pre-created counter.
const EVENT_KINDS: [&str; 5] = ["firewall", "auth", "connection", "resource", "unrecognized"];

/// What became of one syslog line (`mtids_syslog_lines_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyslogLine {
    /// The parser made an event of it.
    Recognized,
    /// Read, but not a line the parser knows (also counted as an `unrecognized` event).
    Unrecognized,
    /// Longer than the line limit: skipped.
    TooLong,
    /// Broken framing (a bad octet count): the TCP connection is closed.
    Malformed,
}

impl SyslogLine {
    const ALL: [SyslogLine; 4] = [
        SyslogLine::Recognized,
        SyslogLine::Unrecognized,
        SyslogLine::TooLong,
        SyslogLine::Malformed,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            SyslogLine::Recognized => "recognized",
            SyslogLine::Unrecognized => "unrecognized",
            SyslogLine::TooLong => "too_long",
            SyslogLine::Malformed => "malformed",
        }
    }
}

/// Called before each rendering to refresh the gauges computed from state.
type RenderHook = Arc<dyn Fn(&Metrics) + Send + Sync>;

/// The daemon's metrics. Cheap to clone; all clones share the values.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events: Family<Labels, Counter>,
    findings: Family<Labels, Counter>,
    bans: Counter,
    suppressed: Counter,
    active_bans: Gauge,
    active_bans_by_router: Family<Labels, Gauge>,
    /// Routers that have had an `active_bans_by_router` series.
    active_ban_routers: Mutex<std::collections::HashSet<String>>,
    block_latency: Histogram,
    block_failures: Family<Labels, Counter>,
    router_connected: Family<Labels, Gauge>,
    alert_queue: Gauge,
    alert_destination_queue: Family<Labels, Gauge>,
    alerts_dropped: Family<Labels, Counter>,
    alerts_failed: Family<Labels, Counter>,
    alert_destination_hung: Family<Labels, Gauge>,
    syslog_lines: [Counter; SyslogLine::ALL.len()],
    syslog_dropped: Counter,
    on_render: Mutex<Vec<RenderHook>>,
    ledger_errors: Counter,
    crowdsec_pulled: Family<Labels, Counter>,
    crowdsec_unbanned: Counter,
    crowdsec_pushes: Family<Labels, Counter>,
    crowdsec_lapi_reachable: Gauge,
}

/// The `mtids_events_total` counters of one event source (a router, or `syslog`), one
/// per event kind, created up front: [`EventCounters::count`] is one atomic add.
#[derive(Clone)]
pub struct EventCounters {
    source: String,
    by_kind: [Counter; EVENT_KINDS.len()],
    family: Family<Labels, Counter>,
}

impl std::fmt::Debug for EventCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCounters")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl EventCounters {
    /// One event of `kind` (`Event::kind()`).
    pub fn count(&self, kind: &'static str) {
        self.count_many(kind, 1);
    }

    /// `n` events of `kind` (`Event::kind()`): one atomic add for a run of them.
    pub fn count_many(&self, kind: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        match EVENT_KINDS.iter().position(|k| *k == kind) {
            Some(i) => {
                if let Some(counter) = self.by_kind.get(i) {
                    counter.inc_by(n);
                }
            }
            // A kind added to mtids-detect later: counted, through the slower lookup.
            None => {
                self.family
                    .get_or_create(&vec![
                        ("router", self.source.clone()),
                        ("kind", kind.to_owned()),
                    ])
                    .inc_by(n);
            }
        }
    }

    /// The source these counters are labelled with.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics at zero, registered under the `mtids` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mtids");
        let events = Family::<Labels, Counter>::default();
        let findings = Family::<Labels, Counter>::default();
        let decisions = Family::<Labels, Counter>::default();
        // Both outcomes exist from the start (a rate query over a missing series is empty).
        let bans = decisions.get_or_create_owned(&vec![("outcome", "ban".to_owned())]);
        let suppressed = decisions.get_or_create_owned(&vec![("outcome", "suppressed".to_owned())]);
        let active_bans = Gauge::default();
        let active_bans_by_router = Family::<Labels, Gauge>::default();
        // 0.5 ms to about 16 s: loopback blocks land in the first buckets, the seeds'
        // promise of "under 5 s" in the last.
        let block_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let block_failures = Family::<Labels, Counter>::default();
        let router_connected = Family::<Labels, Gauge>::default();
        let alert_queue = Gauge::default();
        let alert_destination_queue = Family::<Labels, Gauge>::default();
        let alerts_dropped = Family::<Labels, Counter>::default();
        let alerts_failed = Family::<Labels, Counter>::default();
        let alert_destination_hung = Family::<Labels, Gauge>::default();
        let syslog_lines_family = Family::<Labels, Counter>::default();
        // Every outcome exists from the start, at zero.
        let syslog_lines = SyslogLine::ALL.map(|outcome| {
            syslog_lines_family.get_or_create_owned(&vec![("outcome", outcome.label().to_owned())])
        });
        let syslog_dropped = Counter::default();
        let ledger_errors = Counter::default();
        registry.register("events", "Events read from the routers", events.clone());
        registry.register(
            "findings",
            "Findings reported by the detectors",
            findings.clone(),
        );
        registry.register(
            "decisions",
            "What the policy made of findings: ban or suppressed",
            decisions.clone(),
        );
        registry.register(
            "active_bans",
            "Addresses banned now (on one router or more; a ban on every router counts once)",
            active_bans.clone(),
        );
        registry.register(
            "active_bans_by_router",
            "Bans in force on each router (address-list entries mtids keeps there)",
            active_bans_by_router.clone(),
        );
        registry.register(
            "detection_to_block_seconds",
            "Time from the event that crossed a threshold to the router's confirmation",
            block_latency.clone(),
        );
        registry.register(
            "block_failures",
            "Bans a router refused, or could not take while disconnected (they stay pending \
             in the ledger and are applied on reconnect)",
            block_failures.clone(),
        );
        registry.register(
            "router_connected",
            "1 while the API connection to the router is up",
            router_connected.clone(),
        );
        registry.register(
            "alert_queue",
            "Alerts waiting to be delivered",
            alert_queue.clone(),
        );
        registry.register(
            "alert_destination_queue",
            "Alerts waiting for one destination, or being delivered to it",
            alert_destination_queue.clone(),
        );
        registry.register(
            "alerts_dropped",
            "Alerts a destination never got because its queue was full (it is hung or slow)",
            alerts_dropped.clone(),
        );
        registry.register(
            "alerts_failed",
            "Alerts a destination refused or did not take within dispatcher.delivery_timeout",
            alerts_failed.clone(),
        );
        registry.register(
            "alert_destination_hung",
            "1 while a destination is hung: its last delivery timed out or its queue overflowed",
            alert_destination_hung.clone(),
        );
        registry.register(
            "syslog_lines",
            "Syslog lines received, by what became of them",
            syslog_lines_family,
        );
        registry.register(
            "syslog_dropped",
            "Syslog datagrams the kernel dropped because the UDP receive buffer was full \
             (input.syslog_udp_buffer); Linux only",
            syslog_dropped.clone(),
        );
        registry.register(
            "ledger_errors",
            "Ban ledger writes that failed (the bans still reached the routers; the writes \
             were kept in memory and retried)",
            ledger_errors.clone(),
        );
        let crowdsec_pulled = Family::<Labels, Counter>::default();
        let crowdsec_unbanned = Counter::default();
        let crowdsec_pushes = Family::<Labels, Counter>::default();
        let crowdsec_lapi_reachable = Gauge::default();
        registry.register(
            "crowdsec_pulled",
            "Ban decisions pulled from the CrowdSec LAPI, by what became of them (applied, \
             or the reason they were skipped)",
            crowdsec_pulled.clone(),
        );
        registry.register(
            "crowdsec_unbanned",
            "Pulled bans lifted because their CrowdSec decisions ended or were deleted",
            crowdsec_unbanned.clone(),
        );
        registry.register(
            "crowdsec_pushes",
            "mtids' own bans pushed to the CrowdSec LAPI as alerts, by outcome (delivered, \
             dropped from the full queue, rejected by the LAPI)",
            crowdsec_pushes.clone(),
        );
        registry.register(
            "crowdsec_lapi_reachable",
            "1 while the last pull from the CrowdSec LAPI succeeded",
            crowdsec_lapi_reachable.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                events,
                findings,
                bans,
                suppressed,
                active_bans,
                active_bans_by_router,
                active_ban_routers: Mutex::default(),
                block_latency,
                block_failures,
                router_connected,
                alert_queue,
                alert_destination_queue,
                alerts_dropped,
                alerts_failed,
                alert_destination_hung,
                syslog_lines,
                syslog_dropped,
                on_render: Mutex::new(Vec::new()),
                ledger_errors,
                crowdsec_pulled,
                crowdsec_unbanned,
                crowdsec_pushes,
                crowdsec_lapi_reachable,
            }),
        }
    }

    /// The event counters of `source` (a router's name, or `syslog`), every kind
    /// registered at zero. Create them once and keep them: counting is then one atomic
    /// add.
    pub fn event_counters(&self, source: &str) -> EventCounters {
        let by_kind = EVENT_KINDS.map(|kind| {
            self.inner.events.get_or_create_owned(&vec![
                ("router", source.to_owned()),
                ("kind", kind.to_owned()),
            ])
        });
        EventCounters {
            source: source.to_owned(),
            by_kind,
            family: self.inner.events.clone(),
        }
    }

    /// One event of `kind` (`Event::kind()`) read from `router`. On a hot path, prefer
    /// the counters of [`Metrics::event_counters`].
    pub fn event(&self, router: &str, kind: &'static str) {
        self.inner
            .events
            .get_or_create(&vec![
                ("router", router.to_owned()),
                ("kind", kind.to_owned()),
            ])
            .inc();
    }

    /// A finding by `detector`.
    pub fn finding(&self, detector: &str) {
        self.inner
            .findings
            .get_or_create(&vec![("detector", detector.to_owned())])
            .inc();
    }

    /// A policy outcome: `banned` true for a ban, false for a suppressed finding.
    pub fn decision(&self, banned: bool) {
        if banned {
            self.inner.bans.inc();
        } else {
            self.inner.suppressed.inc();
        }
    }

    /// Raises `mtids_ledger_errors_total` to `total` (the ledger's own count of failed
    /// writes since it was opened; a counter never goes down).
    pub fn set_ledger_errors(&self, total: u64) {
        raise_to(&self.inner.ledger_errors, total);
    }

    /// `n` ban decisions pulled from CrowdSec that became `outcome` (`applied`, or why
    /// they were skipped: `pushed_by_us`, `guarded`, `over_cap`, `not_ban`, ...).
    pub fn crowdsec_pulled(&self, outcome: &str, n: u64) {
        let counter = self
            .inner
            .crowdsec_pulled
            .get_or_create(&vec![("outcome", outcome.to_owned())]);
        counter.inc_by(n);
    }

    /// A pulled ban lifted because CrowdSec ended it.
    pub fn crowdsec_unbanned(&self) {
        self.inner.crowdsec_unbanned.inc();
    }

    /// The watcher's counts (`WatcherStats`): delivered, dropped and rejected pushes.
    pub fn set_crowdsec_pushes(&self, delivered: u64, dropped: u64, rejected: u64) {
        for (outcome, total) in [
            ("delivered", delivered),
            ("dropped", dropped),
            ("rejected", rejected),
        ] {
            raise_to(
                &self
                    .inner
                    .crowdsec_pushes
                    .get_or_create(&vec![("outcome", outcome.to_owned())]),
                total,
            );
        }
    }

    /// Whether the last pull from the LAPI succeeded.
    pub fn set_crowdsec_reachable(&self, up: bool) {
        self.inner.crowdsec_lapi_reachable.set(i64::from(up));
    }

    /// The number of addresses banned now (distinct targets, however many routers).
    pub fn set_active_bans(&self, n: u64) {
        self.inner
            .active_bans
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The bans in force per router; a router left out of `by_router` has none (its
    /// series is kept at 0 rather than removed, as `mtids_router_connected` is).
    pub fn set_active_bans_by_router<'a>(
        &self,
        by_router: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        let family = &self.inner.active_bans_by_router;
        let mut seen = std::collections::HashSet::new();
        for (router, n) in by_router {
            family
                .get_or_create(&vec![("router", router.to_owned())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
            seen.insert(router.to_owned());
        }
        // Routers whose bans have all expired go back to 0.
        let mut known = self
            .inner
            .active_ban_routers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for router in known.difference(&seen) {
            family
                .get_or_create(&vec![("router", router.clone())])
                .set(0);
        }
        known.extend(seen);
    }

    /// One detection-to-block latency.
    pub fn block_latency(&self, latency: Duration) {
        self.inner.block_latency.observe(latency.as_secs_f64());
    }

    /// A ban `router` did not take (refused, or not connected, or no answer in time).
    pub fn block_failed(&self, router: &str) {
        self.inner
            .block_failures
            .get_or_create(&vec![("router", router.to_owned())])
            .inc();
    }

    /// Whether the API connection to `router` is up.
    pub fn router_connected(&self, router: &str, up: bool) {
        // The failure counter starts at zero with the router, so a rate over it exists.
        let _ = self
            .inner
            .block_failures
            .get_or_create(&vec![("router", router.to_owned())]);
        self.inner
            .router_connected
            .get_or_create(&vec![("router", router.to_owned())])
            .set(i64::from(up));
    }

    /// Alerts waiting to be delivered.
    pub fn set_alert_queue(&self, n: usize) {
        self.inner
            .alert_queue
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Per-destination alert delivery, from `Dispatcher::destinations`.
    pub fn set_alert_destinations(&self, destinations: &[mtids_alert::DestinationStats]) {
        for d in destinations {
            let labels = vec![("destination", d.name.clone())];
            self.inner
                .alert_destination_queue
                .get_or_create(&labels)
                .set(i64::try_from(d.pending).unwrap_or(i64::MAX));
            self.inner
                .alert_destination_hung
                .get_or_create(&labels)
                .set(i64::from(d.hung));
            // The dispatcher owns the counts; mirror them.
            raise_to(&self.inner.alerts_dropped.get_or_create(&labels), d.dropped);
            raise_to(&self.inner.alerts_failed.get_or_create(&labels), d.failed);
        }
    }

    /// One syslog line, and what became of it.
    pub fn syslog_line(&self, outcome: SyslogLine) {
        self.syslog_lines(outcome, 1);
    }

    /// `n` syslog lines with the same outcome (the listeners count once per read).
    pub fn syslog_lines(&self, outcome: SyslogLine, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(counter) = SyslogLine::ALL
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.inner.syslog_lines.get(i))
        {
            counter.inc_by(n);
        }
    }

    /// The kernel's count of syslog datagrams dropped on the UDP socket.
    pub fn set_syslog_dropped(&self, dropped: u64) {
        raise_to(&self.inner.syslog_dropped, dropped);
    }

    /// Adds a hook that refreshes values computed from state (active bans, the alert
    /// queues, kernel counters) before each [`Metrics::render`]; hooks run in the order
    /// added. A hook runs on the caller's thread (the endpoint calls render on a
    /// blocking thread), so it may take a lock or read a file. To avoid a reference
    /// cycle, it should hold a `Weak` to whatever owns this `Metrics`.
    pub fn on_render(&self, hook: impl Fn(&Metrics) + Send + Sync + 'static) {
        let mut hooks = match self.inner.on_render.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        hooks.push(Arc::new(hook));
    }

    /// The OpenMetrics text exposition of every metric (after running the
    /// [`on_render`](Metrics::on_render) hook, if any).
    pub fn render(&self) -> String {
        let hooks = match self.inner.on_render.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for hook in hooks {
            hook(self);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

/// Raises `counter` to `total`, a count kept elsewhere (the kernel, the dispatcher): a
/// counter never goes down.
fn raise_to(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound metrics endpoint; [`MetricsServer::serve`] answers until `shutdown` resolves.
#[derive(Debug)]
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    metrics: Metrics,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, metrics: Metrics) -> Result<MetricsServer, CliError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Io {
                context: format!("binding the metrics endpoint on {addr} (metrics.listen)"),
                source: e,
            })?;
        Ok(MetricsServer { listener, metrics })
    }

    /// Binds `addr` at once, without awaiting (port 0 picks a free port). Must be called
    /// inside a tokio runtime.
    pub fn bind_now(addr: SocketAddr, metrics: Metrics) -> Result<MetricsServer, CliError> {
        let context = || format!("binding the metrics endpoint on {addr} (metrics.listen)");
        let listener = std::net::TcpListener::bind(addr).map_err(|e| CliError::Io {
            context: context(),
            source: e,
        })?;
        listener.set_nonblocking(true).map_err(|e| CliError::Io {
            context: context(),
            source: e,
        })?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| CliError::Io {
            context: context(),
            source: e,
        })?;
        Ok(MetricsServer { listener, metrics })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `GET /metrics` until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), CliError> {
        let metrics = self.metrics;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    // The render hook may wait for the ledger: off the async workers.
                    match tokio::task::spawn_blocking(move || metrics.render()).await {
                        Ok(body) => (
                            axum::http::StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            body,
                        ),
                        // Only a panic in the render hook: an empty 200 would read as
                        // "every series gone".
                        Err(_) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [(axum::http::header::CONTENT_TYPE, "text/plain")],
                            "rendering the metrics failed\n".to_owned(),
                        ),
                    }
                }
            }),
        );
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| CliError::Io {
                context: "serving the metrics endpoint".to_owned(),
                source: e,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_bans_by_router_go_back_to_zero_when_a_router_has_none() {
        let metrics = Metrics::new();
        metrics.set_active_bans(2);
        metrics.set_active_bans_by_router([("gw", 2), ("edge", 1)]);
        let text = metrics.render();
        assert!(text.contains("mtids_active_bans 2\n"), "{text}");
        assert!(
            text.contains("mtids_active_bans_by_router{router=\"gw\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("mtids_active_bans_by_router{router=\"edge\"} 1"),
            "{text}"
        );
        metrics.set_active_bans_by_router([("gw", 1)]);
        let text = metrics.render();
        assert!(
            text.contains("mtids_active_bans_by_router{router=\"edge\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mtids_active_bans_by_router{router=\"gw\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn event_counters_are_registered_at_zero_and_count_every_kind() {
        let metrics = Metrics::new();
        let gw = metrics.event_counters("gw");
        assert_eq!(gw.source(), "gw");
        let text = metrics.render();
        assert!(
            text.contains("mtids_events_total{router=\"gw\",kind=\"auth\"} 0"),
            "{text}"
        );
        gw.count("auth");
        gw.count("auth");
        gw.count("firewall");
        // A clone of the handle counts into the same series.
        gw.clone().count("auth");
        // A kind unknown today is still counted.
        gw.count("dhcp");
        let text = metrics.render();
        for line in [
            "mtids_events_total{router=\"gw\",kind=\"auth\"} 3",
            "mtids_events_total{router=\"gw\",kind=\"firewall\"} 1",
            "mtids_events_total{router=\"gw\",kind=\"dhcp\"} 1",
            "mtids_decisions_total{outcome=\"ban\"} 0",
            "mtids_decisions_total{outcome=\"suppressed\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_render_hook_refreshes_gauges_before_each_rendering() {
        let metrics = Metrics::new();
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        metrics.on_render(move |m| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            m.set_active_bans(n * 10);
            m.set_alert_queue(usize::try_from(n).unwrap());
        });
        assert!(metrics.render().contains("mtids_active_bans 10\n"));
        let text = metrics.render();
        assert!(text.contains("mtids_active_bans 20\n"), "{text}");
        assert!(text.contains("mtids_alert_queue 2\n"), "{text}");
    }

    #[test]
    fn syslog_outcomes_start_at_zero_and_destinations_mirror_the_dispatcher() {
        let metrics = Metrics::new();
        let text = metrics.render();
        for outcome in ["recognized", "unrecognized", "too_long", "malformed"] {
            let line = format!("mtids_syslog_lines_total{{outcome=\"{outcome}\"}} 0");
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("mtids_syslog_dropped_total 0\n"), "{text}");
        metrics.syslog_line(SyslogLine::TooLong);
        metrics.syslog_line(SyslogLine::TooLong);
        metrics.set_syslog_dropped(17);
        let config: mtids_alert::AlertConfig =
            toml::from_str("[[webhook]]\nurl = \"http://127.0.0.1:1/a\"\nname = \"ops\"").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let dispatcher = mtids_alert::Dispatcher::spawn(
            mtids_alert::DispatcherConfig::default(),
            config.notifiers().unwrap(),
        )
        .unwrap();
        metrics.set_alert_destinations(&dispatcher.destinations());
        let text = metrics.render();
        for line in [
            "mtids_syslog_lines_total{outcome=\"too_long\"} 2",
            "mtids_syslog_dropped_total 17",
            "mtids_alert_destination_queue{destination=\"ops\"} 0",
            "mtids_alerts_dropped_total{destination=\"ops\"} 0",
            "mtids_alerts_failed_total{destination=\"ops\"} 0",
            "mtids_alert_destination_hung{destination=\"ops\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
