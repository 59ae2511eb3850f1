//! The one error type of the network layer.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::DecodeError;
use crate::{ConnectionError, ReplyError, Trap};

#[cfg(feature = "tls")]
use super::tls::Fingerprint;

/// Everything that can go wrong between this client and a router.
///
/// Each variant says what happened and what to do about it. Connection-level errors
/// (the peer closed, `!fatal`, an I/O error) are delivered to every command that was in
/// flight, so the type is `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection could not be opened.
    #[error(
        "could not connect to {addr}: {source}; check the host and port (8728 for the API, \
         8729 for API-SSL) and that the service is enabled in `/ip service`"
    )]
    Connect {
        /// The `host:port` that was tried.
        addr: String,
        /// What the operating system said.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// Connecting (TCP, TLS handshake and login together) took longer than allowed.
    #[error("connecting to {addr} did not finish within {after:?}: {hint}")]
    ConnectTimeout {
        /// The `host:port` that was tried.
        addr: String,
        /// The connect timeout that ran out.
        after: Duration,
        /// Which step was still going on.
        hint: &'static str,
    },

    /// Reading from or writing to the connection failed.
    #[error("I/O error during {during}: {source}; reconnect")]
    Io {
        /// What the client was doing.
        during: &'static str,
        /// What the operating system said.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The router closed the connection (without `!fatal`).
    #[error(
        "the router closed the connection{}; reconnect (if it happens at once, check the \
         API service's `max-sessions` and `address` settings)",
        if *.mid_sentence { " in the middle of a reply" } else { "" }
    )]
    Closed {
        /// Whether a reply sentence had started but not ended.
        mid_sentence: bool,
    },

    /// The router refused the user name or password.
    #[error(
        "login refused by the router: {message}; check the user name, the password and \
         that the user's group has the `api` policy"
    )]
    LoginRefused {
        /// The router's message, e.g. `invalid user name or password (6)`.
        message: String,
    },

    /// The login did not work for another reason (wrong login method for this RouterOS
    /// version, no answer).
    #[error("login failed: {0}")]
    Login(#[source] ConnectionError),

    /// The router answered the command with `!trap`. Only this command failed; the
    /// connection goes on. If the router sent several traps, this is the first.
    #[error("the router refused `{command}`: {trap}")]
    Trap {
        /// The command's path.
        command: String,
        /// Category and message, as the router sent them.
        trap: Trap,
    },

    /// A reply to the command could not be read (for example a reply word this client
    /// does not know). Only this command is affected.
    #[error("unreadable reply to `{command}`: {error}")]
    MalformedReply {
        /// The command's path.
        command: String,
        /// What was wrong with the reply.
        #[source]
        error: ReplyError,
    },

    /// The command was refused before it was sent (invalid, or too many in flight).
    #[error("`{command}` was not sent: {error}")]
    Command {
        /// The command's path.
        command: String,
        /// Why.
        #[source]
        error: ConnectionError,
    },

    /// The router's byte stream broke the protocol; it cannot be resynchronised.
    #[error(
        "the router's reply stream is broken: {0}; reconnect (raise the limits in `Config::limits` if a legitimate reply hit one)"
    )]
    Protocol(#[source] DecodeError),

    /// The router ended the session with `!fatal` and closed it.
    #[error("the router closed the session: {reason}")]
    Fatal {
        /// The router's reason, as sent (`session terminated on request`, ...).
        reason: String,
    },

    /// A command got no complete answer in time.
    #[error(
        "`{command}` got no answer within {after:?}; the router may be overloaded, or raise \
         the command timeout"
    )]
    Timeout {
        /// The command's path.
        command: String,
        /// The timeout that ran out.
        after: Duration,
    },

    /// A command's replies filled its buffer and its reader took none of them for the
    /// stall timeout. The client had stopped reading the connection meanwhile (which held
    /// up every other command on it), so the command was cancelled. A reader that is
    /// slow but keeps reading never gets this.
    #[error(
        "`{command}`: {waiting} replies waited and none was read for {after:?}, which held \
         up every command on the connection, so the command was cancelled; read the stream \
         (or drop it), or raise `ClientConfig::stream_stall_timeout`"
    )]
    StreamStalled {
        /// The command's path.
        command: String,
        /// Replies that were waiting unread.
        waiting: usize,
        /// The stall timeout that ran out.
        after: Duration,
    },

    /// The client's connection task has stopped (the connection ended earlier; that error
    /// was delivered to the commands in flight at the time).
    #[error("the connection is closed; connect again")]
    Disconnected,

    /// The CA file could not be used.
    #[cfg(feature = "tls")]
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A certificate fingerprint could not be parsed.
    #[cfg(feature = "tls")]
    #[error("invalid SHA-256 fingerprint `{input}`: {reason}")]
    InvalidFingerprint {
        /// The text given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The host (or the configured server name) is not a DNS name or IP address that a
    /// certificate could be checked against.
    #[cfg(feature = "tls")]
    #[error("`{name}` is not a valid TLS server name; set `TlsConfig::server_name`")]
    InvalidServerName {
        /// The name.
        name: String,
    },

    /// The TLS handshake failed.
    #[cfg(feature = "tls")]
    #[error(
        "TLS handshake with the router failed: {reason}. The router needs a certificate on \
         its API-SSL service (without one it only offers anonymous DH, which rustls does \
         not support): `/ip service set api-ssl certificate=NAME tls-version=only-1.2`"
    )]
    TlsHandshake {
        /// What rustls or the peer said.
        reason: String,
    },

    /// The router ended the handshake because it shares no cipher suite with rustls: it
    /// offers only finite-field Diffie-Hellman, which rustls does not implement. A router
    /// with no certificate assigned to api-ssl offers only anonymous DH; some RouterOS 6
    /// routers offer only DHE. Nothing on this side can fix it: change the router.
    #[cfg(feature = "tls")]
    #[non_exhaustive]
    #[error(
        "the router offered no cipher suite rustls supports: it has no certificate assigned \
         to api-ssl (assign one: `mtids setup` does it, or `/certificate add ...; /ip service \
         set api-ssl certificate=...`), or it is a RouterOS 6 router offering only DHE \
         (upgrade it, or use the plain API on a trusted network); the TLS alert was {alert}"
    )]
    NoSupportedCipherSuite {
        /// The TLS alert the router answered the client's hello with.
        alert: String,
    },

    /// The peer answered the TLS handshake with something that is not TLS.
    #[cfg(feature = "tls")]
    #[error(
        "the peer does not speak TLS ({reason}); is this the plain API port (8728)? API-SSL \
         is port 8729, and `/ip service` must enable api-ssl"
    )]
    NotTls {
        /// What rustls said.
        reason: String,
    },

    /// The router's certificate did not verify against the configured CA.
    #[cfg(feature = "tls")]
    #[error(
        "the router's certificate was rejected: {reason}; give the CA that signed it (for a \
         self-signed certificate, the certificate itself), set the server name it was issued \
         for, or pin its SHA-256 fingerprint instead"
    )]
    CertificateRejected {
        /// Why rustls rejected it.
        reason: String,
    },

    /// The router's certificate is not the pinned one.
    #[cfg(feature = "tls")]
    #[error(
        "the router's certificate has SHA-256 fingerprint {seen}, but {expected} is pinned; \
         if the router's certificate changed on purpose, pin the new one"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint of the certificate the router presented.
        seen: Fingerprint,
    },

    /// TLS could not be set up on this side.
    #[cfg(feature = "tls")]
    #[error("TLS configuration error: {reason}")]
    Tls {
        /// What rustls said.
        reason: String,
    },
}
