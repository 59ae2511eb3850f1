//! Generic webhook notifier: a JSON document, or Slack-compatible `{"text": ...}`.
//!
//! # The JSON schema (`format = "json"`, schema `mtids-alert/v1`)
//!
//! Every POST has `Content-Type: application/json` and one object:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `schema` | string | always `"mtids-alert/v1"`; a breaking change gets a new name |
//! | `kind` | string | `"alert"` or `"summary"` |
//! | `text` | string | the message as one plain-text block (control characters escaped) |
//! | `alert` | object | present when `kind` is `"alert"`, see below |
//! | `summary` | object | present when `kind` is `"summary"`, see below |
//!
//! `alert`:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `threat` | string | `port_scan`, `login_brute_force`, `asymmetric_connection`, `login_then_cpu_spike` or `other` |
//! | `threat_label` | string | human-readable threat name (the detector's name for `other`) |
//! | `source` | string | IP or MAC address as text |
//! | `action` | object | `{"kind": "blocked" \| "dry_run", "duration_secs": int or null (null: until removed), "routers": [string]}` or `{"kind": "suppressed", "reason": string}` |
//! | `evidence` | string | the detector's one-line evidence |
//! | `detected_at` | string | RFC 3339 UTC, whole seconds |
//! | `detected_at_unix_ms` | int | the same, milliseconds since the Unix epoch |
//! | `enforced_at`, `enforced_at_unix_ms` | string / int or null | when the block landed |
//! | `detector` | string or null | detector name |
//! | `severity` | string or null | `low`, `medium`, `high`, `critical` |
//!
//! `summary` (alerts held back by the dispatcher's rate limit during one window):
//! `{"held_back": int, "blocks": int, "window_secs": int, "top_sources": [{"source": string, "count": int}]}`.
//!
//! String values inside `alert` are as the detector produced them (JSON-escaped, not
//! otherwise changed): receivers must treat them as untrusted text.
//!
//! # Slack-compatible text (`format = "slack"`)
//!
//! `{"text": "...", "mrkdwn": false}`, with `&`, `<` and `>` escaped as Slack requires and
//! markdown formatting off, so attacker text cannot mention `@channel` or add links.
//! Slack incoming webhooks, Mattermost, Rocket.Chat and Discord's Slack-compatible endpoint
//! (the webhook URL with `/slack` appended) accept it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Secret;
use crate::alert::{Action, Alert, Notification, Summary};
use crate::config::{RetryPolicy, duration_str};
use crate::error::AlertError;
use crate::http::{self, ErrorAnswer};
use crate::notifier::Notifier;
use crate::render::{Message, rfc3339};

/// The payload shape a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WebhookFormat {
    /// The `mtids-alert/v1` JSON document described in the [module docs](self). Default.
    #[default]
    Json,
    /// `{"text": ..., "mrkdwn": false}` for Slack-compatible services.
    Slack,
}

/// A header carrying a credential, e.g. `Authorization: Bearer ...`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthHeader {
    /// Header name. Default `Authorization`.
    #[serde(default = "default_auth_header_name")]
    pub name: String,
    /// Header value, e.g. `Bearer abc`. Never logged.
    pub value: Secret,
}

impl AuthHeader {
    /// An `Authorization` header with the given value.
    pub fn authorization(value: impl Into<Secret>) -> Self {
        Self {
            name: default_auth_header_name(),
            value: value.into(),
        }
    }
}

fn default_auth_header_name() -> String {
    "Authorization".to_owned()
}

