//! Detection allocates nothing per event once its sources are known: a second pass over a
//! realistic log allocates only for the findings it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::System;

use cap::Cap;
use common::mixed_log::mixed_log;
use mtids_detect::{
    Date, DetectionConfig, DetectionEngine, Event, LineContext, Timestamp, parse_log_line,
};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

// One test in this binary, so no other test thread allocates while it counts.
#[test]
fn second_pass_allocates_only_for_findings() {
    let log = mixed_log(50_000, 11);
    let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
    let events: Vec<(Timestamp, Event<'_>)> = log
        .lines
        .iter()
        .map(|l| {
            let p = parse_log_line(l, &ctx);
            (p.timestamp.unwrap(), p.event)
        })
        .collect();
    let mut engine = DetectionEngine::new(&DetectionConfig::default()).unwrap();
    let mut outcomes = Vec::with_capacity(1024);
    let pass = |engine: &mut DetectionEngine, outcomes: &mut Vec<_>| {
        let mut n = 0;
        for (now, event) in &events {
            engine.observe(*now, event, outcomes);
            n += outcomes.len();
            outcomes.clear();
        }
        n
    };
    pass(&mut engine, &mut outcomes);
    let before = ALLOC.total_allocated();
    let outcomes_seen = pass(&mut engine, &mut outcomes);
    let bytes = ALLOC.total_allocated() - before;
    assert!(outcomes_seen > 0, "the log has attacks in it");
    // Findings carry owned evidence (a few hundred bytes each); anything per event would
    // be at least 8 bytes times 50 000 events.
    let per_outcome = bytes / outcomes_seen;
    assert!(
        per_outcome < 2_000,
        "{bytes} bytes for {outcomes_seen} outcomes"
    );
    assert!(
        bytes < events.len() * 2,
        "{bytes} bytes allocated over {} events",
        events.len()
    );
}
