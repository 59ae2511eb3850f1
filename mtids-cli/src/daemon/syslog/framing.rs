//! Splitting a syslog byte stream (TCP or TLS) into frames: sans-IO, bounded.
//!
//! A frame is either octet-counted (RFC 6587 section 3.4.1: `MSG-LEN SP MSG`, what
//! rsyslog forwarding sends) or ends at the CEF delimiter or a newline (RFC 6587 section
//! 3.4.2, and RouterOS 7.18+, which over TCP and TLS sends CEF, each event followed by its
//! `cef-event-delimiter`, `\r\n` by default: ROUTEROS.md §5; the
//! property is listed by terraform-provider-routeros,
//! <https://www.pulumi.com/registry/packages/routeros/api-docs/systemloggingaction>).
//! A CEF event with ISO 8601 time starts with digits too (`2026-01-05T07:00:12.004+0100
//! gw CEF:0|...`), so only digits followed by a space are an octet count.
//!
//! RouterOS' `default` and `syslog` formats over TCP carry no delimiter and no octet
//! count, and MikroTik's manual says TCP and TLS work only with `remote-log-format=cef`
//! (ROUTEROS.md §5, checked against the Log page,
//! <https://manual.mikrotik.com/docs/Diagnostics,%20monitoring%20and%20troubleshooting/log/>):
//! their messages run together. [`looks_run_together`] recognises that so the listener
//! can say what to change on the router.

/// Digits of the longest octet count read (`MAX_LINE` has 4; RFC 6587 allows more, but a
/// frame longer than the line limit is refused anyway).
const MAX_COUNT_DIGITS: usize = 5;

/// One unit read from the stream.
#[derive(Debug, PartialEq, Eq)]
#[cfg(test)]
pub(crate) enum Frame {
    /// A message, without its delimiter (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A delimited message longer than the limit: skipped up to its delimiter. `head`
    /// holds its first bytes (up to the limit), to tell what the sender is doing.
    TooLong {
        /// The start of the skipped message.
        head: Vec<u8>,
    },
    /// An octet count that is not one (too many digits, or larger than the limit):
    /// framing is lost, the connection must be closed.
    Malformed,
}

/// A frame borrowed from the [`Framer`]'s buffer, valid until the next
/// call: the hot path parses it in place instead of copying every line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameRef<'a> {
    /// A message, without its delimiter (and without a trailing `\r`).
    Line(&'a [u8]),
    /// A delimited message longer than the limit: skipped up to its delimiter. `head`
    /// holds its first bytes (up to the limit), to tell what the sender is doing.
    TooLong {
        /// The start of the skipped message.
        head: &'a [u8],
    },
    /// An octet count that is not one (too many digits, or larger than the limit):
    /// framing is lost, the connection must be closed.
    Malformed,
}

#[cfg(test)]
impl FrameRef<'_> {
    fn to_owned_frame(&self) -> Frame {
        match self {
            FrameRef::Line(l) => Frame::Line(l.to_vec()),
            FrameRef::TooLong { head } => Frame::TooLong {
                head: head.to_vec(),
            },
            FrameRef::Malformed => Frame::Malformed,
        }
    }
}

/// Splits a byte stream into frames; at most `max + delimiter` bytes are buffered
/// (plus one read).
#[derive(Debug)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    /// Where the unread bytes start in `buf`: frames are consumed by moving it, and the
    /// consumed bytes are dropped once per read, in [`Framer::space`] (not once per frame,
    /// which moved the rest of the buffer for every line).
    start: usize,
    delimiter: Vec<u8>,
    max: usize,
    /// Discarding the rest of an overlong frame, up to its delimiter.
    skipping: bool,
}

enum Count {
    /// `MSG-LEN SP`: the length and the header's size.
    Frame { len: usize, header: usize },
    /// Only digits so far: wait for more.
    NeedMore,
    /// Not an octet count: a delimited frame.
    No,
    /// Digits that cannot be a count.
    Bad,
}

