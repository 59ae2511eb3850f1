//! Pure intrusion detection for MikroTik RouterOS: events in, findings out.

mod config;
mod detector;
pub mod detectors;
mod engine;
mod event;
mod finding;
mod guard;
mod parse;
mod policy;
mod time;

pub use config::{ConfigError, DetectionConfig, MAX_WINDOW_SECS};
pub use detector::{Detector, DetectorSet};
pub use engine::DetectionEngine;
pub use event::{
    Auth, AuthKind, AuthSource, ConnectionSample, Endpoint, Event, FirewallLog, IcmpType,
    InvalidMacAddr, MacAddr, NatTranslation, Protocol, ResourceSample, TcpFlags,
};
pub use finding::{
    Evidence, Finding, FindingKind, MAX_EVIDENCE_ITEMS, MAX_EVIDENCE_TEXT, Severity, Source,
    normalize_ip,
};
pub use guard::{Guard, GuardConfig, GuardReason, InterfaceAddress, IpPrefix, PrefixParseError};
pub use parse::{
    Date, LineContext, LogLine, RowError, parse_connection_row, parse_log_line,
    parse_log_line_bytes, parse_log_row, parse_log_row_bytes, parse_resource_row,
};
pub use policy::{
    Decision, MAX_REASON_LEN, Outcome, Policy, PolicyConfig, Suppressed, Suppression,
};
pub use time::Timestamp;
