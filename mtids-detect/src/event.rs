//! Typed events read from a RouterOS router: firewall log lines, logins, connection-table
//! rows and resource samples.
//!
//! Events borrow their text fields from the input they were parsed from (`Cow::Borrowed`),
//! so parsing a line allocates nothing. [`Event::into_owned`] turns a borrowed event into an
//! `Event<'static>` that can be kept (for example as evidence in a finding).
//! Addresses, ports and counters are always parsed values.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// One thing the router told us, or [`Event::Unrecognized`] when the input matched no
/// known shape.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
// Tagged `event`, not `kind`: `Auth` has a field of that name.
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event<'a> {
    /// A packet logged by a firewall rule with `action=log` or `log=yes`.
    Firewall(FirewallLog<'a>),
    /// A login failure, a login or a logout.
    Auth(Auth<'a>),
    /// A row of `/ip/firewall/connection` (or its IPv6 twin).
    Connection(ConnectionSample<'a>),
    /// A row of `/system/resource`.
    Resource(ResourceSample),
    /// A tunnel connection whose login result comes on a later line: PPTP logs
    /// `TCP connection established from ADDRESS` before the session has a name
    /// (ROUTEROS.md §5). [`crate::TunnelLinker`] joins it to the [`Event::TunnelFailure`].
    TunnelConnect(TunnelConnect<'a>),
    /// A tunnel login failure that names its session but not its address
    /// (`<pptp-0>: user X authentication failed`): the address is on an earlier
    /// [`Event::TunnelConnect`] line. The [`crate::DetectionEngine`] links the two and feeds
    /// the brute-force detector an [`Event::Auth`] failure with the address.
    TunnelFailure(TunnelFailure<'a>),
    /// Input that matched none of the shapes above. Callers count these; they are not errors.
    Unrecognized,
}

impl Event<'_> {
    /// A short lowercase name of the variant (`firewall`, `auth`, `connection`, `resource`,
    /// `tunnel_connect`, `tunnel_failure`, `unrecognized`), handy for counting lines per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Firewall(_) => "firewall",
            Event::Auth(_) => "auth",
            Event::Connection(_) => "connection",
            Event::Resource(_) => "resource",
            Event::TunnelConnect(_) => "tunnel_connect",
            Event::TunnelFailure(_) => "tunnel_failure",
            Event::Unrecognized => "unrecognized",
        }
    }

    /// A copy that owns all its text, so it can outlive the input it was parsed from.
    pub fn into_owned(self) -> Event<'static> {
        self.into_owned_with(&mut own)
    }
}

impl<'a> Event<'a> {
    /// A copy whose text fields are what `own` makes of them: [`Event::into_owned`] with
    /// another way to own a string (a caller may hand out shared `&'static` copies of
    /// the interface and chain names that repeat on every line, instead of allocating).
    pub fn into_owned_with(
        self,
        own: &mut impl FnMut(Cow<'a, str>) -> Cow<'static, str>,
    ) -> Event<'static> {
        match self {
            Event::Firewall(f) => Event::Firewall(f.owned_with(own)),
            Event::Auth(a) => Event::Auth(a.owned_with(own)),
            Event::Connection(c) => Event::Connection(c.owned_with(own)),
            Event::Resource(r) => Event::Resource(r),
            Event::TunnelConnect(t) => Event::TunnelConnect(t.owned_with(own)),
            Event::TunnelFailure(t) => Event::TunnelFailure(t.owned_with(own)),
            Event::Unrecognized => Event::Unrecognized,
        }
    }
}

