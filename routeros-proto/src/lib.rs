//! Sans-IO implementation of the MikroTik RouterOS API protocol.

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
