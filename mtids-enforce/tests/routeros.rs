//! `RouterOsEnforcer` over real loopback sockets against routeros-sim, with the ban
//! ledger in a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{LIST, Sim, TestClock, ban, enforcer, ledger, v4};
use mtids_enforce::{BanState, Blocked, EnforceError, Enforcer, IpPrefix};
use routeros_proto::net::Client;
use routeros_sim::{Connection, Policies, Policy, User};

fn remaining(sim: &Sim, address: &str) -> Duration {
    sim.entry(LIST, address)
        .remaining(sim.router.now())
        .expect("a timeout")
}

#[tokio::test]
async fn a_ban_is_added_with_timeout_and_a_marked_comment_and_recorded_applied() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();

    let blocked = e.block(&ban("198.51.100.7", 3600)).await.unwrap();
    let Blocked::Added { id } = blocked else {
        panic!("{blocked:?}")
    };
    let entry = sim.entry(LIST, "198.51.100.7");
    assert_eq!(format!("*{:X}", entry.id), id);
    assert_eq!(
        entry.comment.as_deref(),
        Some(&b"mtids port_scan: mtids port_scan 40 ports in 5s"[..])
    );
    let left = remaining(&sim, "198.51.100.7");
    assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));

    let active = ledger
        .lock()
        .unwrap()
        .active(Some("gw"), clock.now())
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].state, BanState::Applied);
    assert_eq!(active[0].router_item.as_deref(), Some(id.as_str()));
    assert_eq!(e.enforced().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_duplicate_extends_the_timeout_updates_the_comment_and_never_shortens() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    // Listed before mtids started, unknown to the cache: found by one targeted print.
    sim.router
        .add_address_list_entry(
            LIST,
            "198.51.100.7",
            Some(Duration::from_secs(60)),
            Some("old"),
        )
        .unwrap();
    let e = enforcer(sim.client().await, &ledger, &clock);

    let mut longer = ban("198.51.100.7", 7200);
    longer.reason = "second offence".into();
    let blocked = e.block(&longer).await.unwrap();
    assert!(matches!(blocked, Blocked::Updated { .. }), "{blocked:?}");
    assert_eq!(sim.entries(LIST).len(), 1, "no second entry");
    let entry = sim.entry(LIST, "198.51.100.7");
    assert_eq!(
        entry.comment.as_deref(),
        Some(&b"mtids port_scan: second offence"[..])
    );
    assert!(remaining(&sim, "198.51.100.7") > Duration::from_secs(7100));

    // Shorter: the comment changes, the timeout stays (now from the cache, no print).
    let mut shorter = ban("198.51.100.7", 30);
    shorter.reason = "third".into();
    e.block(&shorter).await.unwrap();
    assert!(remaining(&sim, "198.51.100.7") > Duration::from_secs(7100));
    assert_eq!(
        sim.entry(LIST, "198.51.100.7").comment.as_deref(),
        Some(&b"mtids port_scan: third"[..])
    );
    assert!(
        !e.client().is_closed(),
        "a duplicate trap never drops the connection"
    );
}

#[tokio::test]
async fn ipv6_hosts_and_prefixes_go_to_the_ipv6_list() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();

    let results = e
        .block_all(&[ban("2001:db8:bad::7", 600), ban("2001:db8:bad:1::/64", 600)])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let v6 = sim.router.address_list(routeros_sim::Family::V6);
    let mut addresses: Vec<_> = v6.iter().map(|e| e.address.as_str()).collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["2001:db8:bad:1::/64", "2001:db8:bad::7/128"]);
    assert!(sim.router.address_list(routeros_sim::Family::V4).is_empty());

    // A duplicate of the host, whose router form is `/128`, is still found and updated.
    let e2 = enforcer(sim.client().await, &ledger, &clock);
    let again = e2.block(&ban("2001:db8:bad::7", 9000)).await.unwrap();
    assert!(matches!(again, Blocked::Updated { .. }), "{again:?}");
    assert!(remaining(&sim, "2001:db8:bad::7/128") > Duration::from_secs(8900));
}

#[tokio::test]
async fn unblock_removes_by_cached_id_and_marks_the_ban_removed() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    e.block_all(&[ban("198.51.100.7", 600), ban("198.51.100.8", 600)])
        .await;

    let target: IpPrefix = "198.51.100.7".parse().unwrap();
    assert!(e.unblock(target).await.unwrap());
    assert!(!sim.router.is_listed(LIST, "198.51.100.7"));
    assert!(sim.router.is_listed(LIST, "198.51.100.8"));
    assert!(!e.unblock(target).await.unwrap(), "not listed any more");
    let history = ledger.lock().unwrap().history("198.51.100.7").unwrap();
    assert_eq!(history[0].state, BanState::Removed);
    // After a restart the removed ban is not re-applied.
    let e2 = enforcer(sim.client().await, &ledger, &clock);
    let report = e2.reconcile().await.unwrap();
    assert!(report.missing.is_empty(), "{report:?}");
}

