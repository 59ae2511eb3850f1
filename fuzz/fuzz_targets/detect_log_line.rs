//! A whole log line, any bytes: the header and message parsers must never panic, and an
//! event must survive `into_owned` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtids_detect::{Date, LineContext, parse_log_line_bytes};

fuzz_target!(|data: &[u8]| {
    // The first four bytes pick a context, so any year, date and offset gets exercised.
    let (ctx, line) = match data.split_first_chunk::<4>() {
        Some((&[y0, y1, day, off], line)) => {
            let year = i32::from(i16::from_le_bytes([y0, y1]));
            let offset = i32::from(i8::from_le_bytes([off])) * 900;
            let ctx = LineContext::new(Date::new(year, day >> 4, day & 0x1f), offset);
            (ctx, line)
        }
        None => (LineContext::default(), data),
    };
    let mut scratch = String::new();
    let parsed = parse_log_line_bytes(line, &ctx, &mut scratch);
    let owned = parsed.event.clone().into_owned();
    assert_eq!(owned, parsed.event);
});
