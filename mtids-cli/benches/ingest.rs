//! Syslog ingest of the real `mtids run`: lines per second end to end (sender, socket,
//! framing, parsing in the listener, the batch channel, detection), kernel drops on the
//! UDP socket (what `mtids_syslog_dropped_total` reports) and resident memory.
//!
//! ```sh
//! cargo bench -p mtids-cli --bench ingest                              # 2 M lines, UDP and TCP
//! MTIDS_INGEST_LINES=5000000 MTIDS_INGEST_TRANSPORT=tcp cargo bench -p mtids-cli --bench ingest
//! cargo test -p mtids-cli --bench ingest                               # smoke size (CI)
//! ```
//!
//! It starts routeros-sim in this process, writes a configuration with `[input]
//! syslog_udp` and `syslog_tcp` on loopback, spawns the `mtids run` binary and sends the
//! lines from one thread of this process, in the BSD form RouterOS sends (ROUTEROS.md §5):
//! 80 % firewall lines of new connections from many sources, 20 % SSH login failures
//! below the threshold. UDP gets one line per datagram, as RouterOS sends them; TCP one
//! stream of newline-terminated lines in 1 MiB writes. The lines are built before the
//! clock starts: the sender shares the two cores with the daemon and should cost only
//! its system calls. Each run ends with a brute force from a marker
//! address: once the daemon logs its finding, the single detection task has consumed
//! every line before it (or the line was dropped by the kernel, which the drop counter
//! says). Lines/s is lines consumed (sent minus dropped) over the time until then.
//! Exit status 1 if the marker is never seen or the daemon does not stop cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use routeros_sim::{Router, RouterConfig, Server, ServerConfig};

mod common;
use common::{env_u64, free_port, spawn_run, stop, wait_until};

/// The brute-forcing marker addresses of the UDP run and the TCP run.
const MARKER_UDP: &str = "198.51.100.98";
const MARKER_TCP: &str = "198.51.100.99";

/// A free loopback UDP port.
fn free_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn write_config(path: &Path, router: SocketAddr, udp: SocketAddr, tcp: SocketAddr) {
    let text = format!(
        r#"[log]
level = "info"

[[router]]
name = "sim"
host = "{host}"
port = {port}
user = "admin"

[input]
syslog_udp = "{udp}"
syslog_tcp = "{tcp}"
syslog_udp_buffer = 4194304

[ledger]
path = "{ledger}"
"#,
        host = router.ip(),
        port = router.port(),
        ledger = path.with_file_name("bans.db").display(),
    );
    std::fs::write(path, text).unwrap();
}

/// The `i`-th line of the flood.
fn line(i: u64, out: &mut Vec<u8>) {
    let a = (i >> 8) as u8;
    let b = i as u8;
    if i % 5 == 4 {
        write!(
            out,
            "<27>Nov 21 10:00:01 gw.example system,error,critical login failure for user admin from 10.{a}.{b}.7 via ssh"
        )
    } else {
        write!(
            out,
            "<30>Nov 21 10:00:01 gw.example firewall,info WAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 02:00:00:00:00:01, proto TCP (SYN), 11.{a}.{b}.{}:{}->203.0.113.1:443, len 60",
            i % 200,
            1024 + i % 60_000
        )
    }
    .unwrap();
}

fn marker(address: &str, out: &mut Vec<u8>) {
    write!(
        out,
        "<27>Nov 21 10:00:01 gw.example system,error,critical login failure for user admin from {address} via ssh"
    )
    .unwrap();
}

/// The kernel's drop count of the UDP socket bound to `port` (`/proc/net/udp`, the
/// source of `mtids_syslog_dropped_total`).
fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .find_map(|row| {
            let c: Vec<&str> = row.split_whitespace().collect();
            (c.get(1) == Some(&local.as_str()))
                .then(|| c.get(12)?.parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU seconds in a `/proc/.../stat` line (utime and stime, fields 14 and
/// 15 of proc(5), in clock ticks of 1/100 s on Linux).
fn stat_cpu(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by the daemon's threads, summed by thread name:
/// `mtids-syslog` (reading, framing, parsing) and `tokio-rt-worker` (detection, the rest).
fn daemon_cpu(pid: u32) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        *by_name.entry(name.trim().to_owned()).or_insert(0.0) += stat_cpu(&stat);
    }
    by_name
}

/// CPU seconds used so far by the calling thread (the sender).
fn sender_cpu() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default())
}

/// What the daemon's threads and the sender spent between two readings, as a line.
fn cpu_line(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    sender: f64,
    lines: u64,
) -> String {
    let mut text = String::from("  cpu s:");
    let mut total = 0.0;
    for (name, t) in after {
        let used = t - before.get(name).copied().unwrap_or(0.0);
        if used > 0.0 {
            total += used;
            text.push_str(&format!(" {name} {used:.2}"));
        }
    }
    let per_line = |s: f64| s * 1e9 / lines.max(1) as f64;
    text.push_str(&format!(
        "; daemon {total:.2} ({:.0} ns/line); sender {sender:.2} ({:.0} ns/line)",
        per_line(total),
        per_line(sender)
    ));
    text
}

fn marker_seen(log: &Path, address: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(address)
}

/// The `n` lines of the flood, built before the clock starts (so the sender, on the same
/// two cores, costs what writing them costs and no formatting): one buffer, and where
/// each line ends; `newline` ends each line with `\n` (TCP).
fn flood(n: u64, newline: bool) -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::with_capacity(n as usize * 200);
    let mut ends = Vec::with_capacity(n as usize);
    for i in 0..n {
        line(i, &mut data);
        if newline {
            data.push(b'\n');
        }
        ends.push(data.len());
    }
    (data, ends)
}

