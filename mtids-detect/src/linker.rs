//! [`TunnelLinker`]: joins a PPTP login failure to the address logged lines earlier.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::event::{Auth, AuthKind, AuthSource, Event};
use crate::time::Timestamp;

/// Most connections waiting for their session's first failure.
pub const MAX_PENDING_TUNNELS: usize = 256;
/// Most sessions whose address is remembered.
pub const MAX_LINKED_SESSIONS: usize = 1024;
/// How long a `TCP connection established` line waits for its session's failure. A PPTP
/// client authenticates within seconds of connecting; a minute leaves room for slow links.
pub const TUNNEL_LINK_WINDOW: Duration = Duration::from_secs(60);

/// Joins PPTP lines: `TCP connection established from ADDRESS` ([`Event::TunnelConnect`])
/// comes first, `<pptp-0>: user X authentication failed` ([`Event::TunnelFailure`]) later
/// and names only the session (ROUTEROS.md §5). The failure gets the address of the oldest
/// connection still waiting (connections authenticate in the order they arrive), and the
/// session keeps that address for its later failures.
///
/// Bounded: at most [`MAX_PENDING_TUNNELS`] waiting connections (each for
/// [`TUNNEL_LINK_WINDOW`]) and [`MAX_LINKED_SESSIONS`] sessions; past either bound the
/// oldest is forgotten. Sessions are keyed by their name, which RouterOS reuses once a
/// session ends: a new connection re-links a name the next time it fails.
///
/// The order is a heuristic: when two clients connect at once, their failures may swap
/// addresses. Both are tunnel clients of the same router in the same second.
///
/// ```
/// use mtids_detect::{parse_log_row, AuthKind, Timestamp, TunnelLinker};
///
/// let mut linker = TunnelLinker::default();
/// let t = Timestamp::from_secs(100);
/// let connect = parse_log_row("pptp,info", "TCP connection established from 198.51.100.7");
/// assert!(linker.link(t, &connect).is_none());
/// let failure = parse_log_row("pptp,ppp,error", "<pptp-0>: user admin authentication failed");
/// let auth = linker.link(t, &failure).expect("linked");
/// assert_eq!(auth.kind, AuthKind::Failure);
/// assert_eq!(auth.source.to_string(), "198.51.100.7");
/// ```
#[derive(Debug, Default)]
pub struct TunnelLinker {
    pending: VecDeque<(Timestamp, IpAddr)>,
    sessions: VecDeque<(Box<str>, IpAddr)>,
}

impl TunnelLinker {
    /// Reads one event: remembers a connection, or turns a session's failure into an
    /// [`Auth`] failure from the session's address. `None` for every other event, and for
    /// a failure with no connection to link it to.
    pub fn link(&mut self, now: Timestamp, event: &Event<'_>) -> Option<Auth<'static>> {
        match event {
            Event::TunnelConnect(c) => {
                if self.pending.len() >= MAX_PENDING_TUNNELS {
                    self.pending.pop_front();
                }
                self.pending.push_back((now, c.source));
                None
            }
            Event::TunnelFailure(f) => {
                let cutoff = now - TUNNEL_LINK_WINDOW;
                while self.pending.front().is_some_and(|(t, _)| *t < cutoff) {
                    self.pending.pop_front();
                }
                let known = self
                    .sessions
                    .iter()
                    .position(|(name, _)| **name == *f.session);
                let ip = match (self.pending.pop_front(), known) {
                    // A fresh connection re-uses a name a finished session had.
                    (Some((_, ip)), Some(i)) => {
                        if let Some(slot) = self.sessions.get_mut(i) {
                            slot.1 = ip;
                        }
                        ip
                    }
                    (Some((_, ip)), None) => {
                        if self.sessions.len() >= MAX_LINKED_SESSIONS {
                            self.sessions.pop_front();
                        }
                        self.sessions.push_back((f.session.as_ref().into(), ip));
                        ip
                    }
                    (None, Some(i)) => self.sessions.get(i)?.1,
                    (None, None) => return None,
                };
                Some(Auth {
                    kind: AuthKind::Failure,
                    user: f.user.clone().into_owned().into(),
                    source: AuthSource::Ip(ip),
                    service: Some(f.service.clone().into_owned().into()),
                })
            }
            _ => None,
        }
    }

    /// Connections waiting and sessions remembered, for monitoring.
    pub fn len(&self) -> usize {
        self.pending.len() + self.sessions.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_log_row;

    fn connect(linker: &mut TunnelLinker, secs: u64, ip: &str) {
        let line = format!("TCP connection established from {ip}");
        let e = parse_log_row("pptp,info", &line);
        assert!(matches!(e, Event::TunnelConnect(_)), "{e:?}");
        assert!(linker.link(Timestamp::from_secs(secs), &e).is_none());
    }

    fn fail(linker: &mut TunnelLinker, secs: u64, session: &str) -> Option<String> {
        let line = format!("<{session}>: user admin authentication failed");
        let e = parse_log_row("pptp,ppp,error", &line);
        assert!(matches!(e, Event::TunnelFailure(_)), "{e:?}");
        linker
            .link(Timestamp::from_secs(secs), &e)
            .map(|a| a.source.to_string())
    }

    #[test]
    fn failures_take_the_address_of_the_connection_before_them() {
        let mut l = TunnelLinker::default();
        connect(&mut l, 1, "198.51.100.7");
        connect(&mut l, 2, "203.0.113.9");
        assert_eq!(fail(&mut l, 3, "pptp-0").as_deref(), Some("198.51.100.7"));
        assert_eq!(fail(&mut l, 3, "pptp-1").as_deref(), Some("203.0.113.9"));
        // The session keeps its address for later failures.
        assert_eq!(fail(&mut l, 4, "pptp-1").as_deref(), Some("203.0.113.9"));
        // No connection and no known session: nothing to link.
        assert_eq!(fail(&mut l, 5, "pptp-7"), None);
    }

    #[test]
    fn stale_connections_are_not_linked_and_memory_is_bounded() {
        let mut l = TunnelLinker::default();
        connect(&mut l, 1, "198.51.100.7");
        assert_eq!(fail(&mut l, 1 + 61, "pptp-0"), None);
        for i in 0..(MAX_PENDING_TUNNELS as u64 * 3) {
            connect(&mut l, 100, &format!("198.51.100.{}", i % 250 + 1));
        }
        assert!(l.len() <= MAX_PENDING_TUNNELS);
        for i in 0..(MAX_LINKED_SESSIONS * 2) {
            connect(&mut l, 200, "203.0.113.1");
            assert!(fail(&mut l, 200, &format!("pptp-{i}")).is_some());
        }
        assert!(l.len() <= MAX_PENDING_TUNNELS + MAX_LINKED_SESSIONS);
    }
}
