//! One real `mtids run` against a fleet of N simulated routers: connect-all time, steady
//! RSS / CPU / threads / descriptors, how fast one ban reaches every router (p50/p99), the
//! memory after many active bans, and what the connection polls cost each router.
//!
//! ```sh
//! cargo test -p mtids-cli --bench fleet                                    # smoke: 50 routers
//! MTIDS_FLEET_ROUTERS=1000 cargo bench -p mtids-cli --bench fleet
//! MTIDS_FLEET_ROUTERS=1000 MTIDS_FLEET_CONNECTIONS=400 cargo bench -p mtids-cli --bench fleet
//! MTIDS_FLEET_ROUTERS=5000 MTIDS_FLEET_BANS=100 cargo bench -p mtids-cli --bench fleet
//! ```
//!
//! The simulated routers are routeros-sim listeners in this process (one `Router` and one
//! loopback listener each, on one runtime thread); `MTIDS_FLEET_CONNECTIONS=N` fills each
//! table with N benign connections (replied both ways). The bench writes a configuration
//! with every router and a syslog TCP input, spawns the `mtids run` binary, and waits until
//! every router has an API session (connect-all). It then samples the daemon for
//! `MTIDS_FLEET_STEADY_SECS` (default 10, smoke 3): RSS, CPU (utime+stime from
//! `/proc/PID/stat`), threads and open descriptors. It sends a brute force (10 SSH login
//! failures from one address, in the BSD syslog form RouterOS sends) and times, per router,
//! when the address is on its `mtids-blocked` list (the ban's propagation, detection
//! included); then `MTIDS_FLEET_BANS` (default 100, smoke 10) addresses in all and the RSS
//! once every router has them all. Last, what the routers sent for the connection polls
//! (routeros-sim's per-command counters). The daemon then gets SIGTERM and must exit 0.
//! Exits 1 when a router is not connected or a ban does not reach every router in 60 s.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use routeros_sim::{Connection, Router, RouterConfig, Server, ServerConfig};

mod common;
use common::{env_u64, free_port, mib, stop, tail};

const LIST: &str = "mtids-blocked";
const CONNECTION_PRINT: &str = "/ip/firewall/connection/print";

/// The bench holds two sockets per router (listener and accepted session).
fn raise_own_descriptor_limit(routers: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let want = (routers * 2 + 256).min(now.maximum.unwrap_or(u64::MAX));
    if now.current.is_some_and(|c| c < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: now.maximum,
            },
        );
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    rss: u64,
    threads: u64,
    cpu_ticks: u64,
}

fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 14th field.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Sample {
        rss: field("VmRSS:")? * 1024,
        threads: field("Threads:")?,
        cpu_ticks: utime + stime,
    })
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

fn write_config(path: &Path, routers: &[SocketAddr], syslog: SocketAddr, bans: u64) {
    let mut text = String::from("[log]\nlevel = \"warn\"\n\n");
    for (i, addr) in routers.iter().enumerate() {
        text.push_str(&format!(
            "[[router]]\nname = \"r{i}\"\nhost = \"{}\"\nport = {}\nuser = \"admin\"\n\n",
            addr.ip(),
            addr.port()
        ));
    }
    text.push_str(&format!(
        "[input]\nsyslog_tcp = \"{syslog}\"\n\n\
         [detection.policy]\n# Every attacker of the bench is banned (the default caps new bans at 60 a minute).\n\
         max_new_bans_per_minute = {}\n\n\
         [ledger]\npath = \"{}\"\n",
        bans.max(60) * 2,
        path.with_file_name("bans.db").display()
    ));
    std::fs::write(path, text).unwrap();
}

/// The `i`-th attacker: TEST-NET-2/3 addresses, never local.
fn attacker(i: u64) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(198, 51, 100, 1));
    if i < 254 {
        Ipv4Addr::from(base + i as u32)
    } else {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 1)) + (i - 254) as u32)
    }
}

