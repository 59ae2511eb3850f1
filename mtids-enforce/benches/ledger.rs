//! Ban ledger throughput on a real file: decisions recorded and marked applied one at a
//! time (two transactions each) and in batches of 500 (two transactions per batch, as
//! the enforcer writes a burst), and listing 30,000 active bans (what a reconnect reads).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mtids_enforce::{BanLedger, NewBan};

fn target(i: u64) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn decision(target: &str, i: u64) -> NewBan<'_> {
    NewBan {
        router: "gw",
        list: "mtids-blocked",
        target,
        reason: "port scan: 40 ports in 5s",
        detector: "port-scan",
        created: time(i),
        duration: Some(Duration::from_secs(3600)),
    }
}

fn time(i: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(i)
}

fn ledger_writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = BanLedger::open(dir.path().join("bench.db")).expect("open ledger");
    let mut group = c.benchmark_group("ledger");
    let mut i: u64 = 0;

    group.throughput(Throughput::Elements(1));
    group.bench_function("record+applied, one at a time", |b| {
        b.iter(|| {
            i += 1;
            let target = target(i);
            let id = ledger.record(&decision(&target, i)).expect("record").id();
            ledger
                .mark_applied(id, Some("*1"), time(i))
                .expect("applied");
        })
    });

    const BATCH: u64 = 500;
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("record+applied, batches of 500", |b| {
        b.iter_batched(
            || {
                let first = i + 1;
                i += BATCH;
                (first..=i).map(|n| (n, target(n))).collect::<Vec<_>>()
            },
            |batch| {
                let bans: Vec<_> = batch.iter().map(|(n, t)| decision(t, *n)).collect();
                let ids = ledger.record_all(&bans).expect("record_all");
                let applied: Vec<_> = ids.iter().map(|r| (r.id(), Some("*1"))).collect();
                let now = time(batch.last().map_or(0, |(n, _)| *n));
                ledger.mark_applied_all(&applied, now).expect("applied");
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    // A fresh ledger with exactly 30,000 active bans.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ledger = BanLedger::open(dir.path().join("list.db")).expect("open ledger");
    let targets: Vec<_> = (0..30_000).map(target).collect();
    let bans: Vec<_> = targets
        .iter()
        .zip(0..)
        .map(|(t, n)| decision(t, n))
        .collect();
    ledger.record_all(&bans).expect("fill");
    let mut group = c.benchmark_group("ledger");
    group.sample_size(20);
    group.throughput(Throughput::Elements(30_000));
    group.bench_function("active, 30k bans", |b| {
        b.iter(|| ledger.active(Some("gw"), time(0)).expect("active").len())
    });
    group.finish();
}

criterion_group!(benches, ledger_writes);
criterion_main!(benches);
