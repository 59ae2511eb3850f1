//! The [`Notifier`] trait: one way of telling a human.

use async_trait::async_trait;

use crate::alert::Notification;
use crate::error::AlertError;

/// Delivers notifications somewhere (Telegram, a webhook...).
///
/// Implementations do their own retries and give up with an error; the [`crate::Dispatcher`]
/// calls them from its background task with a deadline, so they may take their time.
/// With the `mock` feature, `MockNotifier` (mockall) is available for other crates' tests.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// A short name for logs and errors, e.g. `telegram`.
    fn name(&self) -> &str;

    /// Delivers one notification, retrying as configured.
    async fn notify(&self, notification: &Notification) -> Result<(), AlertError>;

    /// Checks that the destination answers (and accepts the credentials, where the
    /// service can say so) without sending anything a human sees; one attempt. Returns
    /// what was seen. The default: not checkable.
    async fn probe(&self) -> Result<String, AlertError> {
        Ok("not checked (no probe for this destination)".to_owned())
    }
}
