//! A string that must never be printed: the bouncer key and the machine password.
//!
//! mtids-alert has the same type; this crate stays independent of it (see the crate docs).

use std::fmt;

/// A secret string (API key, password).
///
/// `Debug` prints `Secret("[redacted]")`; there is no `Display`, and the value only comes
/// out through [`Secret::expose`], so it cannot reach a log line or an error by accident.
///
/// ```
/// use mtids_crowdsec::Secret;
/// let key = Secret::new("0123456789abcdef");
/// assert_eq!(format!("{key:?}"), r#"Secret("[redacted]")"#);
/// assert_eq!(key.expose(), "0123456789abcdef");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: use it only to build the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"Secret("[redacted]")"#)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