impl Framer {
    /// A framer ending delimited frames at `delimiter` or `\n`, with frames of at most
    /// `max` bytes.
    pub(crate) fn new(delimiter: Vec<u8>, max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            delimiter,
            max,
            skipping: false,
        }
    }

    /// Appends bytes read from the stream.
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.space(bytes.len()).extend_from_slice(bytes);
    }

    /// The buffer to read up to `room` more bytes into, at its end (the consumed bytes
    /// dropped first): the stream is read straight into it, not copied in after.
    pub(crate) fn space(&mut self, room: usize) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(room);
        &mut self.buf
    }

    /// Bytes received and not yet part of a frame.
    pub(crate) fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// The next complete frame, or `None` until more bytes arrive.
    #[cfg(test)]
    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        self.next_frame_ref().map(|f| f.to_owned_frame())
    }

    /// The next complete frame, borrowed, or `None` until more bytes arrive.
    pub(crate) fn next_frame_ref(&mut self) -> Option<FrameRef<'_>> {
        loop {
            let rest = self.buf.get(self.start..).unwrap_or_default();
            if self.skipping {
                match find_end(rest, &self.delimiter) {
                    Some((end, len)) => {
                        self.start += end + len;
                        self.skipping = false;
                    }
                    None => {
                        // Keep a possible partial delimiter at the end.
                        let keep = self.delimiter.len().saturating_sub(1).min(rest.len());
                        self.start = self.buf.len() - keep;
                        return None;
                    }
                }
            }
            let at = self.start;
            let rest = self.buf.get(at..).unwrap_or_default();
            if rest.is_empty() {
                return None;
            }
            match octet_count(rest) {
                Count::Frame { len, header } => {
                    if len > self.max {
                        return Some(FrameRef::Malformed);
                    }
                    let end = header + len;
                    rest.get(..end)?;
                    self.start = at + end;
                    return self.buf.get(at + header..at + end).map(FrameRef::Line);
                }
                Count::NeedMore => return None,
                Count::Bad => return Some(FrameRef::Malformed),
                Count::No => {}
            }
            match find_end(rest, &self.delimiter) {
                Some((end, len)) => {
                    self.start = at + end + len;
                    let frame = self.buf.get(at..at + end).unwrap_or_default();
                    if frame.len() > self.max {
                        let head = frame.get(..self.max).unwrap_or_default();
                        return Some(FrameRef::TooLong { head });
                    }
                    let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
                    if frame.iter().all(u8::is_ascii_whitespace) {
                        continue; // A blank line between frames.
                    }
                    return Some(FrameRef::Line(frame));
                }
                None if rest.len() > self.max => {
                    // The tail may hold the start of the delimiter: scan it again.
                    let keep = self.delimiter.len().saturating_sub(1).min(rest.len());
                    self.start = self.buf.len() - keep;
                    self.skipping = true;
                    let head = self.buf.get(at..at + self.max).unwrap_or_default();
                    return Some(FrameRef::TooLong { head });
                }
                None => return None,
            }
        }
    }
}

/// Where the first frame of `buf` ends (the earliest `delimiter` or `\n`), and the
/// terminator's length.
pub(crate) fn find_end(buf: &[u8], delimiter: &[u8]) -> Option<(usize, usize)> {
    let newline = memchr::memchr(b'\n', buf).map(|i| (i, 1));
    // A delimiter that ends the frame first starts before the newline: look no further
    // (scanning the whole buffer for a delimiter the sender never sends made every
    // line cost the rest of the buffer).
    let custom = match (newline, memchr::memchr(b'\n', delimiter)) {
        _ if delimiter == b"\n" || delimiter.is_empty() => None,
        // A delimiter with a newline at its k-th byte (`\r\n`, RouterOS' default) has it
        // at or after the first newline `n`, and ending the frame first it starts at or
        // before `n`: only `n - k ..= n` can hold it. No substring search per line.
        (Some((n, _)), Some(k)) => (n.saturating_sub(k)..=n).find(|p| {
            buf.get(*p..)
                .is_some_and(|rest| rest.starts_with(delimiter))
        }),
        (newline, _) => {
            let scope = newline.map_or(buf, |(n, _)| buf.get(..n + delimiter.len()).unwrap_or(buf));
            memchr::memmem::find(scope, delimiter)
        }
    }
    .map(|i| (i, delimiter.len()));
    match (newline, custom) {
        (Some(n), Some(c)) => Some(if c.0 <= n.0 { c } else { n }),
        (n, c) => n.or(c),
    }
}

