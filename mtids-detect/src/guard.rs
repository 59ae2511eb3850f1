//! The [`Guard`]: addresses that must never be banned, whatever the detectors say.
//!
//! Checked last, on every decision target: the allowlist, the router's own addresses (set
//! at run time from `/ip/address/print`), optionally all private and local ranges, and
//! always the addresses that cannot be a real source (unspecified, multicast, broadcast).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::config::ConfigError;
use crate::finding::normalize_ip;

/// An address with a prefix length: `192.0.2.0/24`, `2001:db8::/64`, or one host (`/32`,
/// `/128`). The address is masked to the prefix, and IPv4-mapped IPv6 (`::ffff:a.b.c.d/n`
/// with `n >= 96`) becomes IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// `addr/len`, masked; `None` when `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        let (addr, len) = match addr {
            IpAddr::V6(v6) if len >= 96 && v6.to_ipv4_mapped().is_some() => {
                (normalize_ip(addr), len - 96)
            }
            _ => (addr, len),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        Some(IpPrefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The single address `addr` (normalised).
    pub fn host(addr: IpAddr) -> IpPrefix {
        let addr = normalize_ip(addr);
        IpPrefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The (masked) network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is a single host (`/32` or `/128`).
    pub fn is_host(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `ip` (normalised) is inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize_ip(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }

    /// Whether the two prefixes share any address (one contains the other).
    pub fn overlaps(&self, other: &IpPrefix) -> bool {
        let len = self.len.min(other.len);
        self.addr.is_ipv4() == other.addr.is_ipv4() && mask(self.addr, len) == mask(other.addr, len)
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            self.addr.fmt(f)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// The error for a string that is not an address or prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixParseError(String);

impl fmt::Display for PrefixParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an IP address or prefix (expected e.g. 192.0.2.1, 192.0.2.0/24, 2001:db8::/64)",
            self.0
        )
    }
}

impl std::error::Error for PrefixParseError {}

impl FromStr for IpPrefix {
    type Err = PrefixParseError;

    /// Parses `addr` or `addr/len`; the address need not be masked (`192.168.88.1/24`
    /// parses as `192.168.88.0/24`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PrefixParseError(s.chars().take(64).collect());
        let s = s.trim();
        match s.split_once('/') {
            None => s.parse().map(IpPrefix::host).map_err(|_| err()),
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| err())?;
                let len: u8 = l.parse().map_err(|_| err())?;
                IpPrefix::new(addr, len).ok_or_else(err)
            }
        }
    }
}

impl serde::Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why the guard protects an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "why", content = "entry")]
#[non_exhaustive]
pub enum GuardReason {
    /// It is inside this allowlist entry.
    Allowlisted(IpPrefix),
    /// It is (or contains) one of the router's own addresses.
    RouterAddress(IpAddr),
    /// It is in a private, loopback, link-local or shared (CGNAT) range and the guard is set
    /// to protect those.
    Private,
    /// It cannot be a real source: unspecified, multicast or broadcast.
    NotRoutable,
}

impl fmt::Display for GuardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardReason::Allowlisted(p) => write!(f, "allowlisted ({p})"),
            GuardReason::RouterAddress(a) => write!(f, "router's own address {a}"),
            GuardReason::Private => f.write_str("private or local range"),
            GuardReason::NotRoutable => f.write_str("not a routable source address"),
        }
    }
}

/// Guard settings, the `[guard]` table of the detection configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Addresses and prefixes never to ban. Default: empty (add your management hosts).
    pub allowlist: Vec<IpPrefix>,
    /// Protect every private, loopback, link-local and CGNAT range (RFC 1918, RFC 6598,
    /// RFC 4193, ...). Default `true`: an IDS on the edge router should not lock the LAN
    /// out of its own gateway (MikroTik's own docs warn you can blacklist yourself); set
    /// `false` to also block hostile inside hosts.
    pub protect_private: bool,
    /// The router's own addresses known in advance (`address` of `/ip/address/print`, as
    /// `ip/prefix`). Default: empty, because the daemon reads them from the router at run
    /// time ([`Guard::set_router_addresses`]).
    pub router_addresses: Vec<String>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            allowlist: Vec::new(),
            protect_private: true,
            router_addresses: Vec::new(),
        }
    }
}

