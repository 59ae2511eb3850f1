//! packaging/grafana/mtids.json: every panel query names metrics that `mtids run` exports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use std::sync::Arc;

use mtids_cli::metrics::Metrics;
use mtids_cli::simulate::RecordingNotifier;

/// The schemaVersion the dashboard is written for (Grafana 10.4 / 11).
const SCHEMA_VERSION: u64 = 39;

/// The metric names (`mtids_...`) in a PromQL expression, histogram suffixes removed.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("mtids_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

/// A fresh [`Metrics`] with one series in every labelled family (an empty family renders
/// nothing), rendered.
async fn render_every_family() -> String {
    let metrics = Metrics::new();
    metrics.event_counters("r1").count("auth");
    metrics.finding("brute_force");
    metrics.decision(true);
    metrics.set_active_bans(1);
    metrics.set_active_bans_by_router([("r1", 1)]);
    metrics.block_latency(std::time::Duration::from_millis(3));
    metrics.block_failed("r1");
    metrics.router_connected("r1", true);
    metrics.set_alert_queue(0);
    metrics.set_ledger_errors(0);
    metrics.set_syslog_dropped(0);
    let alerts = mtids_alert::Dispatcher::spawn(
        mtids_alert::DispatcherConfig::default(),
        vec![Arc::new(RecordingNotifier::default())],
    )
    .unwrap();
    metrics.set_alert_destinations(&alerts.destinations());
    metrics.render()
}

#[tokio::test]
async fn every_panel_query_names_an_exported_metric() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/grafana/mtids.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["schemaVersion"], SCHEMA_VERSION);

    let rendered = render_every_family().await;
    // Sample names as exposed (`mtids_decisions_total`, `..._bucket`), suffixes removed
    // as `metric_names` removes them from the queries.
    let exported: BTreeSet<String> = rendered
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .flat_map(metric_names)
        .collect();
    assert!(
        exported.contains("mtids_detection_to_block_seconds"),
        "{rendered}"
    );

    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut used = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "panel {title}: {expr} names no mtids metric"
            );
            for name in names {
                assert!(
                    exported.contains(&name),
                    "panel {title}: {name} is not exported (exported: {exported:?})"
                );
                used.insert(name);
            }
        }
    }
    // What the dashboard promises to show.
    for name in [
        "mtids_events_total",
        "mtids_findings_total",
        "mtids_decisions_total",
        "mtids_active_bans_by_router",
        "mtids_detection_to_block_seconds",
        "mtids_router_connected",
        "mtids_alert_queue",
        "mtids_ledger_errors_total",
    ] {
        assert!(used.contains(name), "no panel shows {name}");
    }
}