/// The frames of one datagram (or any complete buffer): split at `delimiter` or `\n`,
/// trailing `\r` and blank frames dropped.
pub(crate) fn split_frames<'a>(
    mut data: &'a [u8],
    delimiter: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    std::iter::from_fn(move || {
        loop {
            if data.is_empty() {
                return None;
            }
            let (frame, rest) = match find_end(data, delimiter) {
                Some((end, len)) => (data.get(..end)?, data.get(end + len..)?),
                None => (data, &[][..]),
            };
            data = rest;
            let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
            if !frame.iter().all(u8::is_ascii_whitespace) {
                return Some(frame);
            }
        }
    })
}

fn octet_count(buf: &[u8]) -> Count {
    match buf.first() {
        Some(b'1'..=b'9') => {}
        _ => return Count::No,
    }
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    match buf.get(digits) {
        None if digits <= MAX_COUNT_DIGITS => Count::NeedMore,
        Some(b' ') if digits <= MAX_COUNT_DIGITS => {
            let len = buf
                .get(..digits)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|t| t.parse::<usize>().ok());
            match len {
                Some(len) => Count::Frame {
                    len,
                    header: digits + 1,
                },
                None => Count::Bad,
            }
        }
        // `2026-01-05T...`: a timestamp, not a count.
        Some(b) if !b.is_ascii_digit() && *b != b' ' => Count::No,
        _ => Count::Bad,
    }
}

/// Whether `frame` holds several RouterOS messages run together: what `default` or
/// `syslog` format over TCP looks like (no delimiter, no octet count). Two `<PRI>`
/// headers followed by a time (`<30>Sep 25 01:37:18`, `<30>2026-...`), or two topics
/// headers (`system,error,critical`), give it away.
pub(crate) fn looks_run_together(frame: &[u8]) -> bool {
    // Called for every line of a stream until it answers yes: memchr to the few `<` and
    // `,` a line has, no allocation (it used to take a sixth of the daemon's time).
    let headers = memchr::memchr_iter(b'<', frame)
        .filter(|i| pri_header_at(frame, *i))
        .take(2)
        .count();
    headers >= 2 || topics_headers(frame) >= 2
}

/// `<1-3 digits>` at `at`, followed by a month name or a digit (the time).
fn pri_header_at(frame: &[u8], at: usize) -> bool {
    let Some(rest) = frame.get(at + 1..) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return false;
    }
    match rest.get(digits + 1..) {
        Some([first, ..]) if first.is_ascii_digit() => true,
        Some(after) => MONTHS.iter().any(|m| after.starts_with(m)),
        None => false,
    }
}

const MONTHS: [&[u8]; 12] = [
    b"Jan ", b"Feb ", b"Mar ", b"Apr ", b"May ", b"Jun ", b"Jul ", b"Aug ", b"Sep ", b"Oct ",
    b"Nov ", b"Dec ",
];

/// Words that look like RouterOS topics with a severity (`firewall,info`,
/// `system,error,critical`, possibly glued to the previous message's last word). Words
/// are split at spaces; only a word with a comma can be one, so those are visited, once
/// each.
fn topics_headers(frame: &[u8]) -> usize {
    let mut count = 0;
    // Words ending before this were visited already.
    let mut visited = 0;
    for comma in memchr::memchr_iter(b',', frame) {
        // In a topics word every comma is followed by a lowercase letter: a comma that is
        // not (`in:ether1 out:(unknown 0), proto`) rules its word out without a look.
        let lowercase_next = frame.get(comma + 1).is_some_and(u8::is_ascii_lowercase);
        if comma < visited || !lowercase_next {
            continue;
        }
        let before = frame.get(..comma).unwrap_or_default();
        let start = memchr::memrchr(b' ', before).map_or(0, |i| i + 1);
        let after = frame.get(comma..).unwrap_or_default();
        let end = memchr::memchr(b' ', after).map_or(frame.len(), |i| comma + i);
        visited = end;
        if is_topics(frame.get(start..end).unwrap_or_default()) {
            count += 1;
        }
    }
    count
}

