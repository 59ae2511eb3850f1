//! The Telegram notifier against a real HTTP server on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{LogBuffer, Reply, TestServer, closed_port, hostile_alert};
use mtids_alert::{
    AlertError, ChatId, Notification, Notifier, RetryPolicy, TelegramConfig, TelegramNotifier,
};

const TOKEN: &str = "424242:AAH-sEcReT_tOkEn-0123456789";

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    retry.max_attempts = max_attempts;
    retry.initial_backoff = Duration::from_millis(20);
    retry.max_backoff = Duration::from_millis(100);
    retry
}

fn notifier(base: &str, max_attempts: u32) -> TelegramNotifier {
    let mut config = TelegramConfig::new(TOKEN, ChatId::Id(-1_001_234_567_890));
    config.message_thread_id = Some(7);
    config.api_url = base.to_owned();
    config.timeout = Duration::from_secs(2);
    config.retry = fast_retry(max_attempts);
    TelegramNotifier::new(config).unwrap()
}

fn alert() -> Notification {
    hostile_alert().into()
}

#[tokio::test]
async fn message_content_and_escaping() {
    let server = TestServer::start(vec![]).await;
    notifier(&server.base, 1).notify(&alert()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["chat_id"], -1_001_234_567_890_i64);
    assert_eq!(body["message_thread_id"], 7);
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["link_preview_options"]["is_disabled"], true);
    let expected = "🚫 <b>Login brute force</b> from <code>203.0.113.7</code>\n\
        Action: blocked for 1h on core-1, edge-2\n\
        Evidence: 12 failed logins for user &lt;b&gt;root&lt;/b&gt;_*[]\\nAction: none &amp; co via ssh\n\
        Detector: brute-force · Severity: high\n\
        Detected: 2023-11-14T22:13:20Z · enforced 0.250 s later";
    assert_eq!(body["text"], expected);
}

#[tokio::test]
async fn retry_after_from_a_429_is_honoured() {
    let server = TestServer::start(vec![Reply::Status(
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#,
    )])
    .await;
    notifier(&server.base, 3).notify(&alert()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    // The policy's own backoff is 20 ms: only retry_after explains a one-second wait.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(3), "retried after {waited:?}");
    assert_eq!(requests[0].body, requests[1].body);
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let server = TestServer::start(vec![
        Reply::Status(500, "oops"),
        Reply::Status(502, "<html>bad gateway</html>"),
    ])
    .await;
    notifier(&server.base, 4).notify(&alert()).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    // Exponential: 20 ms then 40 ms.
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(40));
}

#[tokio::test]
async fn gives_up_after_the_last_attempt_with_a_logged_error() {
    let (logs, _guard) = LogBuffer::install();
    let server =
        TestServer::start_with_default(vec![], Reply::Status(503, "down for maintenance")).await;
    let err = notifier(&server.base, 3)
        .notify(&alert())
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 3);
    match &err {
        AlertError::Unavailable {
            notifier,
            attempts,
            last_error,
        } => {
            assert_eq!((notifier.as_str(), *attempts), ("telegram", 3));
            assert!(
                last_error.contains("503") && last_error.contains("down for maintenance"),
                "{last_error}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let logs = logs.text();
    assert!(
        logs.contains("ERROR") && logs.contains("giving up"),
        "{logs}"
    );
    assert_eq!(logs.matches("retrying").count(), 2, "{logs}");
    assert!(!logs.contains(TOKEN) && !format!("{err} {err:?}").contains(TOKEN));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = TestServer::start(vec![Reply::Status(
        400,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
    )])
    .await;
    let err = notifier(&server.base, 4)
        .notify(&alert())
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 1);
    match err {
        AlertError::Rejected {
            status,
            description,
            ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(description, "Bad Request: chat not found");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn retry_after_beyond_the_maximum_gives_up_at_once() {
    let server = TestServer::start(vec![Reply::Status(
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests","parameters":{"retry_after":3600}}"#,
    )])
    .await;
    let err = notifier(&server.base, 4)
        .notify(&alert())
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 1);
    assert!(
        matches!(err, AlertError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(3600)),
        "{err:?}"
    );
}

#[tokio::test]
async fn network_errors_are_retried_and_reported_without_the_url() {
    let (logs, _guard) = LogBuffer::install();
    let port = closed_port().await;
    let base = format!("http://127.0.0.1:{port}");
    let err = notifier(&base, 2).notify(&alert()).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        matches!(err, AlertError::Unavailable { attempts: 2, .. }),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connect"), "{text}");
    let logs = logs.text();
    for leak in [TOKEN, "/bot", "sendMessage"] {
        assert!(!text.contains(leak), "error leaks {leak}: {text}");
        assert!(!logs.contains(leak), "logs leak {leak}: {logs}");
    }
    assert!(logs.contains("retrying"), "{logs}");
}
