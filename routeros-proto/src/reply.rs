//! Replies (router -> client): `!re`, `!done`, `!trap`, `!fatal` and `!empty`, with their
//! attributes kept as bytes.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::codec::Sentence;
use crate::command::split_attribute;

/// Why a sentence is not a reply this crate understands.
///
/// For a tagged sentence this is an error for that one command; the connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The sentence has no words.
    #[error("empty reply sentence")]
    Empty,
    /// The first word is not one of `!re`, `!done`, `!trap`, `!fatal`, `!empty`.
    #[error(
        "unknown reply word {word:?}: the router speaks a reply type this client does not know (report it with the RouterOS version)"
    )]
    UnknownReplyWord {
        /// The first word (lossy UTF-8, truncated to 64 bytes).
        word: String,
    },
    /// A word after the first is neither `=name=value` nor an API attribute `.name=value`.
    #[error(
        "word {index} of a {reply} reply, {word:?}, is not an attribute (=name=value) or API attribute (.name=value)"
    )]
    UnexpectedWord {
        /// The reply word (`!re`, ...).
        reply: &'static str,
        /// Index of the word in the sentence.
        index: usize,
        /// The word (lossy UTF-8, truncated to 64 bytes).
        word: String,
    },
    /// A `!trap` carries a `=category=` that is not a number.
    #[error("trap category {value:?} is not a number")]
    BadTrapCategory {
        /// The value (lossy UTF-8, truncated to 64 bytes).
        value: String,
    },
}

/// Category of a `!trap`, when the router gives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapCategory {
    /// 0: missing item or command.
    MissingItem,
    /// 1: argument value failure.
    ArgumentValue,
    /// 2: execution interrupted (e.g. by `/cancel`).
    Interrupted,
    /// 3: scripting failure.
    Scripting,
    /// 4: general failure.
    General,
    /// 5: API failure.
    Api,
    /// 6: TTY failure.
    Tty,
    /// 7: value generated with `:return`.
    ReturnValue,
    /// Any other number.
    Other(u32),
}

impl TrapCategory {
    /// The category for a wire number.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::MissingItem,
            1 => Self::ArgumentValue,
            2 => Self::Interrupted,
            3 => Self::Scripting,
            4 => Self::General,
            5 => Self::Api,
            6 => Self::Tty,
            7 => Self::ReturnValue,
            n => Self::Other(n),
        }
    }

    /// The wire number.
    pub fn code(self) -> u32 {
        match self {
            Self::MissingItem => 0,
            Self::ArgumentValue => 1,
            Self::Interrupted => 2,
            Self::Scripting => 3,
            Self::General => 4,
            Self::Api => 5,
            Self::Tty => 6,
            Self::ReturnValue => 7,
            Self::Other(n) => n,
        }
    }
}

/// An error reply (`!trap`) for one command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Trap {
    /// `=category=`, when present.
    pub category: Option<TrapCategory>,
    /// `=message=` (lossy UTF-8; empty when absent).
    pub message: String,
}

impl Trap {
    /// True for the `interrupted` trap (category 2) a cancelled command answers with.
    pub fn is_interrupted(&self) -> bool {
        self.category == Some(TrapCategory::Interrupted)
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.category {
            Some(c) => write!(f, "{} (category {})", self.message, c.code()),
            None => f.write_str(&self.message),
        }
    }
}

/// What kind of reply a sentence is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyKind {
    /// `!re`: one row of data.
    Re,
    /// `!done`: the last reply of a command (may carry `=ret=`).
    Done,
    /// `!trap`: an error; a command may send several before its `!done`.
    Trap(Trap),
    /// `!fatal`: the router is closing the connection.
    Fatal {
        /// The reason, given as bare words (lossy UTF-8).
        reason: String,
    },
    /// `!empty` (RouterOS 7.18+): the command has no data; `!done` normally follows.
    Empty,
}

impl ReplyKind {
    /// The reply word, e.g. `"!re"`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Re => "!re",
            Self::Done => "!done",
            Self::Trap(_) => "!trap",
            Self::Fatal { .. } => "!fatal",
            Self::Empty => "!empty",
        }
    }
}

