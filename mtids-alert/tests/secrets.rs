//! Tokens, webhook URLs and auth headers never show up in logs, errors or `Debug` output,
//! whatever goes wrong. Logs are captured at TRACE level from every crate, `log` records
//! (reqwest, rustls) included. One test only: it installs the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{LogBuffer, Reply, TestServer, closed_port, hostile_alert};
use mtids_alert::{
    AuthHeader, ChatId, Dispatcher, DispatcherConfig, Notifier, RetryPolicy, TelegramConfig,
    TelegramNotifier, WebhookConfig, WebhookNotifier,
};

const TOKEN: &str = "987654:TOKEN-must-never-leak_x";
const HOOK_KEY: &str = "T0001-B0002-hookkeymustnotleak";
const AUTH: &str = "Bearer auth-value-must-not-leak";

fn retry() -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    retry.max_attempts = 2;
    retry.initial_backoff = Duration::from_millis(5);
    retry
}

fn telegram_config(base: &str) -> TelegramConfig {
    let mut config = TelegramConfig::new(TOKEN, ChatId::Id(1));
    config.api_url = base.to_owned();
    config.timeout = Duration::from_millis(300);
    config.retry = retry();
    config
}

fn webhook_config(base: &str) -> WebhookConfig {
    let mut config = WebhookConfig::new(format!("{base}/services/{HOOK_KEY}"));
    config.auth_header = Some(AuthHeader::authorization(AUTH));
    config.timeout = Duration::from_millis(300);
    config.retry = retry();
    config
}

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, HOOK_KEY, AUTH, "auth-value", "TOKEN-must"] {
        assert!(!text.contains(secret), "{what} leaks {secret:?}:\n{text}");
    }
}

#[tokio::test]
async fn no_secret_in_logs_errors_or_debug_whatever_fails() {
    let logs = LogBuffer::install_global();
    let failing = TestServer::start(vec![
        Reply::Status(500, "internal"),
        Reply::Status(500, "internal"),
        Reply::Status(
            401,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        ),
        Reply::Status(429, r#"{"ok":false,"parameters":{"retry_after":9999}}"#),
    ])
    .await;
    let hanging = TestServer::start_with_default(vec![], Reply::Hang).await;
    let refused = format!("http://127.0.0.1:{}", closed_port().await);

    let mut errors = Vec::new();
    let mut debug = Vec::new();
    for base in [&failing.base, &failing.base, &hanging.base, &refused] {
        let telegram_config = telegram_config(base);
        let webhook_config = webhook_config(base);
        debug.push(format!("{telegram_config:?} {webhook_config:?}"));
        let telegram = TelegramNotifier::new(telegram_config).unwrap();
        let webhook = WebhookNotifier::new(webhook_config).unwrap();
        debug.push(format!("{telegram:?} {webhook:?}"));
        for notifier in [&telegram as &dyn Notifier, &webhook] {
            if let Err(e) = notifier.notify(&hostile_alert().into()).await {
                errors.push(format!("{e} {e:?}"));
            }
        }
    }
    // Through the dispatcher too (its own timeout path and log lines).
    let mut config = DispatcherConfig::default();
    config.delivery_timeout = Duration::from_millis(100);
    let notifiers: Vec<Arc<dyn Notifier>> = vec![
        Arc::new(TelegramNotifier::new(telegram_config(&hanging.base)).unwrap()),
        Arc::new(WebhookNotifier::new(webhook_config(&refused)).unwrap()),
    ];
    let dispatcher = Dispatcher::spawn(config, notifiers).unwrap();
    dispatcher.submit(hostile_alert());
    let _ = dispatcher.shutdown(Duration::from_secs(5)).await;
    debug.push(format!("{dispatcher:?}"));
    assert_eq!(dispatcher.stats().failed, 2);

    // 500/500, 401, 429 beyond the maximum, two timeouts, two refused connections.
    assert_eq!(errors.len(), 7, "{errors:#?}");
    for (what, text) in [
        ("errors", errors.join("\n")),
        ("debug", debug.join("\n")),
        ("logs", logs.text()),
    ] {
        assert_clean(what, &text);
    }
    // The capture works: the failures were logged.
    let logs = logs.text();
    assert!(
        logs.contains("giving up") && logs.contains("did not finish"),
        "{logs}"
    );
    // The server really saw the secrets, so their absence above means something.
    let seen = failing.requests();
    assert!(seen.iter().any(|r| r.path.contains(TOKEN)));
    assert!(
        seen.iter()
            .any(|r| r.path.contains(HOOK_KEY) && r.header("authorization") == Some(AUTH))
    );
}