#[tokio::test]
async fn connections_from_and_to_the_target_are_dropped() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    let from = sim.router.add_connection(Connection::tcp(
        sa("198.51.100.7:40000"),
        sa("192.0.2.1:22"),
    ));
    let to = sim
        .router
        .add_connection(Connection::udp(sa("10.0.0.5:5353"), sa("198.51.100.7:53")));
    let icmp = sim.router.add_connection(Connection::icmp(
        "198.51.100.7".parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
    ));
    let other = sim.router.add_connection(Connection::tcp(
        sa("198.51.100.70:40000"),
        sa("192.0.2.1:22"),
    ));
    let v6 = sim.router.add_connection(Connection::tcp(
        sa("[2001:db8:bad::7]:40000"),
        sa("[2001:db8::1]:22"),
    ));
    let e = enforcer(sim.client().await, &ledger, &clock);

    let dropped = e
        .drop_connections("198.51.100.7".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(dropped, 3);
    let left: Vec<u64> = sim.router.connections().iter().map(|c| c.id).collect();
    assert!(!left.contains(&from) && !left.contains(&to) && !left.contains(&icmp));
    assert!(left.contains(&other) && left.contains(&v6));

    let dropped = e
        .drop_connections("2001:db8:bad::/48".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(sim.router.connection_count(), 1);
}

#[tokio::test]
async fn a_connection_dropped_mid_batch_loses_no_ban_and_doubles_none() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    // The connection dies after 50 more reply sentences, in the middle of 300 adds.
    sim.router.set_drop_after(Some(50 + 10));
    let bans: Vec<_> = (0..300).map(|i| ban(&v4(i), 3600)).collect();
    let results = e.block_all(&bans).await;
    sim.router.set_drop_after(None);
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.is_connection()))
        .count();
    // Replies already sent may be lost with the connection too (the router resets it
    // with unread commands in its buffer), so only the sum is certain.
    assert!(lost > 0 && ok + lost == 300, "ok {ok}, lost {lost}");

    // Reconnect: each ban whose answer was lost is either on the router (its add ran:
    // confirmed, not re-added) or not (re-applied).
    let e2 = enforcer(sim.client().await, &ledger, &clock);
    let report = e2.reconcile().await.unwrap();
    assert_eq!(report.reapplied, report.missing.len());
    assert_eq!(report.confirmed + report.reapplied, lost, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    let entries = sim.entries(LIST);
    assert_eq!(entries.len(), 300, "every ban on the router, none twice");
    let active = ledger
        .lock()
        .unwrap()
        .active(Some("gw"), clock.now())
        .unwrap();
    assert_eq!(active.len(), 300);
    assert!(active.iter().all(|b| b.state == BanState::Applied));
}

#[tokio::test]
async fn after_a_router_reboot_bans_come_back_with_their_remaining_time() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    tokio::time::sleep(Duration::from_millis(1100)).await; // uptime is printed in seconds
    e.reconcile().await.unwrap();
    e.block_all(&[ban("198.51.100.7", 3600), ban("198.51.100.8", 300)])
        .await;

    // 10 minutes later the router reboots: dynamic entries are gone.
    clock.advance(Duration::from_secs(600));
    sim.router.reboot();
    assert!(sim.entries(LIST).is_empty());

    let e2 = enforcer(sim.client().await, &ledger, &clock).with_last_uptime(e.last_uptime());
    let report = e2.reconcile().await.unwrap();
    assert!(report.rebooted, "{report:?}");
    assert_eq!(report.missing, vec!["198.51.100.7".parse().unwrap()]);
    assert_eq!(report.reapplied, 1);
    let left = remaining(&sim, "198.51.100.7");
    assert!(
        left > Duration::from_secs(2990) && left <= Duration::from_secs(3000),
        "{left:?}"
    );
    assert!(
        !sim.router.is_listed(LIST, "198.51.100.8"),
        "expired: not re-applied"
    );
}

#[tokio::test]
async fn a_daemon_restart_re_adds_nothing_that_is_still_listed() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let ids_before: Vec<u64>;
    {
        let ledger = ledger(&dir);
        let e = enforcer(sim.client().await, &ledger, &clock);
        e.reconcile().await.unwrap();
        let bans: Vec<_> = (0..20).map(|i| ban(&v4(i), 3600)).collect();
        assert!(e.block_all(&bans).await.iter().all(Result::is_ok));
        ids_before = sim.entries(LIST).iter().map(|e| e.id).collect();
        e.client().close().await;
    }
    // A new process: the ledger file reopened, a new connection.
    let ledger = ledger(&dir);
    let e = enforcer(sim.client().await, &ledger, &clock);
    let report = e.reconcile().await.unwrap();
    assert_eq!(report.listed, 20);
    assert!(
        report.missing.is_empty() && report.reapplied == 0,
        "{report:?}"
    );
    let ids_after: Vec<u64> = sim.entries(LIST).iter().map(|e| e.id).collect();
    assert_eq!(ids_before, ids_after, "the same entries, none re-added");
    let active = ledger
        .lock()
        .unwrap()
        .active(Some("gw"), clock.now())
        .unwrap();
    let applied_events = active
        .iter()
        .map(|b| {
            ledger
                .lock()
                .unwrap()
                .events(b.id)
                .unwrap()
                .iter()
                .filter(|ev| ev.state == BanState::Applied)
                .count()
        })
        .sum::<usize>();
    assert_eq!(applied_events, 20, "one applied event per ban");
    // The cache was rebuilt: an unblock needs no print.
    assert!(e.unblock(v4(3).parse().unwrap()).await.unwrap());
}

