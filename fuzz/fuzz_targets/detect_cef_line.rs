//! A CEF record (`remote-log-format=cef`), any bytes after `CEF:0|`: the header split, the
//! extension reader and the unescaping must never panic, and an event must survive
//! `into_owned` unchanged. The first byte picks the time form in front (bsd-syslog or
//! ISO 8601), so the fuzzer spends its time inside the record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtids_detect::{Date, LineContext, parse_log_line_bytes};

fuzz_target!(|data: &[u8]| {
    let (head, record): (&[u8], &[u8]) = match data.split_first() {
        Some((b, rest)) if b & 1 == 0 => (b"Nov 22 20:47:18 gw CEF:0|", rest),
        Some((_, rest)) => (b"2026-01-05T07:00:12.004-05:00 gw CEF:0|", rest),
        None => (b"CEF:0|", data),
    };
    let line = [head, record].concat();
    let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
    let mut scratch = String::new();
    let parsed = parse_log_line_bytes(&line, &ctx, &mut scratch);
    assert!(parsed.timestamp.is_some() || head.starts_with(b"CEF"));
    let owned = parsed.event.clone().into_owned();
    assert_eq!(owned, parsed.event);
});
