//! Pure intrusion detection for MikroTik RouterOS: events in, findings out.

mod event;
mod parse;
mod time;

pub use event::{
    Auth, AuthKind, AuthSource, ConnectionSample, Endpoint, Event, FirewallLog, IcmpType,
    InvalidMacAddr, MacAddr, NatTranslation, Protocol, ResourceSample, TcpFlags,
};
pub use parse::{
    Date, LineContext, LogLine, RowError, parse_connection_row, parse_log_line,
    parse_log_line_bytes, parse_log_row, parse_log_row_bytes, parse_log_time, parse_resource_row,
};
pub use time::Timestamp;