fn own(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

/// A packet logged by a firewall rule:
/// `PREFIX CHAIN: in:IFACE out:IFACE, [connection-state:STATE ][src-mac MAC, ]proto PROTO[ (FLAGS)], SRC->DST, [NAT (...)->...,] len N`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FirewallLog<'a> {
    /// The rule's `log-prefix`, which may contain spaces; `None` when the rule has none.
    pub prefix: Option<Cow<'a, str>>,
    /// The chain, e.g. `input`, `forward`, `output`, `prerouting` or a custom chain.
    pub chain: Cow<'a, str>,
    /// The input interface; `None` for `(none)` / `(unknown 0)` (packets the router sends).
    pub in_interface: Option<Cow<'a, str>>,
    /// The output interface; `None` for `(none)` (RouterOS 6) and `(unknown 0)` (RouterOS 7).
    pub out_interface: Option<Cow<'a, str>>,
    /// The connection state as logged (`new`, `established`, `invalid`, ...), when logged.
    pub connection_state: Option<Cow<'a, str>>,
    /// The source MAC address, absent on interfaces without one (tunnels, PPP).
    pub src_mac: Option<MacAddr>,
    /// The IP protocol (`ICMP` between IPv6 addresses is read as [`Protocol::Icmpv6`]).
    pub protocol: Protocol,
    /// The TCP flags (empty for anything but TCP).
    pub tcp_flags: TcpFlags,
    /// ICMP type and code, for ICMP and ICMPv6.
    pub icmp: Option<IcmpType>,
    /// Source address and port (no port for ICMP and other port-less protocols).
    pub src: Endpoint,
    /// Destination address and port.
    pub dst: Endpoint,
    /// The NAT translation, when the packet was NATed.
    pub nat: Option<NatTranslation>,
    /// The packet length in bytes (`len N`), when logged.
    pub length: Option<u32>,
}

impl<'a> FirewallLog<'a> {
    /// A copy that owns all its text.
    pub fn into_owned(self) -> FirewallLog<'static> {
        self.owned_with(&mut own)
    }

    fn owned_with(
        self,
        own: &mut impl FnMut(Cow<'a, str>) -> Cow<'static, str>,
    ) -> FirewallLog<'static> {
        FirewallLog {
            prefix: self.prefix.map(&mut *own),
            chain: own(self.chain),
            in_interface: self.in_interface.map(&mut *own),
            out_interface: self.out_interface.map(&mut *own),
            connection_state: self.connection_state.map(&mut *own),
            src_mac: self.src_mac,
            protocol: self.protocol,
            tcp_flags: self.tcp_flags,
            icmp: self.icmp,
            src: self.src,
            dst: self.dst,
            nat: self.nat,
            length: self.length,
        }
    }
}

/// An IP address with an optional port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Endpoint {
    /// The address.
    pub ip: IpAddr,
    /// The port, for protocols that have ports.
    pub port: Option<u16>,
}

impl Endpoint {
    /// An endpoint with an address and a port.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Endpoint {
            ip,
            port: Some(port),
        }
    }

    /// An endpoint without a port.
    pub fn ip(ip: IpAddr) -> Self {
        Endpoint { ip, port: None }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (IpAddr::V6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
            (ip, Some(port)) => write!(f, "{ip}:{port}"),
            (ip, None) => write!(f, "{ip}"),
        }
    }
}

/// A NAT translation as logged: `NAT (A->B)->C` (source NAT: `A` became `B`),
/// `NAT A->(C->D)` (destination NAT: `C` became `D`), or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NatTranslation {
    /// The source before translation.
    pub original_src: Endpoint,
    /// The source after translation (equal to `original_src` without source NAT).
    pub translated_src: Endpoint,
    /// The destination before translation.
    pub original_dst: Endpoint,
    /// The destination after translation (equal to `original_dst` without destination NAT).
    pub translated_dst: Endpoint,
}

/// An IP protocol as RouterOS names it in logs (`TCP`) and the connection table (`tcp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    Icmpv6,
    /// Another protocol, by its IANA number (`gre` is 47, `ipsec-esp` 50, ...).
    Other(u8),
    /// A protocol name this crate does not know.
    Unknown,
}

