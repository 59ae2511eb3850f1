//! The router's tables and the rules for printing them: a plain synchronous model, shared
//! by all sessions behind the [`Router`](crate::Router) handle.

pub mod address_list;
pub(crate) mod config;
pub mod connection;
pub mod log;
pub(crate) mod menus;
pub mod resource;
pub mod users;

use std::borrow::Cow;
use std::time::SystemTime;

use crate::query::Query;
use crate::sentence::{Request, Sentence, TrapCategory};

/// An error answer: `!trap` with an optional category, then `!done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trap {
    pub category: Option<TrapCategory>,
    pub message: String,
}

impl Trap {
    pub(crate) fn new(category: Option<TrapCategory>, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }

    pub(crate) fn no_such_item() -> Self {
        Self::new(Some(TrapCategory::MissingItem), "no such item")
    }

    pub(crate) fn bad_value(name: &str) -> Self {
        Self::new(
            Some(TrapCategory::ArgumentValue),
            format!("invalid value for argument {name}"),
        )
    }
}

/// A table row that can be printed and queried.
pub(crate) trait Record {
    /// Every property name in print order (`.id` first).
    fn fields(&self) -> &'static [&'static str];
    /// Appends a property's value to `out`; `false` (and nothing appended) when the row
    /// does not have it. Writing in place keeps a 200k-row print free of per-value
    /// allocations.
    fn write_field(&self, name: &str, now: SystemTime, out: &mut Vec<u8>) -> bool;
    /// A property's value, or `None` when the row does not have it.
    fn field(&self, name: &str, now: SystemTime) -> Option<Cow<'_, [u8]>> {
        let mut value = Vec::new();
        self.write_field(name, now, &mut value)
            .then_some(Cow::Owned(value))
    }
}

/// `*` and upper-case hex, appended in place.
pub(crate) fn write_id(out: &mut Vec<u8>, id: u64) {
    out.push(b'*');
    let digits = (64 - id.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(b"0123456789ABCDEF"[((id >> (i * 4)) & 0xF) as usize]);
    }
}

/// A decimal number, appended in place (the `fmt` machinery costs more than the whole
/// rest of a row in a large print).
pub(crate) fn write_num(out: &mut Vec<u8>, n: impl Into<u64>) {
    let mut n: u64 = n.into();
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `a.b.c.d` appended in place.
pub(crate) fn write_ipv4(out: &mut Vec<u8>, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        write_num(out, octet);
    }
}

/// Which items of a table changed, in order, so following prints can send them. Bounded:
/// a follower that falls too far behind misses changes, as on a busy router.
#[derive(Debug)]
pub(crate) struct ChangeFeed {
    changes: std::collections::VecDeque<(u64, u64)>,
    next_seq: u64,
}

const FEED_CAPACITY: usize = 100_000;

impl Default for ChangeFeed {
    fn default() -> Self {
        Self {
            changes: std::collections::VecDeque::new(),
            next_seq: 1,
        }
    }
}

impl ChangeFeed {
    /// Notes that item `id` was added, changed or removed.
    pub(crate) fn record(&mut self, id: u64) {
        if self.changes.len() == FEED_CAPACITY {
            self.changes.pop_front();
        }
        self.changes.push_back((self.next_seq, id));
        self.next_seq += 1;
    }

