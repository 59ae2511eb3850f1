//! The client state machine against a scripted peer, in virtual time.
//!
//! The peer decodes what the connection writes with the crate's own decoder and answers
//! with scripted sentences; the clock only moves when a test says so. Replies are fed in
//! small uneven chunks so routing never depends on how bytes are split.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Virtual time starts at an arbitrary instant; only the tests read the clock, once.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use routeros_proto::codec::{Decoder, encode_sentence};
use routeros_proto::{
    CloseReason, Command, Config, Connection, ConnectionError, Event, LoginMethod, Tag,
    TrapCategory, Warning,
};

struct Harness {
    conn: Connection,
    now: Instant,
    peer_decoder: Decoder,
    peer_buf: BytesMut,
    received: VecDeque<Command>,
    chunk: usize,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(Config::default())
    }

    fn with_config(config: Config) -> Self {
        Self {
            conn: Connection::new(config),
            now: Instant::now(),
            peer_decoder: Decoder::default(),
            peer_buf: BytesMut::new(),
            received: VecDeque::new(),
            chunk: 1,
        }
    }

    /// Moves everything the connection wrote to the peer.
    fn flush(&mut self) {
        while let Some(bytes) = self.conn.poll_transmit() {
            self.peer_buf.extend_from_slice(&bytes);
        }
        while let Some(s) = self.peer_decoder.decode(&mut self.peer_buf).unwrap() {
            self.received
                .push_back(Command::from_sentence(&s).expect("a command sentence"));
        }
    }

    /// The next command the peer received.
    fn command(&mut self) -> Command {
        self.flush();
        self.received
            .pop_front()
            .expect("the client sent a command")
    }

    fn no_command(&mut self) {
        self.flush();
        assert!(
            self.received.is_empty(),
            "unexpected command: {:?}",
            self.received
        );
    }

    /// The peer answers with one sentence, delivered in uneven chunks.
    fn reply(&mut self, words: &[&str]) {
        let mut wire = Vec::new();
        encode_sentence(words, &mut wire).unwrap();
        self.feed(&wire);
    }

    fn feed(&mut self, wire: &[u8]) {
        let mut rest = wire;
        while !rest.is_empty() {
            let n = self.chunk.min(rest.len());
            self.conn.handle_input(self.now, &rest[..n]);
            rest = &rest[n..];
            self.chunk = self.chunk % 7 + 1;
        }
    }

    /// Moves the clock and fires the timer if it is due, as a driver would.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        if let Some(at) = self.conn.poll_timeout() {
            if at <= self.now {
                self.conn.handle_timeout(self.now);
            }
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    fn send(&mut self, cmd: Command) -> (Tag, Command) {
        let tag = self.conn.send(self.now, cmd).unwrap();
        let seen = self.command();
        assert_eq!(seen.tag_value(), Some(tag.to_string().as_bytes()));
        (tag, seen)
    }

    fn logged_in(&mut self) {
        self.conn
            .login(self.now, "admin", "secret", LoginMethod::Plain)
            .unwrap();
        let login = self.command();
        let t = tag_str(&login);
        self.reply(&["!done", &format!(".tag={t}")]);
        assert_eq!(self.events(), [Event::LoggedIn]);
    }
}

fn tag_str(cmd: &Command) -> String {
    String::from_utf8(cmd.tag_value().unwrap().to_vec()).unwrap()
}

