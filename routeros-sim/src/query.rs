//! Evaluation of API query words (`?name=x`, `?<name=x`, `?#|&!.0`) on a stack of booleans.
//!
//! As on a router: the stack starts with an endless supply of `true`, every query word
//! pushes one value, `?#` operators combine them, and an item matches when no `false` is
//! left on the stack.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::net::IpAddr;

/// A parsed query, ready to be evaluated against items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    words: Vec<QueryWord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum QueryWord {
    Has(String),
    Lacks(String),
    Equal(String, Vec<u8>),
    Less(String, Vec<u8>),
    Greater(String, Vec<u8>),
    Stack(Vec<StackOp>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StackOp {
    /// Push a copy of the item at this depth (0 is the top).
    Copy(usize),
    Not,
    And,
    Or,
    Duplicate,
}

/// A query word the router cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The offending word, with its `?`.
    pub word: String,
}

impl Query {
    /// Parses query words given without their leading `?`.
    pub fn parse<W: AsRef<[u8]>>(words: &[W]) -> Result<Self, QueryError> {
        let mut parsed = Vec::with_capacity(words.len());
        for word in words {
            let word = word.as_ref();
            let err = || QueryError {
                word: format!("?{}", String::from_utf8_lossy(word)),
            };
            let split = |rest: &[u8]| -> Option<(String, Vec<u8>)> {
                let i = rest.iter().position(|&b| b == b'=')?;
                let name = std::str::from_utf8(&rest[..i]).ok()?;
                if name.is_empty() {
                    return None;
                }
                Some((name.to_owned(), rest[i + 1..].to_vec()))
            };
            let q = match word.first() {
                None => return Err(err()),
                Some(b'#') => QueryWord::Stack(parse_ops(&word[1..]).ok_or_else(err)?),
                Some(b'-') => QueryWord::Lacks(name_of(&word[1..]).ok_or_else(err)?),
                Some(b'<') => {
                    let (n, v) = split(&word[1..]).ok_or_else(err)?;
                    QueryWord::Less(n, v)
                }
                Some(b'>') => {
                    let (n, v) = split(&word[1..]).ok_or_else(err)?;
                    QueryWord::Greater(n, v)
                }
                Some(b'=') => {
                    let (n, v) = split(&word[1..]).ok_or_else(err)?;
                    QueryWord::Equal(n, v)
                }
                Some(_) => match split(word) {
                    Some((n, v)) => QueryWord::Equal(n, v),
                    None => QueryWord::Has(name_of(word).ok_or_else(err)?),
                },
            };
            parsed.push(q);
        }
        Ok(Self { words: parsed })
    }

    /// Whether the query has no words (matches everything).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Evaluates the query for one item; `field` returns a property's value, or `None`
    /// when the item has no such property.
    pub fn matches<'a, F>(&self, field: F) -> bool
    where
        F: Fn(&str) -> Option<Cow<'a, [u8]>>,
    {
        if self.words.is_empty() {
            return true;
        }
        let mut stack: Vec<bool> = Vec::with_capacity(self.words.len());
        // Popping past the bottom yields `true`: the stack starts with endless `true`s.
        fn pop(stack: &mut Vec<bool>) -> bool {
            stack.pop().unwrap_or(true)
        }
        for word in &self.words {
            match word {
                QueryWord::Has(n) => stack.push(field(n).is_some()),
                QueryWord::Lacks(n) => stack.push(field(n).is_none()),
                QueryWord::Equal(n, v) => {
                    stack.push(field(n).is_some_and(|have| values_equal(&have, v)));
                }
                QueryWord::Less(n, v) => stack
                    .push(field(n).is_some_and(|have| compare(&have, v) == Some(Ordering::Less))),
                QueryWord::Greater(n, v) => stack.push(
                    field(n).is_some_and(|have| compare(&have, v) == Some(Ordering::Greater)),
                ),
                QueryWord::Stack(ops) => {
                    for op in ops {
                        match *op {
                            StackOp::Copy(depth) => {
                                let v = stack
                                    .len()
                                    .checked_sub(depth + 1)
                                    .and_then(|i| stack.get(i).copied())
                                    .unwrap_or(true);
                                stack.push(v);
                            }
                            StackOp::Not => {
                                let v = pop(&mut stack);
                                stack.push(!v);
                            }
                            StackOp::And => {
                                let (a, b) = (pop(&mut stack), pop(&mut stack));
                                stack.push(a && b);
                            }
                            StackOp::Or => {
                                let (a, b) = (pop(&mut stack), pop(&mut stack));
                                stack.push(a || b);
                            }
                            StackOp::Duplicate => {
                                let v = stack.last().copied().unwrap_or(true);
                                stack.push(v);
                            }
                        }
                    }
                }
            }
        }
        stack.iter().all(|&v| v)
    }
}

fn name_of(bytes: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(bytes).ok()?;
    (!name.is_empty() && !name.contains('=')).then(|| name.to_owned())
}

