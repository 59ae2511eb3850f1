//! Parsers from what a router sends to [`Event`]s.
//!
//! - [`parse_log_row`]: a row of `/log/print` from the API (`topics` and `message` apart).
//! - [`parse_log_line`]: a whole line from a file, syslog or `/log print`, header first.
//! - [`parse_log_line_bytes`]: the same for bytes that may not be UTF-8.
//! - [`parse_connection_row`], [`parse_resource_row`]: API rows as `(name, value)` pairs.
//!
//! Log parsers never fail: a message of no known shape is [`Event::Unrecognized`] for the
//! caller to count. They never panic and never allocate (except to decode invalid UTF-8,
//! and to unescape a CEF value that carries `\=` or `\\`): events borrow their text from
//! the input.

mod cef;
mod header;
mod message;
mod row;
mod scan;

pub use header::{Date, LineContext};
pub use row::{RowError, parse_connection_row, parse_resource_row};

use crate::event::Event;
use crate::time::Timestamp;

/// A log line taken apart: its header, its topics and message, and the event it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// When the line was logged, in UTC milliseconds since the UNIX epoch; `None` when the
    /// line had no header of a known form or an impossible date.
    pub timestamp: Option<Timestamp>,
    /// The host name or address after a syslog timestamp, when there was one.
    pub host: Option<&'a str>,
    /// The topics, e.g. `system,error,critical` (empty when the line had none).
    pub topics: &'a str,
    /// The message after the topics; for a CEF record the `msg=` value as written (still
    /// escaped: the event is read from its unescaped text).
    pub message: &'a str,
    /// What the message says.
    pub event: Event<'a>,
}

/// The event in a log row from the API (`/log/print` gives `topics` and `message` apart).
///
/// ```
/// use mtids_detect::{parse_log_row, AuthKind, Event};
///
/// let event = parse_log_row("system,error,critical", "login failure for user admin from 198.51.100.7 via ssh");
/// let Event::Auth(auth) = event else { panic!("not a login") };
/// assert_eq!(auth.kind, AuthKind::Failure);
/// assert_eq!(auth.user, "admin");
/// ```
pub fn parse_log_row<'a>(topics: &'a str, message: &'a str) -> Event<'a> {
    message::parse_message(topics, trim_line_end(message))
}

/// [`parse_log_row`] for fields that may not be UTF-8: valid UTF-8 is borrowed as it is;
/// otherwise both fields are decoded lossily into `scratch` (reused from call to call).
pub fn parse_log_row_bytes<'a>(
    topics: &'a [u8],
    message: &'a [u8],
    scratch: &'a mut String,
) -> Event<'a> {
    if let (Ok(t), Ok(m)) = (std::str::from_utf8(topics), std::str::from_utf8(message)) {
        return parse_log_row(t, m);
    }
    scratch.clear();
    scratch.push_str(&String::from_utf8_lossy(topics));
    let split = scratch.len();
    scratch.push_str(&String::from_utf8_lossy(message));
    let text: &'a str = scratch;
    match (text.get(..split), text.get(split..)) {
        (Some(t), Some(m)) => parse_log_row(t, m),
        _ => Event::Unrecognized,
    }
}