/// Sends `n` lines one per datagram, then the marker's brute force; the time until its
/// finding is logged.
fn run_udp(to: SocketAddr, (data, ends): (Vec<u8>, Vec<usize>), log: &Path) -> (Duration, bool) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(to).unwrap();
    let mut buf = Vec::with_capacity(512);
    let start = Instant::now();
    let mut from = 0;
    for end in ends {
        // A full socket buffer is the daemon's problem (a drop), not the sender's.
        let _ = socket.send(&data[from..end]);
        from = end;
    }
    // The marker until its finding shows: its datagrams may be dropped like any other.
    marker(MARKER_UDP, &mut buf);
    let seen = wait_until(Duration::from_secs(120), || {
        for _ in 0..20 {
            let _ = socket.send(&buf);
        }
        std::thread::sleep(Duration::from_millis(1));
        marker_seen(log, MARKER_UDP)
    });
    (start.elapsed(), seen)
}

/// Sends `n` lines over one TCP connection in 1 MiB writes, then the marker's brute force.
fn run_tcp(to: SocketAddr, (mut data, _): (Vec<u8>, Vec<usize>), log: &Path) -> (Duration, bool) {
    let mut stream = TcpStream::connect(to).unwrap();
    for _ in 0..20 {
        marker(MARKER_TCP, &mut data);
        data.push(b'\n');
    }
    let start = Instant::now();
    for chunk in data.chunks(1 << 20) {
        stream.write_all(chunk).unwrap();
    }
    let seen = wait_until(Duration::from_secs(120), || marker_seen(log, MARKER_TCP));
    let elapsed = start.elapsed();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.read_to_end(&mut rest);
    (elapsed, seen)
}

fn main() -> ExitCode {
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"ingest".contains(filter.as_str())
    {
        return ExitCode::SUCCESS;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = env_u64("MTIDS_INGEST_LINES").unwrap_or(if full { 2_000_000 } else { 50_000 });
    let transport = std::env::var("MTIDS_INGEST_TRANSPORT").unwrap_or_else(|_| "both".into());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let router = Router::new(RouterConfig::default());
    let server = runtime
        .block_on(Server::bind(
            router.clone(),
            ServerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0))),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mtids.toml");
    let (udp, tcp) = (free_udp_port(), free_port());
    write_config(&config, server.local_addr(), udp, tcp);
    let log = dir.path().join("mtids.log");
    let mut child = spawn_run(
        Command::new(env!("CARGO_BIN_EXE_mtids")),
        &config,
        dir.path(),
        &log,
    );
    let pid = child.id();
    let ready = wait_until(Duration::from_secs(30), || {
        TcpStream::connect(tcp).is_ok() && router.session_count() > 0
    });
    if !ready {
        let _ = stop(&mut child, Duration::from_secs(20));
        eprintln!(
            "ingest: the daemon did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    std::thread::sleep(Duration::from_millis(300));
    let (idle, _) = rss_mib(pid);
    let mut ok = true;
    if transport == "both" || transport == "udp" {
        let drops_before = udp_drops(udp.port());
        let lines = flood(n, false);
        let (cpu, sender) = (daemon_cpu(pid), sender_cpu());
        let (t, seen) = run_udp(udp, lines, &log);
        let cpu = cpu_line(&cpu, &daemon_cpu(pid), sender_cpu() - sender, n);
        let dropped = udp_drops(udp.port()) - drops_before;
        let consumed = n.saturating_sub(dropped);
        let (rss, hwm) = rss_mib(pid);
        println!(
            "ingest udp: {n} lines sent, {dropped} dropped by the kernel ({:.1} %), {consumed} consumed in {:.3} s = {:.0} lines/s; RSS idle {idle:.1} MiB, now {rss:.1} MiB, peak {hwm:.1} MiB",
            dropped as f64 * 100.0 / n as f64,
            t.as_secs_f64(),
            consumed as f64 / t.as_secs_f64()
        );
        println!("{cpu}");
        ok &= seen;
    }
    if transport == "both" || transport == "tcp" {
        let lines = flood(n, true);
        let (cpu, sender) = (daemon_cpu(pid), sender_cpu());
        let (t, seen) = run_tcp(tcp, lines, &log);
        let cpu = cpu_line(&cpu, &daemon_cpu(pid), sender_cpu() - sender, n);
        let (rss, hwm) = rss_mib(pid);
        println!(
            "ingest tcp: {n} lines consumed in {:.3} s = {:.0} lines/s; RSS idle {idle:.1} MiB, now {rss:.1} MiB, peak {hwm:.1} MiB",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        );
        println!("{cpu}");
        ok &= seen;
    }
    let status = stop(&mut child, Duration::from_secs(20));
    if !ok {
        eprintln!("ingest: the marker's finding never showed: the lines were not consumed");
    }
    if !status.is_some_and(|s| s.success()) {
        eprintln!("ingest: the daemon did not stop cleanly: {status:?}");
        ok = false;
    }
    if !ok {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
