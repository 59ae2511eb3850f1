//! `/log`: a bounded ring of entries, read by print and follow.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::SystemTime;

use super::{Record, write_id};
use crate::duration::format_router_time;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Internal id, increasing (printed as `*HEX`).
    pub id: u64,
    /// When the entry was written.
    pub time: SystemTime,
    /// Comma-separated topics, e.g. `system,error,critical`.
    pub topics: String,
    /// The message, as bytes.
    pub message: Vec<u8>,
}

impl LogEntry {
    /// The message as text (invalid UTF-8 replaced).
    pub fn message_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }
}

const FIELDS: &[&str] = &[".id", "time", "topics", "message"];

impl Record for LogEntry {
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn write_field(&self, name: &str, now: SystemTime, out: &mut Vec<u8>) -> bool {
        match name {
            ".id" => write_id(out, self.id),
            "time" => out.extend_from_slice(format_router_time(self.time, now).as_bytes()),
            "topics" => out.extend_from_slice(self.topics.as_bytes()),
            "message" => out.extend_from_slice(&self.message),
            _ => return false,
        }
        true
    }
}

/// The log ring: the oldest entries fall off once `capacity` is reached.
#[derive(Debug)]
pub(crate) struct LogRing {
    entries: VecDeque<LogEntry>,
    capacity: usize,
    next_id: u64,
}

impl LogRing {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
        }
    }

    pub(crate) fn push(&mut self, time: SystemTime, topics: &str, message: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(LogEntry {
            id,
            time,
            topics: topics.to_owned(),
            message: message.to_vec(),
        });
        id
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter()
    }

    /// Entries with an id of at least `from` (those still in the ring).
    pub(crate) fn since(&self, from: u64) -> impl Iterator<Item = &LogEntry> {
        let start = self.entries.partition_point(|e| e.id < from);
        self.entries.range(start..)
    }

    /// Forgets every entry (the memory log does not survive a reboot); ids go on.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The id the next entry will get.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_since_skips_old_entries() {
        let mut ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(
                SystemTime::UNIX_EPOCH,
                "script,info",
                format!("m{i}").as_bytes(),
            );
        }
        let ids: Vec<u64> = ring.entries().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        assert_eq!(ring.since(4).count(), 2);
        assert_eq!(ring.since(1).count(), 3);
        assert_eq!(ring.since(6).count(), 0);
        assert_eq!(ring.next_id(), 6);
    }
}
