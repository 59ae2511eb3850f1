//! IPv4 and IPv6 bans on address lists of different names, and a router without IPv6,
//! against routeros-sim over real loopback sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Sim, TestClock, ban, ledger};
use mtids_enforce::{
    BanLedger, BanState, Blocked, EnforceError, Enforcer, IpPrefix, RouterOsConfig,
    RouterOsEnforcer,
};
use routeros_proto::net::Client;
use routeros_sim::Family;

const V4_LIST: &str = "blocked4";
const V6_LIST: &str = "blocked6";

fn two_lists(
    client: Client,
    ledger: &Arc<Mutex<BanLedger>>,
    clock: &TestClock,
) -> RouterOsEnforcer {
    let config = RouterOsConfig::new("gw").list(V4_LIST).list_v6(V6_LIST);
    RouterOsEnforcer::new(client, config, ledger.clone()).with_clock(clock.clock())
}

/// The `(list, address)` pairs of one family's address list, sorted.
fn listed(sim: &Sim, family: Family) -> Vec<(String, String)> {
    let mut out: Vec<_> = sim
        .router
        .address_list(family)
        .into_iter()
        .map(|e| (e.list, e.address))
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(l, a)| ((*l).to_owned(), (*a).to_owned()))
        .collect()
}

#[test]
fn the_ipv6_list_follows_the_ipv4_one_unless_set() {
    let v4: IpPrefix = "198.51.100.7".parse().unwrap();
    let v6: IpPrefix = "2001:db8::7".parse().unwrap();
    let default = RouterOsConfig::new("gw");
    assert_eq!(default.list_for(&v4), mtids_enforce::DEFAULT_LIST);
    assert_eq!(default.list_for(&v6), mtids_enforce::DEFAULT_LIST);
    let one = RouterOsConfig::new("gw").list("x");
    assert_eq!((one.list_for(&v4), one.list_for(&v6)), ("x", "x"));
    let two = RouterOsConfig::new("gw").list("x").list_v6("y");
    assert_eq!((two.list_for(&v4), two.list_for(&v6)), ("x", "y"));
}

