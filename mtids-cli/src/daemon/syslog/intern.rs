//! Shared `&'static` copies of the short text that repeats on nearly every syslog line
//! (chain, interface and state names, log prefixes, services, common user names), so
//! that an event kept past its line costs no allocation in the listener and no free in
//! the detection task (they were about a fifth of each one's time: docs/performance.md).
//!
//! Bounded for untrusted input: at most [`MAX_STRINGS`] strings of at most [`MAX_LEN`]
//! bytes are ever made `'static` in the process (about 32 KiB, never freed); past that,
//! or for longer text, text is copied as before. A sender can only fill the table, which
//! costs speed, not memory.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// Strings made `'static`, at most, in the whole process.
pub(super) const MAX_STRINGS: usize = 1024;

/// Longest string made `'static` (interface names are at most 15 bytes on RouterOS,
/// chains and prefixes short).
pub(super) const MAX_LEN: usize = 32;

type Set = HashSet<&'static str, ahash::RandomState>;

/// Every string made `'static` so far, shared by the listeners.
fn table() -> &'static Mutex<Set> {
    static TABLE: OnceLock<Mutex<Set>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(Set::default()))
}

/// The `'static` copy of `text` in `table`, made if the table has room.
fn global(table: &Mutex<Set>, text: &str) -> Option<&'static str> {
    let mut table = table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = table.get(text) {
        return Some(known);
    }
    if table.len() >= MAX_STRINGS {
        return None;
    }
    let made: &'static str = Box::leak(Box::from(text));
    table.insert(made);
    Some(made)
}

/// One listener's view of the table: lookups without the lock once a string was seen.
pub(super) struct Interner {
    table: &'static Mutex<Set>,
    /// What this listener found in the table (at most all of it).
    seen: Set,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::with_table(table())
    }
}

impl Interner {
    fn with_table(table: &'static Mutex<Set>) -> Interner {
        Interner {
            table,
            seen: Set::default(),
        }
    }

    /// `text` as a shared `'static` string when it is short enough and the table has
    /// room, else copied.
    pub(super) fn own(&mut self, text: Cow<'_, str>) -> Cow<'static, str> {
        if text.len() > MAX_LEN {
            return Cow::Owned(text.into_owned());
        }
        if let Some(known) = self.seen.get(&*text) {
            return Cow::Borrowed(known);
        }
        if let Some(made) = global(self.table, &text) {
            self.seen.insert(made);
            return Cow::Borrowed(made);
        }
        Cow::Owned(text.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_text_is_shared_and_long_text_copied() {
        let mut interner = Interner::default();
        let a = interner.own(Cow::Owned("ether1".to_owned()));
        let b = Interner::default().own(Cow::Borrowed("ether1"));
        let (Cow::Borrowed(a), Cow::Borrowed(b)) = (a, b) else {
            panic!("short text is shared")
        };
        assert!(std::ptr::eq(a, b), "one copy for every listener");
        assert_eq!(a, "ether1");
        let long = "x".repeat(MAX_LEN + 1);
        assert!(matches!(interner.own(Cow::Borrowed(&long)), Cow::Owned(t) if t == long));
    }

    #[test]
    fn the_table_stops_growing_at_its_bound() {
        let table: &'static Mutex<Set> = Box::leak(Box::default());
        let mut interner = Interner::with_table(table);
        let mut other = Interner::with_table(table);
        assert!(matches!(
            other.own(Cow::Borrowed("ether1")),
            Cow::Borrowed(_)
        ));
        for i in 0..MAX_STRINGS + 10 {
            let text = format!("user-{i}");
            assert_eq!(interner.own(Cow::Borrowed(&text)), text);
        }
        assert_eq!(table.lock().unwrap().len(), MAX_STRINGS);
        // What was shared before the table filled still is.
        assert!(matches!(
            interner.own(Cow::Borrowed("ether1")),
            Cow::Borrowed("ether1")
        ));
        assert!(matches!(
            other.own(Cow::Borrowed("ether1")),
            Cow::Borrowed("ether1")
        ));
        assert!(matches!(
            interner.own(Cow::Borrowed("never-seen-before")),
            Cow::Owned(t) if t == "never-seen-before"
        ));
    }
}