/// A whole log line with any header of ROUTEROS.md §3 and §5 taken apart:
/// BSD syslog with or without `<PRI>` (`<30>Feb 15 11:25:46 gw.local TOPICS MESSAGE`),
/// RFC 3339 (`2023-03-18T20:35:05.734637+01:00 10.0.0.1 TOPICS MESSAGE`), the
/// `/log print` forms (`oct/07/2007 06:23:51`, `2025-02-11 00:02:30.123`, `06:23:51`, with
/// or without the leading space RouterOS 7 prints), and the remote formats of RouterOS
/// 7.18+: `default` (`TOPICS MESSAGE`, no header), `syslog` (`<30>Sep 25 01:37:18 MikroTik
/// MESSAGE`, no topics: the message is recognised by its text) and `cef`
/// (`TIME IDENTITY CEF:0|MikroTik|...|TOPICS|...|dvchost=... msg=MESSAGE ...`).
/// A line that starts with spaces and has no header is a further line of a multi-line
/// message (the `default` format sends those as datagrams of their own): it is
/// [`Event::Unrecognized`], never read as a message.
///
/// Missing years and dates come from `ctx`; times without an offset are converted to UTC
/// with its offset (see [`LineContext`]).
///
/// ```
/// use mtids_detect::{parse_log_line, Date, Event, LineContext};
///
/// let ctx = LineContext::new(Date::new(2025, 2, 15), 0);
/// let line = parse_log_line("<30>Feb 15 11:25:46 gw.local firewall,info input: in:ether1 out:(unknown 0), proto UDP, 198.51.100.7:5353->192.0.2.1:161, len 60", &ctx);
/// assert_eq!(line.host, Some("gw.local"));
/// let Event::Firewall(fw) = line.event else { panic!("not a firewall line") };
/// assert_eq!(fw.dst.port, Some(161));
/// ```
pub fn parse_log_line<'a>(line: &'a str, ctx: &LineContext) -> LogLine<'a> {
    let line = trim_line_end(line);
    let rest = header::strip_pri(line);
    // RouterOS 7 prints `/log print` lines with a leading space (ROUTEROS.md §3).
    let trimmed = rest.trim_start_matches(' ');
    let Some((timestamp, rest)) = header::parse_timestamp(trimmed, ctx) else {
        if trimmed.len() != rest.len() {
            // The `default` remote format sends each further line of a multi-line message
            // as a datagram of its own, starting with spaces (ROUTEROS.md §5): a piece of
            // an earlier message, never a message of its own.
            return LogLine {
                timestamp: None,
                host: None,
                topics: "",
                message: trimmed,
                event: Event::Unrecognized,
            };
        }
        if rest.starts_with("CEF:") {
            return cef::parse_cef(None, None, rest);
        }
        return without_host(None, rest);
    };
    let rest = rest.trim_start_matches(' ');
    if rest.starts_with("CEF:") {
        return cef::parse_cef(timestamp, None, rest);
    }
    let (first, after_first, first_is_topics) = word(rest);
    if first_is_topics {
        return with_topics(timestamp, None, first, after_first);
    }
    if after_first.starts_with("CEF:") {
        return cef::parse_cef(timestamp, Some(first), after_first);
    }
    let (second, after_second, second_is_topics) = word(after_first);
    if second_is_topics {
        return with_topics(timestamp, Some(first), second, after_second);
    }
    // No topics: the `syslog` remote format (`<30>Sep 25 01:37:18 MikroTik MESSAGE`,
    // ROUTEROS.md §5) or an rsyslog line that lost them. The first word is the host
    // (RFC 3164 always writes one) unless only the whole text reads as a message.
    let hosted = LogLine {
        timestamp,
        host: (!first.is_empty()).then_some(first),
        topics: "",
        message: after_first,
        event: parse_log_row("", after_first),
    };
    if hosted.event != Event::Unrecognized {
        return hosted;
    }
    let bare = without_host(timestamp, rest);
    if bare.event != Event::Unrecognized {
        return bare;
    }
    hosted
}

/// Which header and format [`parse_log_line`] recognised in a line: what `mtids explain`
/// prints, for people writing log rules. Read with [`line_format`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineFormat {
    /// BSD syslog (RFC 3164) with topics: `<30>Feb 15 11:25:46 gw.local TOPICS MESSAGE`.
    BsdSyslog,
    /// RFC 3339 time with topics: `2023-03-18T20:35:05.734637+01:00 10.0.0.1 TOPICS MESSAGE`.
    Rfc3339,
    /// A `/log print` line: `oct/07/2007 06:23:51`, `feb/11 00:02:30`,
    /// `2025-02-11 00:02:30.123` or `06:23:51`, then topics.
    LogPrint,
    /// The `cef` remote format of RouterOS 7.18+ (`... CEF:0|MikroTik|...`).
    Cef,
    /// The `default` remote format of RouterOS 7.18+: `TOPICS MESSAGE`, no header.
    Default,
    /// A header but no topics: the `syslog` remote format of RouterOS 7.18+, or a relay
    /// that dropped them; the message is recognised by its text alone.
    SyslogWithoutTopics,
    /// Leading spaces and no header: a further line of a multi-line message.
    Continuation,
    /// Neither header nor topics: the text is read as a bare message.
    BareMessage,
}

impl LineFormat {
    /// A short description (`BSD syslog`, `RFC 3339`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LineFormat::BsdSyslog => "BSD syslog (RFC 3164)",
            LineFormat::Rfc3339 => "RFC 3339 syslog",
            LineFormat::LogPrint => "/log print",
            LineFormat::Cef => "CEF (RouterOS 7.18+ remote format `cef`)",
            LineFormat::Default => "RouterOS 7.18+ remote format `default` (topics, no header)",
            LineFormat::SyslogWithoutTopics => {
                "syslog without topics (RouterOS 7.18+ remote format `syslog`)"
            }
            LineFormat::Continuation => "continuation of a multi-line message",
            LineFormat::BareMessage => "bare message (no header, no topics)",
        }
    }
}