impl Protocol {
    /// The protocol for a name or number as RouterOS writes it, case-insensitively
    /// (`TCP`, `udp`, `icmpv6`, `gre`, `47`, ...). Unknown names give [`Protocol::Unknown`].
    pub fn from_name(name: &str) -> Protocol {
        // The names logs and the connection table use all the time, before the table.
        match name {
            "TCP" | "tcp" => return Protocol::Tcp,
            "UDP" | "udp" => return Protocol::Udp,
            "ICMP" | "icmp" => return Protocol::Icmp,
            _ => {}
        }
        if let Ok(n) = name.parse::<u8>() {
            return Protocol::from_number(n);
        }
        const NAMES: &[(&str, Protocol)] = &[
            ("tcp", Protocol::Tcp),
            ("udp", Protocol::Udp),
            ("icmp", Protocol::Icmp),
            ("icmpv6", Protocol::Icmpv6),
            ("ipv6-icmp", Protocol::Icmpv6),
            ("igmp", Protocol::Other(2)),
            ("ipip", Protocol::Other(4)),
            ("ipencap", Protocol::Other(4)),
            ("egp", Protocol::Other(8)),
            ("udp-lite", Protocol::Other(136)),
            ("dccp", Protocol::Other(33)),
            ("ipv6-encap", Protocol::Other(41)),
            ("ipv6", Protocol::Other(41)),
            ("rsvp", Protocol::Other(46)),
            ("gre", Protocol::Other(47)),
            ("ipsec-esp", Protocol::Other(50)),
            ("esp", Protocol::Other(50)),
            ("ipsec-ah", Protocol::Other(51)),
            ("ah", Protocol::Other(51)),
            ("ospf", Protocol::Other(89)),
            ("etherip", Protocol::Other(97)),
            ("encap", Protocol::Other(98)),
            ("pim", Protocol::Other(103)),
            ("vrrp", Protocol::Other(112)),
            ("l2tp", Protocol::Other(115)),
            ("sctp", Protocol::Other(132)),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(Protocol::Unknown, |(_, p)| *p)
    }

    /// The protocol with this IANA number.
    pub fn from_number(n: u8) -> Protocol {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            1 => Protocol::Icmp,
            58 => Protocol::Icmpv6,
            n => Protocol::Other(n),
        }
    }

    /// The IANA number, when known.
    pub fn number(self) -> Option<u8> {
        match self {
            Protocol::Tcp => Some(6),
            Protocol::Udp => Some(17),
            Protocol::Icmp => Some(1),
            Protocol::Icmpv6 => Some(58),
            Protocol::Other(n) => Some(n),
            Protocol::Unknown => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Icmpv6 => f.write_str("icmpv6"),
            Protocol::Other(n) => write!(f, "{n}"),
            Protocol::Unknown => f.write_str("unknown"),
        }
    }
}

