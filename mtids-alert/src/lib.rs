//! Alerts for mtids: tell a human, quickly and safely, what was detected and blocked,
//! without ever slowing detection or blocking down.
//!
//! - [`Alert`]: one detection and what the enforcer did about it (blocked for how long on
//!   which routers, dry run, or suppressed and why), with evidence and times.
//! - [`Notifier`]: one way of telling someone. [`TelegramNotifier`] posts to a Telegram
//!   chat through the Bot API; [`WebhookNotifier`] POSTs a documented JSON document (or
//!   Slack-compatible text) anywhere. Both retry (429 with `retry_after`, 5xx and network
//!   errors with backoff) and then give up with a logged error.
//! - [`Dispatcher`]: the bounded queue the engine talks to. [`Dispatcher::submit`] is
//!   synchronous and never waits; each destination has its own bounded queue and
//!   delivery task, so one that hangs delays no other (it is reported by name and shows
//!   as hung in [`Dispatcher::destinations`]). Duplicates are dropped, floods become one
//!   summary per window ("37 more blocks in the last minute, top sources ..."), and a
//!   full queue drops its oldest entry. Counters for metrics via [`Dispatcher::stats`]
//!   and [`Dispatcher::destinations`]; [`Dispatcher::shutdown`] delivers what it can
//!   before a deadline.
//!
//! Everything that came from outside (user names in router logs are attacker-chosen) is
//! escaped for the target format, stripped of control characters that could forge lines,
//! and bounded so a Telegram message never exceeds 4096 characters. Tokens, webhook URLs
//! and auth headers are [`Secret`]s: they never appear in `Debug` output, errors or logs.
//!
//! TLS is rustls with the ring provider and the system trust store; no OpenSSL.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use mtids_alert::{
//!     Action, Alert, ChatId, Dispatcher, DispatcherConfig, Notifier, TelegramConfig,
//!     TelegramNotifier, Threat,
//! };
//!
//! # async fn run() -> Result<(), mtids_alert::AlertError> {
//! let telegram = TelegramNotifier::new(TelegramConfig::new(
//!     "123456:ABC-DEF",
//!     ChatId::Id(-1001234567890),
//! ))?;
//! let notifiers: Vec<Arc<dyn Notifier>> = vec![Arc::new(telegram)];
//! let alerts = Dispatcher::spawn(DispatcherConfig::default(), notifiers)?;
//!
//! // In the enforcement path: returns at once, whatever the network does.
//! alerts.submit(Alert::new(
//!     Threat::LoginBruteForce,
//!     "203.0.113.7",
//!     Action::Blocked { duration: Some(Duration::from_secs(3600)), routers: vec!["core-1".into()] },
//!     "12 failed logins for admin via ssh in 60 s",
//!     SystemTime::now(),
//! ));
//!
//! // On exit.
//! let outcome = alerts.shutdown(Duration::from_secs(5)).await;
//! println!("undelivered: {}, stats: {:?}", outcome.undelivered, alerts.stats());
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `mock`: `MockNotifier`, a [mockall](https://docs.rs/mockall) mock of [`Notifier`] for
//!   other crates' unit tests.

mod alert;
mod config;
mod dispatcher;
mod error;
mod http;
mod notifier;
mod render;
mod telegram;
pub mod webhook;

pub use alert::{Action, Alert, Notification, Severity, SourceCount, Summary, Threat};
pub use config::{AlertConfig, RetryPolicy};
pub use dispatcher::{
    DestinationStats, Dispatcher, DispatcherConfig, DispatcherStats, FlushOutcome, Submitted,
};
pub use error::AlertError;
pub use mtids_http::Secret;
#[cfg(any(test, feature = "mock"))]
pub use notifier::MockNotifier;
pub use notifier::Notifier;
pub use render::human_duration;
pub use telegram::{ChatId, TelegramConfig, TelegramNotifier};
pub use webhook::{AuthHeader, WebhookConfig, WebhookFormat, WebhookNotifier};