impl std::fmt::Display for LineFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header and format of `line` as [`parse_log_line`] reads it (the same steps, without
/// the message): for explaining a line, not for the hot path.
///
/// ```
/// use mtids_detect::{line_format, LineFormat};
///
/// assert_eq!(line_format("<30>Feb 15 11:25:46 gw firewall,info input: x"), LineFormat::BsdSyslog);
/// assert_eq!(line_format("system,error,critical login failure for user a from 192.0.2.1 via ssh"), LineFormat::Default);
/// ```
pub fn line_format(line: &str) -> LineFormat {
    let line = trim_line_end(line);
    let rest = header::strip_pri(line);
    let trimmed = rest.trim_start_matches(' ');
    // Any context will do: only the shape of the header matters here.
    let ctx = LineContext::default();
    let Some((_, after)) = header::parse_timestamp(trimmed, &ctx) else {
        if trimmed.len() != rest.len() {
            return LineFormat::Continuation;
        }
        if rest.starts_with("CEF:") {
            return LineFormat::Cef;
        }
        return if word(rest).2 {
            LineFormat::Default
        } else {
            LineFormat::BareMessage
        };
    };
    let after = after.trim_start_matches(' ');
    let (_, after_first, first_is_topics) = word(after);
    if after.starts_with("CEF:") || after_first.starts_with("CEF:") {
        return LineFormat::Cef;
    }
    let with_topics = first_is_topics || word(after_first).2;
    // Hand the parse the same line to learn whether the topics were used.
    if !with_topics || parse_log_line(line, &ctx).topics.is_empty() {
        return LineFormat::SyslogWithoutTopics;
    }
    let b = trimmed.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    if at(4) == b'-' && matches!(at(10), b'T' | b't') {
        LineFormat::Rfc3339
    } else if at(3) == b' ' {
        LineFormat::BsdSyslog
    } else {
        LineFormat::LogPrint
    }
}

/// The `time` field of a `/log/print` row from the API (`oct/07/2007 06:23:51`,
/// `feb/11 00:02:30`, `2025-02-11 00:02:30`, `06:23:51`, with milliseconds since RouterOS
/// 7.18: `2025-02-11 00:02:30.123`), or any other header timestamp
/// of [`parse_log_line`], in UTC. `None` when the text is not exactly one timestamp of a
/// known form, or names an impossible date.
///
/// ```
/// use mtids_detect::{parse_log_time, Date, LineContext, Timestamp};
///
/// let ctx = LineContext::new(Date::new(2025, 2, 11), 0);
/// assert_eq!(parse_log_time("00:02:30", &ctx), Some(Timestamp::from_secs(1_739_232_150)));
/// assert_eq!(parse_log_time("yesterday", &ctx), None);
/// ```
pub fn parse_log_time(time: &str, ctx: &LineContext) -> Option<Timestamp> {
    match header::parse_timestamp(time.trim(), ctx)? {
        (timestamp, "") => timestamp,
        _ => None,
    }
}

/// [`parse_log_line`] for bytes that may not be UTF-8: valid UTF-8 is borrowed as it is;
/// otherwise the line is decoded lossily into `scratch` (reused from call to call).
pub fn parse_log_line_bytes<'a>(
    line: &'a [u8],
    ctx: &LineContext,
    scratch: &'a mut String,
) -> LogLine<'a> {
    if let Ok(line) = std::str::from_utf8(line) {
        return parse_log_line(line, ctx);
    }
    scratch.clear();
    scratch.push_str(&String::from_utf8_lossy(line));
    parse_log_line(scratch, ctx)
}

fn with_topics<'a>(
    timestamp: Option<Timestamp>,
    host: Option<&'a str>,
    topics: &'a str,
    message: &'a str,
) -> LogLine<'a> {
    LogLine {
        timestamp,
        host,
        topics,
        message,
        event: parse_log_row(topics, message),
    }
}

/// `TOPICS MESSAGE` or a bare message.
fn without_host(timestamp: Option<Timestamp>, rest: &str) -> LogLine<'_> {
    let (first, after_first, first_is_topics) = word(rest);
    if first_is_topics {
        with_topics(timestamp, None, first, after_first)
    } else {
        with_topics(timestamp, None, "", rest)
    }
}

/// `s` without a trailing `\n` or `\r\n`.
fn trim_line_end(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// The first space-separated word, the text after the spaces that follow it, and whether
/// the word looks like RouterOS topics: a comma list of lowercase words (`firewall,info`,
/// `system,error,critical`). A list always holds a severity, so it always has a comma,
/// which tells it apart from a host name. One pass over the bytes.
fn word(s: &str) -> (&str, &str, bool) {
    let b = s.as_bytes();
    let end = memchr::memchr(b' ', b).unwrap_or(b.len());
    let (w, rest) = s.split_at_checked(end).unwrap_or((s, ""));
    // Some syslog relays write `firewall,info:`; the colon is not part of the topics.
    let w = w.strip_suffix(':').unwrap_or(w);
    // Branch-free over the word: host names and topics differ in the first bytes already,
    // and a branch per byte mispredicts.
    let (comma, topic_chars) = w.bytes().fold((false, true), |(comma, ok), c| {
        (comma | (c == b','), ok & TOPIC_BYTE[usize::from(c)])
    });
    (w, rest.trim_start_matches(' '), comma && topic_chars)
}

/// The bytes a topic list is made of: `a-z`, `0-9`, `,`, `-`, `_`.
static TOPIC_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = matches!(c as u8, b'a'..=b'z' | b'0'..=b'9' | b',' | b'-' | b'_');
        c += 1;
    }
    table
};