impl serde::Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A set of TCP flags, as logged in `proto TCP (SYN,ACK)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No flags.
    pub const EMPTY: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    const NAMES: [(&'static str, TcpFlags); 8] = [
        ("FIN", TcpFlags::FIN),
        ("SYN", TcpFlags::SYN),
        ("RST", TcpFlags::RST),
        ("PSH", TcpFlags::PSH),
        ("ACK", TcpFlags::ACK),
        ("URG", TcpFlags::URG),
        ("ECE", TcpFlags::ECE),
        ("CWR", TcpFlags::CWR),
    ];

    /// The flag with this name (`SYN`, `ack`, ...), if it is one.
    pub fn from_name(name: &str) -> Option<TcpFlags> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
    }

    /// The flags as a bit mask in TCP header order (FIN = 0x01 ... CWR = 0x80).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from a bit mask in TCP header order.
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether this is a connection attempt: SYN without ACK.
    pub const fn is_syn_only(self) -> bool {
        self.contains(TcpFlags::SYN) && !self.contains(TcpFlags::ACK)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, flag) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// ICMP type and code, as logged in `proto ICMP (type 8, code 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct IcmpType {
    /// The ICMP type (8 is an echo request).
    #[serde(rename = "type")]
    pub kind: u8,
    /// The ICMP code.
    pub code: u8,
}

/// A MAC address, as in `src-mac 00:0c:42:11:22:33` or a MAC-winbox login source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = InvalidMacAddr;

    /// Six two-digit hex groups separated by `:` or `-`, in either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b: &[u8; 17] = s.as_bytes().try_into().map_err(|_| InvalidMacAddr)?;
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            let at = i * 3;
            let (hi, lo) = (hex_digit(b[at]), hex_digit(b[at + 1]));
            let separator_ok = i == 5 || matches!(b.get(at + 2), Some(b':' | b'-'));
            match (hi, lo) {
                (Some(hi), Some(lo)) if separator_ok => *byte = hi << 4 | lo,
                _ => return Err(InvalidMacAddr),
            }
        }
        Ok(MacAddr(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    // A table instead of three ranges: MAC addresses are parsed on every firewall line.
    static HEX: [u8; 256] = {
        let mut table = [0xFF; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    let v = HEX[usize::from(c)];
    (v != 0xFF).then_some(v)
}

/// The text was not a MAC address of the form `00:0C:42:11:22:33`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidMacAddr;

impl fmt::Display for InvalidMacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a MAC address: expected six hex pairs like 00:0C:42:11:22:33")
    }
}

impl std::error::Error for InvalidMacAddr {}

impl fmt::Display for MacAddr {
    /// Upper-case hex pairs separated by colons, as RouterOS prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A login failure, a successful login or a logout.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Auth<'a> {
    /// What happened.
    pub kind: AuthKind,
    /// The user name as logged: may be empty, and may contain spaces.
    pub user: Cow<'a, str>,
    /// Where the login came from.
    pub source: AuthSource,
    /// The service after `via` (`ssh`, `winbox`, `api`, `web`, `rest-api`, ...; a CEF
    /// record's `app=`); `winbox` for `denied winbox/dude connect`, `ipsec` for a wrong
    /// IPsec pre-shared key; for PPP/L2TP/PPTP failures the tunnel topic (`l2tp`, `pptp`,
    /// `ppp`, ...). `None` when not logged.
    pub service: Option<Cow<'a, str>>,
}

impl<'a> Auth<'a> {
    /// A copy that owns all its text.
    pub fn into_owned(self) -> Auth<'static> {
        self.owned_with(&mut own)
    }

    fn owned_with(self, own: &mut impl FnMut(Cow<'a, str>) -> Cow<'static, str>) -> Auth<'static> {
        Auth {
            kind: self.kind,
            user: own(self.user),
            source: self.source,
            service: self.service.map(&mut *own),
        }
    }
}

/// What an [`Auth`] event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// `login failure for user ...` (and its variants).
    Failure,
    /// `user X logged in from ...`.
    Success,
    /// `user X logged out from ...`.
    Logout,
}

/// Where a login came from: an IP address, or a MAC address for MAC-telnet / MAC-winbox.
///
/// A MAC source can be counted and reported, but never blocked as an IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSource {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A MAC address (layer-2 login).
    Mac(MacAddr),
}

impl AuthSource {
    /// The IP address, if the source is one.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            AuthSource::Ip(ip) => Some(ip),
            AuthSource::Mac(_) => None,
        }
    }
}

impl fmt::Display for AuthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthSource::Ip(ip) => ip.fmt(f),
            AuthSource::Mac(mac) => mac.fmt(f),
        }
    }
}

/// `TCP connection established from ADDRESS`: a tunnel client connected (PPTP).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TunnelConnect<'a> {
    /// The tunnel service, from the log topics (`pptp`).
    pub service: Cow<'a, str>,
    /// Where the connection came from.
    pub source: IpAddr,
}

