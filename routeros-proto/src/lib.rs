//! Sans-IO implementation of the MikroTik RouterOS API protocol.

pub mod codec;
mod command;
mod reply;

pub use command::{Command, CommandError, Query, QueryOp};
pub use reply::{Reply, ReplyError, ReplyKind, Trap, TrapCategory, tag_of};