/// A reply sentence from the router.
///
/// The sentence bytes are kept as they arrived (words are bytes, not UTF-8); accessors
/// return `&[u8]`, with `_str` variants that decode lossily. Attributes are split at the
/// second `=`, so empty values and `=` inside values survive.
///
/// ```
/// use routeros_proto::{Reply, ReplyKind, codec::Sentence};
///
/// let s = Sentence::from_words(["!re", "=.id=*1", "=comment=a=b", "=disabled=", ".tag=3"])?;
/// let r = Reply::parse(s)?;
/// assert_eq!(r.kind(), &ReplyKind::Re);
/// assert_eq!(r.id().as_deref(), Some("*1"));
/// assert_eq!(r.get("comment"), Some(&b"a=b"[..]));
/// assert_eq!(r.get("disabled"), Some(&b""[..]));
/// assert_eq!(r.tag(), Some(&b"3"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    sentence: Sentence,
    kind: ReplyKind,
    /// Index of the `.tag=` word.
    tag: Option<usize>,
}

fn clip(word: &[u8]) -> String {
    String::from_utf8_lossy(word.get(..64).unwrap_or(word)).into_owned()
}

/// What [`Reply::check`] learns from the words of a sentence.
struct Checked {
    kind: ReplyKind,
    tag: Option<usize>,
    bare: Vec<usize>,
}

/// The `.tag` of a sentence, if it has one, without parsing the rest.
///
/// Useful to route a sentence that [`Reply::parse`] refused to the command it belongs to.
pub fn tag_of(sentence: &Sentence) -> Option<&[u8]> {
    sentence
        .words()
        .skip(1)
        .find_map(|w| w.strip_prefix(b".tag="))
}

impl Reply {
    /// Reads a reply sentence.
    pub fn parse(sentence: Sentence) -> Result<Self, ReplyError> {
        Self::parse_or_return(sentence).map_err(|(e, _)| e)
    }

    /// Like [`parse`](Self::parse), but gives the sentence back on error so the caller can
    /// still route it by its tag (without a copy on the good path).
    pub(crate) fn parse_or_return(sentence: Sentence) -> Result<Self, (ReplyError, Sentence)> {
        match Self::check(&sentence) {
            Ok(Checked { kind, tag, bare }) => Self::finish(sentence, kind, tag, &bare),
            Err(e) => Err((e, sentence)),
        }
    }

    /// Validates the words; returns the kind, the index of the `.tag` word and the indexes
    /// of bare words (the reason of a `!fatal`).
    fn check(sentence: &Sentence) -> Result<Checked, ReplyError> {
        let first = sentence.word(0).ok_or(ReplyError::Empty)?;
        let kind = match first {
            b"!re" => ReplyKind::Re,
            b"!done" => ReplyKind::Done,
            b"!trap" => ReplyKind::Trap(Trap {
                category: None,
                message: String::new(),
            }),
            b"!fatal" => ReplyKind::Fatal {
                reason: String::new(),
            },
            b"!empty" => ReplyKind::Empty,
            other => {
                return Err(ReplyError::UnknownReplyWord { word: clip(other) });
            }
        };
        let mut tag = None;
        let mut bare: Vec<usize> = Vec::new();
        for (index, w) in sentence.words().enumerate().skip(1) {
            match w.first() {
                Some(b'=') if split_attribute(w).is_some_and(|(n, _)| !n.is_empty()) => {}
                Some(b'.') if w.starts_with(b".tag=") => tag = Some(index),
                Some(b'.') if w.contains(&b'=') => {}
                _ if matches!(kind, ReplyKind::Fatal { .. }) => bare.push(index),
                _ => {
                    return Err(ReplyError::UnexpectedWord {
                        reply: kind.word(),
                        index,
                        word: clip(w),
                    });
                }
            }
        }
        Ok(Checked { kind, tag, bare })
    }

