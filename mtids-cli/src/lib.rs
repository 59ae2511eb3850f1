//! mtids: intrusion detection and auto-blocking for MikroTik RouterOS routers.
//!
//! The `mtids` binary is a thin shell over this library: each command lives in its own
//! module.

pub mod replay;