fn rows(events: &[Event], tag: Tag) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Row { tag: t, reply } if *t == tag => {
                Some(reply.get_str("name").unwrap().into_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn three_tags_interleaved() {
    let mut h = Harness::new();
    h.logged_in();
    let (a, _) = h.send(Command::new("/interface/print"));
    let (b, _) = h.send(Command::new("/ip/address/print"));
    let (c, _) = h.send(Command::new("/ip/route/print"));
    assert_eq!(h.conn.in_flight(), 3);
    let (ta, tb, tc) = (a.to_string(), b.to_string(), c.to_string());
    h.reply(&["!re", "=name=b1", &format!(".tag={tb}")]);
    h.reply(&["!re", &format!(".tag={ta}"), "=name=a1"]);
    h.reply(&["!re", "=name=c1", &format!(".tag={tc}")]);
    h.reply(&["!re", "=name=b2", &format!(".tag={tb}")]);
    h.reply(&["!done", &format!(".tag={tc}")]);
    h.reply(&["!re", "=name=a2", &format!(".tag={ta}")]);
    h.reply(&["!done", &format!(".tag={tb}")]);
    h.reply(&["!done", "=ret=7", &format!(".tag={ta}")]);
    let ev = h.events();
    assert_eq!(rows(&ev, a), ["a1", "a2"]);
    assert_eq!(rows(&ev, b), ["b1", "b2"]);
    assert_eq!(rows(&ev, c), ["c1"]);
    let dones: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Done { tag, ret } => Some((*tag, ret.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        dones,
        [(c, None), (b, None), (a, Some(Bytes::from_static(b"7")))]
    );
    assert_eq!(h.conn.in_flight(), 0);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn cancel_with_late_replies() {
    let mut h = Harness::new();
    h.logged_in();
    let (log, seen) = h.send(Command::new("/log/print").follow_only());
    assert!(seen.is_streaming());
    assert_eq!(h.conn.poll_timeout(), None, "streams have no timeout");
    let tl = log.to_string();
    h.reply(&["!re", "=name=first", &format!(".tag={tl}")]);
    assert_eq!(rows(&h.events(), log), ["first"]);

    h.conn.cancel(h.now, log).unwrap();
    let cancel = h.command();
    assert_eq!(cancel.path(), b"/cancel");
    assert_eq!(cancel.attribute("tag"), Some(tl.as_bytes()));
    let tcancel = tag_str(&cancel);
    assert_ne!(tcancel, tl, "/cancel has a tag of its own");
    // Cancelling twice sends nothing more.
    h.conn.cancel(h.now, log).unwrap();
    h.no_command();

    // Another command runs meanwhile.
    let (other, _) = h.send(Command::new("/system/resource/print"));

    // Late replies for the cancelled tag, a few ms later, interleaved with the other command.
    h.advance(Duration::from_millis(5));
    h.reply(&["!re", "=name=late", &format!(".tag={tl}")]);
    h.reply(&["!re", "=name=cpu", &format!(".tag={other}")]);
    h.reply(&[
        "!trap",
        "=category=2",
        "=message=interrupted",
        &format!(".tag={tl}"),
    ]);
    h.reply(&["!done", &format!(".tag={tcancel}")]);
    assert!(
        h.events()
            .iter()
            .all(|e| !matches!(e, Event::Cancelled { .. })),
        "Cancelled only at the cancelled command's !done"
    );
    h.reply(&["!done", &format!(".tag={tl}")]);
    h.reply(&["!done", &format!(".tag={other}")]);
    let ev = h.events();
    assert_eq!(
        ev,
        [
            Event::Cancelled { tag: log },
            Event::Done {
                tag: other,
                ret: None
            }
        ]
    );
    assert_eq!(h.conn.stats().late_replies, 2);
    assert_eq!(h.conn.stats().unroutable_replies, 0);
    assert_eq!(h.conn.in_flight(), 0);
    assert!(matches!(
        h.conn.cancel(h.now, log),
        Err(ConnectionError::UnknownTag { .. })
    ));
}

#[test]
fn cancelled_command_without_done_is_reported_after_grace() {
    let mut h = Harness::new();
    h.logged_in();
    let (t, _) = h.send(Command::new("/interface/listen"));
    h.conn.cancel(h.now, t).unwrap();
    let _cancel = h.command();
    h.advance(Duration::from_secs(9));
    assert_eq!(h.events(), []);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.events(), [Event::Cancelled { tag: t }]);
}

/// `/cancel` of a follow that never sent a row, as RouterOS 7.24 answers it (ROUTEROS.md
/// section 5, last line): on the cancelled tag `!trap =category=2 =message=interrupted`,
/// then `!empty`, then `!done`. The cancel ends the command quietly: no trap, no `Empty`,
/// no warning, and the tag stays routed until its `!done`.
#[test]
fn cancel_of_a_silent_follow_on_7_24_is_trap_empty_done() {
    let mut h = Harness::new();
    h.logged_in();
    let (follow, _) = h.send(Command::new("/log/print").follow_only());
    let tf = follow.to_string();
    h.advance(Duration::from_secs(30));
    assert_eq!(h.events(), [], "a silent follow is silent");

    h.conn.cancel(h.now, follow).unwrap();
    let cancel = h.command();
    assert_eq!(cancel.path(), b"/cancel");
    assert_eq!(cancel.attribute("tag"), Some(tf.as_bytes()));
    let tc = tag_str(&cancel);

    h.advance(Duration::from_millis(3));
    h.reply(&[
        "!trap",
        "=category=2",
        "=message=interrupted",
        &format!(".tag={tf}"),
    ]);
    h.reply(&["!empty", &format!(".tag={tf}")]);
    assert_eq!(h.events(), [], "nothing surfaces before the !done");
    assert_eq!(
        h.conn.in_flight(),
        2,
        "the follow and the /cancel are still routed"
    );
    // `!empty` does not start the 2 s empty timeout for a cancelled command.
    h.advance(Duration::from_secs(5));
    assert_eq!(h.events(), []);
    h.reply(&["!done", &format!(".tag={tf}")]);
    h.reply(&["!done", &format!(".tag={tc}")]);
    assert_eq!(h.events(), [Event::Cancelled { tag: follow }]);
    let stats = h.conn.stats();
    assert_eq!(stats.unroutable_replies, 0, "no stray-tag warning");
    assert_eq!(stats.late_replies, 2, "the trap and the !empty");
    assert_eq!(h.conn.in_flight(), 0);
    assert_eq!(h.conn.poll_timeout(), None);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.events(), []);
}

/// The same sequence after the command timed out (the connection sent the `/cancel`
/// itself): dropped without a word.
#[test]
fn trap_empty_done_after_a_timeout_cancel_is_dropped_quietly() {
    let mut h = Harness::new();
    h.logged_in();
    let t = h
        .conn
        .send_with_timeout(
            h.now,
            Command::new("/ip/firewall/connection/print"),
            Some(Duration::from_secs(1)),
        )
        .unwrap();
    h.command();
    h.advance(Duration::from_secs(1));
    assert_eq!(h.events(), [Event::TimedOut { tag: t }]);
    let cancel = h.command();
    assert_eq!(cancel.path(), b"/cancel");
    h.reply(&[
        "!trap",
        "=category=2",
        "=message=interrupted",
        &format!(".tag={t}"),
    ]);
    h.reply(&["!empty", &format!(".tag={t}")]);
    h.reply(&["!done", &format!(".tag={t}")]);
    h.reply(&["!done", &format!(".tag={}", tag_str(&cancel))]);
    assert_eq!(h.events(), []);
    assert_eq!(h.conn.stats().unroutable_replies, 0);
    assert_eq!(h.conn.in_flight(), 0);
}

/// A cancelled command whose router sends the trap and `!empty` but never the `!done`
/// (the 7.23.3 report of `!empty` without `!done`) still ends, after the cancel grace.
#[test]
fn cancel_answered_by_trap_and_empty_without_done_ends_after_the_grace() {
    let mut h = Harness::new();
    h.logged_in();
    let (follow, _) = h.send(Command::new("/log/print").follow_only());
    h.conn.cancel(h.now, follow).unwrap();
    let _cancel = h.command();
    h.reply(&[
        "!trap",
        "=category=2",
        "=message=interrupted",
        &format!(".tag={follow}"),
    ]);
    h.reply(&["!empty", &format!(".tag={follow}")]);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.advance(Duration::from_secs(10));
    let ev = h.events();
    assert!(ev.contains(&Event::Cancelled { tag: follow }), "{ev:?}");
    assert!(!ev.iter().any(|e| matches!(e, Event::Warning(_))), "{ev:?}");
}

#[test]
fn empty_then_done() {
    let mut h = Harness::new();
    h.logged_in();
    let (t, _) = h.send(Command::new("/ip/firewall/address-list/print").attr("list", "none"));
    h.reply(&["!empty", &format!(".tag={t}")]);
    assert_eq!(h.events(), [Event::Empty { tag: t }]);
    h.advance(Duration::from_millis(10));
    h.reply(&["!done", &format!(".tag={t}")]);
    assert_eq!(h.events(), [Event::Done { tag: t, ret: None }]);
    assert_eq!(h.conn.poll_timeout(), None);
    h.advance(Duration::from_secs(100));
    assert_eq!(h.events(), []);
}

#[test]
fn empty_without_done_times_out_to_done() {
    let mut h = Harness::new();
    h.logged_in();
    let (t, _) = h.send(Command::new("/ip/firewall/address-list/print"));
    h.reply(&["!empty", &format!(".tag={t}")]);
    assert_eq!(h.events(), [Event::Empty { tag: t }]);
    let due = h.conn.poll_timeout().unwrap();
    assert_eq!(due, h.now + Duration::from_secs(2), "empty_done_timeout");
    h.advance(Duration::from_millis(1999));
    assert_eq!(h.events(), []);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.events(), [Event::Done { tag: t, ret: None }]);
    assert_eq!(h.conn.in_flight(), 0);
    // A `!done` that shows up much later is an unknown tag: dropped, not a desync.
    h.reply(&["!done", &format!(".tag={t}")]);
    assert!(matches!(
        h.events()[..],
        [Event::Warning(Warning::UnknownTag { .. })]
    ));
}

#[test]
fn several_traps_then_done() {
    let mut h = Harness::new();
    h.logged_in();
    let (t, _) = h.send(
        Command::new("/ip/firewall/address-list/add")
            .attr("list", "L")
            .attr("address", "198.51.100.7"),
    );
    h.reply(&[
        "!trap",
        "=message=failure: already have such entry",
        &format!(".tag={t}"),
    ]);
    h.reply(&[
        "!trap",
        "=category=1",
        "=message=bad value",
        &format!(".tag={t}"),
    ]);
    h.reply(&["!done", &format!(".tag={t}")]);
    let ev = h.events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    match (&ev[0], &ev[1], &ev[2]) {
        (Event::Trap { trap: a, .. }, Event::Trap { trap: b, .. }, Event::Done { tag, .. }) => {
            assert_eq!(a.message, "failure: already have such entry");
            assert_eq!(a.category, None);
            assert_eq!(b.category, Some(TrapCategory::ArgumentValue));
            assert_eq!(*tag, t);
        }
        other => panic!("unexpected events {other:?}"),
    }
    // The connection is fine afterwards.
    let (t2, _) = h.send(Command::new("/system/identity/print"));
    h.reply(&["!done", &format!(".tag={t2}")]);
    assert_eq!(h.events(), [Event::Done { tag: t2, ret: None }]);
}

#[test]
fn fatal_closes_with_reason() {
    let mut h = Harness::new();
    h.logged_in();
    let (_t, _) = h.send(Command::new("/log/print").follow());
    h.reply(&["!fatal", "session terminated on request"]);
    let reason = CloseReason::Fatal {
        reason: "session terminated on request".into(),
    };
    assert_eq!(h.events(), [Event::Closed(reason.clone())]);
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.close_reason(), Some(&reason));
    assert_eq!(
        h.conn.send(h.now, Command::new("/x")),
        Err(ConnectionError::Closed(reason))
    );
    // Whatever follows is ignored.
    h.reply(&["!re", ".tag=1"]);
    assert_eq!(h.events(), []);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn legacy_login_official_vector() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "", LoginMethod::Legacy)
        .unwrap();
    let first = h.command();
    assert_eq!(first.path(), b"/login");
    assert_eq!(
        first.attributes().count(),
        0,
        "a bare /login asks for the challenge"
    );
    h.reply(&[
        "!done",
        "=ret=93b438ec9b80057c06dd9fe67d56aa9a",
        &format!(".tag={}", tag_str(&first)),
    ]);
    let second = h.command();
    assert_eq!(second.attribute("name"), Some(&b"admin"[..]));
    assert_eq!(
        second.attribute("response"),
        Some(&b"00e134102a9d330dd7b1849fedfea3cb57"[..])
    );
    assert_eq!(h.events(), []);
    h.reply(&["!done", &format!(".tag={}", tag_str(&second))]);
    assert_eq!(h.events(), [Event::LoggedIn]);
    assert!(h.conn.is_logged_in());
}

