//! One real `mtids run` against a fleet of N simulated routers: connect-all time, steady
//! RSS / CPU / threads / descriptors, how fast one ban reaches every router (p50/p99), the
//! memory with many active bans and after they expire, and what the connection polls cost
//! each router.
//!
//! ```sh
//! cargo test -p mtids-cli --bench fleet                                    # smoke: 50 routers
//! MTIDS_FLEET_ROUTERS=1000 cargo bench -p mtids-cli --bench fleet
//! MTIDS_FLEET_ROUTERS=1000 MTIDS_FLEET_CONNECTIONS=400 cargo bench -p mtids-cli --bench fleet
//! MTIDS_FLEET_ROUTERS=5000 MTIDS_FLEET_BANS=100 cargo bench -p mtids-cli --bench fleet
//! ```
//!
//! The simulated routers run in child processes (this bench binary again, started with
//! `MTIDS_FLEET_SIM_CHILD`): `MTIDS_FLEET_SIM_PROCESSES` of them (default 1, 2 from 2,000
//! routers), each serving its share of the routers (one routeros-sim `Router` and loopback
//! listener each) on a runtime of `MTIDS_FLEET_SIM_THREADS` threads (default 2), so that
//! the routers keep up with mtids and the bench measures mtids, not itself. A child is
//! told which address to wait for and reports, per router, when the address landed on its
//! `mtids-blocked` list: each router's task wakes on its own change notification
//! (routeros-sim's `change_watch`), nobody polls the lists. `MTIDS_FLEET_CONNECTIONS=N`
//! fills each table with N benign connections (replied both ways).
//!
//! The bench writes a configuration with every router and a syslog TCP input, spawns the
//! `mtids run` binary, and waits until every router has an API session (connect-all). It
//! then samples the daemon for `MTIDS_FLEET_STEADY_SECS` (default 10, smoke 3): RSS, CPU
//! (utime+stime from `/proc/PID/stat`), threads and open descriptors, and the simulated
//! routers' CPU beside it, with the load average. It sends a brute force (10 SSH login
//! failures from one address, in the BSD syslog form RouterOS sends) and times, per router,
//! when the address is on its list (the ban's propagation, detection included); then
//! `MTIDS_FLEET_BANS` (default 100, smoke 10) addresses in all, the time until every router
//! has them all and the RSS with them; then, once they ran out (bans last
//! `MTIDS_FLEET_BAN_SECS`, default 60, smoke 4), the RSS again. Last, what the routers sent
//! for the connection polls (routeros-sim's per-command counters). The daemon then gets
//! SIGTERM and must exit 0. Exits 1 when a router is not connected or a ban does not reach
//! every router in time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use routeros_sim::{Connection, Family, Router, RouterConfig, Server, ServerConfig};

mod common;
use common::{env_u64, free_port, mib, spawn_run, stop, tail};

const LIST: &str = "mtids-blocked";
const CONNECTION_PRINT: &str = "/ip/firewall/connection/print";
/// Set in a child process that serves simulated routers: `FIRST,COUNT`.
const SIM_CHILD: &str = "MTIDS_FLEET_SIM_CHILD";

