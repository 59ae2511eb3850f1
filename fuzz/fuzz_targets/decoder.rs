//! The sentence decoder and reply/command parsers over arbitrary bytes, split anywhere,
//! with arbitrary limits: must never panic, never yield a sentence beyond the limits, and
//! give the same sentences whatever the split.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use routeros_proto::codec::{Decoder, Limits, Sentence};
use routeros_proto::{Command, Reply};

fn run(data: &[u8], limits: Limits, chunk: usize) -> (Vec<Sentence>, bool) {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(s)) => {
                    assert!(!s.is_empty() && s.len() <= limits.max_words);
                    assert!(s.words().all(|w| w.len() <= limits.max_word_len));
                    out.push(s);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, rest @ ..] = data else {
        return;
    };
    let mut limits = Limits::default();
    limits.max_word_len = usize::from(*a) * 16;
    limits.max_words = usize::from(*b);
    limits.max_sentence_len = usize::from(*a) * 64;
    let (split, split_err) = run(rest, limits, usize::from(*c));
    let (whole, whole_err) = run(rest, limits, rest.len());
    assert_eq!(split, whole, "sentences must not depend on how bytes are split");
    assert_eq!(split_err, whole_err);
    for s in whole {
        let _ = Command::from_sentence(&s);
        if let Ok(r) = Reply::parse(s) {
            let _ = (r.tag(), r.id(), r.ret(), r.is_dead(), r.attributes().count());
        }
    }
});
