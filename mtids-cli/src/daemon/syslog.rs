//! Syslog listeners (UDP and TCP) for a router's `remote` logging action: BSD lines
//! (`<PRI>Feb 15 11:25:46 host TOPICS MESSAGE`) and RFC 5424 (`<PRI>1 TIMESTAMP HOST APP
//! PROCID MSGID SD MESSAGE`), newline-delimited or octet-counted over TCP.
//!
//! Events are counted under the configured router whose host is the sender's address,
//! or under `syslog` when no router matches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mtids_detect::{Date, Event, LineContext, parse_log_line};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc};

use super::detection::Input;
use super::{Shared, Stats, timestamp};
use crate::error::CliError;

/// Longest syslog line read; longer ones are counted as malformed and skipped.
pub(crate) const MAX_LINE: usize = 8192;

/// Binds the configured listeners (synchronously, so a bad address fails `start`).
pub(crate) fn bind(
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
) -> Result<(Option<std::net::UdpSocket>, Option<std::net::TcpListener>), CliError> {
    let udp = udp
        .map(|addr| {
            let s = std::net::UdpSocket::bind(addr)
                .map_err(|e| CliError::io(format!("binding syslog UDP {addr}"), e))?;
            s.set_nonblocking(true)
                .map_err(|e| CliError::io("syslog UDP socket", e))?;
            Ok::<_, CliError>(s)
        })
        .transpose()?;
    let tcp = tcp
        .map(|addr| {
            let s = std::net::TcpListener::bind(addr)
                .map_err(|e| CliError::io(format!("binding syslog TCP {addr}"), e))?;
            s.set_nonblocking(true)
                .map_err(|e| CliError::io("syslog TCP socket", e))?;
            Ok::<_, CliError>(s)
        })
        .transpose()?;
    Ok((udp, tcp))
}

