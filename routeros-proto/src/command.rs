//! Commands (client -> router): a builder for the command path, `=name=value` attributes,
//! `.proplist`, `.tag` and `print` queries.

use std::fmt;

use bytes::BufMut;

use crate::codec::{self, Sentence, WordTooLong};

/// Why a [`Command`] cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The command path is empty or does not start with `/`.
    #[error("command path {path:?} must start with '/', e.g. \"/ip/address/print\"")]
    PathNotAbsolute {
        /// The path given (lossy UTF-8).
        path: String,
    },
    /// An attribute or query property name is empty or contains `=` (which would change the
    /// meaning of the word on the wire).
    #[error("property name {name:?} is invalid: {reason}")]
    InvalidName {
        /// The name given (lossy UTF-8).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A word is too long for the wire format.
    #[error(transparent)]
    WordTooLong(#[from] WordTooLong),
}

/// One operator of a `?#` query stack expression.
///
/// Queries are evaluated on a stack: each `?name...` word pushes a boolean, and `?#OPS`
/// combines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryOp {
    /// Push a copy of stack item N (counted from the bottom, 0 first).
    Push(u8),
    /// Negate the top item (`!`).
    Not,
    /// Replace the two top items by their conjunction (`&`).
    And,
    /// Replace the two top items by their disjunction (`|`).
    Or,
    /// Duplicate the top item (`.`).
    Dup,
}

/// A `print` query: a sequence of `?` words evaluated on a stack by the router.
///
/// ```
/// use routeros_proto::Query;
///
/// // protocol is tcp or udp, and dst-port is present
/// let q = Query::new().eq("protocol", "tcp").eq("protocol", "udp").or().has("dst-port").and();
/// let words: Vec<String> = q.words().map(|w| String::from_utf8_lossy(w).into_owned()).collect();
/// assert_eq!(words, ["?protocol=tcp", "?protocol=udp", "?#|", "?dst-port", "?#&"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Query {
    words: Vec<Vec<u8>>,
    error: Option<CommandError>,
}

impl Query {
    /// An empty query (matches everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes "the item has property `name`" (`?name`).
    pub fn has(self, name: impl AsRef<[u8]>) -> Self {
        self.push_word(b"?", name.as_ref(), None)
    }

    /// Pushes "the item lacks property `name`" (`?-name`).
    pub fn lacks(self, name: impl AsRef<[u8]>) -> Self {
        self.push_word(b"?-", name.as_ref(), None)
    }

    /// Pushes "`name` equals `value`" (`?name=value`).
    pub fn eq(self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let name = name.as_ref();
        // `?=name=x` is the unambiguous spelling when the name itself starts with an operator.
        let prefix: &[u8] = match name.first() {
            Some(b'-' | b'<' | b'>' | b'#') => b"?=",
            _ => b"?",
        };
        self.push_word(prefix, name, Some(value.as_ref()))
    }

    /// Pushes "`name` is less than `value`" (`?<name=value`).
    pub fn lt(self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.push_word(b"?<", name.as_ref(), Some(value.as_ref()))
    }

    /// Pushes "`name` is greater than `value`" (`?>name=value`).
    pub fn gt(self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.push_word(b"?>", name.as_ref(), Some(value.as_ref()))
    }

    /// Appends a `?#` stack expression made of `ops`.
    pub fn ops(mut self, ops: &[QueryOp]) -> Self {
        let mut w = b"?#".to_vec();
        for op in ops {
            match op {
                QueryOp::Push(n) => w.extend_from_slice(n.to_string().as_bytes()),
                QueryOp::Not => w.push(b'!'),
                QueryOp::And => w.push(b'&'),
                QueryOp::Or => w.push(b'|'),
                QueryOp::Dup => w.push(b'.'),
            }
        }
        self.words.push(w);
        self
    }

    /// Replaces the two top items by their disjunction (`?#|`).
    pub fn or(self) -> Self {
        self.ops(&[QueryOp::Or])
    }

    /// Replaces the two top items by their conjunction (`?#&`).
    pub fn and(self) -> Self {
        self.ops(&[QueryOp::And])
    }

    /// Negates the top item (`?#!`).
    pub fn negate(self) -> Self {
        self.ops(&[QueryOp::Not])
    }

    /// The query words, in order.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.words.iter().map(Vec::as_slice)
    }

    fn push_word(mut self, prefix: &[u8], name: &[u8], value: Option<&[u8]>) -> Self {
        if let Err(e) = check_name(name) {
            self.error.get_or_insert(e);
        }
        let mut w =
            Vec::with_capacity(prefix.len() + name.len() + 1 + value.map_or(0, <[u8]>::len));
        w.extend_from_slice(prefix);
        w.extend_from_slice(name);
        if let Some(v) = value {
            w.push(b'=');
            w.extend_from_slice(v);
        }
        self.words.push(w);
        self
    }
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.words.iter().map(|w| String::from_utf8_lossy(w)))
            .finish()
    }
}