#[tokio::test]
async fn a_user_without_write_policy_gets_an_error_naming_it() {
    let sim = Sim::start().await;
    sim.router
        .add_user(User::new("reader", "pw", Policies::READ.with(Policy::Api)));
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let client = Client::connect(&sim.client_config("reader", "pw"))
        .await
        .unwrap();
    let e = enforcer(client, &ledger, &clock);
    e.reconcile().await.unwrap();
    let err = e.block(&ban("198.51.100.7", 600)).await.unwrap_err();
    assert!(
        matches!(
            err,
            EnforceError::MissingPolicy {
                policy: "write",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("`write` policy") && text.contains("/user group set"),
        "{text}"
    );
    let history = ledger.lock().unwrap().history("198.51.100.7").unwrap();
    assert_eq!(history[0].state, BanState::Failed);
    assert!(history[0].last_error.as_deref().unwrap().contains("write"));
}

#[tokio::test]
async fn hostile_reason_text_is_sanitised_in_the_comment() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    let mut hostile = ban("198.51.100.7", 600);
    hostile.reason = format!("user \"{}\"\r\n=list=allow \u{0}é; $x", "A".repeat(500));
    e.block(&hostile).await.unwrap();
    let entry = sim.entry(LIST, "198.51.100.7");
    let comment = entry.comment.unwrap();
    assert!(comment.len() <= mtids_enforce::MAX_COMMENT_LEN);
    assert!(
        comment.iter().all(|b| (0x20..0x7f).contains(b)),
        "{comment:?}"
    );
    assert!(!comment.contains(&b'"'));
    assert_eq!(entry.list, LIST, "the text could not change the list");
}

#[tokio::test]
async fn the_routers_own_addresses_are_never_banned() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    // The simulated router owns 192.0.2.1; a /24 around it covers it too.
    let err = e.block(&ban("192.0.2.0/24", 600)).await.unwrap_err();
    assert!(matches!(err, EnforceError::OwnAddress { .. }), "{err:?}");
    assert!(sim.entries(LIST).is_empty());
}

#[tokio::test]
async fn reconcile_extends_an_entry_shorter_than_the_ledger_says() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    let Blocked::Added { id } = e.block(&ban("198.51.100.7", 3600)).await.unwrap() else {
        panic!("not added")
    };
    // The router's entry ends in 2 minutes (as if an extension had been lost).
    e.client()
        .call(
            routeros_proto::Command::new("/ip/firewall/address-list/set")
                .id(&id)
                .attr("timeout", "2m"),
        )
        .await
        .unwrap();
    let e2 = enforcer(sim.client().await, &ledger, &clock);
    let report = e2.reconcile().await.unwrap();
    assert_eq!(report.extended, 1, "{report:?}");
    assert!(report.missing.is_empty());
    assert!(remaining(&sim, "198.51.100.7") > Duration::from_secs(3500));
    assert_eq!(sim.entries(LIST).len(), 1);
    // Reconciling again changes nothing.
    assert_eq!(e2.reconcile().await.unwrap().extended, 0);
}

/// A batch is sent a window at a time, not all at once: each command in flight holds its
/// future, reply channel and route in the client, and on a fleet an all-at-once burst
/// left the daemon hundreds of MiB larger (issue 15). With every answer 100 ms late, 64
/// bans take at least 4 rounds (window 16); all in flight at once they take one.
#[tokio::test]
async fn a_batch_is_sent_a_bounded_window_at_a_time() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = enforcer(sim.client().await, &ledger, &clock);
    e.reconcile().await.unwrap();
    let latency = Duration::from_millis(100);
    sim.router.set_latency(latency);
    let bans: Vec<_> = (0..64).map(|i| ban(&v4(i), 3600)).collect();
    let started = std::time::Instant::now();
    let results = e.block_all(&bans).await;
    let took = started.elapsed();
    sim.router.set_latency(Duration::ZERO);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(sim.entries(LIST).len(), 64);
    assert!(
        took >= latency * 3,
        "64 bans in {took:?}: more than a window of commands was in flight at once"
    );
}