pub(crate) async fn run_udp(
    shared: Arc<Shared>,
    socket: std::net::UdpSocket,
    events: mpsc::Sender<Input>,
) {
    let Ok(socket) = UdpSocket::from_std(socket) else {
        return;
    };
    let mut shutdown = shared.shutdown.clone();
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                let source = shared.syslog_source(peer.ip());
                let data = buf.get(..n).unwrap_or_default();
                for line in data.split(|b| *b == b'\n') {
                    if line.is_empty() {
                        continue;
                    }
                    if handle_line(&shared, source, line, &events).await.is_err() {
                        return;
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

pub(crate) async fn run_tcp(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    events: mpsc::Sender<Input>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut shutdown = shared.shutdown.clone();
    // Each sender costs a task and a buffer: past the cap, new ones are closed at once.
    let slots = Arc::new(Semaphore::new(
        shared.config.input.syslog_tcp_max_connections,
    ));
    let mut refusing = false;
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, peer)) = r else { continue };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    if !refusing {
                        tracing::warn!(
                            %peer,
                            max = shared.config.input.syslog_tcp_max_connections,
                            "syslog TCP senders at input.syslog_tcp_max_connections: closing new connections"
                        );
                    }
                    refusing = true;
                    drop(stream);
                    continue;
                };
                refusing = false;
                tracing::debug!(%peer, "syslog TCP connection");
                let shared = Arc::clone(&shared);
                let events = events.clone();
                let source = shared.syslog_source(peer.ip());
                tokio::spawn(async move {
                    let _slot = slot; // Freed when the sender goes.
                    let mut shutdown = shared.shutdown.clone();
                    tokio::select! {
                        () = read_tcp(&shared, source, stream, &events) => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads frames: `LEN SP MSG` (octet counting) when a frame starts with a digit,
/// otherwise a line up to `\n`.
async fn read_tcp(
    shared: &Shared,
    source: usize,
    stream: tokio::net::TcpStream,
    events: &mpsc::Sender<Input>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let first = match reader.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(buf) => buf.first().copied(),
        };
        line.clear();
        if first.is_some_and(|b| b.is_ascii_digit()) {
            // `MAX_LINE` has 4 digits: a longer prefix is malformed, and must not be
            // buffered without limit while waiting for its space.
            let mut len = Vec::new();
            if (&mut reader)
                .take(8)
                .read_until(b' ', &mut len)
                .await
                .is_err()
            {
                return;
            }
            let Some(n) = std::str::from_utf8(len.trim_ascii())
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
            else {
                Stats::bump(&shared.stats.malformed_rows);
                return; // Framing lost: drop the connection, the router reconnects.
            };
            if n > MAX_LINE {
                Stats::bump(&shared.stats.malformed_rows);
                return;
            }
            line.resize(n, 0);
            if reader.read_exact(&mut line).await.is_err() {
                return;
            }
        } else {
            let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
            match limited.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
                Stats::bump(&shared.stats.malformed_rows);
                // Skip the rest of the overlong line.
                let mut rest = Vec::new();
                let mut limited = (&mut reader).take(1 << 20);
                let _ = limited.read_until(b'\n', &mut rest).await;
                continue;
            }
        }
        if handle_line(shared, source, &line, events).await.is_err() {
            return;
        }
    }
}

async fn handle_line(
    shared: &Shared,
    source: usize,
    raw: &[u8],
    events: &mpsc::Sender<Input>,
) -> Result<(), ()> {
    let observed = Instant::now();
    Stats::bump(&shared.stats.log_rows);
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\r', '\n', '\0']);
    let line = normalize_rfc5424(text);
    let now_sys = shared.now();
    let ctx = LineContext::new(Date::of(timestamp(now_sys)), 0);
    let parsed = parse_log_line(&line, &ctx);
    if matches!(parsed.event, Event::Unrecognized) {
        return Ok(()); // Counted as a row; nothing to detect.
    }
    let event = parsed.event.into_owned();
    events
        .send(Input::Event {
            source,
            now: timestamp(now_sys),
            event,
            observed,
        })
        .await
        .map_err(|_| ())
}

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` becomes `TIMESTAMP HOST APP MSG`, the
/// RFC 3339 form the parser reads (RouterOS puts the topics in APP-NAME). Other lines are
/// returned as they are.
pub(crate) fn normalize_rfc5424(line: &str) -> std::borrow::Cow<'_, str> {
    let rest = match line.strip_prefix('<').and_then(|l| l.split_once('>')) {
        Some((pri, rest)) if pri.len() <= 3 && pri.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => return line.into(),
    };
    let Some(rest) = rest.strip_prefix("1 ") else {
        return line.into();
    };
    let mut parts = rest.splitn(6, ' ');
    let (Some(ts), Some(host), Some(app), Some(_procid), Some(_msgid), Some(tail)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return line.into();
    };
    // Structured data: `-` or one or more `[...]` elements.
    let msg = if let Some(m) = tail.strip_prefix("- ") {
        m
    } else if tail == "-" {
        ""
    } else if tail.starts_with('[') {
        tail.find("] ")
            .and_then(|i| tail.get(i + 2..))
            .unwrap_or("")
    } else {
        tail
    };
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    if app == "-" {
        format!("{ts} {host} {msg}").into()
    } else {
        format!("{ts} {host} {app} {msg}").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_becomes_the_rfc3339_form() {
        let l = "<86>1 2026-11-21T10:00:01.000+00:00 gw system,error,critical - - - login failure for user admin from 198.51.100.7 via ssh";
        assert_eq!(
            normalize_rfc5424(l),
            "2026-11-21T10:00:01.000+00:00 gw system,error,critical login failure for user admin from 198.51.100.7 via ssh"
        );
        let sd = "<86>1 2026-11-21T10:00:01Z gw firewall,info - - [meta x=\"1\"] drop input";
        assert_eq!(
            normalize_rfc5424(sd),
            "2026-11-21T10:00:01Z gw firewall,info drop input"
        );
        let bsd = "<86>Nov 21 10:00:01 gw system,info hello";
        assert_eq!(normalize_rfc5424(bsd), bsd);
        assert_eq!(normalize_rfc5424("<1>1 short"), "<1>1 short");
    }

    #[test]
    fn rfc5424_lines_parse_to_events() {
        let l = "<86>1 2026-11-21T10:00:01.000+00:00 gw system,error,critical - - - login failure for user admin from 198.51.100.7 via ssh";
        let line = normalize_rfc5424(l);
        let parsed = parse_log_line(&line, &LineContext::new(Date::new(2026, 11, 21), 0));
        assert_eq!(parsed.event.kind(), "auth", "{line}");
    }
}