/// Where and how to POST notifications.
///
/// ```
/// # use mtids_alert::{WebhookConfig, WebhookFormat};
/// let config: WebhookConfig = toml::from_str(r#"
///     url = "https://hooks.example.org/T000/B000/XXXX"
///     format = "slack"
///     auth_header = { value = "Bearer s3cr3t" }
/// "#).unwrap();
/// assert_eq!(config.format, WebhookFormat::Slack);
/// let printed = format!("{config:?}");
/// assert!(!printed.contains("s3cr3t") && !printed.contains("XXXX"));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// A name for logs, errors and [`Notifier::name`], to tell several webhooks apart.
    /// Letters, digits, `-`, `_`, `.`; default `webhook`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The endpoint. Kept secret: Slack and Discord webhook URLs are credentials.
    pub url: Secret,
    /// Payload shape. Default `json`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// An optional credential header. Default none.
    #[serde(default)]
    pub auth_header: Option<AuthHeader>,
    /// Timeout of one request, connection included. Default `10s`.
    #[serde(default = "default_timeout", with = "duration_str")]
    pub timeout: Duration,
    /// Retries on 429, 5xx and network errors. Defaults as in [`RetryPolicy`].
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_name() -> String {
    "webhook".to_owned()
}

impl WebhookConfig {
    /// A JSON webhook with the defaults above.
    pub fn new(url: impl Into<Secret>) -> Self {
        Self {
            name: default_name(),
            url: url.into(),
            format: WebhookFormat::Json,
            auth_header: None,
            timeout: default_timeout(),
            retry: RetryPolicy::default(),
        }
    }
}

