//! Pure intrusion detection for MikroTik RouterOS: events in, findings out.

mod event;
mod time;

pub use event::{
    Auth, AuthKind, AuthSource, ConnectionSample, Endpoint, Event, FirewallLog, IcmpType,
    InvalidMacAddr, MacAddr, NatTranslation, Protocol, ResourceSample, TcpFlags,
};
pub use time::Timestamp;
