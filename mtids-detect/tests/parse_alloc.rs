//! Parsing allocates nothing: every header form, the remote formats of RouterOS 7.18+
//! (CEF included, when its values carry no escape) and login lines under their topics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;

use cap::Cap;
use mtids_detect::{Date, Event, LineContext, parse_log_line, parse_log_row};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const LINES: &[&str] = &[
    "Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004-1G-12S+2XS|7.21 (stable)|10|system,error,critical|High|dvchost=gw dvc=192.0.2.1 msg=login failure for user support from 198.51.100.200 via ssh app=ssh duser=support outcome=failure src=198.51.100.200\\r\\n",
    "2026-01-05T07:00:12.004-05:00 gw CEF:0|MikroTik|RB5009UG+S+|7.20.4 (stable)|10|firewall,info|Low|dvchost=gw dvc=192.0.2.1 msg=[drop-input] input: in:ether1 out:(unknown 0), connection-state:new proto TCP (SYN), 198.51.100.9:40000->192.0.2.1:22, len 60\r\n",
    "system,error,critical login failure for user admin from 198.51.100.7 via ssh",
    "<30>Sep 25 01:37:18 MikroTik drop !LAN input: in:pppoe out:(unknown 0), proto TCP (SYN), 198.51.100.7:43836->203.0.113.8:51104, len 44",
    " 2025-02-11 00:02:30.123 system,error,critical login failure for user admin from 198.51.100.7 via ssh",
    "Feb 15 11:25:52 gw.local pptp,ppp,error <pptp-0>: user vpn authentication failed",
    "Feb 15 11:25:53 gw.local ipsec,error 198.51.100.32 parsing packet failed, possible cause: wrong password",
    "    from 198.51.100.7 via ssh",
];

// One test in this binary, so no other test thread allocates while it counts.
#[test]
fn parsing_allocates_nothing() {
    let ctx = LineContext::new(Date::new(2026, 11, 21), 0);
    let before = ALLOC.total_allocated();
    let mut recognized = 0;
    for _ in 0..1000 {
        for line in LINES {
            let parsed = parse_log_line(line, &ctx);
            recognized += usize::from(parsed.event != Event::Unrecognized);
        }
        let row = parse_log_row(
            "script,error",
            "login failure for user x from 198.51.100.7 via ssh",
        );
        assert_eq!(row, Event::Unrecognized);
    }
    assert_eq!(ALLOC.total_allocated() - before, 0);
    assert_eq!(recognized, 7000);
}
