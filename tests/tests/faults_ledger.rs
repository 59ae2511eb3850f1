//! The daemon and its ledger when things go wrong: a ledger locked by another process,
//! a corrupt ledger at start, a second daemon on the same ledger, and `mtids bans`
//! changing bans while the daemon runs. Real SQLite files, the daemon against
//! routeros-sim over loopback sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mtids_cli::bans::{self, BansAction};
use mtids_cli::config::{Config, OnCorrupt};
use mtids_cli::daemon::{Daemon, Options, Stats};
use mtids_cli::simulate::RecordingNotifier;
use mtids_e2e::{LIST, Running, Sim, eventually, fail_logins};
use mtids_enforce::{BanLedger, BanState};
use routeros_sim::Family;

const SOON: Duration = Duration::from_secs(5);

/// Starts the daemon with `notifier` besides the configured ones, waits for the router.
async fn start_with(config: Config, notifier: Arc<RecordingNotifier>) -> Running {
    let mut options = Options::default();
    options.extra_notifiers.push(notifier);
    Running::start_with(config, options).await
}

fn ledger_rows(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT target, state FROM bans ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn metric(running: &Running, name: &str) -> f64 {
    running
        .daemon
        .metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_locked_past_the_timeout_still_bans_alerts_once_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let db = config.ledger.path.clone();
    let alerts = Arc::new(RecordingNotifier::default());
    let running = start_with(config, Arc::clone(&alerts)).await;

    // Another process holds the write lock for 8 s, past the 5 s busy timeout.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(8));
        conn.execute_batch("COMMIT").unwrap();
    });
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    fail_logins(&sim.router, "198.51.100.8", "admin", 5);
    assert!(
        eventually(Duration::from_secs(7), || sim.listed("198.51.100.7")
            && sim.listed("198.51.100.8"))
        .await
        .is_some(),
        "the bans reach the router while the ledger is locked"
    );
    assert!(ledger_rows(&db).is_empty(), "not in the file yet");
    assert!(metric(&running, "mtids_ledger_errors_total") >= 1.0);
    holder.join().unwrap();
    let caught_up = eventually(SOON, || {
        let rows = ledger_rows(&db);
        rows.len() == 2 && rows.iter().all(|(_, s)| s == "applied")
    })
    .await;
    assert!(caught_up.is_some(), "{:?}", ledger_rows(&db));
    // One alert for the outage, naming the ledger, not one per ban.
    let db_text = db.display().to_string();
    let outage_alerts = eventually(SOON, || {
        alerts
            .sources()
            .iter()
            .filter(|(_, s)| *s == db_text)
            .count()
            == 1
    })
    .await;
    assert!(outage_alerts.is_some(), "{:?}", alerts.sources());
    running.stop().await;
    assert_eq!(
        alerts
            .sources()
            .iter()
            .filter(|(_, s)| *s == db_text)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_ledger_refuses_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let running = Running::start(config.clone()).await;
    let Err(e) = Daemon::start(config.clone(), Options::default()) else {
        panic!("a second daemon started on the same ledger");
    };
    let text = e.to_string();
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("bans.db.lock"), "{text}");
    // `mtids bans` still works beside it.
    let mut out = String::new();
    bans::run(
        &config,
        &BansAction::List {
            filter: Default::default(),
            live: false,
            json: false,
        },
        SystemTime::now(),
        &mut out,
    )
    .await
    .unwrap();
    running.stop().await;
    // Released with the daemon.
    let again = Running::start(config).await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_ledger_is_moved_aside_and_the_routers_bans_learned_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let db = config.ledger.path.clone();
    let running = Running::start(config.clone()).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    eventually(SOON, || sim.listed("198.51.100.7"))
        .await
        .expect("banned");
    running.stop().await;
    // The header torn: "file is not a database".
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].fill(0x5A);
    std::fs::write(&db, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("bans.db-wal"));

    let mut stop = config.clone();
    stop.ledger.on_corrupt = OnCorrupt::Stop;
    let Err(e) = Daemon::start(stop, Options::default()) else {
        panic!("started on a corrupt ledger with on_corrupt = stop");
    };
    assert!(e.to_string().contains("ledger.on_corrupt"), "{e}");

    let running = Running::start(config).await;
    let moved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bans.db.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let learned = eventually(SOON, || {
        BanLedger::open(&db)
            .unwrap()
            .active(None, SystemTime::now())
            .unwrap()
            .iter()
            .any(|b| b.target == "198.51.100.7" && b.state == BanState::Applied)
    })
    .await;
    assert!(
        learned.is_some(),
        "the router's ban is back in the new ledger"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_unbanned_by_hand_is_banned_again_at_its_next_attack() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let running = Running::start(config.clone()).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    eventually(SOON, || sim.listed("198.51.100.7"))
        .await
        .expect("banned");

    let mut out = String::new();
    bans::run(
        &config,
        &BansAction::Remove {
            target: "198.51.100.7".into(),
            router: None,
            ledger_only: false,
        },
        SystemTime::now(),
        &mut out,
    )
    .await
    .unwrap();
    assert!(!sim.listed("198.51.100.7"), "{out}");
    // The daemon looks at the ledger every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fail_logins(&sim.router, "198.51.100.7", "admin", 5);
    assert!(
        eventually(SOON, || sim.listed("198.51.100.7"))
            .await
            .is_some(),
        "banned again after the manual unban"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_recorded_by_hand_reaches_the_router_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let running = Running::start(config.clone()).await;
    let mut out = String::new();
    bans::run(
        &config,
        &BansAction::Add {
            target: "198.51.100.44".into(),
            duration: Duration::from_secs(7200),
            reason: "seen in the web log".into(),
            router: None,
            ledger_only: true,
        },
        SystemTime::now(),
        &mut out,
    )
    .await
    .unwrap();
    assert!(
        eventually(SOON, || sim.listed("198.51.100.44"))
            .await
            .is_some(),
        "the daemon applied the ledger-only ban: {out}"
    );
    let applied = eventually(SOON, || {
        BanLedger::open(&config.ledger.path)
            .unwrap()
            .active(None, SystemTime::now())
            .unwrap()
            .iter()
            .any(|b| b.target == "198.51.100.44" && b.state == BanState::Applied)
    })
    .await;
    assert!(applied.is_some());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_manual_ban_leaves_ledger_and_router_at_the_longest_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let add = |secs: u64| BansAction::Add {
        target: "198.51.100.9".into(),
        duration: Duration::from_secs(secs),
        reason: "manual ban".into(),
        router: None,
        ledger_only: false,
    };
    let mut out = String::new();
    bans::run(&config, &add(7200), SystemTime::now(), &mut out)
        .await
        .unwrap();
    bans::run(&config, &add(3600), SystemTime::now(), &mut out)
        .await
        .unwrap();
    let entries: Vec<_> = sim
        .router
        .address_list(Family::V4)
        .into_iter()
        .filter(|e| e.list == LIST && e.address == "198.51.100.9")
        .collect();
    assert_eq!(entries.len(), 1);
    let on_router = entries[0].remaining(sim.router.now()).unwrap();
    assert!(
        on_router > Duration::from_secs(7100),
        "{on_router:?}\n{out}"
    );
    let active = BanLedger::open(&config.ledger.path)
        .unwrap()
        .active(None, SystemTime::now())
        .unwrap();
    assert_eq!(active.len(), 1);
    let in_ledger = active[0].remaining(SystemTime::now()).unwrap();
    assert!(in_ledger > Duration::from_secs(7100), "{in_ledger:?}");
    let comment = String::from_utf8(entries[0].comment.clone().unwrap()).unwrap();
    assert_eq!(comment, format!("mtids manual: {}", active[0].reason));
}

fn log_rows(running: &Running) -> u64 {
    Stats::get(&running.daemon.stats().log_rows)
}

/// Waits until the daemon has read every line the router logged, and a second more, so
/// its position is saved in the ledger.
async fn settle(sim: &Sim, running: &Running) {
    let all = sim.router.log_entries().len() as u64;
    eventually(SOON, || log_rows(running) >= all).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_logged_right_after_a_reboot_that_restarted_the_log_ids_is_banned() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    sim.router.set_restart_log_ids_on_reboot(true);
    let running = Running::start(sim.config(dir.path())).await;
    for i in 0..60 {
        sim.router
            .log("system,info", format!("before the reboot {i}"));
    }
    settle(&sim, &running).await;
    // Uptime counts whole seconds: let the new boot be clearly later than the first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.router.reboot();
    // Right after the reboot, before the daemon is back: the attack, then more lines
    // than the daemon had read before, so the old last `.id` exists again.
    fail_logins(&sim.router, "198.51.100.61", "admin", 5);
    for i in 0..100 {
        sim.router
            .log("system,info", format!("after the reboot {i}"));
    }
    assert_eq!(sim.router.log_entries()[0].id, 1, "the ids started again");
    assert!(
        eventually(Duration::from_secs(8), || sim.listed("198.51.100.61"))
            .await
            .is_some(),
        "the attack logged after the reboot is banned"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_logged_while_the_daemon_was_down_are_banned_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let running = Running::start(config.clone()).await;
    for i in 0..10 {
        sim.router.log("system,info", format!("while running {i}"));
    }
    settle(&sim, &running).await;
    running.stop().await;

    fail_logins(&sim.router, "198.51.100.62", "admin", 6);
    let running = Running::start(config).await;
    assert!(
        eventually(SOON, || sim.listed("198.51.100.62"))
            .await
            .is_some(),
        "the 6 failures logged during the outage are banned"
    );
    // Every line the router holds counted exactly once by this process: the lines
    // before the position (warm-up), the ones after it, and none twice though the print
    // and the follow overlap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logged = sim.router.log_entries().len() as u64;
    assert_eq!(log_rows(&running), logged);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_before_and_three_after_a_daemon_restart_add_up_to_a_ban() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let config = sim.config(dir.path());
    let running = Running::start(config.clone()).await;
    fail_logins(&sim.router, "198.51.100.63", "admin", 3);
    settle(&sim, &running).await;
    running.stop().await;
    assert!(!sim.listed("198.51.100.63"), "3 failures are below 5");

    let running = Running::start(config).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sim.listed("198.51.100.63"), "still 3");
    fail_logins(&sim.router, "198.51.100.63", "admin", 3);
    assert!(
        eventually(SOON, || sim.listed("198.51.100.63"))
            .await
            .is_some(),
        "3 before and 3 after the restart add up"
    );
    running.stop().await;
}
