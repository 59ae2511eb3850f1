//! Log lines formatted exactly as RouterOS writes them: firewall `action=log` rules and
//! login events.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The service a login came through, as RouterOS names it after `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// `ssh`
    Ssh,
    /// `telnet`
    Telnet,
    /// `ftp`
    Ftp,
    /// `winbox`
    Winbox,
    /// `web`
    Web,
    /// `api`
    Api,
    /// `api-ssl`
    ApiSsl,
}

impl Service {
    /// The word after `via`.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Telnet => "telnet",
            Service::Ftp => "ftp",
            Service::Winbox => "winbox",
            Service::Web => "web",
            Service::Api => "api",
            Service::ApiSsl => "api-ssl",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Topics of a failed login.
pub const LOGIN_FAILURE_TOPICS: &str = "system,error,critical";
/// Topics of a login or logout.
pub const ACCOUNT_TOPICS: &str = "system,info,account";
/// Topics of a firewall log rule.
pub const FIREWALL_TOPICS: &str = "firewall,info";

/// `login failure for user USER from ADDR via SERVICE`; `from` is an IP address, or a MAC
/// address for MAC-winbox. The user name may be empty or contain spaces.
pub fn login_failure(user: &str, from: impl fmt::Display, via: Service) -> String {
    format!("login failure for user {user} from {from} via {via}")
}

/// `user USER logged in from ADDR via SERVICE`
pub fn logged_in(user: &str, from: impl fmt::Display, via: Service) -> String {
    format!("user {user} logged in from {from} via {via}")
}

/// `user USER logged out from ADDR via SERVICE`
pub fn logged_out(user: &str, from: impl fmt::Display, via: Service) -> String {
    format!("user {user} logged out from {from} via {via}")
}

/// The protocol part of a firewall log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirewallProto {
    /// `proto TCP (FLAGS)`, flags such as `SYN` or `ACK,FIN`.
    Tcp {
        /// Comma-separated flags.
        flags: String,
    },
    /// `proto UDP`.
    Udp,
    /// `proto ICMP (type T, code C)`: no ports.
    Icmp {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
}

/// Network address translation shown in a forward/postrouting line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Nat {
    /// Source NAT: `NAT (ORIG_SRC->NEW_SRC)->DST`.
    Src {
        /// The source after translation.
        to: SocketAddr,
    },
    /// Destination NAT: `NAT SRC->(ORIG_DST->NEW_DST)`.
    Dst {
        /// The destination after translation.
        to: SocketAddr,
    },
}

/// A firewall rule's log line:
/// `PREFIX CHAIN: in:IF out:IF, [connection-state:S ][src-mac MAC, ]proto P, SRC->DST, [NAT ..., ]len N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallLogLine {
    /// The rule's `log-prefix` (may contain spaces), if any.
    pub prefix: Option<String>,
    /// `input`, `forward`, `output`, `prerouting`, ...
    pub chain: String,
    /// Incoming interface.
    pub in_interface: String,
    /// Outgoing interface; `None` prints `(unknown 0)` as RouterOS 7 does.
    pub out_interface: Option<String>,
    /// `connection-state:` value, if the rule logs it.
    pub connection_state: Option<String>,
    /// Source MAC, absent on some interfaces.
    pub src_mac: Option<String>,
    /// Protocol and flags.
    pub proto: FirewallProto,
    /// Source (port ignored for ICMP).
    pub src: SocketAddr,
    /// Destination (port ignored for ICMP).
    pub dst: SocketAddr,
    /// Translation, if any.
    pub nat: Option<Nat>,
    /// Packet length.
    pub len: u32,
}

impl FirewallLogLine {
    /// A TCP SYN arriving on `ether1` in chain `input`, logged with `prefix`.
    pub fn tcp_syn(prefix: Option<&str>, src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            prefix: prefix.map(str::to_owned),
            chain: "input".to_owned(),
            in_interface: "ether1".to_owned(),
            out_interface: None,
            connection_state: Some("new".to_owned()),
            src_mac: Some("00:0c:42:1f:2e:3d".to_owned()),
            proto: FirewallProto::Tcp {
                flags: "SYN".to_owned(),
            },
            src,
            dst,
            nat: None,
            len: if src.is_ipv6() { 80 } else { 60 },
        }
    }

    /// A UDP datagram arriving on `ether1` in chain `input`.
    pub fn udp(prefix: Option<&str>, src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            proto: FirewallProto::Udp,
            len: 76,
            ..Self::tcp_syn(prefix, src, dst)
        }
    }

    /// An ICMP echo request arriving on `ether1` in chain `input`.
    pub fn icmp_echo(prefix: Option<&str>, src: IpAddr, dst: IpAddr) -> Self {
        Self {
            proto: FirewallProto::Icmp {
                icmp_type: 8,
                code: 0,
            },
            len: 84,
            ..Self::tcp_syn(prefix, SocketAddr::new(src, 0), SocketAddr::new(dst, 0))
        }
    }

    fn endpoint(&self, addr: SocketAddr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let icmp = matches!(self.proto, FirewallProto::Icmp { .. });
        match (icmp, addr) {
            (true, SocketAddr::V6(a)) => write!(f, "[{}]", a.ip()),
            (true, a) => write!(f, "{}", a.ip()),
            (false, SocketAddr::V4(a)) => write!(f, "{}:{}", a.ip(), a.port()),
            (false, SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
        }
    }
}