/// A router interface address from `/ip/address/print`: the address itself is the
/// router's, the prefix is a local network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceAddress {
    /// The router's address (normalised).
    pub address: IpAddr,
    /// The network it sits in.
    pub network: IpPrefix,
}

impl FromStr for InterfaceAddress {
    type Err = PrefixParseError;

    /// Parses RouterOS's `192.168.88.1/24` (a bare address means a host prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let network: IpPrefix = s.parse()?;
        let addr_part = s.trim().split('/').next().unwrap_or_default();
        let address = addr_part
            .parse::<IpAddr>()
            .map(normalize_ip)
            .map_err(|_| PrefixParseError(s.chars().take(64).collect()))?;
        Ok(InterfaceAddress { address, network })
    }
}

/// Decides which addresses may never be banned. `Guard::default()` is the guard of
/// [`GuardConfig::default()`]: no allowlist, no router address yet, private ranges
/// protected.
#[derive(Clone, Debug)]
pub struct Guard {
    allowlist: Vec<IpPrefix>,
    router: Vec<InterfaceAddress>,
    protect_private: bool,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allowlist: Vec::new(),
            router: Vec::new(),
            protect_private: true,
        }
    }
}

impl Guard {
    /// A guard from validated settings.
    pub fn new(config: &GuardConfig) -> Result<Guard, ConfigError> {
        let mut router = Vec::new();
        for (i, a) in config.router_addresses.iter().enumerate() {
            router.push(a.parse().map_err(|e: PrefixParseError| {
                ConfigError::invalid(format!("guard.router_addresses[{i}]"), e.to_string())
            })?);
        }
        Ok(Guard {
            allowlist: config.allowlist.clone(),
            router,
            protect_private: config.protect_private,
        })
    }

    /// Replaces the router's own addresses (read from `/ip/address/print` after connecting
    /// and whenever they change).
    pub fn set_router_addresses(&mut self, addresses: impl IntoIterator<Item = InterfaceAddress>) {
        self.router = addresses.into_iter().collect();
    }

    /// The router's addresses and networks currently known.
    pub fn router_addresses(&self) -> &[InterfaceAddress] {
        &self.router
    }

    /// Adds an allowlist entry at run time.
    pub fn allow(&mut self, prefix: IpPrefix) {
        if !self.allowlist.contains(&prefix) {
            self.allowlist.push(prefix);
        }
    }

    /// Why `ip` must never be banned, or `None` when it may be.
    pub fn check(&self, ip: IpAddr) -> Option<GuardReason> {
        self.check_prefix(&IpPrefix::host(ip))
    }

    /// Why no address of `target` may be banned (a `/64` that contains an allowlisted or
    /// router address is protected as a whole), or `None` when it may be.
    pub fn check_prefix(&self, target: &IpPrefix) -> Option<GuardReason> {
        if let Some(p) = self.allowlist.iter().find(|p| p.overlaps(target)) {
            return Some(GuardReason::Allowlisted(*p));
        }
        if let Some(r) = self.router.iter().find(|r| target.contains(r.address)) {
            return Some(GuardReason::RouterAddress(r.address));
        }
        let addr = target.addr();
        if !is_routable_source(addr) {
            return Some(GuardReason::NotRoutable);
        }
        if self.protect_private && PRIVATE.iter().any(|p| p.overlaps(target)) {
            return Some(GuardReason::Private);
        }
        None
    }

    /// Whether `ip` is one of the router's addresses or inside one of its networks.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.router
            .iter()
            .any(|r| r.address == normalize_ip(ip) || r.network.contains(ip))
    }
}

fn is_routable_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpPrefix {
    IpPrefix {
        addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        len,
    }
}

const fn v6(first: u16, len: u8) -> IpPrefix {
    IpPrefix {
        addr: IpAddr::V6(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0)),
        len,
    }
}

