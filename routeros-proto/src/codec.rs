//! Words and sentences on the wire: length prefixes, an incremental bounded decoder and an
//! encoder.
//!
//! A word is a length prefix followed by that many bytes; a sentence is a sequence of words
//! ended by a zero-length word. The decoder has the tokio-util codec shape
//! ([`Decoder::decode`] takes `&mut BytesMut` and answers `Ok(None)` for "need more bytes")
//! without depending on tokio. A decoded [`Sentence`] is one shared buffer plus word offsets:
//! no allocation per word.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest word the five-byte prefix form can announce (`0xFFFF_FFFF` bytes).
pub const MAX_ENCODABLE_WORD_LEN: u64 = u32::MAX as u64;

/// A word cannot be encoded because it is longer than the protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a word of {len} bytes cannot be encoded: the RouterOS API allows at most 4 GiB - 1 bytes per word; split the value"
)]
pub struct WordTooLong {
    /// Length of the word that was refused.
    pub len: u64,
}

/// Why the byte stream from the peer cannot be decoded.
///
/// Every variant is fatal for the connection: the stream cannot be resynchronised after a
/// broken prefix or a refused word, so drop the connection and reconnect. Bounds come from
/// [`Limits`]; raise them if a legitimate reply hits one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A length prefix starts with a reserved control byte (`0xF8` or above).
    #[error(
        "reserved control byte {byte:#04x} where the length prefix of word {word} should start: the peer is not speaking the RouterOS API or the stream is out of sync"
    )]
    ReservedControlByte {
        /// The offending byte.
        byte: u8,
        /// Index of the word within the current sentence.
        word: usize,
    },
    /// A length prefix starts with `0xF1..=0xF7`, which no prefix form uses.
    #[error(
        "invalid length prefix byte {byte:#04x} for word {word}: only 0xF0 starts a five-byte prefix; the stream is out of sync"
    )]
    InvalidPrefix {
        /// The offending byte.
        byte: u8,
        /// Index of the word within the current sentence.
        word: usize,
    },
    /// A word announces more bytes than [`Limits::max_word_len`].
    #[error(
        "word {word} announces {len} bytes, more than the limit of {max} (Limits::max_word_len)"
    )]
    WordTooLong {
        /// Announced length.
        len: u64,
        /// The configured bound.
        max: usize,
        /// Index of the word within the current sentence.
        word: usize,
    },
    /// A sentence has more words than [`Limits::max_words`].
    #[error("sentence has more than {max} words (Limits::max_words)")]
    TooManyWords {
        /// The configured bound.
        max: usize,
    },
    /// A sentence grows beyond [`Limits::max_sentence_len`] bytes.
    #[error(
        "sentence would reach {len} bytes at word {word}, more than the limit of {max} (Limits::max_sentence_len)"
    )]
    SentenceTooLong {
        /// Length the sentence would have reached.
        len: u64,
        /// The configured bound.
        max: usize,
        /// Index of the word that crossed the bound.
        word: usize,
    },
}

/// Bounds on what a peer may make the decoder hold in memory.
///
/// The defaults fit every reply a router sends in practice, including rows of a 200k-row
/// `print` (each row is its own sentence) and large script sources, while refusing a peer
/// that announces a 4 GiB word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest word accepted, in bytes (default 8 MiB).
    pub max_word_len: usize,
    /// Most words accepted in one sentence (default 8192).
    pub max_words: usize,
    /// Most bytes accepted in one sentence, prefixes included (default 16 MiB).
    pub max_sentence_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_word_len: 8 << 20,
            max_words: 8192,
            max_sentence_len: 16 << 20,
        }
    }
}

/// Number of bytes the prefix for a word of `len` bytes takes, or `None` if `len` cannot be
/// encoded.
pub fn prefix_len(len: usize) -> Option<usize> {
    match len as u64 {
        0..=0x7F => Some(1),
        0x80..=0x3FFF => Some(2),
        0x4000..=0x1F_FFFF => Some(3),
        0x20_0000..=0xFFF_FFFF => Some(4),
        0x1000_0000..=MAX_ENCODABLE_WORD_LEN => Some(5),
        _ => None,
    }
}

