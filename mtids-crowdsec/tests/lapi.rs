//! The client against the real CrowdSec LAPI (Debian bookworm's `crowdsec` 1.4.6) on
//! loopback, started by `tests/lapi.sh` (which `.ci/run` calls before the tests).
//!
//! The tests find it through the file the script writes (`/var/lib/mtids-test-lapi/lapi.env`,
//! or the path in `MTIDS_TEST_LAPI_ENV`) and fail, not skip, when it is missing. Each test
//! uses its own bouncer (the LAPI keeps each bouncer's last pull) and its own addresses.
//! The tests that stop or restart the LAPI take a write lock; the others a read lock.

// Helpers outside #[test] functions unwrap too: a panic in a test is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use mtids_crowdsec::{
    Ban, BanReport, BanScope, Bouncer, Evidence, MachineCredentials, OwnBans, Secret,
    StreamFilters, Submitted, Url, Watcher, WatcherConfig,
};

#[path = "support/lapi.rs"]
mod support;
use support::{LAPI_UP, StartOnDrop, cscli, lapi, lapi_script, lapi_up, unique};

/// The LAPI's URL, parsed.
fn url() -> Url {
    Url::parse(&lapi().url).unwrap()
}

fn new_bouncer(prefix: &str, filters: StreamFilters, own: OwnBans) -> Bouncer {
    let key = cscli(&["bouncers", "add", &unique(prefix), "-o", "raw"]);
    Bouncer::new(&url(), Secret::new(key.trim()), filters, 50_000, own).unwrap()
}

fn new_machine(prefix: &str) -> MachineCredentials {
    let id = unique(prefix);
    let password = format!("pw-{id}");
    cscli(&[
        "machines",
        "add",
        &id,
        "--password",
        &password,
        "--force",
        "-f",
        "/dev/null",
    ]);
    MachineCredentials::new(id, password)
}

fn fast() -> WatcherConfig {
    let mut c = WatcherConfig::default();
    c.min_backoff = Duration::from_millis(100);
    c.max_backoff = Duration::from_millis(500);
    c
}

/// Ends every decision on `value` left by earlier runs.
fn clear(flag: &str, value: &str) {
    cscli(&["decisions", "delete", flag, value]);
}

fn find<'a>(bans: &'a [Ban], target: &str) -> Option<&'a Ban> {
    bans.iter().find(|b| b.target.to_string() == target)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `cscli decisions list -i ADDR --origin mtids -o json`: (scenario, machine) of each