/// `word` is `TOPIC,lowercase,...` with a severity among the lowercase parts.
fn is_topics(word: &[u8]) -> bool {
    const SEVERITIES: [&[u8]; 5] = [b"info", b"warning", b"error", b"critical", b"debug"];
    let mut parts = word.split(|b| *b == b',');
    if parts.next().unwrap_or_default().is_empty() {
        return false;
    }
    let (mut any, mut severity) = (false, false);
    for part in parts {
        if part.is_empty() || !part.iter().all(u8::is_ascii_lowercase) {
            return false;
        }
        any = true;
        severity |= SEVERITIES.contains(&part);
    }
    any && severity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer) -> Vec<Frame> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    /// CEF as RouterOS 7.18+ sends it over TCP/TLS (shapes from ROUTEROS.md §5),
    /// each event followed by `\r\n`, cut at arbitrary points by the network.
    #[test]
    fn cef_events_are_split_on_the_delimiter_wherever_reads_cut_them() {
        let events = [
            "Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004-1G-12S+2XS|7.21 (stable)|10|system,error,critical|High|dvchost=gw dvc=192.0.2.1 msg=login failure for user support from 198.51.100.200 via ssh app=ssh duser=support outcome=failure src=198.51.100.200",
            "2026-01-05T07:00:12.004+0100 gw CEF:0|MikroTik|hEX S|7.19 (stable)|16|dhcp,info|Low|dvchost=gw dvc=192.0.2.1 msg=lan-dhcp assigned 192.168.88.20 for 02:00:00:00:00:01",
            "2026-01-05T07:00:13.000-05:00 gw CEF:0|MikroTik|hEX S|7.19 (stable)|16|firewall,info|Low|dvchost=gw dvc=192.0.2.1 msg=input: in:ether1 out:(unknown 0), proto TCP (SYN), 203.0.113.9:4000->192.0.2.1:22, len 60",
        ];
        let stream: Vec<u8> = events
            .iter()
            .flat_map(|e| format!("{e}\r\n").into_bytes())
            .collect();
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let mut framer = Framer::new(b"\r\n".to_vec(), 8192);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                framer.push(piece);
                got.extend(frames(&mut framer));
            }
            let want: Vec<Frame> = events.iter().map(|e| line(e)).collect();
            assert_eq!(got, want, "chunks of {chunk}");
            assert!(framer.buffered().is_empty());
        }
    }

    #[test]
    fn a_custom_delimiter_newlines_and_octet_counts_all_frame() {
        let mut framer = Framer::new(b"||".to_vec(), 8192);
        framer.push(b"Nov 22 20:47:18 gw CEF:0|a||Nov 22 20:47:19 gw CEF:0|b\n");
        framer.push(b"11 <13>1 hello\r\n\r\n<13>Feb 15 11:25:46 gw system,info x");
        assert_eq!(
            frames(&mut framer),
            [
                line("Nov 22 20:47:18 gw CEF:0|a"),
                line("Nov 22 20:47:19 gw CEF:0|b"),
                line("<13>1 hello"),
            ]
        );
        framer.push(b"||");
        assert_eq!(
            frames(&mut framer),
            [line("<13>Feb 15 11:25:46 gw system,info x")]
        );
    }

    #[test]
    fn overlong_frames_are_skipped_to_their_delimiter_with_bounded_memory() {
        let mut framer = Framer::new(b"\r\n".to_vec(), 16);
        framer.push(b"short\r\n");
        framer.push(&[b'x'; 40]);
        let got = frames(&mut framer);
        assert_eq!(got[0], line("short"));
        assert!(matches!(&got[1], Frame::TooLong { head } if head.len() == 16));
        for _ in 0..1000 {
            framer.push(&[b'y'; 1000]);
            assert!(frames(&mut framer).is_empty());
            assert!(framer.buffered().len() <= 16);
        }
        framer.push(b"\r\nnext\r\n");
        assert_eq!(frames(&mut framer), [line("next")]);
    }

    #[test]
    fn broken_octet_counts_lose_framing() {
        for bad in [&b"9999999 x"[..], b"77777777777", b"20000 x"] {
            let mut framer = Framer::new(b"\r\n".to_vec(), 8192);
            framer.push(bad);
            assert_eq!(framer.next_frame(), Some(Frame::Malformed), "{bad:?}");
        }
        let mut framer = Framer::new(b"\r\n".to_vec(), 8192);
        framer.push(b"123");
        assert_eq!(framer.next_frame(), None, "waiting for the space");
    }

    #[test]
    fn datagrams_split_on_the_delimiter_too() {
        let got: Vec<&[u8]> = split_frames(b"a\r\nb\r\n\r\nc", b"\r\n").collect();
        assert_eq!(got, [&b"a"[..], b"b", b"c"]);
        let got: Vec<&[u8]> = split_frames(b"a;;b\n", b";;").collect();
        assert_eq!(got, [&b"a"[..], b"b"]);
    }

    /// What RouterOS' `syslog` and `default` formats look like over TCP (no delimiter,
    /// ROUTEROS.md §5), against single messages of each kind.
    #[test]
    fn unframed_routeros_formats_are_recognised() {
        let syslog = b"<30>Sep 25 01:37:18 MikroTik user abc logged in from 192.168.88.1 via api<30>Sep 25 01:37:19 MikroTik user abc logged out from 192.168.88.1 via api";
        let default = b"system,info,account user admin logged in from 10.0.0.1 via winboxsystem,error,critical login failure for user x from 198.51.100.2 via ssh";
        assert!(looks_run_together(syslog));
        assert!(looks_run_together(default));
        for single in [
            &b"<30>Sep 25 01:37:18 MikroTik user abc logged in from 192.168.88.1 via api"[..],
            b"system,info,account user admin logged in from 10.0.0.1 via winbox",
            b"<86>Nov 21 10:00:01 gw system,error,critical login failure for user <b> from 198.51.100.7 via ssh",
            b"Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004|7.21 (stable)|10|system,error,critical|High|dvchost=gw msg=x",
        ] {
            assert!(!looks_run_together(single), "{}", String::from_utf8_lossy(single));
        }
    }

    /// `find_end` as it was, with a substring search per line: the fast one must agree.
    fn find_end_reference(buf: &[u8], delimiter: &[u8]) -> Option<(usize, usize)> {
        let newline = memchr::memchr(b'\n', buf).map(|i| (i, 1));
        let scope = newline.map_or(buf, |(n, _)| buf.get(..n + delimiter.len()).unwrap_or(buf));
        let custom = (delimiter != b"\n" && !delimiter.is_empty())
            .then(|| memchr::memmem::find(scope, delimiter).map(|i| (i, delimiter.len())))
            .flatten();
        match (newline, custom) {
            (Some(n), Some(c)) => Some(if c.0 <= n.0 { c } else { n }),
            (n, c) => n.or(c),
        }
    }

    /// The first implementation, allocating and byte by byte: the fast one must agree.
    fn looks_run_together_reference(frame: &[u8]) -> bool {
        const SEVERITIES: [&[u8]; 5] = [b"info", b"warning", b"error", b"critical", b"debug"];
        let headers = frame
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'<')
            .filter(|(i, _)| pri_header_at(frame, *i))
            .take(2)
            .count();
        let topics = frame
            .split(|b| *b == b' ')
            .filter(|word| {
                let mut parts = word.split(|b| *b == b',');
                let first = parts.next().unwrap_or_default();
                let rest: Vec<&[u8]> = parts.collect();
                !first.is_empty()
                    && !rest.is_empty()
                    && rest
                        .iter()
                        .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_lowercase))
                    && rest.iter().any(|p| SEVERITIES.contains(p))
            })
            .count();
        headers >= 2 || topics >= 2
    }

    proptest::proptest! {
        /// Where a frame ends is what the substring search found, for every delimiter
        /// shape (with a newline first, last, inside, twice, or none).
        #[test]
        fn find_end_agrees_with_the_reference(
            data in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'\r', b'\n', b'|', b'\0', b'b']),
                0..64,
            ),
            delimiter in proptest::sample::select(vec![
                &b"\r\n"[..], b"\n", b"||", b"\0", b"a\nb", b"\n\n", b"\nb", b"a\r\n", b"",
            ]),
        ) {
            proptest::prop_assert_eq!(
                find_end(&data, delimiter),
                find_end_reference(&data, delimiter)
            );
        }

        /// The memchr version of `looks_run_together` answers as the first one did, on
        /// lines made of the words that matter (PRI headers, topics, near misses).
        #[test]
        fn run_together_agrees_with_the_reference(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "firewall,info", "system,error,critical", "a,b", ",info", "x,", "x,,info",
                    "<30>Sep", "<30>2026-01-05", "<1>", "<9999>Jan", "25", "01:37:18", "gw",
                    "user", "admin", "in:ether1", "0),", "proto", "TCP", "(SYN),", "via",
                    "winboxsystem,error,critical", "", "<", ",", "Info,info", "a,Debug",
                ]),
                0..24,
            ),
            glue in proptest::collection::vec(proptest::sample::select(vec![" ", "", "  "]), 24),
        ) {
            let mut frame = String::new();
            for (word, glue) in words.iter().zip(&glue) {
                frame.push_str(word);
                frame.push_str(glue);
            }
            proptest::prop_assert_eq!(
                looks_run_together(frame.as_bytes()),
                looks_run_together_reference(frame.as_bytes()),
                "{:?}", frame
            );
        }

        /// Any bytes, cut anywhere: no panic, memory stays bounded, and whatever comes out
        /// is within the limit.
        #[test]
        fn any_stream_is_framed_within_bounds(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            cuts in proptest::collection::vec(1usize..300, 1..20),
            delimiter in proptest::sample::select(vec![&b"\r\n"[..], b"\n", b"||", b"\0"]),
        ) {
            let max = 256;
            let mut framer = Framer::new(delimiter.to_vec(), max);
            let mut rest = &data[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap()).min(rest.len());
                framer.push(&rest[..n]);
                rest = &rest[n..];
                while let Some(frame) = framer.next_frame() {
                    match frame {
                        Frame::Line(line) => proptest::prop_assert!(line.len() <= max),
                        Frame::TooLong { head } => proptest::prop_assert!(head.len() <= max),
                        Frame::Malformed => return Ok(()),
                    }
                }
                proptest::prop_assert!(framer.buffered().len() <= max + 300 + delimiter.len());
            }
        }

        /// Lines written with the delimiter come back as they were, however the stream is cut.
        #[test]
        fn delimited_lines_round_trip(
            lines in proptest::collection::vec("[A-Za-z<>:|=, -][A-Za-z0-9<>:|=, .-]{0,80}", 1..20),
            cuts in proptest::collection::vec(1usize..64, 1..10),
        ) {
            let mut stream = Vec::new();
            for line in &lines {
                stream.extend_from_slice(line.as_bytes());
                stream.extend_from_slice(b"\r\n");
            }
            let mut framer = Framer::new(b"\r\n".to_vec(), 8192);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap()).min(rest.len());
                framer.push(&rest[..n]);
                rest = &rest[n..];
                got.extend(frames(&mut framer));
            }
            let want: Vec<Frame> = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| line(l))
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