impl<'a> TunnelConnect<'a> {
    /// A copy that owns all its text.
    pub fn into_owned(self) -> TunnelConnect<'static> {
        self.owned_with(&mut own)
    }

    fn owned_with(
        self,
        own: &mut impl FnMut(Cow<'a, str>) -> Cow<'static, str>,
    ) -> TunnelConnect<'static> {
        TunnelConnect {
            service: own(self.service),
            source: self.source,
        }
    }
}

/// `<SESSION>: user X authentication failed` where SESSION is not an address (PPTP).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TunnelFailure<'a> {
    /// The session as logged between `<` and `>` (`pptp-0`).
    pub session: Cow<'a, str>,
    /// The user name as logged.
    pub user: Cow<'a, str>,
    /// The tunnel service, from the log topics (`pptp`; `ppp` when the topics say nothing).
    pub service: Cow<'a, str>,
}

impl<'a> TunnelFailure<'a> {
    /// A copy that owns all its text.
    pub fn into_owned(self) -> TunnelFailure<'static> {
        self.owned_with(&mut own)
    }

    fn owned_with(
        self,
        own: &mut impl FnMut(Cow<'a, str>) -> Cow<'static, str>,
    ) -> TunnelFailure<'static> {
        TunnelFailure {
            session: own(self.session),
            user: own(self.user),
            service: own(self.service),
        }
    }
}

/// A row of the connection table (`/ip/firewall/connection/print`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionSample<'a> {
    /// The row's `.id` (`*1A2B`), when the row carried one.
    pub id: Option<Cow<'a, str>>,
    /// The protocol.
    pub protocol: Protocol,
    /// The side that opened the connection (`src-address`, `src-port`).
    pub src: Endpoint,
    /// The side it was opened to (`dst-address`, `dst-port`).
    pub dst: Endpoint,
    /// Packets from the source (`orig-packets`).
    pub orig_packets: u64,
    /// Packets back to the source (`repl-packets`).
    pub repl_packets: u64,
    /// Bytes from the source (`orig-bytes`), when requested.
    pub orig_bytes: Option<u64>,
    /// Bytes back to the source (`repl-bytes`), when requested.
    pub repl_bytes: Option<u64>,
    /// The TCP state (`syn-sent`, `established`, `time-wait`, ...), for TCP.
    pub tcp_state: Option<Cow<'a, str>>,
    /// Whether a reply was seen (`seen-reply`), when requested.
    pub seen_reply: Option<bool>,
    /// Whether the connection is assured (`assured`), when requested.
    pub assured: Option<bool>,
}

impl<'a> ConnectionSample<'a> {
    /// A copy that owns all its text.
    pub fn into_owned(self) -> ConnectionSample<'static> {
        self.owned_with(&mut own)
    }

    fn owned_with(
        self,
        own: &mut impl FnMut(Cow<'a, str>) -> Cow<'static, str>,
    ) -> ConnectionSample<'static> {
        ConnectionSample {
            id: self.id.map(&mut *own),
            protocol: self.protocol,
            src: self.src,
            dst: self.dst,
            orig_packets: self.orig_packets,
            repl_packets: self.repl_packets,
            orig_bytes: self.orig_bytes,
            repl_bytes: self.repl_bytes,
            tcp_state: self.tcp_state.map(&mut *own),
            seen_reply: self.seen_reply,
            assured: self.assured,
        }
    }
}

