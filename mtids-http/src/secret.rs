//! A string that must never be printed: bot tokens, webhook URLs, auth headers, API keys,
//! passwords.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string (bot token, webhook URL with an embedded key, `Authorization` value,
/// API key, password).
///
/// `Debug` prints `Secret("[redacted]")`; there is no `Display`, and the value only
/// comes out through [`Secret::expose`], so it cannot reach a log line or an error message
/// by accident. Deserializes from a plain string.
///
/// ```
/// use mtids_http::Secret;
/// let token = Secret::new("123456:ABC-very-secret");
/// assert_eq!(format!("{token:?}"), r#"Secret("[redacted]")"#);
/// assert_eq!(token.expose(), "123456:ABC-very-secret");
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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-token");
        let printed = format!("{s:?} {s:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn deserializes_from_a_string() {
        let s: Secret = serde_json::from_str(r#""abc:def""#).unwrap();
        assert_eq!(s.expose(), "abc:def");
    }
}