/// Raises this process's descriptor soft limit to `want` (within the hard limit).
fn raise_own_descriptor_limit(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let want = want.min(now.maximum.unwrap_or(u64::MAX));
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

#[derive(Debug, Clone, Copy, Default)]
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

/// The summed samples of several processes (the simulated routers).
fn sample_all(pids: &[u32]) -> Sample {
    pids.iter()
        .filter_map(|p| sample(*p))
        .fold(Sample::default(), |a, s| Sample {
            rss: a.rss + s.rss,
            threads: a.threads + s.threads,
            cpu_ticks: a.cpu_ticks + s.cpu_ticks,
        })
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The 1-minute load average (`/proc/loadavg`), reported with every figure.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU used between two samples, as a share of one core.
fn cpu_share(before: Sample, after: Sample, window: Duration) -> f64 {
    after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / TICKS / window.as_secs_f64()
}

fn write_config(path: &Path, routers: &[SocketAddr], syslog: SocketAddr, bans: u64, ban_secs: u64) {
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
         max_new_bans_per_minute = {}\n\
         # Short bans, so that the memory after they run out is measured.\n\
         ban_secs = {ban_secs}\nrenew_before_secs = 1\n\n\
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The `mtids` process a wrapper (a profiler) started: the first descendant running the
/// `mtids` binary.
fn wrapped_daemon(wrapper: u32) -> u32 {
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_mtids")).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let mut todo = vec![wrapper];
        while let Some(p) = todo.pop() {
            if std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == exe) {
                return p;
            }
            for task in std::fs::read_dir(format!("/proc/{p}/task"))
                .into_iter()
                .flatten()
            {
                let children = task.map_or_else(
                    |_| String::new(),
                    |t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default(),
                );
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no mtids process under the wrapper {wrapper}");
}

// ---- the simulated routers' side (a child process) ----

/// What the routers of a child are waited for: `address` on the list, and at least
/// `count` entries on it.
struct Target {
    address: String,
    count: usize,
    since: Instant,
    seen: Vec<Option<Duration>>,
}

struct Waiting {
    target: std::sync::Mutex<Option<Target>>,
    left: AtomicUsize,
}

impl Waiting {
    /// Router `i` changed: is the target there now?
    fn check(&self, i: usize, router: &Router) {
        let mut target = self.target.lock().unwrap();
        let Some(t) = target.as_mut() else { return };
        if t.seen[i].is_some() {
            return;
        }
        if router.is_listed(LIST, &t.address)
            && (t.count <= 1 || router.listed_count(Family::V4, LIST) >= t.count)
        {
            t.seen[i] = Some(t.since.elapsed());
            self.left.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Serves `COUNT` routers (numbered from `FIRST`) and answers the parent's commands, one
/// a line on stdin: `ports` is printed first, then `connected MS`, `watch ADDR COUNT MS`,
/// `reset-sent [I]`, `sent PATH [I]`, `listed`.
fn sim_child(spec: &str) -> ExitCode {
    let (first, count) = spec.split_once(',').unwrap();
    let first: u64 = first.parse().unwrap();
    let count: usize = count.parse().unwrap();
    let connections = env_u64("MTIDS_FLEET_CONNECTIONS").unwrap_or(0);
    let threads = env_u64("MTIDS_FLEET_SIM_THREADS").unwrap_or(2).max(1) as usize;
    raise_own_descriptor_limit(count as u64 * 2 + 256);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let mut routers = Vec::with_capacity(count);
    let mut servers = Vec::with_capacity(count);
    for r in first..first + count as u64 {
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
        servers.push(server);
        routers.push(router);
    }
    let waiting = Arc::new(Waiting {
        target: std::sync::Mutex::new(None),
        left: AtomicUsize::new(0),
    });
    // A new target wakes every router's task once (it may be there already).
    let (retarget, _) = tokio::sync::watch::channel(0u64);
    for (i, router) in routers.iter().enumerate() {
        let router = router.clone();
        let waiting = Arc::clone(&waiting);
        let mut changes = router.change_watch();
        let mut targets = retarget.subscribe();
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    r = targets.changed() => if r.is_err() { return },
                }
                waiting.check(i, &router);
            }
        });
    }
    let mut out = std::io::stdout().lock();
    let ports: Vec<String> = servers
        .iter()
        .map(|s| s.local_addr().port().to_string())
        .collect();
    writeln!(out, "ports {}", ports.join(" ")).unwrap();
    out.flush().unwrap();
    let pick = |arg: Option<&str>| -> Vec<&Router> {
        match arg.and_then(|a| a.parse::<usize>().ok()) {
            Some(i) => routers.get(i).into_iter().collect(),
            None => routers.iter().collect(),
        }
    };
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let reply = match words.next() {
            Some("connected") => {
                let within = Duration::from_millis(words.next().unwrap().parse().unwrap());
                let start = Instant::now();
                while routers.iter().any(|r| r.session_count() == 0) && start.elapsed() < within {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let n = routers.iter().filter(|r| r.session_count() > 0).count();
                format!("connected {n}")
            }
            Some("watch") => {
                let address = words.next().unwrap().to_owned();
                let count: usize = words.next().unwrap().parse().unwrap();
                let within = Duration::from_millis(words.next().unwrap().parse().unwrap());
                let since = Instant::now();
                waiting.left.store(routers.len(), Ordering::Relaxed);
                *waiting.target.lock().unwrap() = Some(Target {
                    address,
                    count,
                    since,
                    seen: vec![None; routers.len()],
                });
                retarget.send_modify(|n| *n += 1);
                writeln!(out, "watching").unwrap();
                out.flush().unwrap();
                while waiting.left.load(Ordering::Relaxed) > 0 && since.elapsed() < within {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let target = waiting.target.lock().unwrap().take().unwrap();
                let micros: Vec<String> = target
                    .seen
                    .iter()
                    .flatten()
                    .map(|d| d.as_micros().to_string())
                    .collect();
                format!("seen {}", micros.join(" "))
            }
            Some("reset-sent") => {
                for r in pick(words.next()) {
                    r.reset_sent();
                }
                "ok".to_owned()
            }
            Some("sent") => {
                let path = words.next().unwrap();
                let (mut c, mut s, mut b) = (0, 0, 0);
                for r in pick(words.next()) {
                    let sent = r.sent(path);
                    c += sent.commands;
                    s += sent.sentences;
                    b += sent.bytes;
                }
                format!("sent {c} {s} {b}")
            }
            Some("listed") => {
                let counts: Vec<usize> = routers
                    .iter()
                    .map(|r| r.listed_count(Family::V4, LIST))
                    .collect();
                format!(
                    "listed {} {}",
                    counts.iter().min().unwrap_or(&0),
                    counts.iter().max().unwrap_or(&0)
                )
            }
            _ => break,
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
    runtime.block_on(async {
        for server in servers {
            server.shutdown().await;
        }
    });
    ExitCode::SUCCESS
}

// ---- the bench's side ----

/// A child process serving some of the simulated routers.
struct Sims {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    ports: Vec<u16>,
}

impl Sims {
    fn start(first: u64, count: u64, connections: u64) -> Sims {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SIM_CHILD, format!("{first},{count}"))
            .env("MTIDS_FLEET_CONNECTIONS", connections.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the simulated routers");
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        let ports = line
            .strip_prefix("ports ")
            .unwrap_or_else(|| panic!("simulated routers: {line}"))
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        Sims {
            child,
            input,
            output,
            ports,
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.input, "{command}").unwrap();
        self.input.flush().unwrap();
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    /// The numbers after the reply word.
    fn numbers(reply: &str) -> Vec<u64> {
        reply
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect()
    }
}

/// Asks every child to wait for `who` (and `count` entries) on every router, then runs
/// `act`; the time each router had it, from just before `act`, sorted.
fn propagation(
    sims: &mut [Sims],
    who: &str,
    count: u64,
    within: Duration,
    act: impl FnOnce(),
) -> Vec<Duration> {
    for s in sims.iter_mut() {
        s.send(&format!("watch {who} {count} {}", within.as_millis()));
    }
    for s in sims.iter_mut() {
        assert_eq!(s.answer(), "watching");
    }
    act();
    let mut seen: Vec<Duration> = sims
        .iter_mut()
        .flat_map(|s| {
            Sims::numbers(&s.answer())
                .into_iter()
                .map(Duration::from_micros)
        })
        .collect();
    seen.sort();
    seen
}

fn main() -> ExitCode {
    if let Ok(spec) = std::env::var(SIM_CHILD) {
        return sim_child(&spec);
    }
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
    let ban_secs = env_u64("MTIDS_FLEET_BAN_SECS")
        .unwrap_or(if full { 60 } else { 4 })
        .max(2);
    let steady = Duration::from_secs(env_u64("MTIDS_FLEET_STEADY_SECS").unwrap_or(if full {
        10
    } else {
        3
    }));
    let processes = env_u64("MTIDS_FLEET_SIM_PROCESSES")
        .unwrap_or(if n >= 2000 { 2 } else { 1 })
        .clamp(1, n.max(1));

    let built = Instant::now();
    let mut sims: Vec<Sims> = (0..processes)
        .map(|p| {
            let first = n * p / processes;
            let last = n * (p + 1) / processes;
            Sims::start(first, last - first, connections)
        })
        .collect();
    let sim_pids: Vec<u32> = sims.iter().map(|s| s.child.id()).collect();
    let addrs: Vec<SocketAddr> = sims
        .iter()
        .flat_map(|s| s.ports.iter())
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    println!(
        "fleet: {n} simulated routers ({connections} connections each) in {processes} process(es) up in {:.2} s, {:.1} MiB",
        built.elapsed().as_secs_f64(),
        mib(sample_all(&sim_pids).rss)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mtids.toml");
    let syslog = free_port();
    write_config(&config, &addrs, syslog, bans, ban_secs);
    let log = dir.path().join("mtids.log");
    let started = Instant::now();
    // `MTIDS_FLEET_WRAPPER="heaptrack -o /tmp/fleet"` runs the daemon under a profiler;
    // the figures are then the daemon's own (the wrapper's child), and the daemon is
    // killed at the end, so that the profile shows what it held after the bans ran out.
    let wrapper: Vec<String> = std::env::var("MTIDS_FLEET_WRAPPER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_mtids"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_mtids")),
    };
    let mut child = spawn_run(command, &config, dir.path(), &log);
    let pid = if wrapper.is_empty() {
        child.id()
    } else {
        wrapped_daemon(child.id())
    };
    let fail = |child: &mut Child, why: String| {
        let _ = stop(child, Duration::from_secs(30));
        eprintln!("fleet: {why}\ndaemon log (last lines):\n{}", tail(&log));
        ExitCode::FAILURE
    };

    // Connect-all: every router has an API session.
    let deadline = Duration::from_secs(60 + n / 50);
    let connected: u64 = sims
        .iter_mut()
        .map(|s| Sims::numbers(&s.ask(&format!("connected {}", deadline.as_millis())))[0])
        .sum();
    let connect_all = started.elapsed();
    if connected < n {
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
    for s in sims.iter_mut() {
        assert_eq!(s.ask("reset-sent"), "ok");
    }
    let before = sample(pid).unwrap();
    let sims_before = sample_all(&sim_pids);
    let window = Instant::now();
    std::thread::sleep(steady);
    let after = sample(pid).unwrap();
    let sims_after = sample_all(&sim_pids);
    let fds = descriptors(pid);
    let idle_rss = after.rss;
    let window = window.elapsed();
    let mut polls = [0u64; 3];
    for s in sims.iter_mut() {
        let sent = Sims::numbers(&s.ask(&format!("sent {CONNECTION_PRINT}")));
        for (total, x) in polls.iter_mut().zip(sent) {
            *total += x;
        }
    }
    let [poll_commands, poll_sentences, poll_bytes] = polls;
    println!(
        "fleet: connect-all {:.2} s; steady over {:.1} s: RSS {:.1} MiB, CPU {:.1} % of a core, {} threads, {fds} descriptors; simulated routers {:.1} % CPU, {:.1} MiB; load {}",
        connect_all.as_secs_f64(),
        window.as_secs_f64(),
        mib(after.rss),
        cpu_share(before, after, window) * 100.0,
        after.threads,
        cpu_share(sims_before, sims_after, window) * 100.0,
        mib(sims_after.rss),
        load()
    );
    println!(
        "fleet: connection polls per router: {:.1} a minute, {:.1} sentences and {:.0} bytes each",
        poll_commands as f64 / n as f64 * 60.0 / window.as_secs_f64(),
        poll_sentences as f64 / poll_commands.max(1) as f64,
        poll_bytes as f64 / poll_commands.max(1) as f64
    );
    // What a plain print of the same table costs one router (for comparison).
    {
        assert_eq!(sims[0].ask("reset-sent 0"), "ok");
        let addr = addrs[0];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
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
            client.close().await;
        });
        let plain = Sims::numbers(&sims[0].ask(&format!("sent {CONNECTION_PRINT} 0")));
        println!(
            "fleet: a plain print of one router's table: {} sentences, {} bytes",
            plain[1], plain[2]
        );
    }

    // One ban, to every router.
    let first = attacker(0).to_string();
    let reached = propagation(&mut sims, &first, 1, Duration::from_secs(60), || {
        brute_force(&mut syslog_out, attacker(0));
    });
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
        "fleet: one ban on all {n} routers (from the syslog line, detection included): first {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms; load {}",
        reached[0].as_secs_f64() * 1e3,
        percentile(&reached, 0.50).as_secs_f64() * 1e3,
        percentile(&reached, 0.99).as_secs_f64() * 1e3,
        reached[reached.len() - 1].as_secs_f64() * 1e3,
        load()
    );

    // The rest of the bans, then memory with all of them active.
    let last = attacker(bans - 1).to_string();
    let during = sample(pid).unwrap();
    let sims_during = sample_all(&sim_pids);
    let more = Instant::now();
    let within = Duration::from_secs(ban_secs.min(120));
    let seen = propagation(&mut sims, &last, bans, within, || {
        for i in 1..bans {
            brute_force(&mut syslog_out, attacker(i));
        }
    });
    let all_bans_in = more.elapsed();
    let all = seen.len();
    let busy = sample(pid).unwrap();
    let sims_busy = sample_all(&sim_pids);
    let with_bans = busy;
    println!(
        "fleet: {bans} bans on {all} of {n} routers in {:.2} s; RSS with them {:.1} MiB (+{:.1} MiB, {:.0} B per router per ban); CPU meanwhile {:.1} %, simulated routers {:.1} %; load {}",
        all_bans_in.as_secs_f64(),
        mib(with_bans.rss),
        mib(with_bans.rss.saturating_sub(idle_rss)),
        with_bans.rss.saturating_sub(idle_rss) as f64 / (n * bans) as f64,
        cpu_share(during, busy, all_bans_in) * 100.0,
        cpu_share(sims_during, sims_busy, all_bans_in) * 100.0,
        load()
    );
    let status_text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kinds = status_text
        .lines()
        .filter(|l| l.starts_with("Rss"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    println!("fleet: resident set by kind: {kinds}");

    // Until the bans ran out on the routers, then until mtids forgot them (its liveness
    // tick, every 5 s, sweeps a router's cache of entries that ran out).
    let runs_out = more + Duration::from_secs(ban_secs);
    std::thread::sleep(runs_out.saturating_duration_since(Instant::now()));
    let mut left = u64::MAX;
    let emptied = Instant::now();
    while left > 0 && emptied.elapsed() < Duration::from_secs(120) {
        left = sims
            .iter_mut()
            .map(|s| Sims::numbers(&s.ask("listed"))[1])
            .max()
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(6));
    let before = sample(pid).unwrap();
    let window = Instant::now();
    std::thread::sleep(steady.min(Duration::from_secs(5)));
    let expired = sample(pid).unwrap();
    println!(
        "fleet: after the bans ran out (lists empty: {}): RSS {:.1} MiB (+{:.1} MiB over idle), CPU {:.1} %; load {}",
        left == 0,
        mib(expired.rss),
        mib(expired.rss.saturating_sub(idle_rss)),
        cpu_share(before, expired, window.elapsed()) * 100.0,
        load()
    );

    if !wrapper.is_empty() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = child.wait();
        for mut s in sims {
            s.send("quit");
            let _ = stop(&mut s.child, Duration::from_secs(10));
        }
        return ExitCode::SUCCESS;
    }
    let status = stop(&mut child, Duration::from_secs(30));
    for mut s in sims {
        s.send("quit");
        let _ = stop(&mut s.child, Duration::from_secs(10));
    }
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
    if all < n as usize {
        eprintln!(
            "fleet: {all} of {n} routers had every ban within {within:?}\n{}",
            tail(&log)
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
