//! The ban ledger against a real SQLite file: restarts, extensions, expiry, history,
//! schema versions, and a daemon killed in the middle of writing.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mtids_enforce::{BanLedger, BanState, LedgerError, NewBan, Recorded};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn ban<'a>(router: &'a str, target: &'a str, created: SystemTime, secs: Option<u64>) -> NewBan<'a> {
    NewBan {
        router,
        list: "mtids-blocked",
        target,
        reason: "ssh brute force",
        detector: "brute-force",
        created,
        duration: secs.map(Duration::from_secs),
    }
}

#[test]
fn active_bans_survive_a_restart_with_their_remaining_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    {
        let mut ledger = BanLedger::open(&path).unwrap();
        let id = ledger
            .record(&ban("gw", "198.51.100.7", at(0), Some(3600)))
            .unwrap();
        ledger.mark_applied(id.id(), Some("*1A"), at(1)).unwrap();
        ledger
            .record(&ban("gw", "2001:db8::/64", at(10), None))
            .unwrap();
        ledger
            .record(&ban("edge", "203.0.113.9", at(20), Some(60)))
            .unwrap();
    }
    let ledger = BanLedger::open(&path).unwrap();
    let active = ledger.active(Some("gw"), at(600)).unwrap();
    assert_eq!(active.len(), 2);
    assert_eq!(active[0].target, "198.51.100.7");
    assert_eq!(active[0].state, BanState::Applied);
    assert_eq!(active[0].router_item.as_deref(), Some("*1A"));
    assert_eq!(
        active[0].remaining(at(600)),
        Some(Duration::from_secs(3000))
    );
    assert_eq!(active[1].target, "2001:db8::/64");
    assert_eq!(active[1].remaining(at(600)), None, "permanent");
    // The other router's ban ran out at 80 s: not re-applied.
    assert!(ledger.active(Some("edge"), at(600)).unwrap().is_empty());
    assert_eq!(ledger.active(None, at(30)).unwrap().len(), 3);
    // The count agrees with the rows, for every router filter and time.
    assert_eq!(ledger.count_active(Some("gw"), at(600)).unwrap(), 2);
    assert_eq!(ledger.count_active(Some("edge"), at(600)).unwrap(), 0);
    assert_eq!(ledger.count_active(None, at(30)).unwrap(), 3);
    assert_eq!(ledger.count_active(None, at(600)).unwrap(), 2);
}

#[test]
fn active_bans_count_addresses_once_however_many_routers_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    // One ban fanned out to three routers in one transaction, and one on a single router.
    let fanout: Vec<NewBan<'_>> = ["gw", "edge", "core"]
        .iter()
        .map(|r| ban(r, "198.51.100.7", at(0), Some(60)))
        .chain([ban("gw", "203.0.113.9", at(0), Some(3600))])
        .collect();
    ledger.record_all(&fanout).unwrap();
    assert_eq!(ledger.count_active(None, at(10)).unwrap(), 4);
    assert_eq!(ledger.count_active_targets(at(10)).unwrap(), 2);
    assert_eq!(
        ledger.count_active_by_router(at(10)).unwrap(),
        [
            ("core".to_owned(), 1),
            ("edge".to_owned(), 1),
            ("gw".to_owned(), 2)
        ]
    );
    // The fan-out ran out at 60 s: one address left, on one router.
    assert_eq!(ledger.count_active_targets(at(120)).unwrap(), 1);
    assert_eq!(
        ledger.count_active_by_router(at(120)).unwrap(),
        [("gw".to_owned(), 1)]
    );
}

