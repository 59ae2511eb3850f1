//! The tokio client (feature `tokio`) and API-SSL (feature `tls`).
//!
//! [`Client`] drives the sans-IO [`Connection`](crate::Connection) the way quinn drives
//! quinn-proto: one background task owns the socket and the connection state, and the
//! cheap, cloneable [`Client`] handles send it commands. Every command gets its own tag, so
//! many tasks can share one connection (the router's `max-sessions` is small).
//!
//! ```no_run
//! use routeros_proto::Command;
//! use routeros_proto::net::{Client, ClientConfig};
//!
//! # async fn run() -> Result<(), routeros_proto::net::Error> {
//! let config = ClientConfig::new("192.0.2.1", "admin", "secret");
//! let client = Client::connect(&config).await?;
//!
//! // A command that ends by itself: all rows at once, or the trap as an error.
//! let addresses = client
//!     .call(Command::new("/ip/address/print").proplist(["address", "interface"]))
//!     .await?;
//! for row in &addresses.rows {
//!     println!("{:?}", row.get_str("address"));
//! }
//!
//! // A command that never ends: rows as they come; dropping the stream cancels it.
//! let mut log = client.stream(Command::new("/log/print").follow_only());
//! while let Some(row) = log.next().await {
//!     let row = row?;
//!     println!("{:?} {:?}", row.get_str("topics"), row.get_str("message"));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! With feature `tls`, `ClientConfig::tls` switches to API-SSL; the `tls` module says what
//! the router needs (a certificate: rustls cannot do the anonymous DH a router without one
//! offers).

mod client;
mod driver;
mod error;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;

pub use client::{Client, ClientConfig, Response, RowStream};
pub use error::Error;
#[cfg(feature = "tls")]
pub use tls::{Fingerprint, TlsConfig};

/// The one place this layer reads the clock.
mod clock {
    use std::time::{Duration, Instant};

    /// Now, for the sans-IO connection, which takes `now` as an argument and never reads
    /// the clock itself; its driver is where time comes from.
    // The core is sans-IO and never reads the clock (clippy's disallowed-methods keeps it
    // so); this layer drives it and must hand it `now`, so it reads the clock here only.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn now() -> Instant {
        Instant::now()
    }

    /// The tokio instant `after` from now (far in the future if that overflows).
    pub(crate) fn deadline(after: Duration) -> tokio::time::Instant {
        let now = now();
        let at = now
            .checked_add(after)
            .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
            .unwrap_or(now);
        tokio::time::Instant::from_std(at)
    }
}
