//! Users and their policies (`/user`, `/user/group`).

use std::fmt;

/// One policy of a user group, as RouterOS 7 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// May log in on the console.
    Local,
    /// May log in through telnet.
    Telnet,
    /// May log in through SSH.
    Ssh,
    /// May use FTP.
    Ftp,
    /// May reboot the router.
    Reboot,
    /// May read configuration (print).
    Read,
    /// May change configuration (add, set, remove, log).
    Write,
    /// May manage users (with `write`).
    Policy,
    /// May run tests (ping, traceroute).
    Test,
    /// May log in through Winbox.
    Winbox,
    /// May change its own password.
    Password,
    /// May log in through WebFig.
    Web,
    /// May sniff packets.
    Sniff,
    /// May see secrets (passwords, keys).
    Sensitive,
    /// May log in through the API.
    Api,
    /// May use RoMON.
    Romon,
    /// May use the REST API.
    RestApi,
}

impl Policy {
    /// Every policy, in the order RouterOS prints them.
    pub const ALL: [Policy; 17] = [
        Policy::Local,
        Policy::Telnet,
        Policy::Ssh,
        Policy::Ftp,
        Policy::Reboot,
        Policy::Read,
        Policy::Write,
        Policy::Policy,
        Policy::Test,
        Policy::Winbox,
        Policy::Password,
        Policy::Web,
        Policy::Sniff,
        Policy::Sensitive,
        Policy::Api,
        Policy::Romon,
        Policy::RestApi,
    ];

    /// The name RouterOS uses (`read`, `rest-api`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Policy::Local => "local",
            Policy::Telnet => "telnet",
            Policy::Ssh => "ssh",
            Policy::Ftp => "ftp",
            Policy::Reboot => "reboot",
            Policy::Read => "read",
            Policy::Write => "write",
            Policy::Policy => "policy",
            Policy::Test => "test",
            Policy::Winbox => "winbox",
            Policy::Password => "password",
            Policy::Web => "web",
            Policy::Sniff => "sniff",
            Policy::Sensitive => "sensitive",
            Policy::Api => "api",
            Policy::Romon => "romon",
            Policy::RestApi => "rest-api",
        }
    }

    /// The policy named `name`, if RouterOS has one.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u32 {
        1 << Policy::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }
}

/// A set of policies. Printed as RouterOS prints a group's `policy`: the granted ones in
/// RouterOS order, then the others negated (`read,write,api,!local,...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policies(u32);

impl Policies {
    /// The `full` group: every policy.
    pub const FULL: Policies = Policies((1 << Policy::ALL.len()) - 1);
    /// read, api, test: the policies of RouterOS's `read` group that the simulator
    /// enforces.
    pub const READ: Policies = Policies(1 << 5 | 1 << 14 | 1 << 8);
    /// read, write, api, test, reboot: the policies of RouterOS's `write` group that the
    /// simulator enforces.
    pub const WRITE: Policies = Policies(1 << 5 | 1 << 6 | 1 << 14 | 1 << 8 | 1 << 4);

    /// Whether `p` is in the set.
    pub fn contains(self, p: Policy) -> bool {
        self.0 & p.bit() != 0
    }

    /// The set plus `p`.
    #[must_use]
    pub fn with(self, p: Policy) -> Self {
        Self(self.0 | p.bit())
    }

    /// The set without `p`.
    #[must_use]
    pub fn without(self, p: Policy) -> Self {
        Self(self.0 & !p.bit())
    }

    /// Parses a `policy` value as RouterOS accepts it: comma-separated names, `!name`
    /// for a denied one (the same as leaving it out). The error names the unknown word.
    pub fn parse(text: &str) -> Result<Policies, String> {
        let mut set = Policies::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (deny, name) = match word.strip_prefix('!') {
                Some(name) => (true, name),
                None => (false, word),
            };
            let p = Policy::from_name(name).ok_or_else(|| word.to_owned())?;
            if !deny {
                set = set.with(p);
            }
        }
        Ok(set)
    }
}

impl fmt::Display for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let granted = Policy::ALL.into_iter().filter(|p| self.contains(*p));
        let denied = Policy::ALL.into_iter().filter(|p| !self.contains(*p));
        let words: Vec<String> = granted
            .map(|p| p.name().to_owned())
            .chain(denied.map(|p| format!("!{}", p.name())))
            .collect();
        f.write_str(&words.join(","))
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
        assert!(Policies::WRITE.contains(Policy::Reboot));
        assert!(!Policies::WRITE.contains(Policy::Policy));
    }

    #[test]
    fn policy_text_round_trips_as_routeros_prints_it() {
        let p = Policies::parse("api, read,write,!ftp").unwrap();
        assert_eq!(
            p.to_string(),
            "read,write,api,!local,!telnet,!ssh,!ftp,!reboot,!policy,!test,!winbox,\
             !password,!web,!sniff,!sensitive,!romon,!rest-api"
        );
        assert_eq!(Policies::parse(&p.to_string()).unwrap(), p);
        assert_eq!(
            Policies::parse(&Policies::FULL.to_string()).unwrap(),
            Policies::FULL
        );
        assert!(!Policies::FULL.to_string().contains('!'));
        assert_eq!(Policies::parse("read,sudo").unwrap_err(), "sudo");
    }

    #[test]
    fn debug_hides_the_password() {
        let u = User::new("admin", "s3cret", Policies::FULL);
        assert!(!format!("{u:?}").contains("s3cret"));
    }
}
