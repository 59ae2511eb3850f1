//! The optional Prometheus endpoint (`[metrics] listen = "127.0.0.1:9184"`).
//!
//! [`Metrics`] holds the counters and gauges the daemon updates; [`serve`] exposes them
//! as OpenMetrics text on `GET /metrics`. Cloning a `Metrics` is cheap and every clone
//! updates the same values, so each task keeps its own handle.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mtids_events_total` | counter | `router`, `kind` (firewall, auth, connection, resource, unrecognized) |
//! | `mtids_findings_total` | counter | `detector` |
//! | `mtids_decisions_total` | counter | `outcome` (ban, suppressed) |
//! | `mtids_active_bans` | gauge | |
//! | `mtids_detection_to_block_seconds` | histogram | |
//! | `mtids_router_connected` | gauge (0/1) | `router` |
//! | `mtids_alert_queue` | gauge | |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::CliError;

type Labels = Vec<(&'static str, String)>;

/// The daemon's metrics. Cheap to clone; all clones share the values.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events: Family<Labels, Counter>,
    findings: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    active_bans: Gauge,
    block_latency: Histogram,
    router_connected: Family<Labels, Gauge>,
    alert_queue: Gauge,
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
        let active_bans = Gauge::default();
        // 0.5 ms to about 16 s: loopback blocks land in the first buckets, the seeds'
        // promise of "under 5 s" in the last.
        let block_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let router_connected = Family::<Labels, Gauge>::default();
        let alert_queue = Gauge::default();
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
            "Bans currently in force",
            active_bans.clone(),
        );
        registry.register(
            "detection_to_block_seconds",
            "Time from the event that crossed a threshold to the router's confirmation",
            block_latency.clone(),
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
        Metrics {
            inner: Arc::new(Inner {
                registry,
                events,
                findings,
                decisions,
                active_bans,
                block_latency,
                router_connected,
                alert_queue,
            }),
        }
    }

    /// One event of `kind` (`Event::kind()`) read from `router`.
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
        let outcome = if banned { "ban" } else { "suppressed" };
        self.inner
            .decisions
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// The number of bans in force.
    pub fn set_active_bans(&self, n: u64) {
        self.inner
            .active_bans
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One detection-to-block latency.
    pub fn block_latency(&self, latency: Duration) {
        self.inner.block_latency.observe(latency.as_secs_f64());
    }

    /// Whether the API connection to `router` is up.
    pub fn router_connected(&self, router: &str, up: bool) {
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

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
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
                    (
                        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                        metrics.render(),
                    )
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
