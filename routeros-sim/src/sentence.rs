//! Command sentences as the router receives them, and reply sentences as it sends them.

use std::fmt;

use routeros_proto::codec::{decode_len, encode_len};

/// A command sentence split into its parts: path, attributes, queries and tag.
///
/// Built from the words of a decoded sentence with [`Request::from_words`], or by hand in
/// tests with [`Request::new`] and the builder methods.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The command path, e.g. `/ip/firewall/address-list/add`.
    pub command: String,
    /// `=name=value` attributes in the order sent (`.proplist` and `.id` included).
    pub attributes: Vec<(String, Vec<u8>)>,
    /// Query words without their leading `?`, in order.
    pub queries: Vec<Vec<u8>>,
    /// The `.tag=` of the sentence, echoed on every reply.
    pub tag: Option<Vec<u8>>,
}

impl Request {
    /// A request for `command` with no attributes, queries or tag.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            attributes: Vec::new(),
            queries: Vec::new(),
            tag: None,
        }
    }

    /// Adds the attribute `=name=value`.
    #[must_use]
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Adds the query word `?query` (pass it without the `?`).
    #[must_use]
    pub fn query(mut self, query: impl Into<Vec<u8>>) -> Self {
        self.queries.push(query.into());
        self
    }

    /// Sets the `.tag`.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<Vec<u8>>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Splits the words of a command sentence. The first word is the command; `=name=value`
    /// is split at the second `=` only (the value may contain `=` or be empty); `?...` is a
    /// query; `.tag=T` is the tag. Words of any other shape are ignored, as a router does.
    /// Returns `None` for an empty sentence (which a router ignores).
    pub fn from_words<W: AsRef<[u8]>>(words: impl IntoIterator<Item = W>) -> Option<Self> {
        let mut words = words.into_iter();
        let first = words.next()?;
        let mut request = Request::new(String::from_utf8_lossy(first.as_ref()).into_owned());
        for word in words {
            let word = word.as_ref();
            match word.first() {
                Some(b'=') => {
                    let rest = &word[1..];
                    let (name, value) = match rest.iter().position(|&b| b == b'=') {
                        Some(i) => (&rest[..i], &rest[i + 1..]),
                        None => (rest, &[][..]),
                    };
                    request
                        .attributes
                        .push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
                }
                Some(b'?') => request.queries.push(word[1..].to_vec()),
                Some(b'.') => {
                    if let Some(tag) = word.strip_prefix(b".tag=") {
                        request.tag = Some(tag.to_vec());
                    } else if let Some(list) = word.strip_prefix(b".proplist=") {
                        request
                            .attributes
                            .push((".proplist".to_owned(), list.to_vec()));
                    }
                }
                _ => {}
            }
        }
        Some(request)
    }

    /// The value of attribute `name` (the last one if sent twice).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.attributes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of attribute `name` as text (lossy for non-UTF-8 bytes).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether attribute `name` was sent at all (`=follow=` has an empty value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The `.proplist`, if any, as property names.
    pub fn proplist(&self) -> Option<Vec<String>> {
        self.get(".proplist").map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

impl fmt::Debug for Request {
    // Never print a password, not even in Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attributes: Vec<(String, String)> = self
            .attributes
            .iter()
            .map(|(n, v)| {
                let shown = if n == "password" || n == "response" {
                    "<redacted>".to_owned()
                } else {
                    String::from_utf8_lossy(v).into_owned()
                };
                (n.clone(), shown)
            })
            .collect();
        f.debug_struct("Request")
            .field("command", &self.command)
            .field("attributes", &attributes)
            .field(
                "queries",
                &self
                    .queries
                    .iter()
                    .map(|q| String::from_utf8_lossy(q))
                    .collect::<Vec<_>>(),
            )
            .field(
                "tag",
                &self.tag.as_ref().map(|t| String::from_utf8_lossy(t)),
            )
            .finish()
    }
}

/// One reply sentence: the reply word (`!re`, `!done`, `!trap`, `!empty`, `!fatal`) and
/// its attribute words, kept in wire form (length-prefixed words, without the terminating
/// empty word) so that sending it is a copy.
#[derive(Clone, PartialEq, Eq)]
pub struct Sentence {
    wire: Vec<u8>,
}

/// Trap categories as RouterOS numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapCategory {
    /// 0: missing item or command.
    MissingItem = 0,
    /// 1: argument value failure.
    ArgumentValue = 1,
    /// 2: execution interrupted.
    Interrupted = 2,
    /// 3: scripting failure.
    Scripting = 3,
    /// 4: general failure.
    General = 4,
    /// 5: API failure.
    Api = 5,
}

impl Sentence {
    fn with_word(word: &[u8]) -> Self {
        let mut s = Self {
            wire: Vec::with_capacity(128),
        };
        s.push_word(word);
        s
    }

    /// `!re`: one row of data.
    pub fn re() -> Self {
        Self::with_word(b"!re")
    }

    /// `!re` with room for `bytes` of words (saves regrowing big rows).
    pub fn re_with_capacity(bytes: usize) -> Self {
        let mut s = Self {
            wire: Vec::with_capacity(bytes),
        };
        s.push_word(b"!re");
        s
    }

    /// `!done`: the last reply of a command.
    pub fn done() -> Self {
        Self::with_word(b"!done")
    }