fn check_name(name: &[u8]) -> Result<(), CommandError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains(&b'=') {
        "it contains '='"
    } else {
        return Ok(());
    };
    Err(CommandError::InvalidName {
        name: String::from_utf8_lossy(name).into_owned(),
        reason,
    })
}

/// A command sentence: a path, then attributes, API attributes and query words.
///
/// The builder never fails; a mistake (an attribute name containing `=`, a path without
/// `/`) is kept and reported by [`validate`](Self::validate), [`encode`](Self::encode) and
/// [`Connection::send`](crate::Connection::send).
///
/// ```
/// use routeros_proto::{Command, Query};
///
/// let add = Command::new("/ip/firewall/address-list/add")
///     .attr("list", "mtids-blocked")
///     .attr("address", "198.51.100.7")
///     .attr("comment", "");
/// let print = Command::new("/ip/firewall/connection/print")
///     .proplist(["src-address", "dst-address", "protocol"])
///     .query(Query::new().eq("protocol", "tcp").eq("protocol", "udp").or());
/// let mut wire = Vec::new();
/// add.encode(&mut wire)?;
/// print.encode(&mut wire)?;
/// # Ok::<(), routeros_proto::CommandError>(())
/// ```
///
/// `Debug` hides the values of `=password=` and `=response=`.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    path: Vec<u8>,
    /// Attribute, API attribute and query words, in order (no path, no tag).
    words: Vec<Vec<u8>>,
    tag: Option<Vec<u8>>,
    error: Option<CommandError>,
}

impl Command {
    /// A command with this path, e.g. `/ip/address/print`.
    pub fn new(path: impl AsRef<[u8]>) -> Self {
        let path = path.as_ref().to_vec();
        let error = (path.first() != Some(&b'/')).then(|| CommandError::PathNotAbsolute {
            path: String::from_utf8_lossy(&path).into_owned(),
        });
        Self {
            path,
            words: Vec::new(),
            tag: None,
            error,
        }
    }

    /// Builds a command from words as they go on the wire: the path first, then words such
    /// as `=list=x`, `?protocol=tcp` or `=.proplist=a,b`. A `.tag=T` word sets the tag.
    /// Returns `None` if `words` is empty.
    pub fn from_words<I, W>(words: I) -> Option<Self>
    where
        I: IntoIterator<Item = W>,
        W: AsRef<[u8]>,
    {
        let mut it = words.into_iter();
        let mut cmd = Self::new(it.next()?);
        for w in it {
            cmd = cmd.word(w);
        }
        Some(cmd)
    }

    /// Reads a command sentence (what a router receives). See [`from_words`](Self::from_words).
    pub fn from_sentence(sentence: &Sentence) -> Option<Self> {
        Self::from_words(sentence.words())
    }

    /// Adds the attribute `=name=value`. `value` may be empty and may contain `=`.
    pub fn attr(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let (name, value) = (name.as_ref(), value.as_ref());
        if let Err(e) = check_name(name) {
            self.error.get_or_insert(e);
        }
        let mut w = Vec::with_capacity(name.len() + value.len() + 2);
        w.push(b'=');
        w.extend_from_slice(name);
        w.push(b'=');
        w.extend_from_slice(value);
        self.words.push(w);
        self
    }

    /// Adds `=.id=ID`, the item id for `set`, `remove` and friends.
    pub fn id(self, id: impl AsRef<[u8]>) -> Self {
        self.attr(".id", id)
    }

    /// Adds `=.proplist=a,b,c`: the router returns only these properties (much cheaper).
    pub fn proplist<I, S>(self, props: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut list = Vec::new();
        for (i, p) in props.into_iter().enumerate() {
            if i > 0 {
                list.push(b',');
            }
            list.extend_from_slice(p.as_ref());
        }
        self.attr(".proplist", list)
    }

    /// Adds `=follow=`: a `print` that returns the current items, then every change, and
    /// never ends by itself.
    pub fn follow(self) -> Self {
        self.attr("follow", "")
    }

    /// Adds `=follow-only=`: a `print` that returns only changes and never ends by itself.
    pub fn follow_only(self) -> Self {
        self.attr("follow-only", "")
    }

    /// Appends the words of a query.
    pub fn query(mut self, query: Query) -> Self {
        if let Some(e) = query.error {
            self.error.get_or_insert(e);
        }
        self.words.extend(query.words);
        self
    }

