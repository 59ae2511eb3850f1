//! Sans-IO implementation of the MikroTik RouterOS API protocol.

pub mod codec;