    /// `!done =ret=VALUE`.
    pub fn done_ret(ret: impl AsRef<[u8]>) -> Self {
        let mut s = Self::done();
        s.push_attr("ret", ret);
        s
    }

    /// `!empty`: the command has no data (RouterOS 7.18 and later).
    pub fn empty() -> Self {
        Self::with_word(b"!empty")
    }

    /// `!trap` with an optional category and a message.
    pub fn trap(category: Option<TrapCategory>, message: impl AsRef<[u8]>) -> Self {
        let mut s = Self::with_word(b"!trap");
        if let Some(c) = category {
            s.push_attr("category", (c as u8).to_string());
        }
        s.push_attr("message", message);
        s
    }

    /// `!fatal` followed by its reason as a bare word, as a router sends it.
    pub fn fatal(reason: impl AsRef<[u8]>) -> Self {
        let mut s = Self::with_word(b"!fatal");
        s.push_word(reason.as_ref());
        s
    }

    /// Appends one word as it is.
    pub fn push_word(&mut self, word: &[u8]) {
        // Words here are far below the 4 GiB the prefix can announce.
        if encode_len(word.len(), &mut self.wire).is_ok() {
            self.wire.extend_from_slice(word);
        }
    }

    /// Appends `=name=value`.
    pub fn push_attr(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        if encode_len(name.len() + value.len() + 2, &mut self.wire).is_ok() {
            self.wire.push(b'=');
            self.wire.extend_from_slice(name.as_bytes());
            self.wire.push(b'=');
            self.wire.extend_from_slice(value);
        }
    }

    /// Appends `.tag=TAG` when there is a tag.
    pub fn with_tag(mut self, tag: Option<&[u8]>) -> Self {
        if let Some(tag) = tag {
            if encode_len(tag.len() + 5, &mut self.wire).is_ok() {
                self.wire.extend_from_slice(b".tag=");
                self.wire.extend_from_slice(tag);
            }
        }
        self
    }

    /// The words in wire form, without the terminating empty word.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// All words, reply word first.
    pub fn words(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.wire.as_slice();
        std::iter::from_fn(move || {
            let (len, prefix) = decode_len(rest, 0).ok().flatten()?;
            let word = rest.get(prefix..prefix + len as usize)?;
            rest = rest.get(prefix + len as usize..)?;
            Some(word)
        })
    }

    /// The reply word, e.g. `!re`.
    pub fn reply_word(&self) -> &[u8] {
        self.words().next().unwrap_or_default()
    }

    /// The value of attribute `name`, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.words().skip(1).find_map(|w| {
            let rest = w.strip_prefix(b"=")?;
            let rest = rest.strip_prefix(name.as_bytes())?;
            rest.strip_prefix(b"=")
        })
    }

    /// The `.tag` of this reply, if any.
    pub fn tag(&self) -> Option<&[u8]> {
        self.words().skip(1).find_map(|w| w.strip_prefix(b".tag="))
    }
}

impl fmt::Debug for Sentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.words().map(String::from_utf8_lossy))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_attributes_at_the_second_equals_only() {
        let r = Request::from_words([
            &b"/ip/firewall/address-list/add"[..],
            b"=comment=a=b",
            b"=list=",
            b"=follow",
            b"?#|",
            b".tag=7",
            b"=.proplist=address,list",
        ])
        .unwrap();
        assert_eq!(r.command, "/ip/firewall/address-list/add");
        assert_eq!(r.get("comment"), Some(&b"a=b"[..]));
        assert_eq!(r.get("list"), Some(&b""[..]));
        assert!(r.has("follow"));
        assert_eq!(r.queries, vec![b"#|".to_vec()]);
        assert_eq!(r.tag.as_deref(), Some(&b"7"[..]));
        assert_eq!(
            r.proplist(),
            Some(vec!["address".to_owned(), "list".to_owned()])
        );
    }

    #[test]
    fn empty_sentence_is_no_request() {
        assert!(Request::from_words(Vec::<Vec<u8>>::new()).is_none());
    }

    #[test]
    fn debug_redacts_passwords() {
        let r = Request::new("/login")
            .attr("name", "admin")
            .attr("password", "hunter2");
        let shown = format!("{r:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin"));
    }

    #[test]
    fn sentences_carry_attributes_and_tags() {
        let mut s = Sentence::re();
        s.push_attr("address", "192.0.2.1");
        let s = s.with_tag(Some(b"x"));
        assert_eq!(s.reply_word(), b"!re");
        assert_eq!(s.get("address"), Some(&b"192.0.2.1"[..]));
        assert_eq!(s.tag(), Some(&b"x"[..]));
        let t = Sentence::trap(Some(TrapCategory::Interrupted), "interrupted");
        assert_eq!(t.get("category"), Some(&b"2"[..]));
        let words: Vec<&[u8]> = t.words().collect();
        assert_eq!(
            words,
            vec![&b"!trap"[..], b"=category=2", b"=message=interrupted"]
        );
        let long = "x".repeat(300);
        let mut big = Sentence::re();
        big.push_attr("comment", &long);
        assert_eq!(
            big.get("comment"),
            Some(long.as_bytes()),
            "two-byte length prefixes"
        );
        let fatal = Sentence::fatal("bye");
        assert_eq!(
            fatal.words().collect::<Vec<_>>(),
            vec![&b"!fatal"[..], b"bye"]
        );
    }
}
