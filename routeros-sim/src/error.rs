//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong when setting up or driving the simulated router.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listener could not be bound: pick another address or port (0 picks a free one).
    #[error("cannot listen on {addr}: {source} (is the port in use? port 0 picks a free one)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load TLS {what} from {path}: {reason}")]
    TlsFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The TLS configuration was refused (certificate and key do not match, ...).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The router refused an operation on its model, with the message it would trap with.
    #[error("the router refused: {0}")]
    Refused(String),
    /// The scenario name is not one this crate knows.
    #[error("unknown scenario `{name}`; known scenarios: {known}")]
    UnknownScenario {
        /// The name asked for.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// An I/O error on the listener.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
