//! `/ip/firewall/connection` (and `/ipv6/firewall/connection`): a table that tests and
//! scenarios fill.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::{ChangeFeed, Record, Trap, bool_text, write_id, write_ipv4, write_num};
use crate::duration::write_duration;

/// The transport protocol of a tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP (has ports and a `tcp-state`).
    Tcp,
    /// UDP (has ports).
    Udp,
    /// ICMP (no ports).
    Icmp,
}

impl Protocol {
    /// The name RouterOS prints in `protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// One tracked connection. Build it with [`Connection::tcp`], [`Connection::udp`] or
/// [`Connection::icmp`] and the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Internal id, set when the connection enters the table.
    pub id: u64,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Originator (the port is ignored for ICMP).
    pub src: SocketAddr,
    /// Destination (the port is ignored for ICMP).
    pub dst: SocketAddr,
    /// TCP state (`established`, `syn-sent`, `syn-received`, `time-wait`, ...).
    pub tcp_state: Option<String>,
    /// Packets from the originator.
    pub orig_packets: u64,
    /// Packets in reply.
    pub repl_packets: u64,
    /// Bytes from the originator.
    pub orig_bytes: u64,
    /// Bytes in reply.
    pub repl_bytes: u64,
    /// Time left before the tracker forgets the connection.
    pub timeout: Duration,
    /// Whether a reply was seen.
    pub seen_reply: bool,
    /// Whether the connection is assured (replies both ways).
    pub assured: bool,
    /// Helper type, e.g. `ftp` for a tracked FTP control connection.
    pub connection_type: Option<String>,
}

impl Connection {
    /// An established TCP connection with replies both ways.
    pub fn tcp(src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            id: 0,
            protocol: Protocol::Tcp,
            src,
            dst,
            tcp_state: Some("established".to_owned()),
            orig_packets: 10,
            repl_packets: 9,
            orig_bytes: 1_200,
            repl_bytes: 8_400,
            timeout: Duration::from_secs(23 * 3_600 + 59 * 60 + 50),
            seen_reply: true,
            assured: true,
            connection_type: None,
        }
    }

    /// A UDP flow with one reply.
    pub fn udp(src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            protocol: Protocol::Udp,
            tcp_state: None,
            orig_packets: 1,
            repl_packets: 1,
            orig_bytes: 72,
            repl_bytes: 120,
            timeout: Duration::from_secs(10),
            assured: false,
            ..Self::tcp(src, dst)
        }
    }

    /// An ICMP exchange (no ports).
    pub fn icmp(src: IpAddr, dst: IpAddr) -> Self {
        Self {
            protocol: Protocol::Icmp,
            orig_bytes: 84,
            repl_bytes: 84,
            ..Self::udp(SocketAddr::new(src, 0), SocketAddr::new(dst, 0))
        }
    }

    /// Sets the TCP state.
    #[must_use]
    pub fn tcp_state(mut self, state: impl Into<String>) -> Self {
        self.tcp_state = Some(state.into());
        self
    }

    /// Sets the packet counters both ways.
    #[must_use]
    pub fn packets(mut self, orig: u64, repl: u64) -> Self {
        self.orig_packets = orig;
        self.repl_packets = repl;
        self
    }

    /// Sets the byte counters both ways.
    #[must_use]
    pub fn bytes(mut self, orig: u64, repl: u64) -> Self {
        self.orig_bytes = orig;
        self.repl_bytes = repl;
        self
    }

    /// Sets `seen-reply` and `assured` together (a reply makes it both on a router after
    /// the handshake; a SYN with no answer has neither).
    #[must_use]
    pub fn replied(mut self, replied: bool) -> Self {
        self.seen_reply = replied;
        self.assured = replied;
        self
    }

    /// Sets the tracker timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the helper type (`ftp`, `sip`, ...).
    #[must_use]
    pub fn connection_type(mut self, kind: impl Into<String>) -> Self {
        self.connection_type = Some(kind.into());
        self
    }
}

/// How the simulated RouterOS version prints endpoints in the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortStyle {
    /// `src-address=198.51.100.7:40384` (ip:port in one field).
    #[default]
    Combined,
    /// `src-address=198.51.100.7` plus `src-port=40384`, as some versions print.
    Separate,
}

/// A connection together with the print style in force.
pub(crate) struct ConnectionRow<'a> {
    pub conn: &'a Connection,
    pub style: PortStyle,
}

const FIELDS: &[&str] = &[
    ".id",
    "protocol",
    "src-address",
    "src-port",
    "dst-address",
    "dst-port",
    "reply-src-address",
    "reply-dst-address",
    "tcp-state",
    "timeout",
    "orig-packets",
    "orig-bytes",
    "repl-packets",
    "repl-bytes",
    "seen-reply",
    "assured",
    "confirmed",
    "dying",
    "fasttrack",
    "srcnat",
    "dstnat",
    "connection-type",
];

