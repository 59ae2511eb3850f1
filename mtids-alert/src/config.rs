//! Configuration pieces shared by the notifiers: the retry policy and how durations are
//! written in configuration files.

use std::time::Duration;

use serde::Deserialize;

/// How a notifier retries a failed request.
///
/// Server errors (5xx) and network errors are retried with exponential backoff
/// (`initial_backoff`, doubled each time, at most `max_backoff`). HTTP 429 is retried
/// after the wait the service asks for (Telegram's `parameters.retry_after`, or a
/// `Retry-After` header), unless that is longer than `max_retry_after`. Other 4xx answers
/// are not retried.
///
/// In a configuration file durations are strings such as `"500ms"`, `"8s"`, `"1m"`:
///
/// ```
/// # use mtids_alert::RetryPolicy;
/// let policy: RetryPolicy = toml::from_str(r#"max_attempts = 5
/// initial_backoff = "250ms""#).unwrap();
/// assert_eq!(policy.max_attempts, 5);
/// assert_eq!(policy.max_backoff, RetryPolicy::default().max_backoff);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Requests made in total before giving up, including the first. Default 4.
    pub max_attempts: u32,
    /// Wait before the first retry. Default `500ms`.
    #[serde(with = "duration_str")]
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default `8s`.
    #[serde(with = "duration_str")]
    pub max_backoff: Duration,
    /// Longest `retry_after` honoured; a longer one gives up at once. Default `60s`.
    #[serde(with = "duration_str")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1 for the first retry).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    pub(crate) fn validate(&self, prefix: &'static str) -> Result<(), crate::AlertError> {
        if self.max_attempts == 0 {
            return Err(crate::AlertError::InvalidConfig {
                field: prefix,
                reason: "retry.max_attempts must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

/// Serde helpers for durations written as `"10s"`, `"500ms"`, `"1h 30m"`.
pub(crate) mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"500ms\", \"10s\" or \"1m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(2), Duration::from_secs(1));
        assert_eq!(p.backoff(4), Duration::from_secs(4));
        assert_eq!(p.backoff(5), Duration::from_secs(8));
        assert_eq!(p.backoff(60), Duration::from_secs(8));
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_named() {
        let err = toml::from_str::<RetryPolicy>("max_attempt = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_attempt"), "{err}");
        let err = toml::from_str::<RetryPolicy>("max_backoff = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon") && err.contains("max_backoff"), "{err}");
    }
}

/// The whole alert configuration, as the CLI's `[alert]` table.
///
/// ```
/// # use mtids_alert::AlertConfig;
/// let config: AlertConfig = toml::from_str(r#"
///     [dispatcher]
///     max_messages_per_window = 10
///
///     [telegram]
///     bot_token = "123456:ABC-DEF"
///     chat_id = -1001234567890
///
///     [[webhook]]
///     url = "https://hooks.example.org/mtids"
///     auth_header = { value = "Bearer abc" }
/// "#).unwrap();
/// assert_eq!(config.webhook.len(), 1);
/// assert!(config.telegram.is_some());
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertConfig {
    /// Queue, rate limit and dedupe. Defaults as in [`crate::DispatcherConfig`].
    pub dispatcher: crate::DispatcherConfig,
    /// Telegram, if configured.
    pub telegram: Option<crate::TelegramConfig>,
    /// Any number of webhooks (`[[webhook]]` tables).
    pub webhook: Vec<crate::WebhookConfig>,
}

impl AlertConfig {
    /// Builds one notifier per configured destination (none if nothing is configured).
    ///
    /// # Errors
    /// The first invalid destination, naming the bad key.
    pub fn notifiers(&self) -> Result<Vec<std::sync::Arc<dyn crate::Notifier>>, crate::AlertError> {
        let mut notifiers: Vec<std::sync::Arc<dyn crate::Notifier>> = Vec::new();
        if let Some(telegram) = &self.telegram {
            notifiers.push(std::sync::Arc::new(crate::TelegramNotifier::new(
                telegram.clone(),
            )?));
        }
        for webhook in &self.webhook {
            notifiers.push(std::sync::Arc::new(crate::WebhookNotifier::new(
                webhook.clone(),
            )?));
        }
        Ok(notifiers)
    }
}

#[cfg(test)]
mod alert_config_tests {
    use super::*;

    #[test]
    fn builds_every_destination_and_names_bad_keys() {
        let config: AlertConfig = toml::from_str(
            "[telegram]\nbot_token = \"1:a\"\nchat_id = 1\napi_url = \"http://127.0.0.1:1\"\n\
             [[webhook]]\nurl = \"http://127.0.0.1:2/a\"\n[[webhook]]\nurl = \"http://127.0.0.1:3/b\"\nformat = \"slack\"\nname = \"chat-ops\"",
        )
        .unwrap();
        let names: Vec<String> = config
            .notifiers()
            .unwrap()
            .iter()
            .map(|n| n.name().to_owned())
            .collect();
        assert_eq!(names, ["telegram", "webhook", "chat-ops"]);
        assert!(AlertConfig::default().notifiers().unwrap().is_empty());
        let err =
            toml::from_str::<AlertConfig>("[telegram]\nbot_token = \"1:a\"\nchat_id = 1\nchat = 2")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("unknown field `chat`") && err.contains("line 4"),
            "{err}"
        );
    }
}