#[test]
fn a_repeat_decision_extends_the_active_ban_and_never_shortens_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let first = ledger
        .record(&ban("gw", "198.51.100.7", at(0), Some(3600)))
        .unwrap();
    assert!(matches!(first, Recorded::New(_)));

    let longer = ledger
        .record(&ban("gw", "198.51.100.7", at(100), Some(7200)))
        .unwrap();
    assert_eq!(longer, Recorded::Extended(first.id()));
    assert_eq!(ledger.get(first.id()).unwrap().expires, Some(at(7300)));

    let shorter = ledger
        .record(&ban("gw", "198.51.100.7", at(200), Some(10)))
        .unwrap();
    assert_eq!(shorter, Recorded::Extended(first.id()));
    assert_eq!(ledger.get(first.id()).unwrap().expires, Some(at(7300)));

    // The same target on another router or list is a ban of its own.
    let other = ledger
        .record(&ban("edge", "198.51.100.7", at(300), Some(60)))
        .unwrap();
    assert!(matches!(other, Recorded::New(id) if id != first.id()));
    assert_eq!(ledger.active(None, at(301)).unwrap().len(), 2);
}

#[test]
fn a_permanent_ban_stays_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let id = ledger
        .record(&ban("gw", "198.51.100.7", at(0), None))
        .unwrap()
        .id();
    ledger
        .record(&ban("gw", "198.51.100.7", at(5), Some(60)))
        .unwrap();
    assert_eq!(ledger.get(id).unwrap().expires, None);
}

#[test]
fn expiry_moves_bans_out_of_the_active_set_and_a_new_decision_starts_a_new_ban() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let first = ledger
        .record(&ban("gw", "198.51.100.7", at(0), Some(60)))
        .unwrap()
        .id();
    ledger
        .record(&ban("gw", "203.0.113.9", at(0), Some(600)))
        .unwrap();

    assert_eq!(ledger.expire_due(at(59)).unwrap(), 0);
    assert_eq!(
        ledger.expire_due(at(60)).unwrap(),
        1,
        "expires at exactly its end"
    );
    assert_eq!(ledger.get(first).unwrap().state, BanState::Expired);

    let again = ledger
        .record(&ban("gw", "198.51.100.7", at(120), Some(60)))
        .unwrap();
    assert!(matches!(again, Recorded::New(id) if id != first));

    // A ban that ran out but was not swept yet is expired by the next decision.
    let third = ledger
        .record(&ban("gw", "198.51.100.7", at(500), Some(60)))
        .unwrap();
    assert!(matches!(third, Recorded::New(_)));
    assert_eq!(ledger.get(again.id()).unwrap().state, BanState::Expired);
    assert_eq!(ledger.offences_since("198.51.100.7", at(0)).unwrap(), 3);
    assert_eq!(ledger.offences_since("198.51.100.7", at(100)).unwrap(), 2);
}

#[test]
fn history_keeps_every_decision_and_state_change_of_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let a = ledger
        .record(&ban("gw", "198.51.100.7", at(0), Some(60)))
        .unwrap()
        .id();
    ledger
        .mark_failed(a, "not enough permissions (9)", at(1))
        .unwrap();
    let b = ledger
        .record(&ban("gw", "198.51.100.7", at(10), Some(60)))
        .unwrap()
        .id();
    ledger.mark_applied(b, Some("*2"), at(11)).unwrap();
    ledger
        .mark_removed(b, "unblocked by operator", at(20))
        .unwrap();
    ledger
        .record(&ban("gw", "203.0.113.9", at(10), Some(60)))
        .unwrap();

    let history = ledger.history("198.51.100.7").unwrap();
    assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(history[0].state, BanState::Failed);
    assert_eq!(
        history[0].last_error.as_deref(),
        Some("not enough permissions (9)")
    );
    assert_eq!(history[1].state, BanState::Removed);

    let events = ledger.events(b).unwrap();
    let states: Vec<_> = events.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        vec![BanState::Pending, BanState::Applied, BanState::Removed]
    );
    assert_eq!(events[2].detail, "unblocked by operator");
    assert_eq!(events[2].at, at(20));
    // A failed attempt is not counted as an offence.
    assert_eq!(ledger.offences_since("198.51.100.7", at(0)).unwrap(), 1);
}

