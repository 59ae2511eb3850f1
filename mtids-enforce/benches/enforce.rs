//! Enforcement throughput against routeros-sim over a loopback socket, the sim answering
//! every command 2 ms late (as a router over a LAN with some service time):
//!
//! - 30,000 bans pipelined (one `block_all`: ledger record, every add in flight, ledger
//!   marks), target < 3 s;
//! - strictly one at a time (each add awaited before the next), measured on 1,000 bans
//!   and extrapolated to 30,000;
//! - reconcile of the 30,000-entry list (one print per family), target < 2 s;
//! - ledger writes per second (record + mark applied, batched as the enforcer writes).
//!
//! A bench binary rather than criterion: one run of 30,000 real adds is the figure; run
//! with `cargo bench -p mtids-enforce --bench enforce`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mtids_enforce::{Ban, BanLedger, Enforcer, IpPrefix, NewBan, RouterOsConfig, RouterOsEnforcer};
use routeros_proto::net::{Client, ClientConfig};
use routeros_sim::{Router, RouterConfig, Server, ServerConfig};

const BANS: u32 = 30_000;
const SEQUENTIAL: u32 = 1_000;
const LATENCY: Duration = Duration::from_millis(2);

fn target(i: u32) -> IpPrefix {
    IpPrefix::host(std::net::Ipv4Addr::from(0x0B00_0000 + i).into())
}

fn bans(range: std::ops::Range<u32>) -> Vec<Ban> {
    range
        .map(|i| {
            Ban::new(
                target(i),
                Some(Duration::from_secs(86_400)),
                "port_scan",
                "mtids port_scan 40 ports in 5s",
            )
        })
        .collect()
}

async fn connect(server: &Server) -> Client {
    let config = ClientConfig::new("127.0.0.1", "admin", "").port(server.local_addr().port());
    Client::connect(&config).await.unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep it short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (bans_n, seq_n) = if quick {
        (2_000, 100)
    } else {
        (BANS, SEQUENTIAL)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(bans_n, seq_n));
}

async fn run(bans_n: u32, seq_n: u32) {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(RouterConfig::default());
    router.set_latency(LATENCY);
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let ledger = Arc::new(Mutex::new(
        BanLedger::open(dir.path().join("bench.db")).unwrap(),
    ));

    // Pipelined.
    let enforcer = RouterOsEnforcer::new(
        connect(&server).await,
        RouterOsConfig::new("gw"),
        ledger.clone(),
    );
    enforcer.reconcile().await.unwrap();
    let batch = bans(0..bans_n);
    let start = Instant::now();
    let results = enforcer.block_all(&batch).await;
    let pipelined = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{:?}", results.iter().find(|r| r.is_err()));
    println!(
        "pipelined: {bans_n} bans in {:.3} s ({:.0} bans/s), 2 ms latency per command",
        pipelined.as_secs_f64(),
        f64::from(bans_n) / pipelined.as_secs_f64()
    );

    // Strictly one at a time, on a second list so every add is new.
    let sequential = RouterOsEnforcer::new(
        connect(&server).await,
        RouterOsConfig::new("gw").list("mtids-sequential"),
        ledger.clone(),
    );
    sequential.reconcile().await.unwrap();
    let one_by_one = bans(0..seq_n);
    let start = Instant::now();
    for ban in &one_by_one {
        sequential.block(ban).await.unwrap();
    }
    let took = start.elapsed();
    let per_ban = took / seq_n;
    println!(
        "one at a time: {seq_n} bans in {:.3} s ({:.2} ms each); extrapolated to {bans_n}: {:.1} s",
        took.as_secs_f64(),
        per_ban.as_secs_f64() * 1e3,
        per_ban.as_secs_f64() * f64::from(bans_n)
    );

    // Reconcile of the full list on a fresh connection (what a daemon restart does).
    let fresh = RouterOsEnforcer::new(
        connect(&server).await,
        RouterOsConfig::new("gw"),
        ledger.clone(),
    );
    let start = Instant::now();
    let report = fresh.reconcile().await.unwrap();
    let reconcile = start.elapsed();
    assert_eq!(report.listed, bans_n as usize);
    assert!(report.missing.is_empty());
    println!(
        "reconcile: {} entries listed, {} missing, in {:.3} s",
        report.listed,
        report.missing.len(),
        reconcile.as_secs_f64()
    );

    // Ledger writes alone: record + mark applied in batches of 1,000, as the enforcer does.
    let mut ledger = BanLedger::open(dir.path().join("writes.db")).unwrap();
    let targets: Vec<String> = (0..bans_n).map(|i| target(i).to_string()).collect();
    let now = SystemTime::now();
    let start = Instant::now();
    for chunk in targets.chunks(1_000) {
        let new: Vec<NewBan<'_>> = chunk
            .iter()
            .map(|t| NewBan {
                router: "gw",
                list: "mtids-blocked",
                target: t,
                reason: "mtids port_scan 40 ports in 5s",
                detector: "port_scan",
                created: now,
                duration: Some(Duration::from_secs(86_400)),
            })
            .collect();
        let ids = ledger.record_all(&new).unwrap();
        let applied: Vec<_> = ids.iter().map(|r| (r.id(), Some("*1"))).collect();
        ledger.mark_applied_all(&applied, now).unwrap();
    }
    let writes = start.elapsed();
    println!(
        "ledger: {bans_n} bans recorded and marked applied in {:.3} s ({:.0} bans/s, batches of 1000)",
        writes.as_secs_f64(),
        f64::from(bans_n) / writes.as_secs_f64()
    );
    server.shutdown().await;
}