#[test]
fn auto_login_falls_back_to_challenge() {
    let mut h = Harness::new();
    h.conn.login(h.now, "admin", "", LoginMethod::Auto).unwrap();
    let first = h.command();
    assert_eq!(first.attribute("password"), Some(&b""[..]));
    // An old router ignores the arguments and sends a challenge.
    h.reply(&[
        "!done",
        "=ret=93b438ec9b80057c06dd9fe67d56aa9a",
        &format!(".tag={}", tag_str(&first)),
    ]);
    let second = h.command();
    assert_eq!(
        second.attribute("response"),
        Some(&b"00e134102a9d330dd7b1849fedfea3cb57"[..])
    );
    h.reply(&["!done", &format!(".tag={}", tag_str(&second))]);
    assert_eq!(h.events(), [Event::LoggedIn]);
}

#[test]
fn auto_login_on_new_router_is_one_step() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "pw", LoginMethod::Auto)
        .unwrap();
    let first = h.command();
    assert_eq!(first.attribute("name"), Some(&b"admin"[..]));
    assert_eq!(first.attribute("password"), Some(&b"pw"[..]));
    h.reply(&["!done", &format!(".tag={}", tag_str(&first))]);
    assert_eq!(h.events(), [Event::LoggedIn]);
    h.no_command();
}