/// POSTs notifications to a URL (see the [module docs](self) for the payloads).
pub struct WebhookNotifier {
    name: String,
    client: Client,
    url: Url,
    format: WebhookFormat,
    auth: Option<(HeaderName, HeaderValue)>,
    retry: RetryPolicy,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("name", &self.name)
            .field("url", &"[redacted]")
            .field("format", &self.format)
            .field("auth_header", &self.auth.as_ref().map(|(name, _)| name))
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// # Errors
    /// [`AlertError::InvalidConfig`] naming the bad key (secrets are never repeated), or
    /// [`AlertError::Client`] if TLS cannot be set up.
    pub fn new(config: WebhookConfig) -> Result<Self, AlertError> {
        let url = http::parse_url("webhook.url", config.url.expose())?;
        config.retry.validate("webhook.retry")?;
        let auth = match config.auth_header {
            None => None,
            Some(header) => {
                let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
                    AlertError::InvalidConfig {
                        field: "webhook.auth_header.name",
                        reason: format!("{:?} is not a valid HTTP header name", header.name),
                    }
                })?;
                let mut value = HeaderValue::from_str(header.value.expose()).map_err(|_| {
                    AlertError::InvalidConfig {
                        field: "webhook.auth_header.value",
                        reason: "contains characters not allowed in an HTTP header (newlines, control characters)".to_owned(),
                    }
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        if config.name.is_empty()
            || config.name.len() > 64
            || !config
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(AlertError::InvalidConfig {
                field: "webhook.name",
                reason: "must be 1 to 64 letters, digits, '-', '_' or '.'".to_owned(),
            });
        }
        let client = http::build_client(&config.name, &url, config.timeout)?;
        Ok(Self {
            name: config.name,
            client,
            url,
            format: config.format,
            auth,
            retry: config.retry,
        })
    }

    /// The JSON body this notifier sends for a notification.
    pub fn payload(&self, notification: &Notification) -> Value {
        match self.format {
            WebhookFormat::Json => json_payload(notification),
            WebhookFormat::Slack => json!({
                "text": Message::from_notification(notification).to_slack(),
                "mrkdwn": false,
            }),
        }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    /// A `HEAD` request to the URL: any HTTP answer (even 404 or 405) shows the endpoint
    /// is reachable through the same client; nothing is posted.
    async fn probe(&self) -> Result<String, AlertError> {
        let response = self
            .client
            .head(self.url.clone())
            .send()
            .await
            .map_err(|e| AlertError::Unavailable {
                notifier: self.name.clone(),
                attempts: 1,
                last_error: mtids_http::describe_error(e),
            })?;
        Ok(format!(
            "reachable (HEAD answered HTTP {}); nothing posted",
            response.status().as_u16()
        ))
    }

    async fn notify(&self, notification: &Notification) -> Result<(), AlertError> {
        let body =
            serde_json::to_vec(&self.payload(notification)).map_err(|e| AlertError::Client {
                notifier: self.name.clone(),
                reason: format!("cannot encode the request: {e}"),
            })?;
        http::send_with_retry(
            &self.name,
            &self.retry,
            || {
                let mut request = self
                    .client
                    .post(self.url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                if let Some((name, value)) = &self.auth {
                    request = request.header(name.clone(), value.clone());
                }
                request
            },
            |_status: StatusCode, header_wait, body: &[u8]| ErrorAnswer {
                description: http::body_as_line(body),
                retry_after: header_wait,
            },
        )
        .await
    }
}

fn unix_ms(at: SystemTime) -> Option<u64> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// The `mtids-alert/v1` document.
pub(crate) fn json_payload(notification: &Notification) -> Value {
    let text = Message::from_notification(notification).to_plain();
    match notification {
        Notification::Alert(alert) => json!({
            "schema": "mtids-alert/v1",
            "kind": "alert",
            "text": text,
            "alert": alert_json(alert),
        }),
        Notification::Summary(summary) => json!({
            "schema": "mtids-alert/v1",
            "kind": "summary",
            "text": text,
            "summary": summary_json(summary),
        }),
    }
}

fn alert_json(alert: &Alert) -> Value {
    let action = match &alert.action {
        Action::Blocked { duration, routers } | Action::DryRun { duration, routers } => json!({
            "kind": alert.action.key(),
            "duration_secs": duration.map(|d| d.as_secs()),
            "routers": routers,
        }),
        Action::Suppressed { reason } => json!({
            "kind": "suppressed",
            "reason": reason,
        }),
    };
    json!({
        "threat": alert.threat.key(),
        "threat_label": alert.threat.label(),
        "source": alert.source,
        "action": action,
        "evidence": alert.evidence,
        "detected_at": rfc3339(alert.detected_at),
        "detected_at_unix_ms": unix_ms(alert.detected_at),
        "enforced_at": alert.enforced_at.map(rfc3339),
        "enforced_at_unix_ms": alert.enforced_at.and_then(unix_ms),
        "detector": alert.detector,
        "severity": alert.severity.map(|s| s.as_str()),
    })
}

fn summary_json(summary: &Summary) -> Value {
    let top: Vec<Value> = summary
        .top_sources
        .iter()
        .map(|s| json!({ "source": s.source, "count": s.count }))
        .collect();
    json!({
        "held_back": summary.held_back,
        "blocks": summary.blocks,
        "window_secs": summary.window.as_secs(),
        "top_sources": top,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_header_and_url_are_named_without_secrets() {
        let mut c = WebhookConfig::new("http://127.0.0.1:1/hook");
        c.auth_header = Some(AuthHeader::authorization("Bearer x\ny-secret"));
        let err = WebhookNotifier::new(c.clone()).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("webhook.auth_header.value") && !text.contains("y-secret"),
            "{text}"
        );
        c.auth_header = Some(AuthHeader {
            name: "Bad Header".into(),
            value: "v".into(),
        });
        let err = WebhookNotifier::new(c.clone()).unwrap_err().to_string();
        assert!(err.contains("webhook.auth_header.name"), "{err}");
        c.auth_header = None;
        c.name = "my hook\n".into();
        let err = WebhookNotifier::new(c).unwrap_err().to_string();
        assert!(err.contains("webhook.name"), "{err}");
        let err = WebhookNotifier::new(WebhookConfig::new("not a url with key-123"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("webhook.url") && !err.contains("key-123"),
            "{err}"
        );
    }

    #[test]
    fn unknown_format_is_refused() {
        let err = toml::from_str::<WebhookConfig>("url = \"http://x\"\nformat = \"teams\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("teams"), "{err}");
    }
}