/// Appends the length prefix for a word of `len` bytes (shortest form) to `dst`.
pub fn encode_len<B: BufMut + ?Sized>(len: usize, dst: &mut B) -> Result<(), WordTooLong> {
    let wide = len as u64;
    let Ok(n) = u32::try_from(wide) else {
        return Err(WordTooLong { len: wide });
    };
    match n {
        0..=0x7F => dst.put_u8(n as u8),
        0x80..=0x3FFF => dst.put_u16((n | 0x8000) as u16),
        0x4000..=0x1F_FFFF => {
            let v = n | 0xC0_0000;
            dst.put_slice(&v.to_be_bytes()[1..]);
        }
        0x20_0000..=0xFFF_FFFF => dst.put_u32(n | 0xE000_0000),
        _ => {
            dst.put_u8(0xF0);
            dst.put_u32(n);
        }
    }
    Ok(())
}

/// Reads a length prefix at the start of `src`.
///
/// Returns `Ok(Some((len, prefix_bytes)))`, or `Ok(None)` if `src` holds only part of the
/// prefix. `word` is the index of the word in its sentence, used in errors.
pub fn decode_len(src: &[u8], word: usize) -> Result<Option<(u32, usize)>, DecodeError> {
    let Some(&b0) = src.first() else {
        return Ok(None);
    };
    let need = match b0 {
        0x00..=0x7F => return Ok(Some((u32::from(b0), 1))),
        0x80..=0xBF => 2,
        0xC0..=0xDF => 3,
        0xE0..=0xEF => 4,
        0xF0 => 5,
        0xF1..=0xF7 => return Err(DecodeError::InvalidPrefix { byte: b0, word }),
        0xF8..=0xFF => return Err(DecodeError::ReservedControlByte { byte: b0, word }),
    };
    let Some(prefix) = src.get(..need) else {
        return Ok(None);
    };
    let mut v: u32 = 0;
    for &b in prefix.get(1..).unwrap_or_default() {
        v = (v << 8) | u32::from(b);
    }
    let len = match need {
        2 => (u32::from(b0 & 0x3F) << 8) | v,
        3 => (u32::from(b0 & 0x1F) << 16) | v,
        4 => (u32::from(b0 & 0x0F) << 24) | v,
        _ => v,
    };
    Ok(Some((len, need)))
}

/// Appends one word (prefix and bytes) to `dst`.
pub fn encode_word<B: BufMut + ?Sized>(word: &[u8], dst: &mut B) -> Result<(), WordTooLong> {
    encode_len(word.len(), dst)?;
    dst.put_slice(word);
    Ok(())
}