#[test]
fn login_refused_then_retry() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "wrong", LoginMethod::Plain)
        .unwrap();
    assert_eq!(
        h.conn.login(h.now, "admin", "x", LoginMethod::Plain),
        Err(ConnectionError::LoginInProgress)
    );
    let first = h.command();
    let t = tag_str(&first);
    h.reply(&[
        "!trap",
        "=message=invalid user name or password (6)",
        &format!(".tag={t}"),
    ]);
    assert_eq!(h.events(), [], "the result waits for !done");
    h.reply(&["!done", &format!(".tag={t}")]);
    assert_eq!(
        h.events(),
        [Event::LoginFailed(ConnectionError::LoginRefused {
            message: "invalid user name or password (6)".into()
        })]
    );
    assert!(!h.conn.is_logged_in());
    h.logged_in();
}

#[test]
fn plain_login_on_old_router_is_a_mismatch() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "pw", LoginMethod::Plain)
        .unwrap();
    let first = h.command();
    h.reply(&[
        "!done",
        "=ret=93b438ec9b80057c06dd9fe67d56aa9a",
        &format!(".tag={}", tag_str(&first)),
    ]);
    let ev = h.events();
    assert!(
        matches!(&ev[..], [Event::LoginFailed(ConnectionError::LoginProtocolMismatch { detail })] if detail.contains("Legacy")),
        "{ev:?}"
    );
    h.no_command();
}

