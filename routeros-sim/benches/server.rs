//! End-to-end server benchmarks over loopback: a 200k-row connection-table print, and
//! pipelined address-list adds on one connection.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use routeros_proto::codec::{Decoder, encode_sentence};
use routeros_sim::{
    Connection, Outcome, Policies, Request, Router, RouterConfig, Server, ServerConfig, Service,
    Session, User,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

const ROWS: usize = 200_000;
const ADDS: u32 = 10_000;

struct Reader {
    half: OwnedReadHalf,
    decoder: Decoder,
    buf: BytesMut,
}

impl Reader {
    /// Reads sentences until `n` `!done` have arrived; returns how many `!re` came.
    async fn until_done(&mut self, mut n: u32) -> usize {
        let mut rows = 0;
        loop {
            while let Some(s) = self.decoder.decode(&mut self.buf).unwrap() {
                match s.word(0).unwrap() {
                    b"!re" => rows += 1,
                    b"!done" => {
                        n -= 1;
                        if n == 0 {
                            return rows;
                        }
                    }
                    b"!trap" => panic!("trap: {s:?}"),
                    _ => {}
                }
            }
            self.buf.reserve(256 << 10);
            if self.half.read_buf(&mut self.buf).await.unwrap() == 0 {
                panic!("connection closed");
            }
        }
    }
}

fn encode(words: &[&str], out: &mut BytesMut) {
    encode_sentence(words.iter().map(|w| w.as_bytes()), out).unwrap();
}

async fn connect(addr: SocketAddr) -> (Reader, OwnedWriteHalf) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (read, mut write) = stream.into_split();
    let mut reader = Reader {
        half: read,
        decoder: Decoder::default(),
        buf: BytesMut::with_capacity(1 << 20),
    };
    let mut out = BytesMut::new();
    encode(&["/login", "=name=bench", "=password=bench"], &mut out);
    write.write_all(&out).await.unwrap();
    reader.until_done(1).await;
    (reader, write)
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("bench", "bench", Policies::FULL));
    router.add_connections((0..ROWS).map(|i| {
        let i = u32::try_from(i).unwrap();
        let src = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (i >> 8))),
            40_000 + (i % 20_000) as u16,
        );
        let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250) as u8)), 443);
        Connection::tcp(src, dst)
    }));
    let server = runtime
        .block_on(Server::bind(
            router.clone(),
            ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
        ))
        .unwrap();
    let addr = server.local_addr();
    let (mut reader, mut writer) = runtime.block_on(connect(addr));

    // The synchronous core alone: building the reply sentences, no sockets.
    let mut group = c.benchmark_group("core");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    let mut session = Session::new(IpAddr::V4(Ipv4Addr::LOCALHOST), Service::Api);
    router.execute(
        &mut session,
        &Request::new("/login")
            .attr("name", "bench")
            .attr("password", "bench"),
    );
    group.bench_function("execute_200k_row_print_all_properties", |b| {
        b.iter(|| {
            match router.execute(&mut session, &Request::new("/ip/firewall/connection/print")) {
                Outcome::Reply(s) => assert_eq!(s.len(), ROWS + 1),
                other => panic!("{other:?}"),
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("connection_print");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, words) in [
        (
            "200k_rows_all_properties",
            vec!["/ip/firewall/connection/print"],
        ),
        (
            "200k_rows_proplist",
            vec![
                "/ip/firewall/connection/print",
                "=.proplist=.id,src-address,dst-address,protocol,orig-packets,repl-packets,seen-reply",
            ],
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut out = BytesMut::new();
                        encode(&words, &mut out);
                        let start = Instant::now();
                        writer.write_all(&out).await.unwrap();
                        let rows = reader.until_done(1).await;
                        total += start.elapsed();
                        assert_eq!(rows, ROWS);
                    }
                    total
                })
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("address_list_add");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(ADDS)));
    let mut round = 0u32;
    group.bench_function("10k_pipelined_tagged_adds_one_connection", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let list = format!("=list=bench{round}");
                    let mut out = BytesMut::with_capacity(ADDS as usize * 96);
                    for i in 0..ADDS {
                        let address = format!("=address={}", Ipv4Addr::from(0xC633_6400 + i));
                        let tag = format!(".tag={i}");
                        encode(
                            &[
                                "/ip/firewall/address-list/add",
                                &list,
                                &address,
                                "=timeout=1d",
                                &tag,
                            ],
                            &mut out,
                        );
                    }
                    let start = Instant::now();
                    let send = writer.write_all(&out);
                    let (sent, ()) = tokio::join!(send, async {
                        reader.until_done(ADDS).await;
                    });
                    sent.unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(server_benches, benches);
criterion_main!(server_benches);
