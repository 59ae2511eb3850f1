//! The fleet over real loopback sockets: two simulated routers, one stalled or rebooted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{LIST, Sim, TestClock, ban, ledger};
use mtids_enforce::{
    BanState, EnforceError, Fleet, FleetConfig, FleetRouter, RouterOsConfig, Scope,
};

fn member(sim: &Sim, name: &str, groups: &[&str]) -> FleetRouter {
    let mut enforce = RouterOsConfig::new(name);
    enforce.command_timeout = Duration::from_millis(500);
    FleetRouter::new(
        sim.client_config("admin", "")
            .connect_timeout(Duration::from_millis(500)),
        enforce,
    )
    .groups(groups.iter().copied())
}

fn config() -> FleetConfig {
    FleetConfig::default()
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .liveness(Duration::from_millis(100), Duration::from_millis(400))
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn connected(fleet: &Fleet, name: &str) {
    let mut status = fleet.watch_status(name).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.connected && s.last_reconcile.is_some()),
    )
    .await
    .expect("connected in time")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_router_never_delays_the_other_and_gets_its_bans_once_back() {
    let (a, b) = (Sim::start().await, Sim::start().await);
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let fleet = Fleet::start_with_clock(
        vec![member(&a, "a", &["edge"]), member(&b, "b", &["edge"])],
        ledger.clone(),
        config(),
        clock.clock(),
    );
    connected(&fleet, "a").await;
    connected(&fleet, "b").await;

    a.router.set_stall(true);
    let accepted = fleet
        .apply(&Scope::All, &ban("198.51.100.7", 3600))
        .unwrap();
    assert!(accepted.iter().all(|(_, r)| r.is_ok()), "{accepted:?}");
    let took = until("b has the ban", Duration::from_secs(2), || {
        b.router.is_listed(LIST, "198.51.100.7")
    })
    .await;
    assert!(took < Duration::from_millis(400), "b waited {took:?} for a");
    assert!(!a.router.is_listed(LIST, "198.51.100.7"));

    // a's command times out; the task reconnects with backoff; the ban, pending in the
    // ledger, is applied by the reconcile once a answers again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.router.set_stall(false);
    until("a has the ban", Duration::from_secs(10), || {
        a.router.is_listed(LIST, "198.51.100.7")
    })
    .await;
    fleet.flush("a").await.unwrap();
    let active = ledger
        .lock()
        .unwrap()
        .active(Some("a"), clock.now())
        .unwrap();
    assert_eq!(active.len(), 1);
    until("a's ban marked applied", Duration::from_secs(5), || {
        ledger
            .lock()
            .unwrap()
            .active(Some("a"), clock.now())
            .unwrap()[0]
            .state
            == BanState::Applied
    })
    .await;
    assert_eq!(a.entries(LIST).len(), 1);
    assert!(fleet.status("a").unwrap().connections >= 2);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebooted_router_gets_its_bans_back_without_being_asked() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let fleet = Fleet::start(vec![member(&sim, "gw", &[])], ledger.clone(), config());
    connected(&fleet, "gw").await;
    fleet
        .apply(&Scope::Router("gw".into()), &ban("198.51.100.7", 3600))
        .unwrap();
    fleet.flush("gw").await.unwrap();
    assert!(sim.router.is_listed(LIST, "198.51.100.7"));

    sim.router.reboot();
    assert!(!sim.router.is_listed(LIST, "198.51.100.7"));
    until(
        "re-applied after the reboot",
        Duration::from_secs(10),
        || sim.router.is_listed(LIST, "198.51.100.7"),
    )
    .await;
    assert_eq!(sim.entries(LIST).len(), 1);
    fleet.shutdown().await;
}