#[test]
fn unknown_ids_are_errors_not_silent_no_ops() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let missing = mtids_enforce::BanId(42);
    assert!(matches!(
        ledger.mark_applied(missing, None, at(0)),
        Err(LedgerError::NoSuchBan(_))
    ));
    assert!(matches!(
        ledger.mark_failed(missing, "x", at(0)),
        Err(LedgerError::NoSuchBan(_))
    ));
    assert!(matches!(
        ledger.mark_removed(missing, "x", at(0)),
        Err(LedgerError::NoSuchBan(_))
    ));
    assert!(matches!(
        ledger.get(missing),
        Err(LedgerError::NoSuchBan(_))
    ));
}

#[test]
fn a_ledger_from_a_newer_mtids_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    drop(BanLedger::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", BanLedger::SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = BanLedger::open(&path).unwrap_err();
    assert!(matches!(err, LedgerError::NewerSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("upgrade mtids"), "{err}");
}

#[test]
fn opening_a_path_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("bans.db");
    let err = BanLedger::open(&path).unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn a_hand_edited_state_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let mut ledger = BanLedger::open(&path).unwrap();
    ledger
        .record(&ban("gw", "198.51.100.7", at(0), Some(60)))
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE bans SET state = 'bogus'", []).unwrap();
    let err = ledger.history("198.51.100.7").unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Corrupt {
                what: "ban state",
                ..
            }
        ),
        "{err:?}"
    );
}

const CHILD_ENV: &str = "MTIDS_LEDGER_CRASH_CHILD";

/// Not a test on its own: the body of the child process that the crash test kills.
#[test]
fn crash_child_writes_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut ledger = BanLedger::open(&path).unwrap();
    for i in 0u64.. {
        let target = format!("198.51.{}.{}", (i / 250) % 250, i % 250 + 1);
        let id = ledger
            .record(&ban("gw", &target, at(i), Some(3600)))
            .unwrap()
            .id();
        ledger.mark_applied(id, Some("*1"), at(i)).unwrap();
    }
}

#[test]
fn a_daemon_killed_mid_write_leaves_a_consistent_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    drop(BanLedger::open(&path).unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_writes_until_killed", "--nocapture"])
        .env(CHILD_ENV, &path)
        .spawn()
        .unwrap();
    // Wait until the child has written a good number of bans, then kill it mid-stream.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.busy_timeout(Duration::from_secs(5)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = reader
            .query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0))
            .unwrap();
        if n >= 300 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child wrote only {n} bans in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(reader);

    let ledger = BanLedger::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Every recorded ban has its 'decided' event: each record was all or nothing.
    let orphans: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM bans b WHERE NOT EXISTS
               (SELECT 1 FROM ban_events e WHERE e.ban_id = b.id AND e.state = 'pending')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    let applied_without_event: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM bans b WHERE b.state = 'applied' AND NOT EXISTS
               (SELECT 1 FROM ban_events e WHERE e.ban_id = b.id AND e.state = 'applied')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(applied_without_event, 0);
    assert!(ledger.active(None, at(0)).unwrap().len() >= 300);
}

#[test]
fn batches_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let bans = [
        ban("gw", "198.51.100.7", at(0), Some(60)),
        ban("gw", "198.51.100.8", at(0), Some(60)),
        ban("gw", "198.51.100.7", at(1), Some(120)),
    ];
    let outcomes = ledger.record_all(&bans).unwrap();
    assert!(
        matches!(outcomes[..], [Recorded::New(a), Recorded::New(_), Recorded::Extended(c)] if a == c)
    );

    let good = outcomes[1].id();
    let err = ledger
        .mark_applied_all(
            &[(good, Some("*2")), (mtids_enforce::BanId(999), None)],
            at(2),
        )
        .unwrap_err();
    assert!(matches!(err, LedgerError::NoSuchBan(_)));
    assert_eq!(
        ledger.get(good).unwrap().state,
        BanState::Pending,
        "rolled back"
    );
}
