//! Detection-to-block latency of the whole daemon against routeros-sim on loopback:
//! 1,000 brute-force attackers, one after the other. For each, the clock starts when the
//! failure that crosses the threshold is written to the simulated router's log, and stops
//! when the daemon has the router's answer to the address-list add (end to end: API log
//! follow, parse, detect, decide, ledger, add). Also printed: the daemon's own part, from
//! the row's arrival to the add's answer.
//!
//! `cargo bench -p mtids-e2e --bench block_latency` (target: p99 < 10 ms).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mtids_cli::daemon::Report;
use mtids_e2e::{Running, Sim, fail_logins};

const ATTACKS: usize = 1000;

fn attacker(i: usize) -> IpAddr {
    match i {
        0..250 => format!("198.51.100.{}", i + 1).parse().unwrap(),
        250..500 => format!("203.0.113.{}", i - 249).parse().unwrap(),
        _ => format!("2001:db8:bad:{:x}::1", i).parse().unwrap(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<28} n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms",
        v.len(),
        ms(percentile(&v, 50.0)),
        ms(percentile(&v, 90.0)),
        ms(percentile(&v, 99.0)),
        ms(*v.last().unwrap()),
    );
}

fn main() {
    // `cargo test --benches` runs this too: keep that quick.
    let attacks = if std::env::args().any(|a| a == "--bench") {
        ATTACKS
    } else {
        20
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start().await;
        let mut config = sim.config(dir.path());
        config.detection.policy.max_new_bans_per_minute = 100_000;
        config.input.connections = false;
        config.input.resource = false;
        let mut running = Running::start(config).await;

        let mut end_to_end = Vec::with_capacity(attacks);
        let mut daemon_part = Vec::with_capacity(attacks);
        for i in 0..attacks {
            let ip = attacker(i);
            let text = ip.to_string();
            fail_logins(&sim.router, &text, "admin", 4);
            let start = Instant::now();
            fail_logins(&sim.router, &text, "admin", 1);
            let report = running
                .wait_for(Duration::from_secs(5), |r| {
                    matches!(r, Report::Blocked { target, .. }
                        if target.split('/').next().and_then(|a| a.parse::<IpAddr>().ok())
                            .is_some_and(|a| a == ip || matches!((a, ip), (IpAddr::V6(p), IpAddr::V6(q)) if p.segments()[..4] == q.segments()[..4])))
                })
                .await
                .unwrap_or_else(|| panic!("attack {i} from {ip} was not blocked"));
            end_to_end.push(start.elapsed());
            if let Report::Blocked { latency, .. } = report {
                daemon_part.push(latency);
            }
        }
        summary("log line -> block applied", end_to_end);
        summary("row arrival -> block applied", daemon_part);
        running.stop().await;
    });
}