    /// Ids changed at or after `seq`, each once, in order of their first change.
    pub(crate) fn since(&self, seq: u64) -> Vec<u64> {
        let start = self.changes.partition_point(|&(s, _)| s < seq);
        let mut seen = std::collections::HashSet::new();
        self.changes
            .range(start..)
            .map(|&(_, id)| id)
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// The sequence number the next change gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// The `!re` a following print sends for an item that was removed.
pub(crate) fn dead_sentence(id: u64) -> Sentence {
    let mut s = Sentence::re();
    let mut value = Vec::with_capacity(12);
    write_id(&mut value, id);
    s.push_attr(".id", value);
    s.push_attr(".dead", "true");
    s
}

/// Formats an internal id as RouterOS does: `*` and upper-case hex.
pub(crate) fn format_id(id: u64) -> String {
    format!("*{id:X}")
}

/// Parses `*1A` (or `1A`) into an id.
pub(crate) fn parse_id(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let hex = text.strip_prefix('*').unwrap_or(text);
    if hex.is_empty() {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The items a `set`/`remove` names with `.id` or `numbers` (comma separated), as
/// written: `*1A` ids, or names on menus that accept them.
pub(crate) fn requested_items(request: &Request) -> Result<impl Iterator<Item = &[u8]>, Trap> {
    let raw = request
        .get(".id")
        .or_else(|| request.get("numbers"))
        .ok_or_else(|| {
            Trap::new(
                Some(TrapCategory::MissingItem),
                "missing value(s) of argument(s) .id",
            )
        })?;
    Ok(raw.split(|&b| b == b',').map(<[u8]>::trim_ascii))
}

/// The ids a `set`/`remove` names with `.id` or `numbers` (comma separated).
pub(crate) fn requested_ids(request: &Request) -> Result<Vec<u64>, Trap> {
    requested_items(request)?
        .map(|part| parse_id(part).ok_or_else(Trap::no_such_item))
        .collect()
}

/// Parses a boolean argument the way RouterOS accepts it.
pub(crate) fn parse_bool(name: &str, value: &[u8]) -> Result<bool, Trap> {
    match value {
        b"yes" | b"true" => Ok(true),
        b"no" | b"false" => Ok(false),
        _ => Err(Trap::bad_value(name)),
    }
}

pub(crate) fn bool_text(v: bool) -> &'static [u8] {
    if v { b"true" } else { b"false" }
}

/// How a print should be answered.
pub(crate) struct PrintOptions<'a> {
    pub request: &'a Request,
    pub empty_reply: bool,
    pub now: SystemTime,
}

/// Answers a print over `rows`: `.proplist`, queries, `count-only`, `!empty` and `!done`.
pub(crate) fn print<'r, R: Record + 'r>(
    rows: impl Iterator<Item = &'r R>,
    options: &PrintOptions<'_>,
) -> Result<Vec<Sentence>, Trap> {
    let query = Query::parse(&options.request.queries).map_err(|e| {
        Trap::new(
            Some(TrapCategory::ArgumentValue),
            format!("invalid query word {}", e.word),
        )
    })?;
    let now = options.now;
    if options.request.has("count-only") {
        let count = rows
            .filter(|row| query.matches(|n| row.field(n, now)))
            .count();
        return Ok(vec![Sentence::done_ret(count.to_string())]);
    }
    let proplist = options.request.proplist();
    let mut out = Vec::new();
    let mut scratch = Vec::with_capacity(256);
    for row in rows {
        if !query.is_empty() && !query.matches(|n| row.field(n, now)) {
            continue;
        }
        out.push(row_sentence_with(
            row,
            proplist.as_deref(),
            now,
            &mut scratch,
        ));
    }
    if out.is_empty() && options.empty_reply {
        out.push(Sentence::empty());
    }
    out.push(Sentence::done());
    Ok(out)
}

/// One `!re` for a row, with the properties of `proplist` (all when `None`).
pub(crate) fn row_sentence<R: Record + ?Sized>(
    row: &R,
    proplist: Option<&[String]>,
    now: SystemTime,
) -> Sentence {
    row_sentence_with(row, proplist, now, &mut Vec::new())
}

fn row_sentence_with<R: Record + ?Sized>(
    row: &R,
    proplist: Option<&[String]>,
    now: SystemTime,
    scratch: &mut Vec<u8>,
) -> Sentence {
    let mut s = Sentence::re_with_capacity(512);
    let mut one = |name: &str| {
        scratch.clear();
        scratch.push(b'=');
        scratch.extend_from_slice(name.as_bytes());
        scratch.push(b'=');
        if row.write_field(name, now, scratch) {
            s.push_word(scratch);
        }
    };
    match proplist {
        Some(names) => names.iter().for_each(|n| one(n)),
        None => row.fields().iter().for_each(|n| one(n)),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(format_id(26), "*1A");
        assert_eq!(parse_id(b"*1A"), Some(26));
        assert_eq!(parse_id(b"1a"), Some(26));
        assert_eq!(parse_id(b"*"), None);
        assert_eq!(parse_id(b"*zz"), None);
        for id in [0u64, 1, 15, 16, 255, 0xABCDEF, u64::MAX] {
            let mut out = Vec::new();
            write_id(&mut out, id);
            assert_eq!(String::from_utf8(out).unwrap(), format_id(id));
        }
        for n in [0u64, 7, 10, 99, 100, 123_456, u64::MAX] {
            let mut out = Vec::new();
            write_num(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        let mut out = Vec::new();
        write_ipv4(&mut out, "10.200.0.255".parse().unwrap());
        assert_eq!(out, b"10.200.0.255");
    }

    #[test]
    fn several_ids_in_one_argument() {
        let r = Request::new("/x/remove").attr(".id", "*1,*2");
        assert_eq!(requested_ids(&r).unwrap(), vec![1, 2]);
        assert!(requested_ids(&Request::new("/x/remove")).is_err());
    }
}
