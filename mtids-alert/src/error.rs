//! The crate's one error type.

use std::time::Duration;

/// Why a notification could not be delivered, or a notifier could not be built.
///
/// No variant ever carries a token, a webhook URL or an auth header: HTTP client errors are
/// stripped of their URL before they are turned into text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A configuration value is wrong; fix the named key.
    #[error("invalid alert configuration `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration key, e.g. `telegram.chat_id`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up or system trust store).
    #[error("cannot build the HTTP client for {notifier}: {reason}")]
    Client {
        /// Which notifier.
        notifier: String,
        /// What failed.
        reason: String,
    },
    /// The service refused the message (4xx other than 429): check the token, chat id,
    /// URL or permissions. Not retried: sending the same request again would fail again.
    #[error("{notifier} rejected the message with HTTP {status}: {description}")]
    Rejected {
        /// Which notifier.
        notifier: String,
        /// The HTTP status code.
        status: u16,
        /// The service's own explanation (bounded, one line).
        description: String,
    },
    /// The service asked us to wait longer than the configured maximum; the message was
    /// dropped. Raise `max_retry_after` or lower the dispatcher's rate limit.
    #[error("{notifier} asked to retry after {retry_after:?}, longer than the allowed {max:?}")]
    RateLimited {
        /// Which notifier.
        notifier: String,
        /// What the service asked for.
        retry_after: Duration,
        /// The configured maximum wait.
        max: Duration,
    },
    /// Network errors or server errors (5xx, 429) on every attempt; the service is down or
    /// unreachable from here.
    #[error("{notifier} unavailable after {attempts} attempts: {last_error}")]
    Unavailable {
        /// Which notifier.
        notifier: String,
        /// How many requests were made.
        attempts: u32,
        /// The last failure (no URL in it).
        last_error: String,
    },
    /// The dispatcher's delivery deadline passed before the notifier finished.
    #[error("{notifier} did not finish within {after:?}")]
    TimedOut {
        /// Which notifier.
        notifier: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// [`crate::Dispatcher::spawn`] was called outside a Tokio runtime: call it from
    /// inside one (e.g. within `#[tokio::main]`).
    #[error("the alert dispatcher needs a Tokio runtime; start it from inside one")]
    NoRuntime,
}
