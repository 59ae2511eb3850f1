//! The tokio client against routeros-sim over loopback TCP, with a connection table as big
//! as a busy router's (100,000 rows): a reader slower than the router gets every row, in
//! order, with bounded memory, and another command on the same connection is answered.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use routeros_proto::Command;
use routeros_proto::net::{Client, ClientConfig};
use routeros_sim::{Connection, Policies, Router, RouterConfig, Server, ServerConfig, User};

const USER: &str = "admin";
const PASSWORD: &str = "sim-pa55";
const ROWS: usize = 100_000;
const BUFFER: usize = 256;

async fn router_with_connections(rows: usize) -> (Router, Server) {
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new(USER, PASSWORD, Policies::FULL));
    router.add_connections((0..rows).map(|i| {
        let i = u32::try_from(i).unwrap();
        let src = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (i >> 8))),
            40_000 + u16::try_from(i % 20_000).unwrap(),
        );
        let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 80)), 443);
        Connection::tcp(src, dst)
    }));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    (router, server)
}

/// The numeric part of a RouterOS id (`*1A` -> 26).
fn id_number(id: &str) -> u64 {
    u64::from_str_radix(id.trim_start_matches('*'), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_all_100k_rows_in_order_and_a_second_command_is_answered() {
    let (_router, server) = router_with_connections(ROWS).await;
    let config = ClientConfig::new("127.0.0.1", USER, PASSWORD)
        .port(server.local_addr().port())
        .stream_buffer(BUFFER);
    let client = Client::connect(&config).await.unwrap();
    let mut rows = client
        .stream(Command::new("/ip/firewall/connection/print").proplist([".id", "src-address"]));

    let mut read = 0usize;
    let mut last_id = 0u64;
    let mut most_buffered = 0usize;
    let mut second = None;
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        let id = id_number(&row.id().unwrap());
        assert!(id > last_id, "row {read}: id {id} after {last_id}");
        last_id = id;
        read += 1;
        most_buffered = most_buffered.max(rows.buffered());
        assert!(rows.buffered() <= BUFFER, "{} buffered", rows.buffered());
        if read == 1_000 {
            // A liveness check on the same connection while the print is being read.
            let client = client.clone();
            second = Some(tokio::spawn(async move {
                client.call(Command::new("/system/resource/print")).await
            }));
        }
        // Slower than the router: a pause every 500 rows.
        if read % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert!(rows.is_finished());
    assert_eq!(read, ROWS);
    // The bound was reached (the client did hold back) and never passed.
    assert!(
        (BUFFER / 2..=BUFFER).contains(&most_buffered),
        "at most {most_buffered} buffered"
    );
    // The sim answers it after the print's last row: it waited in the socket behind the
    // rows the slow reader had not taken yet, and was not failed meanwhile.
    let answer = tokio::time::timeout(Duration::from_secs(10), second.unwrap())
        .await
        .expect("the second command is answered")
        .unwrap()
        .unwrap();
    assert_eq!(answer.rows.len(), 1);
    assert!(answer.rows[0].get_str("cpu-load").is_some());
    client.close().await;
    server.shutdown().await;
}