/// `?#` operators: digits push a copy of the item at that depth (a `.` right after an index
/// does nothing), `.` elsewhere duplicates the top, `!` negates, `&` and `|` combine.
fn parse_ops(ops: &[u8]) -> Option<Vec<StackOp>> {
    if ops.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        match ops[i] {
            b'0'..=b'9' => {
                let start = i;
                while i < ops.len() && ops[i].is_ascii_digit() {
                    i += 1;
                }
                let depth: usize = std::str::from_utf8(&ops[start..i]).ok()?.parse().ok()?;
                out.push(StackOp::Copy(depth));
                if ops.get(i) == Some(&b'.') {
                    i += 1;
                }
                continue;
            }
            b'!' => out.push(StackOp::Not),
            b'&' => out.push(StackOp::And),
            b'|' => out.push(StackOp::Or),
            b'.' => out.push(StackOp::Duplicate),
            _ => return None,
        }
        i += 1;
    }
    Some(out)
}

fn canonical_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"yes" | b"true" => Some(true),
        b"no" | b"false" => Some(false),
        _ => None,
    }
}

/// Equality as a router sees it: byte-equal, or the same boolean spelled `yes`/`true`.
fn values_equal(have: &[u8], want: &[u8]) -> bool {
    have == want
        || matches!((canonical_bool(have), canonical_bool(want)), (Some(a), Some(b)) if a == b)
}

/// Ordering for `?<` and `?>`: numbers as numbers, addresses as addresses, else bytes.
fn compare(have: &[u8], want: &[u8]) -> Option<Ordering> {
    let (a, b) = (
        std::str::from_utf8(have).ok(),
        std::str::from_utf8(want).ok(),
    );
    if let (Some(a), Some(b)) = (a, b) {
        if let (Ok(x), Ok(y)) = (a.parse::<i128>(), b.parse::<i128>()) {
            return Some(x.cmp(&y));
        }
        if let (Ok(x), Ok(y)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            return Some(x.cmp(&y));
        }
        if let (Some(x), Some(y)) = (
            crate::duration::parse_duration(a),
            crate::duration::parse_duration(b),
        ) {
            return Some(x.cmp(&y));
        }
    }
    Some(have.cmp(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(fields: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<Cow<'a, [u8]>> {
        move |name| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| Cow::Borrowed(v.as_bytes()))
        }
    }

    fn q(words: &[&str]) -> Query {
        Query::parse(&words.iter().map(|w| w.as_bytes()).collect::<Vec<_>>()).unwrap()
    }

    const TCP: &[(&str, &str)] = &[
        ("protocol", "tcp"),
        ("orig-bytes", "500"),
        ("assured", "true"),
    ];
    const UDP: &[(&str, &str)] = &[("protocol", "udp"), ("orig-bytes", "40")];
    const ICMP: &[(&str, &str)] = &[("protocol", "icmp"), ("orig-bytes", "84")];

    #[test]
    fn equality_presence_and_absence() {
        assert!(q(&["protocol=tcp"]).matches(item(TCP)));
        assert!(!q(&["protocol=tcp"]).matches(item(UDP)));
        assert!(q(&["=protocol=udp"]).matches(item(UDP)));
        assert!(q(&["assured"]).matches(item(TCP)));
        assert!(!q(&["assured"]).matches(item(UDP)));
        assert!(q(&["-assured"]).matches(item(UDP)));
        assert!(
            q(&["assured=yes"]).matches(item(TCP)),
            "yes and true are the same boolean"
        );
    }

    #[test]
    fn less_and_greater_compare_numbers_as_numbers() {
        assert!(q(&[">orig-bytes=100"]).matches(item(TCP)));
        assert!(!q(&[">orig-bytes=100"]).matches(item(UDP)));
        assert!(
            q(&["<orig-bytes=100"]).matches(item(UDP)),
            "40 < 100 although \"40\" > \"100\""
        );
    }

    #[test]
    fn stack_operators() {
        let tcp_or_udp = q(&["protocol=tcp", "protocol=udp", "#|"]);
        assert!(tcp_or_udp.matches(item(TCP)));
        assert!(tcp_or_udp.matches(item(UDP)));
        assert!(!tcp_or_udp.matches(item(ICMP)));
        let neither = q(&["protocol=tcp", "protocol=udp", "#|!"]);
        assert!(neither.matches(item(ICMP)));
        assert!(!neither.matches(item(TCP)));
        // Without `#|` both values stay on the stack and both must hold.
        assert!(!q(&["protocol=tcp", "protocol=udp"]).matches(item(TCP)));
        // `&` of tcp and assured.
        assert!(q(&["protocol=tcp", "assured", "#&"]).matches(item(TCP)));
        // Copy by depth: push copy of depth 1 (tcp? false for udp), then or with top.
        let copy = q(&["protocol=udp", "assured", "#1|"]);
        // stack: [udp, assured, udp|assured]
        assert!(
            !copy.matches(item(TCP)),
            "protocol=udp is false and stays on the stack"
        );
        // `.` duplicates, `!` negates the copy: [x, !x] never all true.
        assert!(!q(&["protocol=tcp", "#.!"]).matches(item(TCP)));
        assert!(
            q(&["protocol=tcp", "#.!|"]).matches(item(UDP)),
            "x or not x is always true"
        );
        // Popping an empty stack yields true.
        assert!(q(&["#&"]).matches(item(UDP)));
        // A `.` right after an index does nothing.
        assert!(q(&["protocol=tcp", "#0.&"]).matches(item(TCP)));
    }

    #[test]
    fn malformed_words_are_errors() {
        for bad in ["#", "#x", "<=5", "", "-", "=noval"] {
            assert!(Query::parse(&[bad.as_bytes()]).is_err(), "{bad}");
        }
    }
}
