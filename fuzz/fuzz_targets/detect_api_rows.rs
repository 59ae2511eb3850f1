//! Connection-table and resource rows from the API: `name=value` fields, one per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtids_detect::{parse_connection_row, parse_resource_row};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fields: Vec<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .collect();
    if let Ok(sample) = parse_connection_row(fields.iter().copied()) {
        assert_eq!(sample.clone().into_owned(), sample);
    }
    let _ = parse_resource_row(fields.iter().copied());
});