    fn finish(
        sentence: Sentence,
        mut kind: ReplyKind,
        tag: Option<usize>,
        bare: &[usize],
    ) -> Result<Self, (ReplyError, Sentence)> {
        let mut reply = Self {
            sentence,
            kind: ReplyKind::Re,
            tag,
        };
        match &mut kind {
            ReplyKind::Trap(trap) => {
                trap.message = reply.get_str("message").unwrap_or_default().into_owned();
                if let Some(c) = reply.get("category") {
                    match std::str::from_utf8(c)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok())
                    {
                        Some(code) => trap.category = Some(TrapCategory::from_code(code)),
                        None => {
                            let e = ReplyError::BadTrapCategory { value: clip(c) };
                            return Err((e, reply.sentence));
                        }
                    }
                }
            }
            ReplyKind::Fatal { reason } => {
                let mut parts: Vec<Cow<'_, str>> = bare
                    .iter()
                    .filter_map(|&i| reply.sentence.word(i))
                    .map(String::from_utf8_lossy)
                    .collect();
                if parts.is_empty() {
                    parts.extend(reply.get_str("message"));
                }
                *reason = parts.join(" ");
            }
            _ => {}
        }
        reply.kind = kind;
        Ok(reply)
    }

    /// The kind of reply.
    pub fn kind(&self) -> &ReplyKind {
        &self.kind
    }

    /// The `.tag` the reply carries, if any.
    pub fn tag(&self) -> Option<&[u8]> {
        self.sentence
            .word(self.tag?)
            .and_then(|w| w.strip_prefix(b".tag="))
    }

    /// The attributes `=name=value` as (name, value) pairs, in order.
    pub fn attributes(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.sentence.words().skip(1).filter_map(split_attribute)
    }

    /// The value of attribute `name` (the first if repeated), as bytes.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.sentence.words().skip(1).find_map(|w| {
            let rest = w.strip_prefix(b"=")?.strip_prefix(name)?;
            rest.strip_prefix(b"=")
        })
    }

    /// The value of attribute `name`, decoded lossily as UTF-8.
    pub fn get_str(&self, name: impl AsRef<[u8]>) -> Option<Cow<'_, str>> {
        self.get(name).map(String::from_utf8_lossy)
    }

    /// The value of attribute `name` as a shared [`Bytes`] slice (no copy).
    pub fn get_bytes(&self, name: impl AsRef<[u8]>) -> Option<Bytes> {
        let name = name.as_ref();
        (1..self.sentence.len()).find_map(|i| {
            let w = self.sentence.word(i)?;
            w.strip_prefix(b"=")?
                .strip_prefix(name)?
                .strip_prefix(b"=")?;
            let b = self.sentence.word_bytes(i)?;
            (b.len() >= name.len() + 2).then(|| b.slice(name.len() + 2..))
        })
    }

    /// The value of an API attribute `.name=value` (other than `.tag`), e.g. `.section`.
    pub fn api_attribute(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.sentence
            .words()
            .skip(1)
            .find_map(|w| w.strip_prefix(b".")?.strip_prefix(name)?.strip_prefix(b"="))
    }

    /// The item id, `=.id=` (e.g. `*1A`).
    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.get_str(".id")
    }

    /// True if the row reports a deleted item (`=.dead=true` or `yes`) while following.
    pub fn is_dead(&self) -> bool {
        matches!(self.get(".dead"), Some(b"true" | b"yes"))
    }

    /// `=ret=` of a `!done` (e.g. the id of an item just added), decoded lossily.
    pub fn ret(&self) -> Option<Cow<'_, str>> {
        self.get_str("ret")
    }

    /// The sentence this reply was read from.
    pub fn sentence(&self) -> &Sentence {
        &self.sentence
    }

    /// Gives the sentence back.
    pub fn into_sentence(self) -> Sentence {
        self.sentence
    }

    /// A copy in its own allocation, for replies kept long after the read buffer they
    /// came from (see [`Sentence::detach`]).
    pub fn detach(&self) -> Self {
        Self {
            sentence: self.sentence.detach(),
            kind: self.kind.clone(),
            tag: self.tag,
        }
    }
}

impl TryFrom<Sentence> for Reply {
    type Error = ReplyError;

