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
    let raw_msg = ext.msg.unwrap_or("");
    let host = host.or(ext.dvchost);
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
    let mut i = 0;
    for start in &mut starts {
        loop {
            let at = i + memchr::memchr2(b'|', b'\\', b.get(i..)?)?;
            if b.get(at) == Some(&b'|') {
                *start = at + 1;
                i = at + 1;
                break;
            }
            i = at + 2; // `\|`, `\\`: the escaped byte is not a separator.
        }
    }
    // Fields: 0 version, 1 vendor, 2 product, 3 device version, 4 class, 5 name, 6 severity.
    let name_start = *starts.get(4)?;
    let name_end = starts.get(5)? - 1;
    let topics = cef.get(name_start..name_end)?.trim();
    Some((topics, cef.get(*starts.get(6)?..)?))
}

/// The extension fields mtids reads, as written (still escaped), in one pass over the
/// `key=value` pairs (no allocation).
#[derive(Default)]
struct Extension<'a> {
    msg: Option<&'a str>,
    dvchost: Option<&'a str>,
    src: Option<&'a str>,
    duser: Option<&'a str>,
    app: Option<&'a str>,
}

impl<'a> Extension<'a> {
    /// A value runs until the next ` KEY=` of a known CEF extension key, or the end: so
    /// `msg=` keeps any text, even an unescaped `=` RouterOS may leave in it. Reading stops
    /// at the first text that is not `key=`.
    fn new(text: &'a str) -> Self {
        let mut ext = Extension::default();
        let mut rest = text.trim_start_matches(' ');
        while let Some((key, value_start)) = next_key(rest) {
            let Some(value_and_more) = rest.get(value_start..) else {
                break;
            };
            let end = value_end(value_and_more);
            let value = value_and_more.get(..end).map(|v| v.trim_end_matches(' '));
            match key {
                "msg" => ext.msg = value,
                "dvchost" => ext.dvchost = value,
                "src" => ext.src = value,
                "duser" => ext.duser = value,
                "app" => ext.app = value,
                _ => {}
            }
            let Some(more) = value_and_more.get(end..) else {
                break;
            };
            rest = more.trim_start_matches(' ');
        }
        ext
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

/// Where a value starting `s` ends: at the space before the next known ` KEY=`. Jumps
/// from `=` to `=` (a message rarely has any) and reads the word before each backwards.
fn value_end(s: &str) -> usize {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'=', b.get(from..).unwrap_or_default()) {
        let eq = from + i;
        let before = b.get(..eq).unwrap_or_default();
        let key_len = before.iter().rev().take_while(|c| is_key_byte(**c)).count();
        let space = eq - key_len;
        if key_len > 0
            && space > 0
            && b.get(space - 1) == Some(&b' ')
            && s.get(space..eq).is_some_and(is_known_key)
        {
            return space - 1;
        }
        from = eq + 1;
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
fn with_login_fields<'a>(mut auth: Auth<'a>, ext: &Extension<'a>) -> Auth<'a> {
    if let Some(source) = ext.src.and_then(|s| parse_source(&unescape(s))) {
        auth.source = source;
    }
    if let Some(user) = ext.duser {
        auth.user = unescape(user);
    }
    if let Some(app) = ext.app.filter(|a| !a.is_empty()) {
        auth.service = Some(unescape(app));
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
        assert_eq!(ext.dvchost, Some("gw"));
        assert_eq!(ext.msg, Some("a b=c x\\=y"));
        assert_eq!(ext.app, Some("ssh"));
        assert_eq!(ext.duser, Some("sup port"));
        assert_eq!(ext.src, Some("198.51.100.2"));
        assert_eq!(Extension::new("").msg, None);
        assert_eq!(Extension::new("msg=").msg, Some(""));
        assert_eq!(Extension::new("msg= src=198.51.100.2").msg, Some(""));
        // Text that is not `key=` ends the reading.
        assert_eq!(Extension::new("garbage msg=x").msg, None);
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