/// Ranges that are private or local by definition (masked).
const PRIVATE: [IpPrefix; 10] = [
    v4(10, 0, 0, 0, 8),
    v4(172, 16, 0, 0, 12),
    v4(192, 168, 0, 0, 16),
    v4(127, 0, 0, 0, 8),
    v4(169, 254, 0, 0, 16),
    v4(100, 64, 0, 0, 10),
    IpPrefix {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        len: 128,
    },
    v6(0xfc00, 7),
    v6(0xfe80, 10),
    // Documentation-free ULA-like site-local (deprecated but still seen).
    v6(0xfec0, 10),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard(allow: &[&str], private: bool) -> Guard {
        Guard::new(&GuardConfig {
            allowlist: allow.iter().map(|s| s.parse().unwrap()).collect(),
            protect_private: private,
            router_addresses: vec!["203.0.113.1/24".into(), "2001:db8:1::1/64".into()],
        })
        .unwrap()
    }

    #[test]
    fn prefixes_parse_mask_and_normalise() {
        let p: IpPrefix = "192.168.88.1/24".parse().unwrap();
        assert_eq!(p.to_string(), "192.168.88.0/24");
        let m: IpPrefix = "::ffff:198.51.100.0/120".parse().unwrap();
        assert_eq!(m.to_string(), "198.51.100.0/24");
        assert_eq!("2001:db8::7".parse::<IpPrefix>().unwrap().prefix_len(), 128);
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("host.example".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0/".parse::<IpPrefix>().is_err());
        let err = "nope/8".parse::<IpPrefix>().unwrap_err().to_string();
        assert!(err.contains("`nope/8`"), "{err}");
        let p0: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(p0.contains(ip("8.8.8.8")));
        assert!(!p0.contains(ip("::1")));
    }

    #[test]
    fn allowlist_router_and_private_are_protected() {
        let g = guard(&["198.51.100.0/24", "2001:db8:aa::/48"], true);
        assert!(matches!(
            g.check(ip("198.51.100.9")),
            Some(GuardReason::Allowlisted(_))
        ));
        assert!(matches!(
            g.check(ip("::ffff:198.51.100.9")),
            Some(GuardReason::Allowlisted(_))
        ));
        assert!(matches!(
            g.check(ip("2001:db8:aa:1::5")),
            Some(GuardReason::Allowlisted(_))
        ));
        assert_eq!(
            g.check(ip("203.0.113.1")),
            Some(GuardReason::RouterAddress(ip("203.0.113.1")))
        );
        // Same network as the router, but not the router: not protected by that rule.
        assert_eq!(g.check(ip("203.0.113.50")), None);
        assert!(g.is_local(ip("203.0.113.50")));
        assert_eq!(g.check(ip("192.168.1.10")), Some(GuardReason::Private));
        assert_eq!(g.check(ip("fe80::1")), Some(GuardReason::Private));
        assert_eq!(g.check(ip("0.0.0.0")), Some(GuardReason::NotRoutable));
        assert_eq!(
            g.check(ip("255.255.255.255")),
            Some(GuardReason::NotRoutable)
        );
        assert_eq!(g.check(ip("ff02::1")), Some(GuardReason::NotRoutable));
        assert_eq!(g.check(ip("8.8.8.8")), None);
        let open = guard(&[], false);
        assert_eq!(open.check(ip("192.168.1.10")), None);
    }

    #[test]
    fn a_prefix_containing_a_protected_address_is_protected() {
        let g = guard(&["2001:db8:5::7"], false);
        let slash64: IpPrefix = "2001:db8:5::/64".parse().unwrap();
        assert!(matches!(
            g.check_prefix(&slash64),
            Some(GuardReason::Allowlisted(_))
        ));
        let router64: IpPrefix = "2001:db8:1::/64".parse().unwrap();
        assert!(matches!(
            g.check_prefix(&router64),
            Some(GuardReason::RouterAddress(_))
        ));
        let other: IpPrefix = "2001:db8:6::/64".parse().unwrap();
        assert_eq!(g.check_prefix(&other), None);
    }

    #[test]
    fn router_addresses_can_change_at_run_time() {
        let mut g = guard(&[], false);
        assert_eq!(g.check(ip("192.0.2.1")), None);
        g.set_router_addresses(["192.0.2.1/30".parse().unwrap()]);
        assert!(g.check(ip("192.0.2.1")).is_some());
        assert_eq!(g.check(ip("203.0.113.1")), None);
        assert!("bogus".parse::<InterfaceAddress>().is_err());
    }
}
