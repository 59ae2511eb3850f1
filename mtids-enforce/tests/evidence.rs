//! The evidence kept beside a ban: stored and read back, bounded, and a ledger written
//! by the previous schema (version 2) gains the table when it is opened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mtids_enforce::{BanLedger, MAX_EVIDENCE_LEN, NewBan};

fn ban<'a>(target: &'a str, now: SystemTime) -> NewBan<'a> {
    NewBan {
        router: "gw",
        list: "mtids-blocked",
        target,
        reason: "brute force",
        detector: "brute_force",
        created: now,
        duration: Some(Duration::from_secs(3600)),
    }
}

#[test]
fn evidence_is_kept_per_ban_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BanLedger::open(dir.path().join("bans.db")).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let id = ledger.record(&ban("198.51.100.7", now)).unwrap().id();
    let other = ledger.record(&ban("198.51.100.8", now)).unwrap().id();
    assert_eq!(ledger.evidence(id).unwrap(), None);
    let evidence = r#"{"kind":"brute_force","count":5,"users":["admin"],"router":"gw"}"#;
    assert!(ledger.set_evidence(id, evidence).unwrap());
    assert_eq!(ledger.evidence(id).unwrap().as_deref(), Some(evidence));
    assert_eq!(ledger.evidence(other).unwrap(), None);
    // Too long: not kept, the earlier evidence stays.
    let long = format!("\"{}\"", "x".repeat(MAX_EVIDENCE_LEN));
    assert!(!ledger.set_evidence(id, &long).unwrap());
    assert_eq!(ledger.evidence(id).unwrap().as_deref(), Some(evidence));
}

#[test]
fn a_version_2_ledger_is_upgraded_with_its_bans_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    {
        let mut ledger = BanLedger::open(&path).unwrap();
        ledger.record(&ban("198.51.100.7", now)).unwrap();
    }
    // Back to the schema before evidence, as a previous mtids left it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE ban_evidence; PRAGMA user_version = 2;")
            .unwrap();
    }
    let mut ledger = BanLedger::open(&path).unwrap();
    let active = ledger.active(None, now).unwrap();
    assert_eq!(active.len(), 1);
    assert!(ledger.set_evidence(active[0].id, "{}").unwrap());
    assert_eq!(
        ledger.evidence(active[0].id).unwrap().as_deref(),
        Some("{}")
    );
}
