//! Pure intrusion detection for MikroTik RouterOS: events in, findings and ban decisions
//! out.
//!
//! The crate has no I/O, no async runtime and no clock: every call that depends on time
//! takes `now: Timestamp`, so the same input always gives the same output, in a daemon, a
//! replay of old logs, or a property test.
//!
//! - **Events**: [`parse_log_line`] (a line from a file or syslog, any header RouterOS or
//!   rsyslog writes, and the `default`, `syslog` and `cef` remote formats of RouterOS
//!   7.18+), [`parse_log_row`] (a `/log/print` row), [`parse_connection_row`],
//!   [`parse_resource_row`] turn router data into [`Event`]s that borrow from the input.
//!   Log topics are evidence: a login message counts only under the topics RouterOS logs
//!   it with, so a script's forged `login failure` line is not a login. PPTP failures
//!   name their session, not their address: a [`TunnelLinker`] (inside the engine) joins
//!   them to the connection line before them.
//! - **Detectors** implement [`Detector`]: `observe(now, event, findings)`, then
//!   `poll_timeout` / `handle_timeout(now)` to expire windows. The built-ins are in
//!   [`detectors`]: port scans and host sweeps, brute force and user enumeration,
//!   asymmetric connections, login followed by a CPU spike. A [`DetectorSet`] (or any
//!   `Vec` of detectors) is itself a detector.
//! - **[`Guard`]**: the allowlist, the router's own addresses and (by default) private
//!   ranges are never banned.
//! - **[`Policy`]**: a [`Finding`] becomes a [`Decision`] (target, escalating duration,
//!   comment) or a [`Suppressed`] outcome that says why not (guarded, MAC source, already
//!   banned, flood cap). Nothing is dropped silently.
//! - **[`DetectionEngine`]** wires the three together from one [`DetectionConfig`], the
//!   TOML/serde schema the CLI embeds.
//!
//! Memory is bounded: every detector caps the sources it tracks (least recently seen
//! evicted), windows expire, and log text is never kept beyond a finding's bounded
//! evidence.
//!
//! ```
//! use mtids_detect::{
//!     parse_log_line, Date, DetectionConfig, DetectionEngine, LineContext, Outcome, Timestamp,
//! };
//!
//! let config: DetectionConfig = toml::from_str("[brute_force]\nmax_failures = 3\n")?;
//! let mut engine = DetectionEngine::new(&config)?;
//! let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
//! let log = [
//!     "Nov 21 10:00:01 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh",
//!     "Nov 21 10:00:02 gw system,error,critical login failure for user root from 198.51.100.7 via ssh",
//!     "Nov 21 10:00:04 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh",
//! ];
//! let mut outcomes = Vec::new();
//! let mut now = Timestamp::ZERO;
//! for line in log {
//!     let parsed = parse_log_line(line, &ctx);
//!     now = parsed.timestamp.unwrap_or(now);
//!     engine.expire_due(now, &mut outcomes);
//!     engine.observe(now, &parsed.event, &mut outcomes);
//! }
//! let Some(Outcome::Ban(ban)) = outcomes.first() else { panic!("expected a ban") };
//! assert_eq!(ban.target.to_string(), "198.51.100.7");
//! assert_eq!(ban.duration.as_secs(), 3600);
//! assert_eq!(ban.reason, "3 failures in 1m");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod detector;
pub mod detectors;
mod engine;
mod event;
mod finding;
mod guard;
mod linker;
mod parse;
mod policy;
mod time;

pub use config::{ConfigError, DetectionConfig, MAX_WINDOW_SECS};
pub use detector::{Detector, DetectorSet, Progress};
pub use engine::DetectionEngine;
pub use event::{
    Auth, AuthKind, AuthSource, ConnectionSample, Endpoint, Event, FirewallLog, IcmpType,
    InvalidMacAddr, MacAddr, NatTranslation, Protocol, ResourceSample, TcpFlags, TunnelConnect,
    TunnelFailure,
};
pub use finding::{
    Evidence, Finding, FindingKind, MAX_EVIDENCE_ITEMS, MAX_EVIDENCE_TEXT, Severity, Source,
    normalize_ip,
};
pub use guard::{Guard, GuardConfig, GuardReason, InterfaceAddress, IpPrefix, PrefixParseError};
pub use linker::{MAX_LINKED_SESSIONS, MAX_PENDING_TUNNELS, TUNNEL_LINK_WINDOW, TunnelLinker};
pub use parse::{
    Date, LineContext, LineFormat, LogLine, RowError, line_format, parse_connection_row,
    parse_log_line, parse_log_line_bytes, parse_log_row, parse_log_row_bytes, parse_log_time,
    parse_resource_row,
};
pub use policy::{
    Decision, MAX_REASON_LEN, Outcome, Policy, PolicyConfig, Suppressed, Suppression,
};
pub use time::Timestamp;
