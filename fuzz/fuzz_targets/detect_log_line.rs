//! A whole log line, any bytes: the header and message parsers must never panic, and an
//! event must survive `into_owned` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtids_detect::{Date, LineContext, parse_log_line_bytes};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a context, so odd years and offsets get exercised too.
    let (ctx, line) = match data.split_first() {
        Some((&pick, line)) => {
            let offset = i32::from(i8::from_le_bytes([pick])) * 900;
            let year = 1969 + i32::from(pick % 64);
            (
                LineContext::new(Date::new(year, 1 + pick % 12, 1 + pick % 31), offset),
                line,
            )
        }
        None => (LineContext::default(), data),
    };
    let mut scratch = String::new();
    let parsed = parse_log_line_bytes(line, &ctx, &mut scratch);
    let owned = parsed.event.clone().into_owned();
    assert_eq!(owned, parsed.event);
});
