//! Users and their policies (`/user`, `/user/group`).

use std::fmt;

/// One policy of a user group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// May read configuration (print).
    Read,
    /// May change configuration (add, set, remove, log).
    Write,
    /// May log in through the API.
    Api,
    /// May reboot the router.
    Reboot,
    /// May run tests (ping, traceroute).
    Test,
    /// May manage users.
    Policy,
}

/// A set of policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policies(u8);

impl Policies {
    /// The `full` group: every policy.
    pub const FULL: Policies = Policies(0b11_1111);
    /// The `read` group: read, api, test.
    pub const READ: Policies = Policies(1 | 1 << 2 | 1 << 4);
    /// The `write` group: read, write, api, test, reboot.
    pub const WRITE: Policies = Policies(1 | 1 << 1 | 1 << 2 | 1 << 3 | 1 << 4);

    fn bit(p: Policy) -> u8 {
        match p {
            Policy::Read => 1,
            Policy::Write => 1 << 1,
            Policy::Api => 1 << 2,
            Policy::Reboot => 1 << 3,
            Policy::Test => 1 << 4,
            Policy::Policy => 1 << 5,
        }
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: Policy) -> bool {
        self.0 & Self::bit(p) != 0
    }

    /// The set plus `p`.
    #[must_use]
    pub fn with(self, p: Policy) -> Self {
        Self(self.0 | Self::bit(p))
    }

    /// The set without `p`.
    #[must_use]
    pub fn without(self, p: Policy) -> Self {
        Self(self.0 & !Self::bit(p))
    }
}

/// A router user. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    password: Vec<u8>,
    /// What the user may do.
    pub policies: Policies,
}

impl User {
    /// A user with a password and policies.
    pub fn new(name: impl Into<String>, password: impl Into<Vec<u8>>, policies: Policies) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            policies,
        }
    }

    pub(crate) fn password(&self) -> &[u8] {
        &self.password
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("policies", &self.policies)
            .finish()
    }
}

/// The response a pre-6.43 client sends to the MD5 challenge: `00` followed by the hex of
/// md5(0x00, password, challenge).
pub fn challenge_response(password: &[u8], challenge: &[u8]) -> String {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    hasher.update([0u8]);
    hasher.update(password);
    hasher.update(challenge);
    let digest = hasher.finalize();
    let mut out = String::from("00");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Decodes lower- or upper-case hex.
#[cfg(test)]
pub(crate) fn hex_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_challenge_vector() {
        let challenge = hex_decode(b"93b438ec9b80057c06dd9fe67d56aa9a").unwrap();
        assert_eq!(
            challenge_response(b"", &challenge),
            "00e134102a9d330dd7b1849fedfea3cb57"
        );
    }

    #[test]
    fn groups_have_the_expected_policies() {
        assert!(Policies::FULL.contains(Policy::Write));
        assert!(!Policies::READ.contains(Policy::Write));
        assert!(Policies::READ.contains(Policy::Api));
        assert!(!Policies::FULL.without(Policy::Api).contains(Policy::Api));
    }

    #[test]
    fn debug_hides_the_password() {
        let u = User::new("admin", "s3cret", Policies::FULL);
        assert!(!format!("{u:?}").contains("s3cret"));
    }
}