/// Appends a whole sentence (its words, then the terminating empty word) to `dst`.
///
/// On error, `dst` may hold the words before the one refused: discard it.
pub fn encode_sentence<B, I, W>(words: I, dst: &mut B) -> Result<(), WordTooLong>
where
    B: BufMut + ?Sized,
    I: IntoIterator<Item = W>,
    W: AsRef<[u8]>,
{
    for w in words {
        encode_word(w.as_ref(), dst)?;
    }
    dst.put_u8(0);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// One complete sentence: its wire bytes in one shared buffer plus the offsets of its words.
///
/// Cloning is cheap (a reference count). Words are bytes; use
/// [`String::from_utf8_lossy`] at the edges. A decoded sentence shares the allocation of
/// the read buffer (see [`detach`](Self::detach)).
#[derive(Clone)]
pub struct Sentence {
    /// Wire form: prefixes, words and the terminating zero.
    data: Bytes,
    words: Vec<Span>,
}

impl Sentence {
    /// Builds a sentence from its words (encoding them).
    pub fn from_words<I, W>(words: I) -> Result<Self, WordTooLong>
    where
        I: IntoIterator<Item = W>,
        W: AsRef<[u8]>,
    {
        let mut data = BytesMut::new();
        let mut spans = Vec::new();
        for w in words {
            let w = w.as_ref();
            encode_len(w.len(), &mut data)?;
            let start = data.len();
            data.put_slice(w);
            spans.push(Span {
                start,
                end: data.len(),
            });
        }
        data.put_u8(0);
        Ok(Self {
            data: data.freeze(),
            words: spans,
        })
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True if the sentence has no words (the decoder never yields one).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The word at `index`, if any.
    pub fn word(&self, index: usize) -> Option<&[u8]> {
        let s = self.words.get(index)?;
        self.data.get(s.start..s.end)
    }

    /// The word at `index` as a shared [`Bytes`] slice (no copy).
    pub fn word_bytes(&self, index: usize) -> Option<Bytes> {
        let s = self.words.get(index)?;
        (s.start <= s.end && s.end <= self.data.len()).then(|| self.data.slice(s.start..s.end))
    }

    /// Iterates over the words.
    pub fn words(&self) -> Words<'_> {
        Words {
            data: &self.data,
            spans: self.words.iter(),
        }
    }

    /// The wire form: prefixes, words and the terminating zero byte.
    pub fn as_wire(&self) -> &[u8] {
        &self.data
    }

    /// Appends the wire form to `dst` (a copy of [`as_wire`](Self::as_wire)).
    pub fn encode<B: BufMut + ?Sized>(&self, dst: &mut B) {
        dst.put_slice(&self.data);
    }

    /// A copy in its own allocation. A decoded sentence shares the allocation of the read
    /// buffer it came from, so keeping one row of a large reply keeps that whole buffer
    /// alive; detach what you keep for long.
    pub fn detach(&self) -> Self {
        Self {
            data: Bytes::copy_from_slice(&self.data),
            words: self.words.clone(),
        }
    }
}

impl PartialEq for Sentence {
    /// Two sentences are equal when their words are (whatever prefix form was used).
    fn eq(&self, other: &Self) -> bool {
        self.words().eq(other.words())
    }
}

impl Eq for Sentence {}

impl fmt::Debug for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.words().map(String::from_utf8_lossy))
            .finish()
    }
}

/// Iterator over the words of a [`Sentence`].
#[derive(Debug, Clone)]
pub struct Words<'a> {
    data: &'a [u8],
    spans: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.spans.next()?;
        Some(self.data.get(s.start..s.end).unwrap_or_default())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Words<'_> {}