#[tokio::test]
async fn each_family_goes_on_its_own_list_and_comes_back_there_after_a_reboot() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    // Someone else's entries on the other family's list name stay untouched.
    sim.router
        .add_address_list_entry(V6_LIST, "198.51.100.99", None, Some("not ours"))
        .unwrap();
    let e = two_lists(sim.client().await, &ledger, &clock);
    tokio::time::sleep(Duration::from_millis(1100)).await; // uptime is printed in seconds
    let report = e.reconcile().await.unwrap();
    assert_eq!(report.listed, 0, "the v4 print asks for the v4 list only");

    let results = e
        .block_all(&[
            ban("198.51.100.7", 3600),
            ban("2001:db8:bad::7", 3600),
            ban("2001:db8:bad:1::/64", 3600),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let v4 = pairs(&[(V4_LIST, "198.51.100.7"), (V6_LIST, "198.51.100.99")]);
    let v6 = pairs(&[
        (V6_LIST, "2001:db8:bad:1::/64"),
        (V6_LIST, "2001:db8:bad::7/128"),
    ]);
    assert_eq!(listed(&sim, Family::V4), v4);
    assert_eq!(listed(&sim, Family::V6), v6);

    // The ledger records the list each ban actually went on.
    let active = ledger
        .lock()
        .unwrap()
        .active(Some("gw"), clock.now())
        .unwrap();
    let mut recorded: Vec<(&str, &str)> = active
        .iter()
        .map(|b| (b.list.as_str(), b.target.as_str()))
        .collect();
    recorded.sort_unstable();
    assert_eq!(
        recorded,
        [
            (V4_LIST, "198.51.100.7"),
            (V6_LIST, "2001:db8:bad:1::/64"),
            (V6_LIST, "2001:db8:bad::7"),
        ]
    );
    assert!(active.iter().all(|b| b.state == BanState::Applied));

    // A duplicate v6 add is found on the v6 list (one print there) and extended.
    let e2 = two_lists(sim.client().await, &ledger, &clock);
    let again = e2.block(&ban("2001:db8:bad::7", 7200)).await.unwrap();
    assert!(matches!(again, Blocked::Updated { .. }), "{again:?}");
    assert_eq!(listed(&sim, Family::V6), v6, "no second entry");

    // The router reboots: every dynamic entry is gone; reconcile puts each back on its
    // own list, with one print per family.
    clock.advance(Duration::from_secs(60));
    sim.router.reboot();
    assert!(sim.router.address_list(Family::V6).is_empty());
    let e3 = two_lists(sim.client().await, &ledger, &clock).with_last_uptime(e.last_uptime());
    let report = e3.reconcile().await.unwrap();
    assert!(report.rebooted, "{report:?}");
    assert_eq!(report.reapplied, 3, "{report:?}");
    assert_eq!(listed(&sim, Family::V6), v6);
    assert!(sim.router.is_listed(V4_LIST, "198.51.100.7"));
    assert!(!sim.router.is_listed(V6_LIST, "198.51.100.7"));

    // A second reconcile finds all three where they belong: nothing missing.
    let report = e3.reconcile().await.unwrap();
    assert_eq!(report.listed, 3, "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");

    // Unblock removes from the right list and closes the right ledger ban.
    assert!(
        e3.unblock("2001:db8:bad::7".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(e3.unblock("198.51.100.7".parse().unwrap()).await.unwrap());
    assert_eq!(
        listed(&sim, Family::V6),
        pairs(&[(V6_LIST, "2001:db8:bad:1::/64")])
    );
    assert!(!sim.router.is_listed(V4_LIST, "198.51.100.7"));
    for target in ["2001:db8:bad::7", "198.51.100.7"] {
        let history = ledger.lock().unwrap().history(target).unwrap();
        assert_eq!(history.last().unwrap().state, BanState::Removed, "{target}");
    }
}

#[tokio::test]
async fn bans_recorded_on_another_list_are_not_re_applied() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    // Recorded while both families used one list.
    let before = RouterOsEnforcer::new(
        sim.client().await,
        RouterOsConfig::new("gw").list(V4_LIST),
        ledger.clone(),
    )
    .with_clock(clock.clock());
    before.reconcile().await.unwrap();
    before.block(&ban("2001:db8:bad::7", 3600)).await.unwrap();
    assert!(sim.router.is_listed(V4_LIST, "2001:db8:bad::7"));
    sim.router.reboot();

    let after = two_lists(sim.client().await, &ledger, &clock);
    let report = after.reconcile().await.unwrap();
    assert!(report.missing.is_empty(), "{report:?}");
    assert!(sim.router.address_list(Family::V6).is_empty());
}

#[tokio::test]
async fn a_router_without_ipv6_reconciles_and_blocks_ipv4() {
    let sim = Sim::start().await;
    sim.router.set_ipv6(false);
    let client = Client::connect(&sim.client_config("admin", ""))
        .await
        .unwrap();
    let trap = client
        .call(routeros_proto::Command::new("/ipv6/address/print"))
        .await
        .unwrap_err();
    assert!(trap.to_string().contains("no such command"), "{trap}");

    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let clock = TestClock::new();
    let e = two_lists(client, &ledger, &clock);
    let report = e.reconcile().await.unwrap();
    assert_eq!(report.listed, 0);
    e.block(&ban("198.51.100.7", 600)).await.unwrap();
    assert!(sim.router.is_listed(V4_LIST, "198.51.100.7"));

    // An IPv6 ban fails with the router's answer, the connection stays up, the ledger
    // says why.
    let err = e.block(&ban("2001:db8:bad::7", 600)).await.unwrap_err();
    assert!(
        matches!(&err, EnforceError::Refused { message, .. } if message.contains("no such command")),
        "{err:?}"
    );
    assert!(!e.client().is_closed());
    let history = ledger.lock().unwrap().history("2001:db8:bad::7").unwrap();
    assert_eq!(history[0].state, BanState::Failed);
    assert_eq!(e.reconcile().await.unwrap().listed, 1);
}
