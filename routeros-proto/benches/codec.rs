//! Throughput of the codec and the client state machine.
//!
//! `decode/connection_print_100k`: a realistic `/ip/firewall/connection/print` reply
//! stream (100k `!re` rows of 20 attributes, then `!done`) read in 64 KiB socket-sized
//! chunks and decoded into [`Reply`] values. Memory stays at one read chunk plus one
//! sentence. `connection/...` runs the same stream through [`Connection`] (routing
//! included, reading paused and resumed around every chunk as under backpressure), and
//! `connection_rows/...` reports that run in rows per second. `encode/...` encodes
//! address-list commands.
//!
//! The machine this runs on may be shared, which makes wall-clock figures depend on the
//! neighbours' load. The `cpu_time/...` groups repeat the decode benches measured in CPU
//! time of the benchmark thread (Linux `/proc/thread-self/schedstat`): what one core
//! achieves, whatever else runs. That counter moves in scheduler ticks, fine for the
//! decode iterations (tens of ms) but too coarse for the encode ones (about 1 ms), which
//! are measured in wall time only.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The benchmark needs a starting instant; the crate itself never reads the clock.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use routeros_proto::codec::{Decoder, encode_sentence};
use routeros_proto::{Command, Config, Connection, Event, Reply};

const ROWS: usize = 100_000;
const CHUNK: usize = 64 * 1024;

/// The wire bytes of a 100k-row connection table print, tagged `.tag=1`.
fn connection_print_stream() -> Vec<u8> {
    let mut out = Vec::with_capacity(ROWS * 600);
    let states = ["established", "time-wait", "syn-sent", "close", "fin-wait"];
    for i in 0..ROWS {
        let a = (i >> 8) & 0xff;
        let b = i & 0xff;
        let words = [
            "!re".to_string(),
            format!("=.id=*{:X}", 0x10_0000 + i),
            format!("=src-address=10.{a}.{b}.{}:{}", i % 251, 1024 + i % 60000),
            format!(
                "=dst-address=203.0.113.{}:{}",
                i % 254,
                [443, 80, 22, 53][i % 4]
            ),
            format!(
                "=reply-src-address=203.0.113.{}:{}",
                i % 254,
                [443, 80, 22, 53][i % 4]
            ),
            format!("=reply-dst-address=198.51.100.1:{}", 1024 + i % 60000),
            format!("=protocol={}", if i % 5 == 0 { "udp" } else { "tcp" }),
            "=connection-type=".to_string(),
            format!("=timeout={}h{}m{}s", i % 24, i % 60, i % 59),
            format!("=tcp-state={}", states[i % states.len()]),
            format!("=orig-packets={}", i * 3 % 100_000),
            format!("=orig-bytes={}", i * 1337 % 10_000_000),
            format!("=repl-packets={}", i * 7 % 100_000),
            format!("=repl-bytes={}", i * 7331 % 100_000_000),
            format!("=orig-rate={}bps", i % 9000),
            format!("=repl-rate={}bps", i % 7000),
            "=assured=true".to_string(),
            "=confirmed=true".to_string(),
            "=seen-reply=true".to_string(),
            "=fasttrack=false".to_string(),
            format!("=srcnat={}", i % 3 == 0),
            ".tag=1".to_string(),
        ];
        encode_sentence(&words, &mut out).unwrap();
    }
    encode_sentence(["!done", ".tag=1"], &mut out).unwrap();
    out
}

/// CPU time consumed by the calling thread, from `/proc/thread-self/schedstat` (ns).
struct ThreadCpuTime;

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns().unwrap_or(0)
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().unwrap_or(0).saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn decode(c: &mut Criterion) {
    decode_benches(c, "decode", "connection");
}

fn decode_cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    if thread_cpu_ns().is_none() {
        eprintln!("cpu_time benches skipped: /proc/thread-self/schedstat is not readable here");
        return;
    }
    decode_benches(c, "cpu_time/decode", "cpu_time/connection");
}