/// decision on `addr`. 1.4.6's `cscli decisions list` shows only origins `crowdsec` and
/// `cscli` unless `--origin` or `--all` is given (`include_capi` in
/// `pkg/database/alerts.go`, crowdsec v1.4.6).
fn listed_mtids(addr: &str) -> Vec<(String, String)> {
    let out = cscli(&[
        "decisions",
        "list",
        "-i",
        addr,
        "--origin",
        "mtids",
        "-o",
        "json",
    ]);
    let alerts: serde_json::Value = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    let mut found = Vec::new();
    for alert in alerts.as_array().into_iter().flatten() {
        for d in alert["decisions"].as_array().into_iter().flatten() {
            if d["value"] == addr && d["origin"] == "mtids" {
                found.push((
                    d["scenario"].as_str().unwrap_or_default().to_owned(),
                    alert["machine_id"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    found
}

#[tokio::test]
async fn cscli_ban_is_in_the_snapshot_and_its_deletion_in_the_next_delta() {
    let _up = lapi_up().await;
    let ip = "198.51.100.7";
    clear("-i", ip);
    let mut bouncer = new_bouncer(
        "snapshot",
        StreamFilters::new(vec!["cscli".into()], vec![]),
        OwnBans::new(),
    );
    cscli(&["decisions", "add", "-i", ip, "-d", "1h"]);

    let update = bouncer.pull().await.unwrap();
    assert!(update.startup);
    let ban = find(&update.new, ip).expect("the cscli ban is in the startup stream");
    assert_eq!(ban.scope, BanScope::Ip);
    assert_eq!(ban.origin, "cscli");
    assert!(
        ban.remaining > Duration::from_secs(59 * 60) && ban.remaining <= Duration::from_secs(3600),
        "about one hour left, got {:?}",
        ban.remaining
    );

    cscli(&["decisions", "delete", "-i", ip]);
    let update = bouncer.pull().await.unwrap();
    assert!(!update.startup);
    assert!(find(&update.new, ip).is_none());
    let gone = find(&update.deleted, ip).expect("the deletion is in the next delta");
    assert_eq!(gone.remaining, Duration::ZERO);
}

#[tokio::test]
async fn range_ban_and_origin_filter() {
    let _up = lapi_up().await;
    let range = "203.0.113.0/24";
    clear("-r", range);
    cscli(&["decisions", "add", "-r", range, "-d", "2h"]);

    let mut bouncer = new_bouncer(
        "range",
        StreamFilters::new(vec!["cscli".into()], vec![]),
        OwnBans::new(),
    );
    let update = bouncer.pull().await.unwrap();
    let ban = find(&update.new, range).expect("the range ban is in the startup stream");
    assert_eq!(ban.scope, BanScope::Range);
    assert_eq!(ban.target.prefix_len(), 24);
    assert!(ban.remaining > Duration::from_secs(119 * 60));

    // Filtered to another origin, the LAPI leaves it out.
    let mut crowdsec_only = new_bouncer(
        "range-filtered",
        StreamFilters::new(vec!["crowdsec".into()], vec![]),
        OwnBans::new(),
    );
    let update = crowdsec_only.pull().await.unwrap();
    assert!(find(&update.new, range).is_none());
    assert!(update.new.iter().all(|b| b.origin == "crowdsec"));
}

#[tokio::test]
async fn pushed_alert_is_a_cscli_decision_and_comes_back_marked_as_ours() {
    let _up = lapi_up().await;
    let ip = "198.51.100.20";
    clear("-i", ip);
    let own = OwnBans::new();
    let now = SystemTime::now();
    let report = BanReport::new(
        ip.parse().unwrap(),
        Duration::from_secs(3600),
        "brute_force",
        "12 failed logins for admin via ssh in 60 s",
        now,
    )
    .with_event(Evidence::new(
        now,
        vec![
            ("user".into(), "admin".into()),
            ("service".into(), "ssh".into()),
        ],
    ));
    let machine = new_machine("push");
    let machine_id = machine.machine_id.clone();
    let watcher = Watcher::spawn(&url(), machine, fast(), own.clone()).unwrap();
    assert_eq!(watcher.submit(report), Submitted::Queued);
    wait_for("the alert to be delivered", Duration::from_secs(20), || {
        watcher.stats().delivered == 1
    })
    .await;
    assert_eq!(watcher.stats().rejected, 0);

    assert_eq!(
        listed_mtids(ip),
        [("mtids/brute_force".to_owned(), machine_id)],
        "cscli decisions list --origin mtids"
    );

    // This instance's bouncer recognises its own ban ...
    let mut ours = new_bouncer(
        "push-ours",
        StreamFilters::new(vec!["mtids".into()], vec![]),
        own,
    );
    let update = ours.pull().await.unwrap();
    let ban = find(&update.new, ip).expect("the pushed ban is in the stream");
    assert_eq!(
        (ban.origin.as_str(), ban.scenario.as_str()),
        ("mtids", "mtids/brute_force")
    );
    assert!(ban.pushed_by_us);
    assert!(ban.remaining > Duration::from_secs(59 * 60));
    // ... another instance's does not: for it, this is a ban to apply.
    let mut theirs = new_bouncer(
        "push-theirs",
        StreamFilters::new(vec!["mtids".into()], vec!["brute_force".into()]),
        OwnBans::new(),
    );
    let update = theirs.pull().await.unwrap();
    let ban = find(&update.new, ip).expect("origin and scenario filters keep it");
    assert!(!ban.pushed_by_us);
    watcher.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn restarted_lapi_refuses_the_old_token_and_the_watcher_logs_in_again() {
    let _exclusive = LAPI_UP.write().await;
    let _restart = StartOnDrop;
    lapi_script("start");
    let watcher = Watcher::spawn(&url(), new_machine("jwt"), fast(), OwnBans::new()).unwrap();
    let first = "198.51.100.30";
    let second = "198.51.100.31";
    clear("-i", first);
    clear("-i", second);
    watcher.submit(BanReport::new(
        first.parse().unwrap(),
        Duration::from_secs(600),
        "port_scan",
        "scan",
        SystemTime::now(),
    ));
    wait_for("the first alert", Duration::from_secs(20), || {
        watcher.stats().delivered == 1
    })
    .await;
    assert_eq!(watcher.stats().logins, 1);

    // 1.4.6 signs tokens with a secret drawn at each start (no CS_LAPI_SECRET): after a
    // restart the watcher's token gets a 401 (pkg/apiserver/middlewares/v1/jwt.go).
    lapi_script("stop");
    lapi_script("start");
    watcher.submit(BanReport::new(
        second.parse().unwrap(),
        Duration::from_secs(600),
        "port_scan",
        "scan",
        SystemTime::now(),
    ));
    wait_for("the second alert", Duration::from_secs(30), || {
        watcher.stats().delivered == 2
    })
    .await;
    assert_eq!(watcher.stats().logins, 2, "{:?}", watcher.stats());
    assert_eq!(watcher.stats().rejected, 0);
    assert_eq!(listed_mtids(second).len(), 1);
}

#[tokio::test]
async fn lapi_down_never_delays_submit_and_the_queue_drains_when_it_is_back() {
    let _exclusive = LAPI_UP.write().await;
    let _restart = StartOnDrop;
    lapi_script("start");
    let mut config = fast();
    config.queue_capacity = 5;
    let watcher = Watcher::spawn(&url(), new_machine("outage"), config, OwnBans::new()).unwrap();
    let ips: Vec<String> = (100..120).map(|i| format!("198.51.100.{i}")).collect();
    for ip in &ips {
        clear("-i", ip);
    }

    lapi_script("stop");
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for ip in &ips {
        let t = Instant::now();
        watcher.submit(BanReport::new(
            ip.parse().unwrap(),
            Duration::from_secs(900),
            "port_scan",
            "scan",
            SystemTime::now(),
        ));
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(100),
        "a submit took {slowest:?} with the LAPI down"
    );
    // Let the watcher fail a few times against the stopped LAPI.
    wait_for(
        "retries against the stopped LAPI",
        Duration::from_secs(20),
        || watcher.stats().retries >= 2,
    )
    .await;
    let stats = watcher.stats();
    assert_eq!(stats.submitted, 20);
    assert_eq!(stats.delivered, 0);
    assert!(stats.queued <= 10, "queue bounded: {stats:?}");
    assert!(stats.dropped >= 10, "{stats:?}");
    eprintln!(
        "LAPI down: 20 submits, slowest {slowest:?}, all in {:?}",
        start.elapsed()
    );

    lapi_script("start");
    let expected = stats.submitted - stats.dropped;
    wait_for("the queued alerts", Duration::from_secs(30), || {
        watcher.stats().delivered == expected
    })
    .await;
    assert_eq!(watcher.stats().queued, 0);
    // The newest report is never the one dropped.
    let last = ips.last().unwrap();
    assert!(
        listed_mtids(last)
            .iter()
            .any(|(scenario, _)| scenario == "mtids/port_scan"),
        "{last}: {:?}",
        listed_mtids(last)
    );
}

/// `GET path` with the bouncer key over a plain socket; the body's length.
async fn raw_get(path: &str, key: &str) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = lapi().addr();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nX-Api-Key: {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"));
    answer.len() - head_end - 4
}

/// Not a timing assertion: prints how long one startup pull of 10,000 imported decisions takes.
#[tokio::test]
async fn bulk_snapshot_of_10000_imported_decisions() {
    // Alone: a 10,000-decision import holds SQLite's write lock for a while.
    let _exclusive = LAPI_UP.write().await;
    let _restart = StartOnDrop;
    lapi_script("start");
    let dir = std::env::temp_dir().join(unique("mtids-import"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("decisions.csv");
    // 198.18.0.0/15 is reserved for benchmarking (RFC 2544).
    let mut csv = String::from("value\n");
    for i in 0..10_000u32 {
        csv.push_str(&format!("198.18.{}.{}\n", i / 256, i % 256));
    }
    std::fs::write(&file, csv).unwrap();
    // A scenario of this run's own, so that earlier runs' imports stay out of the pull.
    let reason = unique("mtids-bench");
    let imported = Instant::now();
    cscli(&[
        "decisions",
        "import",
        "-i",
        file.to_str().unwrap(),
        "-d",
        "2h",
        "-R",
        &reason,
    ]);
    let import_time = imported.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();

    let mut bouncer = new_bouncer(
        "bulk",
        StreamFilters::new(vec!["cscli-import".into()], vec![reason.clone()]),
        OwnBans::new(),
    );
    // The LAPI's share: the same snapshot, read whole over a plain socket, not parsed.
    let key = cscli(&["bouncers", "add", &unique("bulk-raw"), "-o", "raw"]);
    let query = format!(
        "/v1/decisions/stream?startup=true&scopes=ip%2Crange&origins=cscli-import&scenarios_containing={reason}"
    );
    let start = Instant::now();
    let raw_bytes = raw_get(&query, key.trim()).await;
    let lapi_only = start.elapsed();

    let start = Instant::now();
    let update = bouncer.pull().await.unwrap();
    let took = start.elapsed();
    let bench: Vec<_> = update
        .new
        .iter()
        .filter(|b| b.target.to_string().starts_with("198.18."))
        .collect();
    assert_eq!(bench.len(), 10_000, "every imported address, once");
    assert_eq!(update.new.len(), 10_000, "nothing but this run's import");
    assert!(update.new.iter().all(|b| b.scenario == reason));
    assert!(
        bench
            .iter()
            .all(|b| b.remaining > Duration::from_secs(3600))
    );
    eprintln!(
        "bulk: cscli import of 10,000 decisions {import_time:?}; one startup pull+parse of {} bans \
         {took:?}; the same {raw_bytes} bytes read without parsing {lapi_only:?}",
        update.new.len()
    );
}
