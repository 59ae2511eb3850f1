//! The crate docs' sans-IO run loop over a real loopback TCP socket, against a scripted
//! router thread: login, a 1000-row print with a row big enough for a three-byte prefix,
//! a 7.18-style `!empty` reply, and `/quit`. No async runtime involved.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The driver reads the clock, as any driver of the sans-IO core does.
#![allow(clippy::disallowed_methods)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use routeros_proto::codec::{Decoder, encode_sentence};
use routeros_proto::{CloseReason, Command, Config, Connection, Event, LoginMethod};

const ROWS: usize = 1000;

/// Writes a sentence in small uneven pieces so the client sees splits everywhere.
fn send(sock: &mut TcpStream, words: &[&str]) {
    let mut wire = Vec::new();
    encode_sentence(words, &mut wire).unwrap();
    for piece in wire.chunks(997) {
        sock.write_all(piece).unwrap();
    }
}

fn router(listener: TcpListener) {
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_nodelay(true).unwrap();
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    let mut read = vec![0u8; 4096];
    loop {
        let n = sock.read(&mut read).unwrap();
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&read[..n]);
        while let Some(sentence) = dec.decode(&mut buf).unwrap() {
            let cmd = Command::from_sentence(&sentence).unwrap();
            let tag = format!(
                ".tag={}",
                String::from_utf8_lossy(cmd.tag_value().unwrap_or_default())
            );
            match cmd.path() {
                b"/login" => {
                    if cmd.attribute("password") == Some(&b"pw"[..]) {
                        send(&mut sock, &["!done", &tag]);
                    } else {
                        send(
                            &mut sock,
                            &["!trap", "=message=invalid user name or password (6)", &tag],
                        );
                        send(&mut sock, &["!done", &tag]);
                    }
                }
                b"/ip/address/print" => {
                    for i in 0..ROWS {
                        let comment = if i == 500 {
                            format!("=comment={}", "x".repeat(0x4000))
                        } else {
                            format!("=comment=row {i}")
                        };
                        let address = format!("=address=192.0.2.{}/24", i % 250);
                        send(
                            &mut sock,
                            &["!re", &address, "=interface=ether1", &comment, &tag],
                        );
                    }
                    send(&mut sock, &["!done", &tag]);
                }
                b"/ip/firewall/address-list/print" => {
                    send(&mut sock, &["!empty", &tag]);
                    send(&mut sock, &["!done", &tag]);
                }
                b"/quit" => {
                    send(&mut sock, &["!fatal", "session terminated on request"]);
                    return;
                }
                _ => send(&mut sock, &["!trap", "=message=no such command", &tag]),
            }
        }
    }
}

#[test]
fn run_loop_over_a_loopback_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || router(listener));

    let mut sock = TcpStream::connect(addr).unwrap();
    let mut conn = Connection::new(Config::default());
    conn.login(Instant::now(), "admin", "pw", LoginMethod::Auto)
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(30);
    let (mut print, mut empty) = (None, None);
    let (mut rows, mut big_row, mut saw_empty, mut done) = (0, false, false, 0);
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        assert!(Instant::now() < give_up, "the loop did not finish");
        while let Some(bytes) = conn.poll_transmit() {
            sock.write_all(&bytes).unwrap();
        }
        let mut handled = false;
        let mut closed = None;
        while let Some(event) = conn.poll_event() {
            handled = true;
            match event {
                Event::LoggedIn => {
                    let cmd = Command::new("/ip/address/print").proplist(["address", "interface"]);
                    print = Some(conn.send(Instant::now(), cmd).unwrap());
                    let cmd = Command::new("/ip/firewall/address-list/print").attr("list", "none");
                    empty = Some(conn.send(Instant::now(), cmd).unwrap());
                }
                Event::Row { tag, reply } => {
                    assert_eq!(Some(tag), print);
                    assert_eq!(reply.get("interface"), Some(&b"ether1"[..]));
                    big_row |= reply.get("comment").is_some_and(|c| c.len() == 0x4000);
                    rows += 1;
                }
                Event::Empty { tag } => {
                    assert_eq!(Some(tag), empty);
                    saw_empty = true;
                }
                Event::Done { .. } => {
                    done += 1;
                    if done == 2 {
                        conn.close(Instant::now());
                    }
                }
                Event::Closed(reason) => closed = Some(reason),
                other => panic!("unexpected event {other:?}"),
            }
        }
        if let Some(reason) = closed {
            break reason;
        }
        if handled {
            continue;
        }
        let now = Instant::now();
        match conn.poll_timeout() {
            Some(at) if at <= now => {
                conn.handle_timeout(now);
                continue;
            }
            at => sock
                .set_read_timeout(Some(at.map_or(Duration::from_secs(1), |at| at - now)))
                .unwrap(),
        }
        match sock.read(&mut buf) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                conn.handle_timeout(Instant::now());
            }
            Err(e) => panic!("read: {e}"),
        }
    };
    assert_eq!(closed, CloseReason::Local);
    assert_eq!(rows, ROWS);
    assert!(big_row, "the 16 KiB row arrived whole");
    assert!(saw_empty);
    assert_eq!(conn.stats().unroutable_replies, 0);
    server.join().unwrap();
}
