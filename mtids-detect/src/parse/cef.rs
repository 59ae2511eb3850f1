//! `remote-log-format=cef` (RouterOS 7.18+, ROUTEROS.md §5):
//! `TIME IDENTITY CEF:0|MikroTik|BOARD|VERSION (CHANNEL)|CLASS|TOPICS|SEVERITY|dvchost=... dvc=... msg=MESSAGE[ key=value...]`
//! followed by the event delimiter (`\r\n` by default, even over UDP).
//!
//! The header fields are separated by `|` (`\|` and `\\` escaped inside them); the
//! extension is `key=value` pairs separated by spaces, `=` and `\` escaped inside values
//! (`\=`, `\\`). RouterOS keeps firewall and other details inside `msg=`, so `msg=` is
//! parsed like any log message; login events may add `src=`, `duser=`, `app=` and
//! `outcome=`, which then take precedence over what the message text says.

use std::borrow::Cow;

use super::LogLine;
use super::message::{parse_message, parse_source};
use crate::event::{Auth, Event};
use crate::time::Timestamp;

/// A CEF record starting at `cef` (`CEF:0|...`), with the timestamp and host of the
/// header in front of it. Never fails: a record of no known shape is
/// [`Event::Unrecognized`]. Allocates only when a value it reads carries an escape.
pub(super) fn parse_cef<'a>(
    timestamp: Option<Timestamp>,
    host: Option<&'a str>,
    cef: &'a str,
) -> LogLine<'a> {
    let cef = trim_delimiter(cef);
    let Some((topics, extension)) = header_topics(cef) else {
        return unrecognized(timestamp, host, cef);
    };
    let ext = Extension::new(extension);
    let raw_msg = ext.get("msg").unwrap_or("");
    let host = host.or_else(|| ext.get("dvchost"));
    let event = match unescape(raw_msg) {
        Cow::Borrowed(msg) => parse_message(topics, msg),
        Cow::Owned(msg) => parse_message(topics, &msg).into_owned(),
    };
    let event = match event {
        Event::Auth(auth) => Event::Auth(with_login_fields(auth, &ext)),
        other => other,
    };
    LogLine {
        timestamp,
        host,
        topics,
        message: raw_msg,
        event,
    }
}

fn unrecognized<'a>(
    timestamp: Option<Timestamp>,
    host: Option<&'a str>,
    cef: &'a str,
) -> LogLine<'a> {
    LogLine {
        timestamp,
        host,
        topics: "",
        message: cef,
        event: Event::Unrecognized,
    }
}

/// The record without the event delimiter RouterOS appends (`\r\n` by default): real
/// CR/LF bytes are gone already; a delimiter written out as text (`\r\n`) is removed here.
fn trim_delimiter(s: &str) -> &str {
    let s = s.trim_end_matches(['\r', '\n', '\0']);
    let s = s.strip_suffix("\\r\\n").unwrap_or(s);
    s.strip_suffix("\\n").unwrap_or(s).trim_end_matches(' ')
}