/// Incremental, bounded sentence decoder.
///
/// Feed it the same read buffer on every call; it remembers how far it has parsed the
/// sentence at the front of the buffer, so bytes may arrive split anywhere (even inside a
/// length prefix) without being parsed twice. Memory is bounded by [`Limits`]: a sentence is
/// only removed from the buffer once it is complete.
///
/// ```
/// use bytes::BytesMut;
/// use routeros_proto::codec::{Decoder, Limits};
///
/// let mut dec = Decoder::new(Limits::default());
/// let mut buf = BytesMut::from(&b"\x03!re\x0c=name=ether"[..]);
/// assert!(dec.decode(&mut buf)?.is_none()); // word cut short: need more bytes
/// buf.extend_from_slice(b"1\x00");
/// let s = dec.decode(&mut buf)?.expect("a complete sentence");
/// assert_eq!(s.word(1), Some(&b"=name=ether1"[..]));
/// # Ok::<(), routeros_proto::codec::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    /// Bytes at the front of the buffer already parsed into complete words.
    scanned: usize,
    words: Vec<Span>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder with the given bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            scanned: 0,
            words: Vec::with_capacity(16),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets the partly parsed sentence, e.g. after the caller discarded its read buffer.
    pub fn reset(&mut self) {
        self.scanned = 0;
        self.words.clear();
    }

    /// True if the decoder holds part of a sentence (complete words without the terminator).
    /// Together with a non-empty read buffer, this tells whether a peer closed the
    /// connection mid-sentence.
    pub fn is_mid_sentence(&self) -> bool {
        self.scanned > 0
    }

    /// Decodes the next complete sentence from the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed (everything parsed so far stays in `buf`
    /// and is remembered), `Ok(Some(sentence))` after removing the sentence from `buf`.
    /// Empty sentences (a lone zero byte) are skipped. After an error the stream cannot be
    /// resynchronised: drop the connection.
    ///
    /// Only append to `buf` between calls; if you discard its contents, call
    /// [`reset`](Self::reset).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Sentence>, DecodeError> {
        if self.scanned > buf.len() {
            // The caller consumed or replaced the buffer behind our back: start afresh
            // rather than wait forever for bytes that already went. (A replacement at
            // least as long goes unnoticed: call `reset` then.)
            self.reset();
        }
        loop {
            let word = self.words.len();
            let rest = buf.get(self.scanned..).unwrap_or_default();
            let Some((len, plen)) = decode_len(rest, word)? else {
                return Ok(None);
            };
            if len == 0 {
                if self.words.is_empty() {
                    // An empty sentence: ignored, as the protocol says.
                    buf.advance(plen.min(buf.len()));
                    continue;
                }
                let total = self.scanned + plen;
                let data = buf.split_to(total.min(buf.len())).freeze();
                self.scanned = 0;
                let cap = self.words.len().max(8);
                let words = std::mem::replace(&mut self.words, Vec::with_capacity(cap));
                return Ok(Some(Sentence { data, words }));
            }
            let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
            if len_usize > self.limits.max_word_len {
                return Err(DecodeError::WordTooLong {
                    len: u64::from(len),
                    max: self.limits.max_word_len,
                    word,
                });
            }
            if word >= self.limits.max_words {
                return Err(DecodeError::TooManyWords {
                    max: self.limits.max_words,
                });
            }
            let end = self.scanned.saturating_add(plen).saturating_add(len_usize);
            if end > self.limits.max_sentence_len {
                return Err(DecodeError::SentenceTooLong {
                    len: end as u64,
                    max: self.limits.max_sentence_len,
                    word,
                });
            }
            if buf.len() < end {
                return Ok(None);
            }
            self.words.push(Span {
                start: self.scanned + plen,
                end,
            });
            self.scanned = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        encode_len(len, &mut v).unwrap();
        v
    }

    #[test]
    fn routeros_md_prefix_examples() {
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x80]),
            (300, &[0x81, 0x2c]),
            (0x4321, &[0xc0, 0x43, 0x21]),
            (17000, &[0xc0, 0x42, 0x68]),
            (0x2a_cdef, &[0xe0, 0x2a, 0xcd, 0xef]),
            (0x1000_0080, &[0xf0, 0x10, 0x00, 0x00, 0x80]),
        ];
        for &(len, bytes) in cases {
            assert_eq!(enc(len), bytes, "encode {len:#x}");
            assert_eq!(
                decode_len(bytes, 0).unwrap(),
                Some((len as u32, bytes.len())),
                "decode {len:#x}"
            );
            assert_eq!(prefix_len(len), Some(bytes.len()));
        }
    }

    #[test]
    fn boundaries_switch_form_exactly() {
        let cases: &[(usize, &[u8])] = &[
            (0x7F, &[0x7f]),
            (0x80, &[0x80, 0x80]),
            (0x3FFF, &[0xbf, 0xff]),
            (0x4000, &[0xc0, 0x40, 0x00]),
            (0x1F_FFFF, &[0xdf, 0xff, 0xff]),
            (0x20_0000, &[0xe0, 0x20, 0x00, 0x00]),
            (0xFFF_FFFF, &[0xef, 0xff, 0xff, 0xff]),
            (0x1000_0000, &[0xf0, 0x10, 0x00, 0x00, 0x00]),
            (0xFFFF_FFFF, &[0xf0, 0xff, 0xff, 0xff, 0xff]),
        ];
        for &(len, bytes) in cases {
            assert_eq!(enc(len), bytes, "encode {len:#x}");
            assert_eq!(
                decode_len(bytes, 0).unwrap(),
                Some((len as u32, bytes.len()))
            );
            // Every strict prefix of the prefix is "need more bytes".
            for cut in 0..bytes.len() {
                assert_eq!(decode_len(&bytes[..cut], 0).unwrap(), None);
            }
        }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn too_long_to_encode() {
        let mut v = Vec::new();
        assert_eq!(
            encode_len(0x1_0000_0000, &mut v),
            Err(WordTooLong { len: 0x1_0000_0000 })
        );
        assert!(v.is_empty());
        assert_eq!(prefix_len(0x1_0000_0000), None);
    }

    #[test]
    fn reserved_control_bytes_rejected() {
        for b in 0xF8..=0xFFu8 {
            assert_eq!(
                decode_len(&[b], 3),
                Err(DecodeError::ReservedControlByte { byte: b, word: 3 })
            );
        }
        for b in 0xF1..=0xF7u8 {
            assert_eq!(
                decode_len(&[b, 0, 0, 0, 0], 0),
                Err(DecodeError::InvalidPrefix { byte: b, word: 0 })
            );
        }
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\x03!re\xf8"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::ReservedControlByte {
                byte: 0xf8,
                word: 1
            })
        );
    }

    fn wire(words: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_sentence(words, &mut v).unwrap();
        v
    }

    #[test]
    fn decodes_every_split_point() {
        let long = vec![b'x'; 0x4000];
        let words: Vec<&[u8]> = vec![b"!re", b"=name=", b"=comment=a=b", &long, b"\xe9t\xe9"];
        let mut bytes = wire(&words);
        bytes.extend(wire(&[b"!done"]));
        for split in 0..=bytes.len() {
            let mut dec = Decoder::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&bytes[..split], &bytes[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(s) = dec.decode(&mut buf).unwrap() {
                    out.push(s);
                }
            }
            assert_eq!(out.len(), 2, "split at {split}");
            assert!(out[0].words().eq(words.iter().copied()));
            assert_eq!(out[1].word(0), Some(&b"!done"[..]));
            assert!(buf.is_empty());
            assert!(!dec.is_mid_sentence());
        }
    }

    #[test]
    fn four_byte_prefix_word_through_the_decoder() {
        // 0x200000 bytes: the smallest word with a four-byte prefix (default limit 8 MiB).
        let big = vec![b'z'; 0x20_0000];
        let bytes = wire(&[b"!re", &big]);
        assert_eq!(&bytes[4..8], &[0xe0, 0x20, 0x00, 0x00]);
        for split in [5, 6, 7, 8, 9, bytes.len() - 1] {
            let mut dec = Decoder::default();
            let mut buf = BytesMut::from(&bytes[..split]);
            assert!(dec.decode(&mut buf).unwrap().is_none());
            buf.extend_from_slice(&bytes[split..]);
            let s = dec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(s.word(1).map(<[u8]>::len), Some(0x20_0000));
        }
    }

    #[test]
    fn byte_at_a_time_and_empty_sentences_skipped() {
        let mut bytes = vec![0u8, 0];
        bytes.extend(wire(&[b"!done", b".tag=7"]));
        bytes.push(0);
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(s) = dec.decode(&mut buf).unwrap() {
                out.push(s);
            }
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 2);
        assert_eq!(out[0].word(1), Some(&b".tag=7"[..]));
        assert_eq!(
            out[0],
            Sentence::from_words([&b"!done"[..], b".tag=7"]).unwrap()
        );
        assert_eq!(
            out[0].as_wire(),
            &b"\x05!done\x06.tag=7\x00"[..],
            "wire form kept"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn non_minimal_prefix_accepted() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\x80\x03!re\xc0\x00\x02=a\x00"[..]);
        let s = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(s.word(0), Some(&b"!re"[..]));
        assert_eq!(s.word(1), Some(&b"=a"[..]));
    }

    #[test]
    fn bounds_name_the_limit() {
        let limits = Limits {
            max_word_len: 10,
            max_words: 3,
            max_sentence_len: 20,
        };
        // A word announced too long is refused before its bytes arrive.
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::from(&b"\x03!re\x0b"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::WordTooLong {
                len: 11,
                max: 10,
                word: 1
            })
        );
        // A 4 GiB announcement with the default limits.
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\xf0\xff\xff\xff\xff"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(DecodeError::WordTooLong {
                len: 0xFFFF_FFFF,
                ..
            })
        ));

        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::from(&wire(&[b"a", b"b", b"c", b"d"])[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::TooManyWords { max: 3 })
        );

        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::from(&wire(&[b"aaaaaaaaa", b"bbbbbbbbb", b"c"])[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::SentenceTooLong {
                len: 22,
                max: 20,
                word: 2
            })
        );
        // The messages name the bound to raise.
        let msg = DecodeError::TooManyWords { max: 3 }.to_string();
        assert!(msg.contains("Limits::max_words"), "{msg}");
    }

    #[test]
    fn a_replaced_buffer_does_not_stall_the_decoder() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\x03!re\x06=a=bcd"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        // Shorter than what was parsed: detected, the decoder starts afresh.
        let mut fresh = BytesMut::from(&b"\x05!done\x00"[..]);
        let s = dec.decode(&mut fresh).unwrap().unwrap();
        assert_eq!(s.word(0), Some(&b"!done"[..]));
        // Otherwise the caller says so with reset().
        let mut buf = BytesMut::from(&b"\x03!re"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        dec.reset();
        let mut fresh = BytesMut::from(&b"\x05!done\x00"[..]);
        assert_eq!(dec.decode(&mut fresh).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn memory_stays_at_one_sentence_plus_the_read_buffer() {
        const CHUNK: usize = 16 * 1024;
        let mut wire = Vec::new();
        for i in 0..20_000u32 {
            let addr = format!("=src-address=10.0.{}.{}:{}", i >> 8 & 0xff, i & 0xff, i);
            encode_sentence(["!re", addr.as_str(), "=protocol=tcp", ".tag=1"], &mut wire).unwrap();
        }
        let mut dec = Decoder::default();
        let mut buf = BytesMut::with_capacity(CHUNK);
        let mut n = 0;
        let mut max_cap = 0;
        for chunk in wire.chunks(CHUNK) {
            buf.extend_from_slice(chunk);
            max_cap = max_cap.max(buf.capacity());
            while let Some(s) = dec.decode(&mut buf).unwrap() {
                n += 1;
                drop(s);
            }
        }
        assert_eq!(n, 20_000);
        // The buffer reuses its space once decoded sentences are dropped.
        assert!(max_cap <= 4 * CHUNK, "read buffer grew to {max_cap} bytes");
        assert!(wire.len() > 40 * CHUNK);
    }

    #[test]
    fn detach_copies_into_its_own_allocation() {
        let mut buf = BytesMut::from(&b"\x03!re\x04=a=b\x00\x05!done\x00"[..]);
        let mut dec = Decoder::default();
        let s = dec.decode(&mut buf).unwrap().unwrap();
        let d = s.detach();
        assert_eq!(d, s);
        assert_eq!(d.as_wire(), s.as_wire());
        assert_ne!(d.as_wire().as_ptr(), s.as_wire().as_ptr());
    }

    #[test]
    fn mid_sentence_is_reported() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\x03!re\x02=a"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert!(dec.is_mid_sentence());
    }

    #[test]
    fn word_bytes_are_zero_copy_slices() {
        let s = Sentence::from_words(["!re", "=x=1"]).unwrap();
        assert_eq!(s.word_bytes(1).unwrap(), Bytes::from_static(b"=x=1"));
        assert_eq!(s.word_bytes(2), None);
        assert_eq!(format!("{s:?}"), r#"["!re", "=x=1"]"#);
    }
}
