//! The crate's one error type.

use std::time::Duration;

/// What went wrong talking to the LAPI or reading the `[crowdsec]` configuration.
///
/// No variant carries the bouncer key, the machine password or the JWT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrowdsecError {
    /// A configuration value is wrong; fix the named key.
    #[error("invalid crowdsec configuration `crowdsec.{field}`: {reason}")]
    InvalidConfig {
        /// The key inside `[crowdsec]`, e.g. `bouncer_key_file`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up or system trust store).
    #[error("cannot build the HTTP client for the CrowdSec LAPI: {reason}")]
    Client {
        /// What failed.
        reason: String,
    },
    /// The LAPI could not be reached (connection refused, timeout, TLS): it may be down;
    /// the next pull or push tries again.
    #[error("CrowdSec LAPI unreachable during {during}: {reason}")]
    Unreachable {
        /// `decisions stream`, `login` or `alerts`.
        during: &'static str,
        /// The network error (without the URL).
        reason: String,
    },
    /// The LAPI answered with an error status. 401/403 on the stream: check the bouncer
    /// key (`cscli bouncers list`); on login: check `machine_id` and the password
    /// (`cscli machines list`, the machine must be validated).
    #[error("CrowdSec LAPI answered HTTP {status} to {during}: {message}")]
    Status {
        /// What was asked.
        during: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The LAPI's `message` (bounded, one line).
        message: String,
    },
    /// The answer was not the JSON the LAPI documents; nothing of it was used.
    #[error("malformed answer from the CrowdSec LAPI to {during}: {reason}")]
    Malformed {
        /// What was asked.
        during: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The answer was larger than the crate accepts.
    #[error("answer from the CrowdSec LAPI to {during} exceeds {limit} bytes")]
    TooLarge {
        /// What was asked.
        during: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The watcher's background task is gone (after shutdown).
    #[error("the CrowdSec watcher is shut down")]
    ShutDown,
    /// Shutdown ran out of time with alerts still queued.
    #[error("{undelivered} alerts not delivered to the CrowdSec LAPI within {waited:?}")]
    Undelivered {
        /// How many alerts were left.
        undelivered: usize,
        /// How long shutdown waited.
        waited: Duration,
    },
}