    fn try_from(sentence: Sentence) -> Result<Self, ReplyError> {
        Self::parse(sentence)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reply").field(&self.sentence).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(words: &[&[u8]]) -> Result<Reply, ReplyError> {
        Reply::parse(Sentence::from_words(words).unwrap())
    }

    #[test]
    fn kinds() {
        assert_eq!(reply(&[b"!re"]).unwrap().kind(), &ReplyKind::Re);
        assert_eq!(reply(&[b"!done"]).unwrap().kind(), &ReplyKind::Done);
        assert_eq!(reply(&[b"!empty"]).unwrap().kind(), &ReplyKind::Empty);
        let t = reply(&[b"!trap", b"=category=2", b"=message=interrupted", b".tag=4"]).unwrap();
        assert_eq!(
            t.kind(),
            &ReplyKind::Trap(Trap {
                category: Some(TrapCategory::Interrupted),
                message: "interrupted".into()
            })
        );
        assert_eq!(t.tag(), Some(&b"4"[..]));
        let t = reply(&[b"!trap", b"=message=no such item"]).unwrap();
        assert!(
            matches!(t.kind(), ReplyKind::Trap(Trap { category: None, message }) if message == "no such item")
        );
        let f = reply(&[b"!fatal", b"session terminated on request"]).unwrap();
        assert_eq!(
            f.kind(),
            &ReplyKind::Fatal {
                reason: "session terminated on request".into()
            }
        );
        assert_eq!(TrapCategory::from_code(9), TrapCategory::Other(9));
        assert_eq!(TrapCategory::from_code(7).code(), 7);
    }

    #[test]
    fn attributes_split_at_second_equals_and_keep_bytes() {
        let r = reply(&[
            b"!re",
            b"=.id=*1A",
            b"=comment=",
            b"=script=:put a=b",
            b"=name=caf\xe9",
            b"=.dead=yes",
            b".section=2",
        ])
        .unwrap();
        let attrs: Vec<_> = r.attributes().collect();
        assert_eq!(attrs.len(), 5);
        assert_eq!(r.get("comment"), Some(&b""[..]));
        assert_eq!(r.get("script"), Some(&b":put a=b"[..]));
        assert_eq!(r.get("name"), Some(&b"caf\xe9"[..]));
        assert_eq!(r.get_str("name").unwrap(), "caf\u{fffd}");
        assert_eq!(
            r.get_bytes("script").unwrap(),
            Bytes::from_static(b":put a=b")
        );
        assert_eq!(r.get_bytes("comment").unwrap(), Bytes::new());
        assert_eq!(r.get("nam"), None, "a prefix of a name is not the name");
        assert_eq!(r.get_bytes("nam"), None);
        assert_eq!(r.id().unwrap(), "*1A");
        assert!(r.is_dead());
        assert_eq!(r.api_attribute("section"), Some(&b"2"[..]));
        assert_eq!(r.tag(), None);
        assert!(!reply(&[b"!re", b"=.dead=false"]).unwrap().is_dead());
        let d = reply(&[b"!done", b"=ret=*2B"]).unwrap();
        assert_eq!(d.ret().unwrap(), "*2B");
    }

    #[test]
    fn unknown_and_malformed_are_errors() {
        assert!(matches!(
            reply(&[b"!frobnicate", b".tag=1"]),
            Err(ReplyError::UnknownReplyWord { word }) if word == "!frobnicate"
        ));
        assert!(matches!(
            reply(&[b"!re", b"bare", b".tag=1"]),
            Err(ReplyError::UnexpectedWord { index: 1, .. })
        ));
        assert!(matches!(
            reply(&[b"!re", b"=novalue"]),
            Err(ReplyError::UnexpectedWord { .. })
        ));
        assert!(matches!(
            reply(&[b"!trap", b"=category=x"]),
            Err(ReplyError::BadTrapCategory { .. })
        ));
        let s = Sentence::from_words([&b"!frobnicate"[..], b".tag=9"]).unwrap();
        assert_eq!(tag_of(&s), Some(&b"9"[..]));
    }
}