#[test]
fn legacy_login_with_bad_challenge_fails_cleanly() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "pw", LoginMethod::Legacy)
        .unwrap();
    let first = h.command();
    h.reply(&[
        "!done",
        "=ret=not-hex",
        &format!(".tag={}", tag_str(&first)),
    ]);
    assert!(matches!(
        h.events()[..],
        [Event::LoginFailed(
            ConnectionError::LoginProtocolMismatch { .. }
        )]
    ));
}

#[test]
fn login_timeout() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "pw", LoginMethod::Auto)
        .unwrap();
    let _ = h.command();
    h.advance(Duration::from_secs(60));
    assert_eq!(
        h.events(),
        [Event::LoginFailed(ConnectionError::LoginTimedOut)]
    );
}

#[test]
fn command_timeout_cancels_and_drops_late_replies() {
    let mut config = Config::default();
    config.command_timeout = Some(Duration::from_secs(5));
    let mut h = Harness::with_config(config);
    h.logged_in();
    let (t, _) = h.send(Command::new("/ip/firewall/connection/print"));
    h.advance(Duration::from_secs(4));
    assert_eq!(h.events(), []);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.events(), [Event::TimedOut { tag: t }]);
    let cancel = h.command();
    assert_eq!(cancel.path(), b"/cancel");
    assert_eq!(cancel.attribute("tag"), Some(t.to_string().as_bytes()));
    h.reply(&["!re", "=name=late", &format!(".tag={t}")]);
    h.reply(&["!done", &format!(".tag={t}")]);
    assert_eq!(
        h.events(),
        [],
        "late replies of a timed-out command are dropped"
    );
    // A per-command timeout overrides the default.
    let t2 = h
        .conn
        .send_with_timeout(
            h.now,
            Command::new("/x/print"),
            Some(Duration::from_millis(10)),
        )
        .unwrap();
    h.advance(Duration::from_millis(10));
    assert_eq!(h.events(), [Event::TimedOut { tag: t2 }]);
}

