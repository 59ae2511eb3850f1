//! A log row from the API: topics and message, any bytes (split at the first NUL).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtids_detect::parse_log_row_bytes;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(0);
    let (topics, message) = data.split_at(split);
    let message = message.strip_prefix(b"\0").unwrap_or(message);
    let mut scratch = String::new();
    let event = parse_log_row_bytes(topics, message, &mut scratch);
    assert_eq!(event.clone().into_owned(), event);
});
