//! The ledger never stands between a decision and the router: a ledger file locked by
//! another process, read-only, on a full disk, corrupt or empty still lets every ban
//! reach the router (real SQLite files, real loopback sockets against routeros-sim), and
//! the ledger catches up once it can be written.
//!
//! Tests run as root, where file modes do not stop writes: "read-only" is a file made
//! immutable (`chattr +i`, which stops even root's writes through open descriptors) and
//! "full" is a small tmpfs mounted for the test and filled up: what a daemon meets when
//! a disk goes bad.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{LIST, Sim, TestClock, ban, enforcer, v4};
use mtids_enforce::{BanLedger, BanState, Enforcer, LedgerError};

/// Rows of the `bans` table as another process would see them.
fn rows(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT target, state FROM bans ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn shared(ledger: BanLedger) -> Arc<Mutex<BanLedger>> {
    Arc::new(Mutex::new(ledger))
}

/// Holds the write lock of `path` from a second connection for `hold`, in a thread.
fn hold_lock(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_held_within_the_busy_timeout_is_waited_for() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let ledger = shared(BanLedger::open(&path).unwrap());
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();

    let holder = hold_lock(&path, Duration::from_secs(2));
    let started = Instant::now();
    e.block(&ban("198.51.100.7", 3600)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the write waited for the lock: {:?}",
        started.elapsed()
    );
    holder.join().unwrap();
    sim.entry(LIST, "198.51.100.7");
    assert_eq!(
        rows(&path),
        [("198.51.100.7".to_owned(), "applied".to_owned())]
    );
    assert_eq!(ledger.lock().unwrap().health().errors_total, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite3_shell_holding_the_lock_is_waited_for() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let ledger = shared(BanLedger::open(&path).unwrap());
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();

    // The operator's `sqlite3` shell with a write transaction open.
    let mut shell = Command::new("sqlite3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell (apt-get install sqlite3)");
    let mut stdin = shell.stdin.take().unwrap();
    writeln!(stdin, "BEGIN IMMEDIATE;\nSELECT 'locked';").unwrap();
    stdin.flush().unwrap();
    let mut stdout = BufReader::new(shell.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        writeln!(stdin, "COMMIT;\n.quit").unwrap();
    });
    let started = Instant::now();
    e.block(&ban("198.51.100.8", 3600)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    release.join().unwrap();
    assert!(shell.wait().unwrap().success());
    assert_eq!(
        rows(&path),
        [("198.51.100.8".to_owned(), "applied".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_held_past_the_timeout_still_bans_and_the_row_follows() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let mut l = BanLedger::open(&path).unwrap();
    l.set_busy_timeout(Duration::from_millis(300)).unwrap();
    let ledger = shared(l);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();

    let holder = hold_lock(&path, Duration::from_secs(2));
    let results = e.block_all(&[ban(&v4(1), 3600), ban(&v4(2), 3600)]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // On the router at once, not in the file yet.
    sim.entry(LIST, &v4(1));
    sim.entry(LIST, &v4(2));
    let health = ledger.lock().unwrap().health();
    assert!(health.errors_total >= 1, "{health:?}");
    assert!(health.failing_since.is_some());
    assert!(
        health.backlog >= 2,
        "two records and their applied marks kept"
    );
    holder.join().unwrap();
    assert!(rows(&path).is_empty());

    let replayed = ledger.lock().unwrap().flush_backlog().unwrap();
    assert!(replayed >= 2);
    assert_eq!(
        rows(&path),
        [(v4(1), "applied".to_owned()), (v4(2), "applied".to_owned())]
    );
    let health = ledger.lock().unwrap().health();
    assert_eq!(health.backlog, 0);
    assert_eq!(health.failing_since, None);
    // The router's item reached the ledger with the replay.
    let active = ledger
        .lock()
        .unwrap()
        .active(Some("gw"), clock.now())
        .unwrap();
    assert_eq!(
        active[0].router_item.as_deref(),
        Some(format!("*{:X}", sim.entry(LIST, &v4(1)).id).as_str())
    );
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Mount { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Files made immutable (`chattr +i`): even root's writes through descriptors already
/// open fail with `EPERM`, as on a disk the kernel stopped writing. Undone when dropped.
/// This needs a file system with inode flags (ext4, xfs, btrfs): the test directory is
/// under Cargo's target directory, not a tmpfs (where the flag does not stop writes).
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: &[PathBuf]) -> Immutable {
        for p in paths {
            let status = Command::new("chattr").arg("+i").arg(p).status().unwrap();
            assert!(status.success(), "chattr +i {}", p.display());
        }
        Immutable(paths.to_vec())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(p).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_ledger_file_still_bans_and_catches_up_when_writable() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("bans.db");
    let wal = dir.path().join("bans.db-wal");
    let ledger = shared(BanLedger::open(&path).unwrap());
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    e.block(&ban(&v4(1), 3600)).await.unwrap();

    let read_only = Immutable::set(&[path.clone(), wal.clone()]);
    e.block(&ban(&v4(2), 3600)).await.unwrap();
    sim.entry(LIST, &v4(2));
    let health = ledger.lock().unwrap().health();
    assert!(
        health.errors_total >= 1 && health.backlog >= 1,
        "{health:?}"
    );
    // At start, an unwritable ledger is refused by the check, and an immutable file
    // cannot be moved aside: the error says so.
    let err = BanLedger::open_checked(&path).unwrap_err();
    assert!(matches!(err, LedgerError::Unusable { .. }), "{err}");
    let err = BanLedger::open_or_recover(&path, clock.now()).unwrap_err();
    assert!(err.to_string().contains("moving it aside"), "{err}");

    drop(read_only);
    ledger.lock().unwrap().flush_backlog().unwrap();
    assert_eq!(
        rows(&path),
        [(v4(1), "applied".to_owned()), (v4(2), "applied".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_still_bans_and_catches_up_when_space_returns() {
    let sim = Sim::start().await;
    let mount = Mount::tmpfs("1m");
    let path = mount.path("bans.db");
    let ledger = shared(BanLedger::open(&path).unwrap());
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();

    // Fill the file system to the last byte.
    let filler = mount.path("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let bans: Vec<_> = (1..=50).map(|i| ban(&v4(i), 3600)).collect();
    let results = e.block_all(&bans).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(sim.entries(LIST).len(), 50);
    let health = ledger.lock().unwrap().health();
    assert!(health.errors_total >= 1, "{health:?}");

    std::fs::remove_file(&filler).unwrap();
    ledger.lock().unwrap().flush_backlog().unwrap();
    let rows = rows(&path);
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|(_, state)| state == "applied"), "{rows:?}");
}

/// Overwrites the first page of the ledger's `bans_by_target` index with garbage.
fn corrupt_an_index_page(path: &Path) {
    let (root, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap_or(());
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'bans_by_target'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let page_size = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        (root, page_size)
    };
    let mut bytes = std::fs::read(path).unwrap();
    let start = usize::try_from((root - 1) * page_size).unwrap();
    let end = start + usize::try_from(page_size).unwrap();
    assert!(end <= bytes.len());
    bytes[start..end].fill(0xA5);
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_ledger_still_bans_and_is_moved_aside_at_start() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let clock = TestClock::new();
    {
        let ledger = shared(BanLedger::open(&path).unwrap());
        let e = enforcer(sim.client().await, &ledger, &clock);
        e.reconcile().await.unwrap();
        let bans: Vec<_> = (1..=20).map(|i| ban(&v4(i), 3600)).collect();
        assert!(e.block_all(&bans).await.iter().all(Result::is_ok));
    }
    corrupt_an_index_page(&path);

    // Running on it (opened without the check): bans still reach the router.
    let ledger = shared(BanLedger::open(&path).unwrap());
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.block(&ban(&v4(21), 3600)).await.unwrap();
    e.block(&ban(&v4(3), 7200)).await.unwrap();
    sim.entry(LIST, &v4(21));
    assert!(ledger.lock().unwrap().health().errors_total >= 1);
    drop(e);
    drop(ledger);

    // At start: refused by the check, moved aside with a timestamped name, a new one.
    let err = BanLedger::open_checked(&path).unwrap_err();
    assert!(matches!(err, LedgerError::Unusable { .. }), "{err}");
    let (fresh, moved) = BanLedger::open_or_recover(&path, clock.now()).unwrap();
    let moved = moved.expect("moved aside");
    let name = moved.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("bans.db.corrupt-"), "{name}");
    let stamp = name.trim_start_matches("bans.db.corrupt-");
    assert_eq!(stamp.len(), "20261207T012233Z".len(), "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
        "{stamp}"
    );
    assert!(moved.exists());
    assert!(fresh.active(None, clock.now()).unwrap().is_empty());

    // The routers still hold the bans: reconcile learns them back.
    let ledger = shared(fresh);
    let e = enforcer(sim.client().await, &ledger, &clock);
    let report = e.reconcile().await.unwrap();
    assert_eq!(report.adopted, 21);
    let active = ledger
        .lock()
        .unwrap()
        .active(Some("gw"), clock.now())
        .unwrap();
    assert_eq!(active.len(), 21);
    assert!(active.iter().all(|b| b.state == BanState::Applied));
    assert!(active.iter().all(|b| b.detector == "port_scan"));
    // A new ban works in the new file.
    e.block(&ban(&v4(30), 3600)).await.unwrap();
    assert_eq!(rows(&path).len(), 22);
    // A second reconcile adopts nothing more.
    assert_eq!(e.reconcile().await.unwrap().adopted, 0);
}

#[test]
fn a_zero_length_ledger_is_moved_aside_not_taken_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    std::fs::write(&path, b"").unwrap();
    let err = BanLedger::open_checked(&path).unwrap_err();
    assert!(err.to_string().contains("zero length"), "{err}");
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_606_553);
    let (mut ledger, moved) = BanLedger::open_or_recover(&path, now).unwrap();
    assert_eq!(
        moved.unwrap().file_name().unwrap(),
        "bans.db.corrupt-20261207T012233Z"
    );
    ledger
        .record(&mtids_enforce::NewBan {
            router: "gw",
            list: LIST,
            target: "198.51.100.7",
            reason: "r",
            detector: "d",
            created: now,
            duration: None,
        })
        .unwrap();
    assert_eq!(rows(&path).len(), 1);
    // A healthy file opens as it is.
    drop(ledger);
    let (_, moved) = BanLedger::open_or_recover(&path, now).unwrap();
    assert_eq!(moved, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_ban_sends_the_ledgers_longest_expiry() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.db");
    let ledger = shared(BanLedger::open(&path).unwrap());
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    e.block(&ban("198.51.100.9", 7200)).await.unwrap();
    e.block(&ban("198.51.100.9", 3600)).await.unwrap();
    let left = sim
        .entry(LIST, "198.51.100.9")
        .remaining(sim.router.now())
        .unwrap();
    assert!(left > Duration::from_secs(7100), "{left:?}");
    let active = ledger.lock().unwrap().active(None, clock.now()).unwrap();
    assert_eq!(active.len(), 1);
    assert!(active[0].remaining(clock.now()).unwrap() > Duration::from_secs(7100));
}