#[test]
fn unknown_and_untagged_replies_are_dropped_with_a_warning() {
    let mut h = Harness::new();
    h.logged_in();
    let (t, _) = h.send(Command::new("/interface/print"));
    h.reply(&["!re", "=name=ghost", ".tag=999"]);
    h.reply(&["!re", "=name=ghost", ".tag=abc"]);
    h.reply(&["!done"]);
    h.reply(&["!re", "=name=real", &format!(".tag={t}")]);
    h.reply(&["!done", &format!(".tag={t}")]);
    let ev = h.events();
    assert!(
        matches!(&ev[0], Event::Warning(Warning::UnknownTag { tag, reply: "!re" }) if &tag[..] == b"999")
    );
    assert!(matches!(&ev[1], Event::Warning(Warning::UnknownTag { .. })));
    assert!(matches!(
        &ev[2],
        Event::Warning(Warning::Untagged { reply: "!done" })
    ));
    assert_eq!(rows(&ev, t), ["real"]);
    assert_eq!(ev.last(), Some(&Event::Done { tag: t, ret: None }));
    assert_eq!(h.conn.stats().unroutable_replies, 3);
}

#[test]
fn malformed_reply_fails_only_its_command() {
    let mut h = Harness::new();
    h.logged_in();
    let (a, _) = h.send(Command::new("/interface/print"));
    let (b, _) = h.send(Command::new("/ip/address/print"));
    h.reply(&["!frobnicate", "=x=1", &format!(".tag={a}")]);
    h.reply(&["!re", "=name=b1", &format!(".tag={b}")]);
    h.reply(&["!re", "stray", &format!(".tag={a}")]);
    h.reply(&["!done", &format!(".tag={a}")]);
    h.reply(&["!done", &format!(".tag={b}")]);
    // A malformed reply without a known tag is a warning.
    h.reply(&["!frobnicate"]);
    let ev = h.events();
    assert!(matches!(&ev[0], Event::ReplyError { tag, .. } if *tag == a));
    assert_eq!(rows(&ev, b), ["b1"]);
    assert!(matches!(&ev[2], Event::ReplyError { tag, .. } if *tag == a));
    assert_eq!(ev[3], Event::Done { tag: a, ret: None });
    assert_eq!(ev[4], Event::Done { tag: b, ret: None });
    assert!(matches!(&ev[5], Event::Warning(Warning::MalformedReply(_))));
    assert_eq!(h.conn.stats().malformed_replies, 3);
    assert!(!h.conn.is_closed());
}