fn decode_benches<M: Measurement>(c: &mut Criterion<M>, decode_name: &str, conn_name: &str) {
    let stream = connection_print_stream();
    let mut g = c.benchmark_group(decode_name);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(20);
    g.bench_function("connection_print_100k", |bench| {
        bench.iter(|| {
            let mut dec = Decoder::default();
            let mut buf = BytesMut::with_capacity(2 * CHUNK);
            let mut rows = 0usize;
            for chunk in stream.chunks(CHUNK) {
                buf.extend_from_slice(chunk);
                while let Some(s) = dec.decode(&mut buf).unwrap() {
                    let reply = Reply::parse(s).unwrap();
                    rows += usize::from(reply.get(b"protocol").is_some());
                    black_box(&reply);
                }
            }
            assert_eq!(rows, ROWS);
        });
    });
    g.finish();

    let mut g = c.benchmark_group(conn_name);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(20);
    g.bench_function("connection_print_100k", |bench| {
        bench.iter(|| print_through_connection(&stream));
    });
    g.finish();

    // The same run counted in rows: what a consumer of the client sees (rows/s).
    let mut g = c.benchmark_group(format!("{conn_name}_rows"));
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(20);
    g.bench_function("connection_print_100k", |bench| {
        bench.iter(|| print_through_connection(&stream));
    });
    g.finish();
}

/// Feeds the print's reply stream to a [`Connection`] in socket-sized chunks, with the
/// reading paused and resumed around each chunk as the tokio client's backpressure does,
/// and takes every event.
fn print_through_connection(stream: &[u8]) {
    let now = Instant::now();
    let mut conn = Connection::new(Config::default());
    let tag = conn
        .send(now, Command::new("/ip/firewall/connection/print"))
        .unwrap();
    assert_eq!(tag.value(), 1);
    let mut rows = 0usize;
    for chunk in stream.chunks(CHUNK) {
        conn.handle_input(now, chunk);
        conn.pause_reading(now);
        while let Some(ev) = conn.poll_event() {
            if let Event::Row { reply, .. } = &ev {
                rows += usize::from(reply.get(b"protocol").is_some());
            }
            black_box(ev);
        }
        conn.resume_reading(now);
    }
    assert_eq!(rows, ROWS);
}

fn encode(c: &mut Criterion) {
    encode_benches(c, "encode");
}

fn encode_benches(c: &mut Criterion, name: &str) {
    let commands: Vec<Command> = (0..10_000u32)
        .map(|i| {
            Command::new("/ip/firewall/address-list/add")
                .attr("list", "mtids-blocked")
                .attr("address", format!("198.51.{}.{}", i >> 8 & 0xff, i & 0xff))
                .attr("timeout", "1d")
                .attr("comment", format!("mtids: port scan, score {i}"))
                .tag(i.to_string())
        })
        .collect();
    let total: usize = commands.iter().map(Command::encoded_len).sum();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("address_list_add_10k", |bench| {
        let mut out = Vec::with_capacity(total);
        bench.iter(|| {
            out.clear();
            for cmd in &commands {
                cmd.encode(&mut out).unwrap();
            }
            black_box(&out);
        });
    });
    g.bench_function("build_and_encode_address_list_add_10k", |bench| {
        let mut out = Vec::with_capacity(total);
        bench.iter(|| {
            out.clear();
            for i in 0..10_000u32 {
                Command::new("/ip/firewall/address-list/add")
                    .attr("list", "mtids-blocked")
                    .attr("address", format!("198.51.{}.{}", i >> 8 & 0xff, i & 0xff))
                    .attr("timeout", "1d")
                    .attr("comment", format!("mtids: port scan, score {i}"))
                    .tag(i.to_string())
                    .encode(&mut out)
                    .unwrap();
            }
            black_box(&out);
        });
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = decode_cpu_time
}
criterion_main!(benches, cpu_time);