/// The `Name` header field (RouterOS puts the topics there) and the extension, or `None`
/// when the record has fewer than the seven `|` of a CEF header.
fn header_topics(cef: &str) -> Option<(&str, &str)> {
    let b = cef.as_bytes();
    // Field starts: after each unescaped `|`.
    let mut starts = [0usize; 7];
    let mut found = 0;
    let mut i = 0;
    while i < b.len() && found < 7 {
        match b.get(i) {
            Some(b'\\') => i += 2,
            Some(b'|') => {
                *starts.get_mut(found)? = i + 1;
                found += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    if found < 7 {
        return None;
    }
    // Fields: 0 version, 1 vendor, 2 product, 3 device version, 4 class, 5 name, 6 severity.
    let name_start = *starts.get(4)?;
    let name_end = starts.get(5)? - 1;
    let topics = cef.get(name_start..name_end)?.trim();
    Some((topics, cef.get(*starts.get(6)?..)?))
}

/// The `key=value` pairs of a CEF extension, read on demand (no allocation).
struct Extension<'a> {
    text: &'a str,
}

impl<'a> Extension<'a> {
    fn new(text: &'a str) -> Self {
        Extension { text }
    }

    /// The raw (still escaped) value of `key`. A value runs until the next ` KEY=` of a
    /// known CEF extension key, or the end: so `msg=` keeps any text, even an unescaped
    /// `=` RouterOS may leave in it.
    fn get(&self, key: &str) -> Option<&'a str> {
        let mut rest = self.text;
        loop {
            let (k, value_start) = next_key(rest)?;
            let value_and_more = rest.get(value_start..)?;
            let end = value_end(value_and_more);
            if k == key {
                return value_and_more.get(..end).map(|v| v.trim_end_matches(' '));
            }
            rest = value_and_more.get(end..)?.trim_start_matches(' ');
        }
    }
}

/// The key at the start of `s` and where its value starts.
fn next_key(s: &str) -> Option<(&str, usize)> {
    let eq = s.bytes().position(|c| c == b'=')?;
    let key = s.get(..eq)?;
    (!key.is_empty() && key.bytes().all(is_key_byte)).then_some((key, eq + 1))
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// Where a value starting `s` ends: at the space before the next known ` KEY=`.
fn value_end(s: &str) -> usize {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b' ', b.get(from..).unwrap_or_default()) {
        let space = from + i;
        let after = b.get(space + 1..).unwrap_or_default();
        let key_len = after.iter().take_while(|c| is_key_byte(**c)).count();
        if after.get(key_len) == Some(&b'=')
            && after
                .get(..key_len)
                .and_then(|k| std::str::from_utf8(k).ok())
                .is_some_and(is_known_key)
        {
            return space;
        }
        from = space + 1;
    }
    b.len()
}

/// The extension keys of the CEF standard (ArcSight "Implementing ArcSight CEF",
/// extension dictionary) that a RouterOS record may carry, plus their custom-field forms.
fn is_known_key(k: &str) -> bool {
    matches!(
        k,
        "act"
            | "app"
            | "cat"
            | "cnt"
            | "dhost"
            | "dmac"
            | "dntdom"
            | "dpid"
            | "dpriv"
            | "dproc"
            | "dpt"
            | "dst"
            | "dtz"
            | "duid"
            | "duser"
            | "dvc"
            | "dvchost"
            | "dvcmac"
            | "dvcpid"
            | "end"
            | "externalId"
            | "fname"
            | "fsize"
            | "in"
            | "msg"
            | "out"
            | "outcome"
            | "proto"
            | "reason"
            | "request"
            | "requestMethod"
            | "rt"
            | "shost"
            | "smac"
            | "sntdom"
            | "spid"
            | "spriv"
            | "sproc"
            | "spt"
            | "src"
            | "start"
            | "suid"
            | "suser"
            | "deviceDirection"
            | "deviceExternalId"
            | "deviceFacility"
            | "deviceInboundInterface"
            | "deviceOutboundInterface"
            | "deviceProcessName"
            | "sourceTranslatedAddress"
            | "sourceTranslatedPort"
            | "destinationTranslatedAddress"
            | "destinationTranslatedPort"
    ) || is_custom_key(k)
}

/// `cs1`..`cs6`, `cn1`..`cn3`, `cs1Label`, `flexString1`, ...
fn is_custom_key(k: &str) -> bool {
    let base = k.strip_suffix("Label").unwrap_or(k);
    [
        "cs",
        "cn",
        "cfp",
        "c6a",
        "flexString",
        "flexNumber",
        "flexDate",
    ]
    .iter()
    .any(|p| {
        base.strip_prefix(p)
            .is_some_and(|n| n.len() == 1 && n.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// A value with `\=`, `\\`, `\n` and `\r` unescaped; borrowed when it has no escape.
fn unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A login event with the record's own `src=`, `duser=` and `app=` (when present and
/// readable) in place of what the message text said.
fn with_login_fields<'a>(mut auth: Auth<'a>, ext: &Extension<'_>) -> Auth<'a> {
    if let Some(source) = ext.get("src").and_then(|s| parse_source(&unescape(s))) {
        auth.source = source;
    }
    if let Some(user) = ext.get("duser") {
        auth.user = Cow::Owned(unescape(user).into_owned());
    }
    if let Some(app) = ext.get("app").filter(|a| !a.is_empty()) {
        auth.service = Some(Cow::Owned(unescape(app).into_owned()));
    }
    auth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_values_run_to_the_next_known_key() {
        let ext = Extension::new(
            "dvchost=gw dvc=192.0.2.1 msg=a b=c x\\=y app=ssh duser=sup port src=198.51.100.2",
        );
        assert_eq!(ext.get("dvchost"), Some("gw"));
        assert_eq!(ext.get("msg"), Some("a b=c x\\=y"));
        assert_eq!(ext.get("app"), Some("ssh"));
        assert_eq!(ext.get("duser"), Some("sup port"));
        assert_eq!(ext.get("src"), Some("198.51.100.2"));
        assert_eq!(ext.get("outcome"), None);
        assert_eq!(Extension::new("").get("msg"), None);
        assert_eq!(Extension::new("msg=").get("msg"), Some(""));
    }

    #[test]
    fn header_fields_honour_escaped_pipes() {
        let (topics, ext) =
            header_topics("CEF:0|MikroTik|hEX \\| S|7.19 (stable)|16|dhcp,info|Low|msg=x").unwrap();
        assert_eq!(topics, "dhcp,info");
        assert_eq!(ext, "msg=x");
        assert_eq!(header_topics("CEF:0|MikroTik|x|y|z|t"), None);
    }

    #[test]
    fn escapes_are_undone_only_when_present() {
        assert!(matches!(unescape("plain"), Cow::Borrowed("plain")));
        assert_eq!(unescape("a\\=b\\\\c\\"), "a=b\\c\\");
        assert_eq!(trim_delimiter("msg=x\\r\\n"), "msg=x");
        assert_eq!(trim_delimiter("msg=x\r\n"), "msg=x");
        assert!(is_known_key("cs3Label"));
        assert!(!is_known_key("cs10"));
        assert!(!is_known_key("packet"));
    }
}