#[test]
fn non_utf8_values_survive() {
    let mut h = Harness::new();
    h.logged_in();
    let (t, _) = h.send(Command::new("/log/print"));
    let mut wire = Vec::new();
    encode_sentence(
        [
            &b"!re"[..],
            b"=message=caf\xe9 \xff",
            format!(".tag={t}").as_bytes(),
        ],
        &mut wire,
    )
    .unwrap();
    h.feed(&wire);
    match &h.events()[..] {
        [Event::Row { reply, .. }] => {
            assert_eq!(reply.get("message"), Some(&b"caf\xe9 \xff"[..]));
            assert_eq!(reply.get_str("message").unwrap(), "caf\u{fffd} \u{fffd}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn broken_stream_closes_with_protocol_error() {
    let mut h = Harness::new();
    h.logged_in();
    h.feed(&[0x03, b'!', b'r', b'e', 0xF9]);
    let ev = h.events();
    assert!(
        matches!(&ev[..], [Event::Closed(CloseReason::Protocol(e))] if e.to_string().contains("0xf9")),
        "{ev:?}"
    );
}

#[test]
fn eof_mid_sentence_and_clean_eof() {
    let mut h = Harness::new();
    h.logged_in();
    h.feed(&[0x03, b'!', b'r', b'e']);
    h.conn.handle_eof(h.now);
    assert_eq!(
        h.events(),
        [Event::Closed(CloseReason::PeerClosed {
            mid_sentence: true
        })]
    );
    let mut h = Harness::new();
    h.conn.handle_eof(h.now);
    assert_eq!(
        h.events(),
        [Event::Closed(CloseReason::PeerClosed {
            mid_sentence: false
        })]
    );
}

#[test]
fn close_sends_quit_and_the_fatal_is_ours() {
    let mut h = Harness::new();
    h.logged_in();
    h.conn.close(h.now);
    let quit = h.command();
    assert_eq!(quit.path(), b"/quit");
    assert!(matches!(
        h.conn.send(h.now, Command::new("/x")),
        Err(ConnectionError::Closed(CloseReason::Local))
    ));
    h.reply(&["!fatal", "session terminated on request"]);
    assert_eq!(h.events(), [Event::Closed(CloseReason::Local)]);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn close_gives_up_on_a_silent_router() {
    let mut h = Harness::new();
    h.logged_in();
    h.conn.close(h.now);
    assert_eq!(h.command().path(), b"/quit");
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.events(), [Event::Closed(CloseReason::Local)]);
    assert!(h.conn.is_closed());
}

#[test]
fn in_flight_is_bounded_and_invalid_commands_are_refused() {
    let mut config = Config::default();
    config.max_in_flight = 2;
    let mut h = Harness::with_config(config);
    h.conn.send(h.now, Command::new("/a")).unwrap();
    h.conn.send(h.now, Command::new("/b")).unwrap();
    assert_eq!(
        h.conn.send(h.now, Command::new("/c")),
        Err(ConnectionError::TooManyInFlight { limit: 2 })
    );
    assert!(matches!(
        h.conn.send(h.now, Command::new("no-slash")),
        Err(ConnectionError::InvalidCommand(_))
    ));
    h.flush();
    assert_eq!(h.received.len(), 2, "refused commands write nothing");
}

#[test]
fn password_never_in_debug() {
    let mut h = Harness::new();
    h.conn
        .login(h.now, "admin", "hunter2", LoginMethod::Auto)
        .unwrap();
    let d = format!("{:?}", h.conn);
    assert!(!d.contains("hunter2"), "{d}");
}

/// Backpressure: while the caller does not read the socket, no command can get its reply,
/// so the timers stand still; commands sent meanwhile start their clock at the resume.
#[test]
fn timers_stand_still_while_reading_is_paused() {
    let mut h = Harness::new();
    h.logged_in();
    let first = h
        .conn
        .send_with_timeout(
            h.now,
            Command::new("/a/print"),
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    h.advance(Duration::from_secs(2));
    h.conn.pause_reading(h.now);
    assert!(h.conn.is_reading_paused());
    assert_eq!(h.conn.poll_timeout(), None);
    let second = h
        .conn
        .send_with_timeout(
            h.now,
            Command::new("/b/print"),
            Some(Duration::from_secs(1)),
        )
        .unwrap();
    h.now += Duration::from_secs(100);
    h.conn.handle_timeout(h.now);
    assert_eq!(h.events(), [], "nothing times out while paused");
    h.conn.resume_reading(h.now);
    assert!(!h.conn.is_reading_paused());
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(1)));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.events(), [Event::TimedOut { tag: second }]);
    h.advance(Duration::from_millis(1999));
    assert_eq!(h.events(), []);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.events(), [Event::TimedOut { tag: first }]);
}

/// Closing still gives up on a silent router while reading is paused.
#[test]
fn the_close_deadline_runs_while_paused() {
    let mut h = Harness::new();
    h.logged_in();
    h.conn.pause_reading(h.now);
    h.conn.close(h.now);
    assert_eq!(h.command().path(), b"/quit");
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.events(), [Event::Closed(CloseReason::Local)]);
}
