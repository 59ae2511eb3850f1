//! Properties of the codec and the state machine over arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Virtual time starts at an arbitrary instant; only the tests read the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proptest::prelude::*;
use routeros_proto::codec::{Decoder, Limits, Sentence, encode_sentence};
use routeros_proto::{Command, Config, Connection, Event, LoginMethod, Reply, Tag};

/// A non-empty word (an empty word would end the sentence); mostly short, sometimes long
/// enough for the two- and three-byte prefix forms.
fn word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 1..40),
        2 => proptest::collection::vec(any::<u8>(), 0x70..0x90),
        1 => (0x3FF0usize..0x4010).prop_map(|n| vec![b'x'; n]),
    ]
}

fn sentence() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(word(), 1..12)
}

/// Cuts `bytes` at the given points (taken modulo the length) and feeds the pieces.
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity_at_any_split(
        sentences in proptest::collection::vec(sentence(), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for s in &sentences {
            encode_sentence(s, &mut wire).unwrap();
        }
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let mut out: Vec<Sentence> = Vec::new();
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(&piece);
            while let Some(s) = dec.decode(&mut buf).unwrap() {
                out.push(s);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out.len(), sentences.len());
        for (got, want) in out.iter().zip(&sentences) {
            prop_assert!(got.words().eq(want.iter().map(Vec::as_slice)));
            prop_assert_eq!(got, &Sentence::from_words(want).unwrap());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max_word_len in 0usize..300,
        max_words in 0usize..20,
        max_sentence_len in 0usize..600,
    ) {
        let mut limits = Limits::default();
        limits.max_word_len = max_word_len;
        limits.max_words = max_words;
        limits.max_sentence_len = max_sentence_len;
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::new();
        'feed: for piece in pieces(&bytes, &cuts) {
            buf.extend_from_slice(&piece);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(s)) => {
                        prop_assert!(!s.is_empty() && s.len() <= max_words);
                        prop_assert!(s.words().all(|w| w.len() <= max_word_len));
                        prop_assert!(s.as_wire().len() <= max_sentence_len + 1);
                        let _ = Reply::parse(s);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_connection(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let now = Instant::now();
        let mut conn = Connection::new(Config::default());
        conn.login(now, "admin", "pw", LoginMethod::Auto).unwrap();
        conn.send(now, Command::new("/log/print").follow_only()).unwrap();
        conn.send(now, Command::new("/ip/address/print")).unwrap();
        for piece in pieces(&bytes, &cuts) {
            conn.handle_input(now, &piece);
            while conn.poll_event().is_some() {}
        }
        conn.handle_timeout(now + Duration::from_secs(3600));
        conn.handle_eof(now + Duration::from_secs(3601));
        let mut closed = 0;
        while let Some(e) = conn.poll_event() {
            closed += usize::from(matches!(e, Event::Closed(_)));
        }
        prop_assert!(conn.is_closed());
        prop_assert!(closed <= 1);
    }
}

/// One step of a scripted conversation, for the model-based test below.
#[derive(Debug, Clone)]
enum Step {
    Send {
        streaming: bool,
    },
    Cancel(usize),
    Reply {
        kind: u8,
        tag: TagChoice,
        attrs: Vec<(String, Vec<u8>)>,
    },
    Advance(u64),
}

#[derive(Debug, Clone)]
enum TagChoice {
    /// The n-th tag sent so far (modulo), possibly already finished.
    Sent(usize),
    Unknown(u64),
    Garbage(Vec<u8>),
    None,
}

fn step() -> impl Strategy<Value = Step> {
    let tag = prop_oneof![
        6 => any::<usize>().prop_map(TagChoice::Sent),
        1 => (1000u64..2000).prop_map(TagChoice::Unknown),
        1 => proptest::collection::vec(any::<u8>(), 0..6).prop_map(TagChoice::Garbage),
        1 => Just(TagChoice::None),
    ];
    let attrs = proptest::collection::vec(
        ("[a-z.]{0,6}", proptest::collection::vec(any::<u8>(), 0..8)),
        0..4,
    );
    prop_oneof![
        2 => any::<bool>().prop_map(|streaming| Step::Send { streaming }),
        1 => any::<usize>().prop_map(Step::Cancel),
        8 => (0u8..8, tag, attrs).prop_map(|(kind, tag, attrs)| Step::Reply { kind, tag, attrs }),
        1 => (0u64..5000).prop_map(Step::Advance),
    ]
}

proptest! {
    /// Whatever the router says, in any order: per tag at most one final event
    /// (Done, Cancelled or TimedOut), nothing for a tag after it, events only for tags
    /// that were sent, nothing after Closed, and in_flight matches the model.
    #[test]
    fn model_based_routing(steps in proptest::collection::vec(step(), 1..60)) {
        let mut now = Instant::now();
        let mut config = Config::default();
        config.command_timeout = Some(Duration::from_secs(3));
        let mut conn = Connection::new(config);
        let mut sent: Vec<Tag> = Vec::new();
        let mut finished: HashSet<Tag> = HashSet::new();
        let mut rows: HashMap<Tag, usize> = HashMap::new();
        let mut closed = false;
        for step in steps {
            match step {
                Step::Send { streaming } => {
                    let cmd = if streaming {
                        Command::new("/log/print").follow_only()
                    } else {
                        Command::new("/ip/address/print")
                    };
                    match conn.send(now, cmd) {
                        Ok(t) => sent.push(t),
                        Err(_) => prop_assert!(closed),
                    }
                }
                Step::Cancel(i) => {
                    if let Some(&t) = sent.get(i % sent.len().max(1)) {
                        let _ = conn.cancel(now, t);
                    }
                }
                Step::Reply { kind, tag, attrs } => {
                    let mut words: Vec<Vec<u8>> = vec![
                        ["!re", "!done", "!trap", "!empty", "!re", "!done", "!fatal", "!weird"]
                            [usize::from(kind)]
                            .as_bytes()
                            .to_vec(),
                    ];
                    for (n, v) in attrs {
                        let mut w = format!("={n}=").into_bytes();
                        w.extend_from_slice(&v);
                        words.push(w);
                    }
                    match tag {
                        TagChoice::Sent(i) => {
                            // Tags of our own /cancel and login commands are numbers too.
                            let t = sent.get(i % sent.len().max(1)).map_or(1, |t| t.value());
                            words.push(format!(".tag={t}").into_bytes());
                        }
                        TagChoice::Unknown(t) => words.push(format!(".tag={t}").into_bytes()),
                        TagChoice::Garbage(g) => {
                            let mut w = b".tag=".to_vec();
                            w.extend_from_slice(&g);
                            words.push(w);
                        }
                        TagChoice::None => {}
                    }
                    let mut wire = Vec::new();
                    encode_sentence(&words, &mut wire).unwrap();
                    conn.handle_input(now, &wire);
                }
                Step::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    if conn.poll_timeout().is_some_and(|at| at <= now) {
                        conn.handle_timeout(now);
                    }
                }
            }
            while conn.poll_transmit().is_some() {}
            while let Some(ev) = conn.poll_event() {
                prop_assert!(!closed, "event after Closed: {:?}", ev);
                let tag = match &ev {
                    Event::Row { tag, .. }
                    | Event::Trap { tag, .. }
                    | Event::Empty { tag }
                    | Event::ReplyError { tag, .. } => Some((*tag, false)),
                    Event::Done { tag, .. } | Event::Cancelled { tag } | Event::TimedOut { tag } => {
                        Some((*tag, true))
                    }
                    Event::Closed(_) => {
                        closed = true;
                        None
                    }
                    _ => None,
                };
                if let Some((tag, last)) = tag {
                    prop_assert!(sent.contains(&tag), "event for a tag never sent: {:?}", ev);
                    prop_assert!(!finished.contains(&tag), "event after the final one: {:?}", ev);
                    if last {
                        finished.insert(tag);
                    }
                    if matches!(ev, Event::Row { .. }) {
                        *rows.entry(tag).or_default() += 1;
                    }
                }
            }
            prop_assert_eq!(closed, conn.is_closed());
            if !closed {
                // Every user command not finished is still in flight (plus internal ones).
                let open = sent.iter().filter(|t| !finished.contains(t)).count();
                prop_assert!(conn.in_flight() >= open);
            } else {
                prop_assert_eq!(conn.in_flight(), 0);
                prop_assert_eq!(conn.poll_timeout(), None);
            }
        }
    }
}
