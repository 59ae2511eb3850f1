//! Telegram Bot API notifier (`sendMessage`, HTML parse mode).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::Secret;
use crate::alert::Notification;
use crate::config::{RetryPolicy, duration_str};
use crate::error::AlertError;
use crate::http::{self, ErrorAnswer};
use crate::notifier::Notifier;
use crate::render::{Message, bounded};

const NAME: &str = "telegram";

/// Where and how to send Telegram messages.
///
/// ```
/// # use mtids_alert::TelegramConfig;
/// let config: TelegramConfig = toml::from_str(r#"
///     bot_token = "123456:ABC-DEF"
///     chat_id = -1001234567890
///     message_thread_id = 42
/// "#).unwrap();
/// assert!(!format!("{config:?}").contains("ABC-DEF"));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TelegramConfig {
    /// The bot token from @BotFather (`123456:ABC...`). Never logged.
    pub bot_token: Secret,
    /// The chat: a numeric id (groups are negative) or a public `@channelname`.
    pub chat_id: ChatId,
    /// The forum topic to post in, if the group has topics. Default none.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// The Bot API base URL. Default `https://api.telegram.org`. Plain `http://` is
    /// accepted only for loopback addresses (tests, a local Bot API server), because the
    /// token travels in the request path.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Timeout of one request, connection included. Default `10s`.
    #[serde(default = "default_timeout", with = "duration_str")]
    pub timeout: Duration,
    /// Retries on 429, 5xx and network errors. Defaults as in [`RetryPolicy`].
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TelegramConfig {
    /// A configuration with the defaults above.
    pub fn new(bot_token: impl Into<Secret>, chat_id: ChatId) -> Self {
        Self {
            bot_token: bot_token.into(),
            chat_id,
            message_thread_id: None,
            api_url: default_api_url(),
            timeout: default_timeout(),
            retry: RetryPolicy::default(),
        }
    }
}

/// A Telegram chat: numeric id or public `@username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    /// A numeric chat id (negative for groups and channels).
    Id(i64),
    /// A public channel or group username, with the `@`.
    Username(String),
}

/// Sends notifications to a Telegram chat through the Bot API.
///
/// Messages use HTML parse mode; all outside text is escaped and bounded so a message
/// always fits Telegram's 4096-character limit. See [`RetryPolicy`] for retries.
pub struct TelegramNotifier {
    client: Client,
    /// Contains the token: never printed.
    endpoint: Url,
    chat_id: ChatId,
    message_thread_id: Option<i64>,
    retry: RetryPolicy,
}

impl fmt::Debug for TelegramNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramNotifier")
            .field("endpoint", &"[redacted: contains the bot token]")
            .field("chat_id", &self.chat_id)
            .field("message_thread_id", &self.message_thread_id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct SendMessage<'a> {
    chat_id: &'a ChatId,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i64>,
    text: &'a str,
    parse_mode: &'static str,
    link_preview_options: LinkPreviewOptions,
}

#[derive(Serialize)]
struct LinkPreviewOptions {
    is_disabled: bool,
}

/// The Bot API's error answer: `{"ok":false,"error_code":429,"description":"...",
/// "parameters":{"retry_after":5}}`.
#[derive(Deserialize)]
struct ApiError {
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

impl TelegramNotifier {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// # Errors
    /// [`AlertError::InvalidConfig`] naming the bad key (the token itself is never
    /// repeated), or [`AlertError::Client`] if TLS cannot be set up.
    pub fn new(config: TelegramConfig) -> Result<Self, AlertError> {
        let token = config.bot_token.expose();
        let token_ok = !token.is_empty()
            && token.contains(':')
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
        if !token_ok {
            return Err(AlertError::InvalidConfig {
                field: "telegram.bot_token",
                reason: "expected a bot token like 123456:ABC-DEF (digits, a colon, then letters, digits, '_' or '-')".to_owned(),
            });
        }
        if let ChatId::Username(name) = &config.chat_id {
            let body = name.strip_prefix('@').unwrap_or_default();
            let ok = (5..=32).contains(&body.len())
                && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(AlertError::InvalidConfig {
                    field: "telegram.chat_id",
                    reason: format!(
                        "{:?} is neither a numeric chat id nor an @username of 5 to 32 letters, digits or '_'",
                        bounded(name, 64)
                    ),
                });
            }
        }
        let base = http::parse_url("telegram.api_url", &config.api_url)?;
        if base.scheme() == "http" && !http::is_loopback(&base) {
            return Err(AlertError::InvalidConfig {
                field: "telegram.api_url",
                reason: "plain http would send the bot token unencrypted; use https (http is accepted only for loopback)".to_owned(),
            });
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(AlertError::InvalidConfig {
                field: "telegram.api_url",
                reason: "must not have a query or fragment".to_owned(),
            });
        }
        config.retry.validate("telegram.retry")?;
        let endpoint_text = format!(
            "{}/bot{}/sendMessage",
            base.as_str().trim_end_matches('/'),
            token
        );
        // The token was checked above, so this cannot fail; the error still never shows it.
        let endpoint = Url::parse(&endpoint_text).map_err(|_| AlertError::InvalidConfig {
            field: "telegram.bot_token",
            reason: "does not form a valid request URL".to_owned(),
        })?;
        let client = http::build_client(NAME, &base, config.timeout)?;
        Ok(Self {
            client,
            endpoint,
            chat_id: config.chat_id,
            message_thread_id: config.message_thread_id,
            retry: config.retry,
        })
    }