    /// Sets the `.tag=T` API attribute. [`Connection::send`](crate::Connection::send)
    /// replaces it with a tag of its own.
    pub fn tag(mut self, tag: impl AsRef<[u8]>) -> Self {
        self.set_tag(tag);
        self
    }

    /// Sets (or replaces) the `.tag` of an existing command.
    pub fn set_tag(&mut self, tag: impl AsRef<[u8]>) {
        self.tag = Some(tag.as_ref().to_vec());
    }

    /// Appends a raw word as it goes on the wire. A `.tag=T` word sets the tag instead.
    pub fn word(mut self, word: impl AsRef<[u8]>) -> Self {
        let word = word.as_ref();
        match word.strip_prefix(b".tag=") {
            Some(tag) => self.set_tag(tag),
            None => self.words.push(word.to_vec()),
        }
        self
    }

    /// The command path.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The tag set with [`tag`](Self::tag), if any.
    pub fn tag_value(&self) -> Option<&[u8]> {
        self.tag.as_deref()
    }

    /// The words after the path (attributes, API attributes, queries), without the tag.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.words.iter().map(Vec::as_slice)
    }

    /// The attributes `=name=value` as (name, value) pairs, split at the second `=`.
    pub fn attributes(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.words.iter().filter_map(|w| split_attribute(w))
    }

    /// The value of attribute `name`, if present (the first one if repeated).
    pub fn attribute(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.attributes().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The query words (`?...`).
    pub fn queries(&self) -> impl Iterator<Item = &[u8]> {
        self.words().filter(|w| w.first() == Some(&b'?'))
    }

    /// True if the command does not end by itself: `=follow=`, `=follow-only=` or a
    /// `.../listen` path. Such commands run until cancelled.
    pub fn is_streaming(&self) -> bool {
        self.path.ends_with(b"/listen")
            || self
                .attributes()
                .any(|(n, _)| n == b"follow" || n == b"follow-only")
    }

    /// Checks the command: the path starts with `/` and every name is valid.
    pub fn validate(&self) -> Result<(), CommandError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Appends the encoded sentence (path, words, tag, terminator) to `dst`.
    ///
    /// On error nothing useful is in `dst`: validation runs first, and only a word longer
    /// than 4 GiB can fail afterwards.
    pub fn encode<B: BufMut + ?Sized>(&self, dst: &mut B) -> Result<(), CommandError> {
        self.validate()?;
        codec::encode_word(&self.path, dst)?;
        for w in &self.words {
            codec::encode_word(w, dst)?;
        }
        if let Some(tag) = &self.tag {
            codec::encode_len(tag.len() + 5, dst)?;
            dst.put_slice(b".tag=");
            dst.put_slice(tag);
        }
        dst.put_u8(0);
        Ok(())
    }

    /// Number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let word = |n: usize| n + codec::prefix_len(n).unwrap_or(5);
        word(self.path.len())
            + self.words.iter().map(|w| word(w.len())).sum::<usize>()
            + self.tag.as_ref().map_or(0, |t| word(t.len() + 5))
            + 1
    }

    /// The command as a [`Sentence`].
    pub fn to_sentence(&self) -> Result<Sentence, CommandError> {
        self.validate()?;
        let tag = self.tag.as_ref().map(|t| {
            let mut w = b".tag=".to_vec();
            w.extend_from_slice(t);
            w
        });
        let words = std::iter::once(self.path.as_slice())
            .chain(self.words.iter().map(Vec::as_slice))
            .chain(tag.as_deref());
        Ok(Sentence::from_words(words)?)
    }
}

/// Splits `=name=value` at the second `=`.
#[inline]
pub(crate) fn split_attribute(word: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = word.strip_prefix(b"=")?;
    let eq = find_byte(rest, b'=')?;
    Some((rest.get(..eq)?, rest.get(eq + 1..)?))
}