/// A row of `/system/resource/print`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResourceSample {
    /// CPU load in percent (0 to 100).
    pub cpu_load: u8,
    /// Time since the router booted, when the row carried `uptime`. An uptime lower than
    /// the previous sample's means the router rebooted.
    pub uptime: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_in_both_cases_and_print_like_routeros() {
        let mac: MacAddr = "00:0c:42:1A:2b:3C".parse().unwrap();
        assert_eq!(mac, MacAddr([0x00, 0x0c, 0x42, 0x1a, 0x2b, 0x3c]));
        assert_eq!(mac.to_string(), "00:0C:42:1A:2B:3C");
        assert_eq!("00-0C-42-1A-2B-3C".parse::<MacAddr>(), Ok(mac));
        for bad in [
            "",
            "00:0C:42:1A:2B",
            "00:0C:42:1A:2B:3G",
            "00:0C:42:1A:2B:3C:",
            "000C:42:1A:2B:3C:",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(InvalidMacAddr), "{bad:?}");
        }
    }

    #[test]
    fn tcp_flags_combine_and_print_in_header_order() {
        let flags = TcpFlags::ACK | TcpFlags::FIN;
        assert!(flags.contains(TcpFlags::FIN));
        assert!(!flags.is_syn_only());
        assert!(TcpFlags::SYN.is_syn_only());
        assert_eq!(flags.to_string(), "FIN,ACK");
        assert_eq!(TcpFlags::from_name("psh"), Some(TcpFlags::PSH));
        assert_eq!(TcpFlags::from_name("XYZ"), None);
    }

    #[test]
    fn protocols_map_names_and_numbers() {
        assert_eq!(Protocol::from_name("TCP"), Protocol::Tcp);
        assert_eq!(Protocol::from_name("17"), Protocol::Udp);
        assert_eq!(Protocol::from_name("gre"), Protocol::Other(47));
        assert_eq!(Protocol::from_name("frobnicate"), Protocol::Unknown);
        assert_eq!(Protocol::Other(47).number(), Some(47));
        assert_eq!(Protocol::Icmpv6.to_string(), "icmpv6");
    }

    #[test]
    fn into_owned_with_hands_every_text_field_to_the_caller() {
        let line = "<30>Nov 21 10:00:01 gw firewall,info WAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 02:00:00:00:00:01, proto TCP (SYN), 11.0.1.7:1024->203.0.113.1:443, len 60";
        let parsed = crate::parse_log_line(line, &crate::LineContext::default());
        let mut seen = Vec::new();
        let owned = parsed.event.clone().into_owned_with(&mut |text| {
            seen.push(text.to_string());
            Cow::Owned(format!("{text}"))
        });
        assert_eq!(owned, parsed.event.into_owned(), "same event as into_owned");
        assert_eq!(seen, ["WAN", "input", "ether1", "new"]);

        let failure = "<27>Nov 21 10:00:01 gw system,error,critical login failure for user admin from 10.0.0.7 via ssh";
        let parsed = crate::parse_log_line(failure, &crate::LineContext::default());
        let mut seen = Vec::new();
        let owned = parsed.event.clone().into_owned_with(&mut |text| {
            seen.push(text.to_string());
            Cow::Owned(text.into_owned())
        });
        assert_eq!(owned, parsed.event.into_owned());
        assert_eq!(seen, ["admin", "ssh"]);
    }

    #[test]
    fn into_owned_keeps_every_field() {
        let user = String::from("john smith");
        let ev = Event::Auth(Auth {
            kind: AuthKind::Failure,
            user: Cow::Borrowed(&user),
            source: AuthSource::Ip("198.51.100.7".parse().unwrap()),
            service: Some(Cow::Borrowed("ssh")),
        });
        let owned: Event<'static> = ev.clone().into_owned();
        drop(user);
        let Event::Auth(auth) = owned else {
            panic!("not an auth event")
        };
        assert_eq!(auth.user, "john smith");
        assert_eq!(auth.service.as_deref(), Some("ssh"));
        assert_eq!(auth.source.ip(), Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn endpoints_print_ipv6_in_brackets() {
        let e = Endpoint::new("2001:db8::1".parse().unwrap(), 22);
        assert_eq!(e.to_string(), "[2001:db8::1]:22");
        assert_eq!(
            Endpoint::ip("192.0.2.1".parse().unwrap()).to_string(),
            "192.0.2.1"
        );
    }
}