    /// The message text (Telegram HTML) this notifier sends for a notification.
    pub fn render(notification: &Notification) -> String {
        Message::from_notification(notification).to_telegram_html()
    }
}

#[async_trait]
impl Notifier for TelegramNotifier {
    fn name(&self) -> &str {
        NAME
    }

    /// `getMe`: checks the token without sending a message
    /// (<https://core.telegram.org/bots/api#getme>).
    async fn probe(&self) -> Result<String, AlertError> {
        let unavailable = |e: String| AlertError::Unavailable {
            notifier: NAME.to_owned(),
            attempts: 1,
            last_error: e,
        };
        // The same path as sendMessage with the last segment replaced.
        let url = self
            .endpoint
            .join("getMe")
            .map_err(|_| unavailable("cannot form the getMe URL".to_owned()))?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(mtids_http::describe_error(e)))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(AlertError::Rejected {
                notifier: NAME.to_owned(),
                status: status.as_u16(),
                description: if status == StatusCode::UNAUTHORIZED {
                    "the bot token was refused (getMe)".to_owned()
                } else {
                    http::body_as_line(&body)
                },
            });
        }
        let username = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["result"]["username"]
                    .as_str()
                    .map(|u| http::body_as_line(u.as_bytes()))
            });
        Ok(match username {
            Some(name) => format!("bot token accepted (getMe: @{name}); nothing sent"),
            None => "bot API answered getMe; nothing sent".to_owned(),
        })
    }

    async fn notify(&self, notification: &Notification) -> Result<(), AlertError> {
        let text = Self::render(notification);
        let body = SendMessage {
            chat_id: &self.chat_id,
            message_thread_id: self.message_thread_id,
            text: &text,
            parse_mode: "HTML",
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        let body = serde_json::to_vec(&body).map_err(|e| AlertError::Client {
            notifier: NAME.to_owned(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        http::send_with_retry(
            NAME,
            &self.retry,
            || {
                self.client
                    .post(self.endpoint.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            },
            explain,
        )
        .await
    }
}

fn explain(status: StatusCode, header_wait: Option<Duration>, body: &[u8]) -> ErrorAnswer {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(api) => ErrorAnswer {
            description: api
                .description
                .map(|d| bounded(&d, 300))
                .unwrap_or_else(|| status.to_string()),
            retry_after: api
                .parameters
                .and_then(|p| p.retry_after)
                .map(Duration::from_secs)
                .or(header_wait),
        },
        Err(_) => ErrorAnswer {
            description: http::body_as_line(body),
            retry_after: header_wait,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: &str) -> TelegramConfig {
        TelegramConfig::new(token, ChatId::Id(-100))
    }

    #[test]
    fn bad_tokens_are_refused_without_being_repeated() {
        for token in ["", "no-colon", "123:abc/../x", "123:abc?x=1", "123:a b"] {
            let err = TelegramNotifier::new(config(token)).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(text.contains("telegram.bot_token"), "{text}");
            if !token.is_empty() {
                assert!(!text.contains(token), "{text}");
            }
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let mut c = config("1:abc");
        c.api_url = "http://api.example.org".into();
        let err = TelegramNotifier::new(c.clone()).unwrap_err().to_string();
        assert!(
            err.contains("telegram.api_url") && err.contains("unencrypted"),
            "{err}"
        );
        for ok in [
            "http://127.0.0.1:8081",
            "http://[::1]:9/",
            "http://localhost:1",
        ] {
            c.api_url = ok.into();
            TelegramNotifier::new(c.clone()).unwrap();
        }
        c.api_url = "ftp://127.0.0.1".into();
        assert!(
            TelegramNotifier::new(c)
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
    }

    #[test]
    fn usernames_are_checked() {
        let mut c = config("1:abc");
        c.chat_id = ChatId::Username("@mtids_alerts".into());
        c.api_url = "http://127.0.0.1:1".into();
        TelegramNotifier::new(c.clone()).unwrap();
        c.chat_id = ChatId::Username("mtids<b>".into());
        let err = TelegramNotifier::new(c).unwrap_err().to_string();
        assert!(err.contains("telegram.chat_id"), "{err}");
    }

    #[test]
    fn config_keys_are_checked_and_token_is_redacted() {
        let err =
            toml::from_str::<TelegramConfig>("bot_token = \"1:secret\"\nchat_id = 5\nthread = 3")
                .unwrap_err()
                .to_string();
        assert!(err.contains("thread"), "{err}");
        let c: TelegramConfig = toml::from_str(
            "bot_token = \"1:secret\"\nchat_id = \"@chan_nel\"\ntimeout = \"3s\"\napi_url = \"http://127.0.0.1:1\"",
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.chat_id, ChatId::Username("@chan_nel".into()));
        let n = TelegramNotifier::new(c.clone()).unwrap();
        let printed = format!("{c:?} {n:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }

    #[test]
    fn error_answers_are_read() {
        let a = explain(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#,
        );
        assert_eq!(a.retry_after, Some(Duration::from_secs(7)));
        assert!(a.description.contains("retry after 7"));
        let a = explain(
            StatusCode::BAD_GATEWAY,
            Some(Duration::from_secs(2)),
            b"<html>\n</html>",
        );
        assert_eq!(a.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(a.description, "<html>\\n</html>");
    }
}