/// Position of the first `needle` in `hay`, eight bytes at a time (SWAR).
///
/// Attribute names are short and of every length, so a byte loop mispredicts its exit on
/// nearly every word; this halves the cost of reading a reply.
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let v = u64::from_le_bytes(bytes) ^ pattern;
        // The lowest set bit marks the first zero byte of v (higher ones may be false).
        let zero = v.wrapping_sub(LO) & !v & HI;
        if zero != 0 {
            return Some(base + (zero.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| b == needle).map(|p| base + p)
}

fn is_secret(word: &[u8]) -> bool {
    word.starts_with(b"=password=") || word.starts_with(b"=response=")
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        l.entry(&String::from_utf8_lossy(&self.path));
        for w in &self.words {
            if is_secret(w) {
                let name_end = w.iter().skip(1).position(|&b| b == b'=').unwrap_or(0) + 2;
                let name = w.get(..name_end).unwrap_or_default();
                l.entry(&format_args!("{}<redacted>", String::from_utf8_lossy(name)));
            } else {
                l.entry(&String::from_utf8_lossy(w));
            }
        }
        if let Some(t) = &self.tag {
            l.entry(&format_args!(".tag={}", String::from_utf8_lossy(t)));
        }
        l.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(c: &Command) -> Vec<String> {
        c.to_sentence()
            .unwrap()
            .words()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    #[test]
    fn builder_produces_wire_words() {
        let c = Command::new("/ip/firewall/address-list/add")
            .attr("list", "L")
            .attr("comment", "")
            .attr("comment2", "a=b=c")
            .id("*1A")
            .proplist([".id", "address"])
            .tag("7");
        assert_eq!(
            words(&c),
            [
                "/ip/firewall/address-list/add",
                "=list=L",
                "=comment=",
                "=comment2=a=b=c",
                "=.id=*1A",
                "=.proplist=.id,address",
                ".tag=7"
            ]
        );
        assert_eq!(c.attribute("comment2"), Some(&b"a=b=c"[..]));
        assert_eq!(c.attribute("comment"), Some(&b""[..]));
        assert_eq!(c.tag_value(), Some(&b"7"[..]));
        let mut wire = Vec::new();
        c.encode(&mut wire).unwrap();
        assert_eq!(wire.len(), c.encoded_len());
        assert_eq!(wire, c.to_sentence().unwrap().as_wire());
    }

    #[test]
    fn queries_with_stack_ops() {
        let c = Command::new("/ip/firewall/connection/print").query(
            Query::new()
                .has("src-address")
                .lacks("dst-port")
                .lt("orig-bytes", "100")
                .gt("repl-bytes", "5")
                .eq("-odd", "x")
                .ops(&[
                    QueryOp::Push(0),
                    QueryOp::Push(12),
                    QueryOp::Not,
                    QueryOp::And,
                    QueryOp::Or,
                    QueryOp::Dup,
                ]),
        );
        assert_eq!(
            words(&c)[1..],
            [
                "?src-address",
                "?-dst-port",
                "?<orig-bytes=100",
                "?>repl-bytes=5",
                "?=-odd=x",
                "?#012!&|."
            ]
        );
        assert_eq!(c.queries().count(), 6);
    }

    #[test]
    fn mistakes_are_reported_not_panicked() {
        assert!(matches!(
            Command::new("ip/address/print").validate(),
            Err(CommandError::PathNotAbsolute { .. })
        ));
        assert!(matches!(
            Command::new("").encode(&mut Vec::new()),
            Err(CommandError::PathNotAbsolute { .. })
        ));
        let e = Command::new("/x").attr("a=b", "c").validate().unwrap_err();
        assert!(e.to_string().contains("contains '='"), "{e}");
        assert!(Command::new("/x").attr("", "c").validate().is_err());
        assert!(
            Command::new("/x")
                .query(Query::new().eq("", "x"))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn streaming_detection() {
        assert!(Command::new("/log/print").follow_only().is_streaming());
        assert!(Command::new("/ip/address/print").follow().is_streaming());
        assert!(Command::new("/interface/listen").is_streaming());
        assert!(!Command::new("/ip/address/print").is_streaming());
    }

    #[test]
    fn from_words_takes_tag_and_raw_words() {
        let c = Command::from_words([
            "/ip/address/print",
            "?interface=ether1",
            ".tag=x",
            "=.proplist=address",
        ])
        .unwrap();
        assert_eq!(c.path(), b"/ip/address/print");
        assert_eq!(c.tag_value(), Some(&b"x"[..]));
        assert_eq!(c.words().count(), 2);
        let back = Command::from_sentence(&c.to_sentence().unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(Command::from_words(Vec::<&str>::new()).is_none());
    }

    #[test]
    fn find_byte_matches_position() {
        let hay: Vec<u8> = (0..40u8)
            .map(|i| if i % 3 == 0 { b'=' } else { i })
            .collect();
        for start in 0..hay.len() {
            for end in start..=hay.len() {
                for needle in [b'=', 1, 2, 39, 0x80, 0xff] {
                    let h = &hay[start..end];
                    assert_eq!(
                        find_byte(h, needle),
                        h.iter().position(|&b| b == needle),
                        "{start}..{end} {needle}"
                    );
                }
            }
        }
        assert_eq!(find_byte(b"\x01\x01\x01\x01\x01\x01\x01=", b'='), Some(7));
        assert_eq!(find_byte(b"\xbd\xbd\x3d", b'='), Some(2));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Command::new("/login")
            .attr("name", "admin")
            .attr("password", "hunter2")
            .attr("response", "00abcdef");
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("abcdef"), "{d}");
        assert!(
            d.contains("=password=<redacted>") && d.contains("=name=admin"),
            "{d}"
        );
    }
}
