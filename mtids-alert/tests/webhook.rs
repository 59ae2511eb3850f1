//! The webhook notifier against a real HTTP server on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Reply, TestServer, hostile_alert};
use mtids_alert::{
    Action, Alert, AuthHeader, Notification, Notifier, RetryPolicy, SourceCount, Summary, Threat,
    WebhookConfig, WebhookFormat, WebhookNotifier,
};
use serde_json::json;

fn notifier(url: &str, format: WebhookFormat) -> WebhookNotifier {
    let mut config = WebhookConfig::new(url);
    config.format = format;
    config.auth_header = Some(AuthHeader::authorization("Bearer hook-s3cret"));
    let mut retry = RetryPolicy::default();
    retry.initial_backoff = Duration::from_millis(10);
    config.retry = retry;
    WebhookNotifier::new(config).unwrap()
}

#[tokio::test]
async fn json_alert_follows_the_documented_schema_with_the_auth_header() {
    let server = TestServer::start(vec![]).await;
    let url = format!("{}/hooks/mtids?key=abc", server.base);
    notifier(&url, WebhookFormat::Json)
        .notify(&hostile_alert().into())
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/hooks/mtids");
    assert_eq!(request.header("authorization"), Some("Bearer hook-s3cret"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("🚫 Login brute force from 203.0.113.7\n"),
        "{text}"
    );
    assert!(
        text.contains("<b>root</b>_*[]\\nAction: none & co"),
        "plain text, newline escaped: {text}"
    );
    assert_eq!(
        body,
        json!({
            "schema": "mtids-alert/v1",
            "kind": "alert",
            "text": text,
            "alert": {
                "threat": "login_brute_force",
                "threat_label": "Login brute force",
                "source": "203.0.113.7",
                "action": { "kind": "blocked", "duration_secs": 3600, "routers": ["core-1", "edge-2"] },
                "evidence": "12 failed logins for user <b>root</b>_*[]\nAction: none & co via ssh",
                "detected_at": "2023-11-14T22:13:20Z",
                "detected_at_unix_ms": 1_700_000_000_000_u64,
                "enforced_at": "2023-11-14T22:13:20Z",
                "enforced_at_unix_ms": 1_700_000_000_250_u64,
                "detector": "brute-force",
                "severity": "high",
            }
        })
    );
}

#[tokio::test]
async fn json_summary_and_suppressed_alerts() {
    let server = TestServer::start(vec![]).await;
    let hook = notifier(&server.base, WebhookFormat::Json);
    let summary = Summary::new(
        37,
        30,
        Duration::from_secs(60),
        vec![SourceCount {
            source: "203.0.113.7".into(),
            count: 12,
        }],
    );
    hook.notify(&summary.into()).await.unwrap();
    let suppressed = Alert::new(
        Threat::PortScan,
        "10.0.0.5",
        Action::Suppressed {
            reason: "allowlisted (10.0.0.0/8)".into(),
        },
        "40 ports in 10 s",
        SystemTime::UNIX_EPOCH,
    );
    hook.notify(&suppressed.into()).await.unwrap();
    let requests = server.requests();
    let summary = requests[0].json();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(
        summary["summary"],
        json!({ "held_back": 37, "blocks": 30, "window_secs": 60, "top_sources": [{ "source": "203.0.113.7", "count": 12 }] })
    );
    assert!(
        summary["text"]
            .as_str()
            .unwrap()
            .contains("37 more alerts in the last minute (30 blocks)")
    );
    let alert = requests[1].json();
    assert_eq!(
        alert["alert"]["action"],
        json!({ "kind": "suppressed", "reason": "allowlisted (10.0.0.0/8)" })
    );
    assert_eq!(alert["alert"]["enforced_at"], serde_json::Value::Null);
    assert_eq!(alert["alert"]["severity"], serde_json::Value::Null);
}

#[tokio::test]
async fn slack_text_escapes_mentions_and_turns_markdown_off() {
    let server = TestServer::start(vec![]).await;
    let mut alert = hostile_alert();
    alert.evidence = "login as <!channel> & *bold* <https://evil.example|click>".into();
    notifier(&server.base, WebhookFormat::Slack)
        .notify(&Notification::Alert(alert))
        .await
        .unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["mrkdwn"], false);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(
            "Evidence: login as &lt;!channel&gt; &amp; *bold* &lt;https://evil.example|click&gt;"
        ),
        "{text}"
    );
    assert!(!text.contains('<'), "{text}");
}

#[tokio::test]
async fn retry_after_header_is_honoured() {
    let server = TestServer::start(vec![Reply::StatusWithHeader(
        429,
        "slow down",
        "retry-after",
        "1",
    )])
    .await;
    notifier(&server.base, WebhookFormat::Json)
        .notify(&hostile_alert().into())
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    // Following would resend the auth header and the alert somewhere else.
    let server = TestServer::start(vec![Reply::StatusWithHeader(
        307,
        "",
        "location",
        "/elsewhere",
    )])
    .await;
    let mut config = WebhookConfig::new(server.base.clone());
    config.name = "siem".into();
    let hook = WebhookNotifier::new(config).unwrap();
    assert_eq!(hook.name(), "siem");
    let err = hook.notify(&hostile_alert().into()).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("siem rejected the message with HTTP 307"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}
