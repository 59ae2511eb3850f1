//! The dry-run enforcer, and the mockall mock other crates use (feature `mock`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mtids_enforce::{Ban, Blocked, DryRunAction, DryRunEnforcer, Enforcer, IpPrefix};

fn ban(target: &str) -> Ban {
    Ban::new(
        target.parse().unwrap(),
        Some(Duration::from_secs(600)),
        "brute_force",
        "5 failures \"admin\"",
    )
}

#[tokio::test]
async fn a_dry_run_records_what_it_would_do_and_lists_as_a_router_would() {
    let dry = DryRunEnforcer::new();
    let results = dry
        .block_all(&[ban("198.51.100.7"), ban("2001:db8::/64")])
        .await;
    assert!(results.iter().all(|r| matches!(r, Ok(Blocked::WouldAdd))));
    let target: IpPrefix = "198.51.100.7".parse().unwrap();
    assert_eq!(dry.drop_connections(target).await.unwrap(), 0);
    assert!(dry.unblock(target).await.unwrap());
    assert!(!dry.unblock(target).await.unwrap());

    let listed = dry.enforced().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].target.to_string(), "2001:db8::/64");
    assert!(listed[0].is_mtids());

    let actions = dry.take_actions();
    assert_eq!(actions.len(), 5);
    let DryRunAction::Block { comment, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(comment, "mtids brute_force: 5 failures _admin_");
    assert_eq!(actions[2], DryRunAction::DropConnections(target));
    assert!(dry.actions().is_empty());
    assert_eq!(dry.reconcile().await.unwrap().listed, 1);
}

#[cfg(feature = "mock")]
#[tokio::test]
async fn the_mock_stands_in_for_an_enforcer() {
    let mut mock = mtids_enforce::MockEnforcer::new();
    mock.expect_block()
        .withf(|b: &Ban| b.target.to_string() == "198.51.100.7")
        .times(1)
        .returning(|_| Ok(Blocked::Added { id: "*1".into() }));
    let enforcer: Box<dyn Enforcer> = Box::new(mock);
    let blocked = enforcer.block(&ban("198.51.100.7")).await.unwrap();
    assert_eq!(blocked, Blocked::Added { id: "*1".into() });
}
