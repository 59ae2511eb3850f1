//! Login methods and the pre-6.43 MD5 challenge-response.

use std::fmt;

use md5::{Digest, Md5};

/// How [`Connection::login`](crate::Connection::login) authenticates.
///
/// `Plain` and `Auto` send the password as it is (that is the 6.43+ protocol): over plain
/// TCP (8728) anyone on the path can read it. Use API-SSL (8729) across untrusted networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoginMethod {
    /// `/login =name= =password=` (RouterOS 6.43 and later).
    Plain,
    /// `/login`, then the MD5 challenge-response (before 6.43; gone from 6.45.1).
    Legacy,
    /// Plain first; if the router answers with a `=ret=` challenge (an old router ignoring
    /// the arguments), fall back to the challenge-response. What most clients do.
    #[default]
    Auto,
}

/// The `=response=` for the legacy login: `00` followed by the hex MD5 of the byte `0x00`,
/// the password bytes and the challenge bytes (the challenge is given hex-encoded, as the
/// router sends it in `=ret=`).
///
/// Returns `None` if the challenge is not valid hex.
///
/// ```
/// // The official vector: empty password.
/// let r = routeros_proto::login::legacy_response(b"", b"93b438ec9b80057c06dd9fe67d56aa9a");
/// assert_eq!(r.as_deref(), Some("00e134102a9d330dd7b1849fedfea3cb57"));
/// ```
pub fn legacy_response(password: &[u8], challenge_hex: &[u8]) -> Option<String> {
    let challenge = decode_hex(challenge_hex)?;
    let mut h = Md5::new();
    h.update([0u8]);
    h.update(password);
    h.update(&challenge);
    let digest = h.finalize();
    let mut out = String::with_capacity(2 + 2 * digest.len());
    out.push_str("00");
    for b in digest.iter() {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0x0F));
    }
    Some(out)
}

fn hex_digit(n: u8) -> char {
    char::from(
        b"0123456789abcdef"
            .get(usize::from(n))
            .copied()
            .unwrap_or(b'0'),
    )
}

fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    s.chunks_exact(2)
        .map(|p| Some((nib(*p.first()?)? << 4) | nib(*p.get(1)?)?))
        .collect()
}

/// A password held until the login finishes; `Debug` never shows it.
#[derive(Clone, Default)]
pub(crate) struct Secret(pub(crate) Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_vector() {
        assert_eq!(
            legacy_response(b"", b"93b438ec9b80057c06dd9fe67d56aa9a").unwrap(),
            "00e134102a9d330dd7b1849fedfea3cb57"
        );
        // Upper-case hex is the same challenge.
        assert_eq!(
            legacy_response(b"", b"93B438EC9B80057C06DD9FE67D56AA9A").unwrap(),
            "00e134102a9d330dd7b1849fedfea3cb57"
        );
    }

    #[test]
    fn bad_challenge_is_none() {
        assert_eq!(legacy_response(b"x", b"abc"), None);
        assert_eq!(legacy_response(b"x", b"zz"), None);
        assert_eq!(legacy_response(b"x", b""), None);
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret(b"hunter2".to_vec())), "<redacted>");
    }
}
