//! The syslog TCP listener's bounds against a hostile or broken sender, over a real
//! loopback socket: what it reads is bounded, and a peer that breaks framing is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mtids_cli::daemon::Stats;
use mtids_e2e::{Running, Sim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An octet-counting frame starts with its length; a length that never ends (digits and
/// no space) must not be buffered without limit: the daemon counts it as malformed and
/// drops the connection after a few bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_octet_count_is_dropped_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.input.api_log = false;
    config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let addr = running.daemon.syslog_tcp_addr().unwrap();
    let stats = running.daemon.stats();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let digits = vec![b'7'; 64 * 1024];
    let mut sent = 0usize;
    // Keep sending digits; a bounded reader gives up and closes, so writes fail or the
    // read below sees the end of the stream.
    let (mut rd, mut wr) = tcp.split();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 16];
        loop {
            tokio::select! {
                w = wr.write_all(&digits) => match w {
                    Ok(()) => sent += digits.len(),
                    Err(_) => return,
                },
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
            }
            if sent > 256 << 20 {
                return; // 256 MiB accepted: the reader is not bounded.
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the daemon never dropped the connection");
    assert!(
        sent < 64 << 20,
        "the daemon read {sent} bytes of one length prefix before giving up"
    );
    assert_eq!(
        Stats::get(&stats.malformed_rows),
        1,
        "the broken frame is counted"
    );
    running.stop().await;
}

/// Past `input.syslog_tcp_max_connections` senders, a new connection is closed at once;
/// when one goes, a new one is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_past_the_cap_are_closed_and_a_freed_slot_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.input.api_log = false;
    config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap());
    config.input.syslog_tcp_max_connections = 2;
    let running = Running::start(config).await;
    let addr = running.daemon.syslog_tcp_addr().unwrap();

    // Whether the daemon closed `tcp` (end of stream) within a short wait.
    async fn closed(tcp: &mut TcpStream) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut third).await, "the third sender is closed");
    assert!(!closed(&mut first).await, "the first is served");
    assert!(!closed(&mut second).await, "the second is served");

    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    assert!(
        !closed(&mut again).await,
        "a freed slot serves a new sender"
    );
    running.stop().await;
}
