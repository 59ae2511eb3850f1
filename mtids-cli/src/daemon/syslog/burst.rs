//! Many syslog datagrams per system call: `recvmmsg(2)` on Linux (through nix: std,
//! socket2, rustix and tokio wrap no such call, and our crates forbid unsafe code),
//! one `recvfrom` per datagram elsewhere. At one line per datagram, as RouterOS sends
//! them, a system call per line was a fixed cost on every line (docs/performance.md).

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams received per call, at most.
pub(super) const SLOTS: usize = 32;

/// Room for one datagram: the largest UDP payload fits, as with one `recvfrom` into a
/// 64 KiB buffer (only the bytes received are touched, so resident memory stays small).
const DATAGRAM: usize = 65_536;

/// Buffers for [`SLOTS`] datagrams and what the last call received.
pub(super) struct Burst {
    buffers: Vec<Vec<u8>>,
    /// Length and sender of each datagram received by the last call.
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl Burst {
    pub(super) fn new() -> Burst {
        Burst {
            buffers: (0..SLOTS).map(|_| vec![0; DATAGRAM]).collect(),
            received: Vec::with_capacity(SLOTS),
        }
    }

    /// Receives the datagrams already queued on `socket`, up to [`SLOTS`], without
    /// waiting: `WouldBlock` when there is none (and the socket's readiness is cleared).
    pub(super) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        let Burst { buffers, received } = self;
        socket.try_io(tokio::io::Interest::READABLE, || {
            receive_into(socket, buffers, received)
        })?;
        Ok(self.received.len())
    }

    /// The `i`-th datagram of the last call and its sender.
    pub(super) fn datagram(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        let (len, sender) = *self.received.get(i)?;
        let data = self.buffers.get(i)?.get(..len)?;
        Some((data, sender))
    }
}

#[cfg(target_os = "linux")]
fn receive_into(
    socket: &UdpSocket,
    buffers: &mut [Vec<u8>],
    received: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(buffers.len(), None);
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut_slice())])
        .collect();
    let messages = recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for message in messages {
        let sender = message.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|a| SocketAddr::from(*a))
                .or_else(|| a.as_sockaddr_in6().map(|a| SocketAddr::from(*a)))
        });
        received.push((message.bytes, sender));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn receive_into(
    socket: &UdpSocket,
    buffers: &mut [Vec<u8>],
    received: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    for buffer in buffers.iter_mut() {
        match socket.try_recv_from(buffer) {
            Ok((n, sender)) => received.push((n, Some(sender))),
            Err(e) if received.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two senders interleaved, more datagrams than one call takes: every datagram comes
    /// out once, whole, in order per sender, with its own sender's address; nothing of a
    /// longer earlier datagram shows in a shorter later one in the same slot.
    #[tokio::test]
    async fn every_datagram_of_a_burst_arrives_with_its_sender() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = receiver.local_addr().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 3 * SLOTS + 5;
        for i in 0..sent {
            // Lengths that shrink and grow, so a reused slot would show stale bytes.
            let pad = "x".repeat((i * 37) % 300);
            a.send_to(format!("a-{i}-{pad}").as_bytes(), to).unwrap();
            b.send_to(format!("b-{i}").as_bytes(), to).unwrap();
        }
        let mut burst = Burst::new();
        let mut got: Vec<(String, SocketAddr)> = Vec::new();
        let mut calls = 0;
        while got.len() < 2 * sent {
            receiver.readable().await.unwrap();
            let Ok(n) = burst.receive(&receiver) else {
                continue;
            };
            assert!(n <= SLOTS);
            calls += 1;
            for i in 0..n {
                let (data, sender) = burst.datagram(i).unwrap();
                got.push((String::from_utf8(data.to_vec()).unwrap(), sender.unwrap()));
            }
        }
        assert!(
            calls < 2 * sent,
            "several datagrams per call ({calls} calls)"
        );
        let from = |socket: &std::net::UdpSocket| -> Vec<String> {
            let addr = socket.local_addr().unwrap();
            got.iter()
                .filter(|(_, s)| *s == addr)
                .map(|(d, _)| d.clone())
                .collect()
        };
        let expect_a: Vec<String> = (0..sent)
            .map(|i| format!("a-{i}-{}", "x".repeat((i * 37) % 300)))
            .collect();
        let expect_b: Vec<String> = (0..sent).map(|i| format!("b-{i}")).collect();
        assert_eq!(from(&a), expect_a);
        assert_eq!(from(&b), expect_b);
        assert!(matches!(
            burst.receive(&receiver),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        ));
    }
}
