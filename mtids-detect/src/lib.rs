//! Pure intrusion detection for MikroTik RouterOS: events in, findings out.

mod time;

pub use time::Timestamp;