fn brute_force(out: &mut TcpStream, who: Ipv4Addr) {
    let mut text = String::new();
    for _ in 0..10 {
        text.push_str(&format!(
            "<27>Nov 21 10:00:01 gw.example system,error,critical login failure for user admin from {who} via ssh\n"
        ));
    }
    out.write_all(text.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// Waits until every router lists `who`; the time each one was first seen with it, from
/// `since`, sorted; `None` for those that never did within `within`.
fn propagation(
    sims: &[Router],
    who: &str,
    since: Instant,
    within: Duration,
) -> Vec<Option<Duration>> {
    let mut seen: Vec<Option<Duration>> = vec![None; sims.len()];
    let mut left = sims.len();
    while left > 0 && since.elapsed() < within {
        for (i, sim) in sims.iter().enumerate() {
            if seen[i].is_none() && sim.is_listed(LIST, who) {
                seen[i] = Some(since.elapsed());
                left -= 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    seen.sort();
    seen
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> ExitCode {
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"fleet".contains(filter.as_str())
    {
        return ExitCode::SUCCESS;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = env_u64("MTIDS_FLEET_ROUTERS").unwrap_or(if full { 100 } else { 50 });
    let connections = env_u64("MTIDS_FLEET_CONNECTIONS").unwrap_or(0);
    let bans = env_u64("MTIDS_FLEET_BANS")
        .unwrap_or(if full { 100 } else { 10 })
        .max(1);
    let steady = Duration::from_secs(env_u64("MTIDS_FLEET_STEADY_SECS").unwrap_or(if full {
        10
    } else {
        3
    }));
    raise_own_descriptor_limit(n);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let built = Instant::now();
    let mut sims = Vec::with_capacity(n as usize);
    let mut servers = Vec::with_capacity(n as usize);
    let mut addrs = Vec::with_capacity(n as usize);
    for r in 0..n {
        let router = Router::new(RouterConfig::default());
        if connections > 0 {
            router.add_connections((0..connections).map(|i| {
                let [_, _, b, c] = ((r * connections + i) as u32).to_be_bytes();
                Connection::tcp(
                    SocketAddr::from(([10, 1, b, c], 40_000 + (i % 20_000) as u16)),
                    SocketAddr::from(([93, 184, 0, (i % 250) as u8 + 1], 443)),
                )
                .packets(12, 10)
            }));
        }
        let server = runtime
            .block_on(Server::bind(
                router.clone(),
                ServerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0))),
            ))
            .unwrap();
        addrs.push(server.local_addr());
        servers.push(server);
        sims.push(router);
    }
    let bench_rss = sample(std::process::id()).map_or(0, |s| s.rss);
    println!(
        "fleet: {n} simulated routers ({connections} connections each) up in {:.2} s, bench process {:.1} MiB",
        built.elapsed().as_secs_f64(),
        mib(bench_rss)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mtids.toml");
    let syslog = free_port();
    write_config(&config, &addrs, syslog, bans);
    let log = dir.path().join("mtids.log");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtids"))
        .args(["--config".as_ref(), config.as_os_str(), "run".as_ref()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawning mtids run");
    let pid = child.id();
    let fail = |child: &mut Child, why: String| {
        let _ = stop(child, Duration::from_secs(30));
        eprintln!("fleet: {why}\ndaemon log (last lines):\n{}", tail(&log));
        ExitCode::FAILURE
    };

    // Connect-all: every router has an API session.
    let deadline = Duration::from_secs(60 + n / 50);
    while sims.iter().any(|s| s.session_count() == 0) && started.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let connect_all = started.elapsed();
    let connected = sims.iter().filter(|s| s.session_count() > 0).count();
    if connected < n as usize {
        return fail(
            &mut child,
            format!("{connected} of {n} routers connected within {deadline:?}"),
        );
    }
    let mut syslog_out = match TcpStream::connect(syslog) {
        Ok(s) => s,
        Err(e) => return fail(&mut child, format!("syslog TCP {syslog}: {e}")),
    };

    // Steady state: idle after connecting (polls running).
    std::thread::sleep(Duration::from_secs(1));
    for sim in &sims {
        sim.reset_sent();
    }
    let before = sample(pid).unwrap();
    let window = Instant::now();
    std::thread::sleep(steady);
    let after = sample(pid).unwrap();
    let fds = descriptors(pid);
    let idle_rss = after.rss;
    let window = window.elapsed();
    let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / TICKS / window.as_secs_f64();
    let polls: Vec<routeros_sim::SentCount> =
        sims.iter().map(|s| s.sent(CONNECTION_PRINT)).collect();
    let poll_commands: u64 = polls.iter().map(|p| p.commands).sum();
    let poll_bytes: u64 = polls.iter().map(|p| p.bytes).sum();
    let poll_sentences: u64 = polls.iter().map(|p| p.sentences).sum();
    println!(
        "fleet: connect-all {:.2} s; steady over {:.1} s: RSS {:.1} MiB, CPU {:.1} % of a core, {} threads, {fds} descriptors",
        connect_all.as_secs_f64(),
        window.as_secs_f64(),
        mib(after.rss),
        cpu * 100.0,
        after.threads
    );
    println!(
        "fleet: connection polls per router: {:.1} a minute, {:.1} sentences and {:.0} bytes each",
        poll_commands as f64 / n as f64 * 60.0 / window.as_secs_f64(),
        poll_sentences as f64 / poll_commands.max(1) as f64,
        poll_bytes as f64 / poll_commands.max(1) as f64
    );
    // What a plain print of the same table costs one router (for comparison).
    {
        let sim = &sims[0];
        sim.reset_sent();
        let addr = addrs[0];
        runtime.block_on(async {
            let client = routeros_proto::net::Client::connect(
                &routeros_proto::net::ClientConfig::new(addr.ip().to_string(), "admin", "")
                    .port(addr.port()),
            )
            .await
            .unwrap();
            client
                .call(routeros_proto::Command::new(CONNECTION_PRINT))
                .await
                .unwrap();
        });
        let plain = sim.sent(CONNECTION_PRINT);
        println!(
            "fleet: a plain print of one router's table: {} sentences, {} bytes",
            plain.sentences, plain.bytes
        );
    }

    // One ban, to every router.
    let first = attacker(0).to_string();
    let sent = Instant::now();
    brute_force(&mut syslog_out, attacker(0));
    let seen = propagation(&sims, &first, sent, Duration::from_secs(60));
    let reached: Vec<Duration> = seen.iter().flatten().copied().collect();
    if reached.len() < n as usize {
        return fail(
            &mut child,
            format!(
                "the ban of {first} reached {} of {n} routers within 60 s",
                reached.len()
            ),
        );
    }
    println!(
        "fleet: one ban on all {n} routers (from the syslog line, detection included): first {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms",
        reached[0].as_secs_f64() * 1e3,
        percentile(&reached, 0.50).as_secs_f64() * 1e3,
        percentile(&reached, 0.99).as_secs_f64() * 1e3,
        reached[reached.len() - 1].as_secs_f64() * 1e3,
    );

    // The rest of the bans, then memory with all of them active.
    let more = Instant::now();
    for i in 1..bans {
        brute_force(&mut syslog_out, attacker(i));
    }
    let last = attacker(bans - 1).to_string();
    let seen = propagation(&sims, &last, more, Duration::from_secs(120));
    let all = seen.iter().flatten().count();
    let all_bans_in = more.elapsed();
    let complete = sims
        .iter()
        .all(|s| s.address_list(routeros_sim::Family::V4).len() as u64 >= bans);
    std::thread::sleep(Duration::from_secs(2));
    let with_bans = sample(pid).unwrap();
    let before = with_bans;
    let window = Instant::now();
    std::thread::sleep(steady);
    let after = sample(pid).unwrap();
    let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / TICKS / window.elapsed().as_secs_f64();
    println!(
        "fleet: {bans} bans on {all} of {n} routers in {:.2} s (every list complete: {complete}); RSS with them {:.1} MiB (+{:.1} MiB, {:.0} B per router per ban), CPU {:.1} %",
        all_bans_in.as_secs_f64(),
        mib(with_bans.rss),
        mib(with_bans.rss.saturating_sub(idle_rss)),
        with_bans.rss.saturating_sub(idle_rss) as f64 / (n * bans) as f64,
        cpu * 100.0
    );
    let status_text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let smaps = status_text
        .lines()
        .filter(|l| l.starts_with("Rss"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    println!("fleet: resident set by kind: {smaps}");
    let status = stop(&mut child, Duration::from_secs(30));
    runtime.block_on(async {
        for server in servers {
            server.shutdown().await;
        }
    });
    match status {
        Some(s) if s.success() => {}
        other => {
            eprintln!(
                "fleet: the daemon did not stop cleanly on SIGTERM: {other:?}\n{}",
                tail(&log)
            );
            return ExitCode::FAILURE;
        }
    }
    if all < n as usize || !complete {
        eprintln!("fleet: not every router got every ban\n{}", tail(&log));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
