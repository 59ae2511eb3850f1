//! The HTTP client policy shared by mtids-alert and mtids-crowdsec.
//!
//! Both crates send secrets over HTTP (a Telegram bot token in the URL path, webhook keys,
//! a CrowdSec bouncer key and machine password), so both need the same three things, kept
//! here once:
//!
//! - [`Secret`]: a string that never prints;
//! - [`client()`]: rustls with the ring provider and the system trust store, one timeout for
//!   connecting and for the request, and no redirects;
//! - [`describe_error`]: a client error as one bounded line, without its URL ([`one_line`]).

mod client;
mod secret;

pub use client::{ClientError, client, describe_error, one_line};
pub use secret::Secret;