#[tokio::test]
async fn scopes_name_routers_and_groups_and_unknown_names_are_errors() {
    let (a, b) = (Sim::start().await, Sim::start().await);
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(
        vec![member(&a, "a", &["edge"]), member(&b, "b", &["core"])],
        ledger(&dir),
        config(),
    );
    assert_eq!(fleet.resolve(&Scope::All).unwrap(), ["a", "b"]);
    assert_eq!(fleet.resolve(&Scope::Group("core".into())).unwrap(), ["b"]);
    assert!(matches!(
        fleet.resolve(&Scope::Group("dmz".into())),
        Err(EnforceError::UnknownGroup(_))
    ));
    let err = fleet
        .apply(&Scope::Router("c".into()), &ban("198.51.100.7", 60))
        .unwrap_err();
    assert!(err.to_string().contains("no router named `c`"), "{err}");

    connected(&fleet, "b").await;
    fleet
        .apply(&Scope::Group("core".into()), &ban("198.51.100.9", 600))
        .unwrap();
    fleet.flush("b").await.unwrap();
    fleet.flush("a").await.unwrap();
    assert!(b.router.is_listed(LIST, "198.51.100.9"));
    assert!(!a.router.is_listed(LIST, "198.51.100.9"));
    let unblocked = fleet
        .unblock(&Scope::All, "198.51.100.9".parse().unwrap())
        .await
        .unwrap();
    let by_name: std::collections::BTreeMap<_, _> = unblocked
        .into_iter()
        .map(|(n, r)| (n, r.unwrap()))
        .collect();
    assert!(by_name["b"]);
    assert!(!by_name["a"]);
    assert!(!b.router.is_listed(LIST, "198.51.100.9"));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_that_finds_the_queue_full_stays_pending_and_is_applied_after() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let fleet = Fleet::start(
        vec![member(&sim, "gw", &[])],
        ledger.clone(),
        config().queue(1),
    );
    connected(&fleet, "gw").await;
    sim.router.set_stall(true);
    let gw = Scope::Router("gw".into());
    // The task takes the first and waits on the stalled router; the second fills the
    // queue; the third finds it full.
    fleet.apply(&gw, &ban("198.51.100.1", 600)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = fleet.apply(&gw, &ban("198.51.100.2", 600)).unwrap();
    assert!(second[0].1.is_ok(), "{second:?}");
    let third = fleet.apply(&gw, &ban("198.51.100.3", 600)).unwrap();
    let Err(err) = &third[0].1 else {
        panic!("{third:?}")
    };
    assert!(matches!(err, EnforceError::QueueFull { .. }), "{err:?}");
    assert!(err.to_string().contains("kept pending"), "{err}");
    // Recorded before anything else: pending, not failed.
    let history = ledger.lock().unwrap().history("198.51.100.3").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].state, BanState::Pending);

    // None is lost: all three applied once the router answers again.
    sim.router.set_stall(false);
    until("all bans applied", Duration::from_secs(10), || {
        ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
            .iter()
            .all(|ip| sim.router.is_listed(LIST, ip))
    })
    .await;
    until("all marked applied", Duration::from_secs(5), || {
        ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
            .iter()
            .all(|ip| ledger.lock().unwrap().history(ip).unwrap()[0].state == BanState::Applied)
    })
    .await;
    assert_eq!(sim.entries(LIST).len(), 3);
    fleet.shutdown().await;
}

/// A fleet-wide bound of 2 commands in flight over three routers with slow answers:
/// every router still gets every ban (no router waits for a permit while holding one, so
/// none can starve the others), and each ban is marked applied in the ledger (the marks
/// of several routers written together) before it is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_wide_bound_on_commands_in_flight_delays_no_ban_forever() {
    let sims = [Sim::start().await, Sim::start().await, Sim::start().await];
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let (events, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let fleet = Fleet::builder()
        .config(config().max_in_flight(2))
        .ledger(ledger.clone())
        .events(events)
        .start(
            sims.iter()
                .enumerate()
                .map(|(i, sim)| member(sim, &format!("r{i}"), &[]))
                .collect(),
        );
    for i in 0..3 {
        connected(&fleet, &format!("r{i}")).await;
    }
    for sim in &sims {
        sim.router.set_latency(Duration::from_millis(5));
    }
    let targets: Vec<String> = (1..=20).map(|i| format!("198.51.100.{i}")).collect();
    for target in &targets {
        let queued = fleet.apply(&Scope::All, &ban(target, 600)).unwrap();
        assert!(queued.iter().all(|(_, r)| r.is_ok()), "{queued:?}");
    }
    let mut applied = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while applied < 60 {
            if let Some(mtids_enforce::FleetEvent::Applied { router, ban, .. }) =
                reports.recv().await
            {
                // Reported only once the ledger says so.
                let target = ban.target.to_string();
                let history = ledger.lock().unwrap().history(&target).unwrap();
                let mine = history.iter().find(|b| b.router == router).unwrap();
                assert_eq!(mine.state, BanState::Applied, "{router} {target}");
                applied += 1;
            }
        }
    })
    .await
    .expect("every ban on every router in time");
    for sim in &sims {
        assert_eq!(sim.entries(LIST).len(), 20);
    }
    fleet.shutdown().await;
}