impl fmt::Display for FirewallLogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(prefix) = &self.prefix {
            write!(f, "{prefix} ")?;
        }
        write!(f, "{}: in:{} out:", self.chain, self.in_interface)?;
        match &self.out_interface {
            Some(out) => write!(f, "{out}, ")?,
            None => f.write_str("(unknown 0), ")?,
        }
        if let Some(state) = &self.connection_state {
            write!(f, "connection-state:{state} ")?;
        }
        if let Some(mac) = &self.src_mac {
            write!(f, "src-mac {mac}, ")?;
        }
        match &self.proto {
            FirewallProto::Tcp { flags } => write!(f, "proto TCP ({flags}), ")?,
            FirewallProto::Udp => f.write_str("proto UDP, ")?,
            FirewallProto::Icmp { icmp_type, code } => {
                write!(f, "proto ICMP (type {icmp_type}, code {code}), ")?;
            }
        }
        self.endpoint(self.src, f)?;
        f.write_str("->")?;
        self.endpoint(self.dst, f)?;
        f.write_str(", ")?;
        match &self.nat {
            Some(Nat::Src { to }) => {
                f.write_str("NAT (")?;
                self.endpoint(self.src, f)?;
                f.write_str("->")?;
                self.endpoint(*to, f)?;
                f.write_str(")->")?;
                self.endpoint(self.dst, f)?;
                f.write_str(", ")?;
            }
            Some(Nat::Dst { to }) => {
                f.write_str("NAT ")?;
                self.endpoint(self.src, f)?;
                f.write_str("->(")?;
                self.endpoint(self.dst, f)?;
                f.write_str("->")?;
                self.endpoint(*to, f)?;
                f.write_str("), ")?;
            }
            None => {}
        }
        write!(f, "len {}", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_syn_line_matches_the_router() {
        let line = FirewallLogLine::tcp_syn(
            Some("PORT SCAN"),
            "198.51.100.7:40384".parse().unwrap(),
            "192.0.2.1:22".parse().unwrap(),
        );
        assert_eq!(
            line.to_string(),
            "PORT SCAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1f:2e:3d, \
             proto TCP (SYN), 198.51.100.7:40384->192.0.2.1:22, len 60"
        );
    }

    #[test]
    fn udp_icmp_ipv6_and_nat_lines() {
        let mut udp = FirewallLogLine::udp(
            None,
            "198.51.100.7:5353".parse().unwrap(),
            "192.0.2.1:53".parse().unwrap(),
        );
        udp.connection_state = None;
        udp.src_mac = None;
        assert_eq!(
            udp.to_string(),
            "input: in:ether1 out:(unknown 0), proto UDP, 198.51.100.7:5353->192.0.2.1:53, len 76"
        );
        let icmp = FirewallLogLine::icmp_echo(
            Some("ping"),
            "198.51.100.7".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        );
        assert!(
            icmp.to_string()
                .ends_with("proto ICMP (type 8, code 0), 198.51.100.7->192.0.2.1, len 84"),
            "{icmp}"
        );
        let v6 = FirewallLogLine::tcp_syn(
            None,
            "[2001:db8::1]:40384".parse().unwrap(),
            "[2001:db8::2]:22".parse().unwrap(),
        );
        assert!(
            v6.to_string()
                .contains("proto TCP (SYN), [2001:db8::1]:40384->[2001:db8::2]:22, len 80"),
            "{v6}"
        );
        let mut nat = FirewallLogLine::tcp_syn(
            None,
            "10.0.0.5:34923".parse().unwrap(),
            "203.0.113.9:80".parse().unwrap(),
        );
        nat.chain = "forward".to_owned();
        nat.out_interface = Some("ether1".to_owned());
        nat.proto = FirewallProto::Tcp {
            flags: "ACK,FIN".to_owned(),
        };
        nat.nat = Some(Nat::Src {
            to: "192.0.2.1:34923".parse().unwrap(),
        });
        nat.len = 52;
        assert!(
            nat.to_string().ends_with(
                "proto TCP (ACK,FIN), 10.0.0.5:34923->203.0.113.9:80, NAT (10.0.0.5:34923->192.0.2.1:34923)->203.0.113.9:80, len 52"
            ),
            "{nat}"
        );
        assert!(
            nat.to_string()
                .starts_with("forward: in:ether1 out:ether1, ")
        );
    }

    #[test]
    fn login_lines() {
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            login_failure("admin", ip, Service::Ssh),
            "login failure for user admin from 198.51.100.7 via ssh"
        );
        assert_eq!(
            logged_in("admin", ip, Service::Winbox),
            "user admin logged in from 198.51.100.7 via winbox"
        );
        assert_eq!(
            logged_out("admin", ip, Service::Web),
            "user admin logged out from 198.51.100.7 via web"
        );
        assert_eq!(
            login_failure("", ip, Service::Ftp),
            "login failure for user  from 198.51.100.7 via ftp"
        );
    }
}