impl Record for ConnectionRow<'_> {
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn write_field(&self, name: &str, _now: SystemTime, out: &mut Vec<u8>) -> bool {
        use std::io::Write;
        let c = self.conn;
        let separate = self.style == PortStyle::Separate && c.protocol != Protocol::Icmp;
        let addr = |out: &mut Vec<u8>, a: SocketAddr| match (
            separate || c.protocol == Protocol::Icmp,
            a,
        ) {
            (true, SocketAddr::V4(a)) => write_ipv4(out, *a.ip()),
            (true, SocketAddr::V6(a)) => {
                let _ = write!(out, "{}", a.ip());
            }
            (false, SocketAddr::V4(a)) => {
                write_ipv4(out, *a.ip());
                out.push(b':');
                write_num(out, a.port());
            }
            (false, SocketAddr::V6(a)) => {
                let _ = write!(out, "[{}]:{}", a.ip(), a.port());
            }
        };
        match name {
            ".id" => write_id(out, c.id),
            "protocol" => out.extend_from_slice(c.protocol.as_str().as_bytes()),
            "src-address" => addr(out, c.src),
            "dst-address" => addr(out, c.dst),
            "src-port" if separate => write_num(out, c.src.port()),
            "dst-port" if separate => write_num(out, c.dst.port()),
            "reply-src-address" => addr(out, c.dst),
            "reply-dst-address" => addr(out, c.src),
            "tcp-state" => match &c.tcp_state {
                Some(state) => out.extend_from_slice(state.as_bytes()),
                None => return false,
            },
            "timeout" => write_duration(out, c.timeout),
            "orig-packets" => write_num(out, c.orig_packets),
            "orig-bytes" => write_num(out, c.orig_bytes),
            "repl-packets" => write_num(out, c.repl_packets),
            "repl-bytes" => write_num(out, c.repl_bytes),
            "seen-reply" => out.extend_from_slice(bool_text(c.seen_reply)),
            "assured" => out.extend_from_slice(bool_text(c.assured)),
            "confirmed" => out.extend_from_slice(bool_text(true)),
            "dying" | "fasttrack" | "srcnat" | "dstnat" => out.extend_from_slice(bool_text(false)),
            "connection-type" => match &c.connection_type {
                Some(kind) => out.extend_from_slice(kind.as_bytes()),
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

/// The connection-tracking table.
#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    rows: BTreeMap<u64, Connection>,
    next_id: u64,
    feed: ChangeFeed,
}

impl ConnectionTable {
    pub(crate) fn insert(&mut self, mut conn: Connection) -> u64 {
        self.next_id += 1;
        conn.id = self.next_id;
        self.feed.record(conn.id);
        self.rows.insert(conn.id, conn);
        self.next_id
    }

    pub(crate) fn rows(&self, v6: bool) -> impl Iterator<Item = &Connection> {
        self.rows.values().filter(move |c| c.src.is_ipv6() == v6)
    }

    pub(crate) fn remove(&mut self, ids: &[u64], v6: bool) -> Result<(), Trap> {
        if ids
            .iter()
            .any(|id| self.rows.get(id).is_none_or(|c| c.src.is_ipv6() != v6))
        {
            return Err(Trap::no_such_item());
        }
        for id in ids {
            self.rows.remove(id);
            self.feed.record(*id);
        }
        Ok(())
    }

    pub(crate) fn remove_one(&mut self, id: u64) -> Option<Connection> {
        let conn = self.rows.remove(&id)?;
        self.feed.record(id);
        Some(conn)
    }

    pub(crate) fn clear(&mut self) {
        for id in self.rows.keys() {
            self.feed.record(*id);
        }
        self.rows.clear();
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Connection> {
        self.rows.get(&id)
    }

    pub(crate) fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn snapshot(&self) -> Vec<Connection> {
        self.rows.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_printed_as_ip_colon_port() {
        let c = Connection::tcp(
            "198.51.100.7:40384".parse().unwrap(),
            "192.0.2.1:22".parse().unwrap(),
        );
        let row = ConnectionRow {
            conn: &c,
            style: PortStyle::Combined,
        };
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            row.field("src-address", now).unwrap().as_ref(),
            b"198.51.100.7:40384"
        );
        assert!(row.field("src-port", now).is_none());
        let row = ConnectionRow {
            conn: &c,
            style: PortStyle::Separate,
        };
        assert_eq!(
            row.field("src-address", now).unwrap().as_ref(),
            b"198.51.100.7"
        );
        assert_eq!(row.field("dst-port", now).unwrap().as_ref(), b"22");
        let v6 = Connection::udp(
            "[2001:db8::7]:5353".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
        );
        let row = ConnectionRow {
            conn: &v6,
            style: PortStyle::Combined,
        };
        assert_eq!(
            row.field("src-address", now).unwrap().as_ref(),
            b"[2001:db8::7]:5353"
        );
        assert!(row.field("tcp-state", now).is_none());
        let icmp = Connection::icmp(
            "198.51.100.7".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        );
        let row = ConnectionRow {
            conn: &icmp,
            style: PortStyle::Separate,
        };
        assert_eq!(
            row.field("src-address", now).unwrap().as_ref(),
            b"198.51.100.7"
        );
    }

    #[test]
    fn remove_is_all_or_nothing_and_per_family() {
        let mut t = ConnectionTable::default();
        let a = t.insert(Connection::tcp(
            "198.51.100.7:1".parse().unwrap(),
            "192.0.2.1:22".parse().unwrap(),
        ));
        let b = t.insert(Connection::tcp(
            "[2001:db8::7]:1".parse().unwrap(),
            "[2001:db8::1]:22".parse().unwrap(),
        ));
        assert!(t.remove(&[a, 99], false).is_err());
        assert!(
            t.remove(&[b], false).is_err(),
            "an IPv6 connection is not in /ip"
        );
        assert_eq!(t.len(), 2);
        t.remove(&[a], false).unwrap();
        assert_eq!(t.rows(true).count(), 1);
    }
}
