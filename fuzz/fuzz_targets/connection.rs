//! The client state machine driven by arbitrary input: the first bytes script commands,
//! clock jumps and reads; it must never panic and must stay consistent.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use routeros_proto::{Command, Config, Connection, Event, LoginMethod, Tag};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut conn = Connection::new(Config::default());
    let method = match data.first() {
        Some(0) => LoginMethod::Plain,
        Some(1) => LoginMethod::Legacy,
        _ => LoginMethod::Auto,
    };
    let _ = conn.login(now, "admin", "pw", method);
    let mut tags: Vec<Tag> = Vec::new();
    let mut closed = false;
    let mut rest = data.get(1..).unwrap_or_default();
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        match op % 5 {
            0 => {
                let cmd = if arg % 2 == 0 {
                    Command::new("/log/print").follow_only()
                } else {
                    Command::new("/ip/firewall/address-list/add").attr("list", "x")
                };
                if let Ok(t) = conn.send(now, cmd) {
                    tags.push(t);
                }
            }
            1 => {
                if let Some(&t) = tags.get(usize::from(*arg) % tags.len().max(1)) {
                    let _ = conn.cancel(now, t);
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(*arg) * 100);
                if conn.poll_timeout().is_some_and(|at| at <= now) {
                    conn.handle_timeout(now);
                }
            }
            3 => conn.handle_eof(now),
            _ => {
                let n = usize::from(*arg).min(rest.len());
                let (input, tail) = rest.split_at(n);
                conn.handle_input(now, input);
                rest = tail;
            }
        }
        while conn.poll_transmit().is_some() {}
        while let Some(ev) = conn.poll_event() {
            assert!(!closed, "event after Closed: {ev:?}");
            closed = matches!(ev, Event::Closed(_));
        }
        assert_eq!(closed, conn.is_closed());
    }
});
