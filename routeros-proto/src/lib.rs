//! A client for the MikroTik RouterOS API (TCP 8728, API-SSL 8729) that does not break on
//! the edges real routers show: `!empty` (7.18+), the 6.43 login change, non-UTF-8 bytes,
//! huge `print` results, many commands sharing one connection.
//!
//! The core is sans-IO, like quinn-proto or rustls: no sockets, no tokio, no clock. You
//! move bytes and time in and out; the crate does the protocol. Three layers:
//!
//! - [`codec`]: words and sentences on the wire, an incremental decoder bounded by
//!   [`codec::Limits`], and an encoder;
//! - [`Command`] / [`Query`] (what the client sends) and [`Reply`] (what the router
//!   answers: `!re`, `!done`, `!trap`, `!fatal`, `!empty`, attributes kept as bytes);
//! - [`Connection`]: the client state machine: login (plain, legacy MD5 challenge, or
//!   auto-detect), tags for many commands in flight, streaming commands and `/cancel`,
//!   per-command timeouts, `!fatal`. Its rustdoc gives the drain order.
//!
//! The `tokio` feature adds an async client over TCP on top of this core, and `tls` adds
//! API-SSL with rustls; without them the crate depends on no async runtime.
//!
//! # A sans-IO run loop
//!
//! Driving a [`Connection`] over a blocking `std` socket: write what it wants to send,
//! handle its events, then wait for bytes or its next deadline.
//!
//! ```no_run
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::TcpStream;
//! use std::time::Instant;
//!
//! use routeros_proto::{Command, Config, Connection, Event, LoginMethod};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut sock = TcpStream::connect("192.0.2.1:8728")?;
//!     let mut conn = Connection::new(Config::default());
//!     let password = std::env::var("ROS_PASSWORD")?;
//!     conn.login(Instant::now(), "admin", password, LoginMethod::Auto)?;
//!     let mut print = None;
//!     let mut buf = vec![0u8; 64 * 1024];
//!     loop {
//!         // 1. Bytes to write.
//!         while let Some(bytes) = conn.poll_transmit() {
//!             sock.write_all(&bytes)?;
//!         }
//!         // 2. Events (handling one may queue more bytes: go round again).
//!         let mut handled = false;
//!         while let Some(event) = conn.poll_event() {
//!             handled = true;
//!             match event {
//!                 Event::LoggedIn => {
//!                     let cmd = Command::new("/ip/address/print").proplist(["address", "interface"]);
//!                     print = Some(conn.send(Instant::now(), cmd)?);
//!                 }
//!                 Event::LoginFailed(e) => return Err(e.into()),
//!                 Event::Row { reply, .. } => println!(
//!                     "{} on {}",
//!                     reply.get_str("address").unwrap_or_default(),
//!                     reply.get_str("interface").unwrap_or_default(),
//!                 ),
//!                 Event::Trap { trap, .. } => eprintln!("router error: {trap}"),
//!                 Event::Done { tag, .. } if Some(tag) == print => conn.close(Instant::now()),
//!                 Event::Closed(reason) => {
//!                     println!("{reason}");
//!                     return Ok(());
//!                 }
//!                 _ => {}
//!             }
//!         }
//!         if handled {
//!             continue;
//!         }
//!         // 3. Wait for bytes, or for the next deadline.
//!         let now = Instant::now();
//!         match conn.poll_timeout() {
//!             Some(at) if at <= now => {
//!                 conn.handle_timeout(now);
//!                 continue;
//!             }
//!             at => sock.set_read_timeout(at.map(|at| at - now))?,
//!         }
//!         match sock.read(&mut buf) {
//!             Ok(0) => conn.handle_eof(Instant::now()),
//!             Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
//!             Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!                 conn.handle_timeout(Instant::now())
//!             }
//!             Err(e) => return Err(e.into()),
//!         }
//!     }
//! }
//! ```
//!
//! The same loop, run against a scripted peer in virtual time, is how this crate tests the
//! state machine (`tests/virtual_time.rs`).
//!
//! # Features
//!
//! - `tokio`: `net::Client`, an async client over TCP that drives a [`Connection`] from one
//!   background task (as quinn drives quinn-proto): connect with a timeout, log in, `call`
//!   (all rows, or the trap as an error), `stream` (rows as they come; dropping it sends
//!   `/cancel`), cheap clones so concurrent tasks share one connection. A reader slower
//!   than the router is held to a bounded buffer by not reading the socket (backpressure),
//!   never failed for being slow. Its errors, I/O included, are `net::Error`.
//! - `tls` (implies `tokio`): API-SSL (port 8729) with rustls and ring, no OpenSSL. The
//!   router's certificate is verified against a CA file or pinned by its SHA-256
//!   fingerprint (`net::TlsConfig`). The router needs a certificate on the service:
//!   without one it offers only anonymous Diffie-Hellman, which rustls does not do
//!   (`/ip service set api-ssl certificate=NAME tls-version=only-1.2`).
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn example() -> Result<(), routeros_proto::net::Error> {
//! use routeros_proto::Command;
//! use routeros_proto::net::{Client, ClientConfig};
//!
//! let client = Client::connect(&ClientConfig::new("192.0.2.1", "admin", "secret")).await?;
//! let added = client
//!     .call(
//!         Command::new("/ip/firewall/address-list/add")
//!             .attr("list", "blocked")
//!             .attr("address", "198.51.100.7")
//!             .attr("timeout", "1d"),
//!     )
//!     .await?;
//! println!("added {:?}", added.ret_str());
//!
//! // Another task can use a clone of the same connection at the same time.
//! let log = client.clone();
//! tokio::spawn(async move {
//!     let mut rows = log.stream(Command::new("/log/print").follow_only());
//!     while let Some(Ok(row)) = rows.next().await {
//!         println!("{}", row.get_str("message").unwrap_or_default());
//!     }
//! });
//! # Ok(())
//! # }
//! # fn main() {}
//! ```

pub mod codec;
mod command;
mod connection;
pub mod login;
mod reply;

pub use command::{Command, CommandError, Query, QueryOp};
pub use connection::{
    CloseReason, Config, Connection, ConnectionError, Event, Stats, Tag, Warning,
};
pub use login::LoginMethod;
pub use reply::{Reply, ReplyError, ReplyKind, Trap, TrapCategory, tag_of};

#[cfg(feature = "tokio")]
pub mod net;
