//! `mtids bans` with a real SQLite ledger file and routeros-sim over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use mtids_cli::bans::{self, BansAction};
use mtids_cli::config::Config;
use mtids_enforce::{BanLedger, BanState};
use routeros_sim::{Policies, Router, RouterConfig, Server, ServerConfig, User};

async fn sim() -> (Router, Server) {
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("ids", "pw", Policies::WRITE));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    (router, server)
}

fn config(port: u16, ledger: &std::path::Path) -> Config {
    Config::parse(
        &format!(
            "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"pw\"\n\
             [ledger]\npath = {ledger:?}\n[detection.guard]\nallowlist = [\"203.0.113.0/25\"]\n"
        ),
        "test.toml",
    )
    .unwrap()
}

fn add(target: &str) -> BansAction {
    BansAction::Add {
        target: target.into(),
        duration: Duration::from_secs(3600),
        reason: "test".into(),
        router: None,
        ledger_only: false,
    }
}

#[tokio::test]
async fn add_list_remove_history_against_the_router_and_the_ledger() {
    let (router, server) = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let cfg = config(server.local_addr().port(), &db);
    let now = SystemTime::now();

    let mut out = String::new();
    bans::run(&cfg, &add("198.51.100.7"), now, &mut out)
        .await
        .unwrap();
    assert!(out.contains("banned on `mtids-blocked`"), "{out}");
    assert!(router.is_listed("mtids-blocked", "198.51.100.7"));
    let active = BanLedger::open(&db).unwrap().active(None, now).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].state, BanState::Applied);
    assert_eq!(active[0].detector, "manual");

    // A second add extends the same ban and refreshes the same entry: no duplicates.
    let mut out = String::new();
    bans::run(&cfg, &add("198.51.100.7"), now, &mut out)
        .await
        .unwrap();
    assert_eq!(
        BanLedger::open(&db)
            .unwrap()
            .active(None, now)
            .unwrap()
            .len(),
        1
    );
    let entries = router
        .address_list(routeros_sim::Family::V4)
        .into_iter()
        .filter(|e| e.list == "mtids-blocked")
        .count();
    assert_eq!(entries, 1);

    // An entry on the router that the ledger does not know shows up in --live.
    router
        .add_address_list_entry("mtids-blocked", "198.51.100.99", None, None)
        .unwrap();
    let mut out = String::new();
    let list = BansAction::List {
        filter: Default::default(),
        live: true,
        json: false,
    };
    bans::run(&cfg, &list, now, &mut out).await.unwrap();
    assert!(out.contains("1 active ban(s)"), "{out}");
    assert!(out.contains("missing there: none"), "{out}");
    assert!(out.contains("not in the ledger: 198.51.100.99"), "{out}");

    let mut out = String::new();
    let remove = BansAction::Remove {
        target: "198.51.100.7".into(),
        router: None,
        ledger_only: false,
    };
    bans::run(&cfg, &remove, now, &mut out).await.unwrap();
    assert!(!router.is_listed("mtids-blocked", "198.51.100.7"), "{out}");
    assert!(
        BanLedger::open(&db)
            .unwrap()
            .active(None, now)
            .unwrap()
            .is_empty()
    );

    let mut out = String::new();
    let history = BansAction::History {
        target: "198.51.100.7".into(),
    };
    bans::run(&cfg, &history, now, &mut out).await.unwrap();
    assert!(out.contains("by manual: test"), "{out}");
    assert!(out.contains("applied"), "{out}");
    assert!(out.contains("removed by operator"), "{out}");
    server.shutdown().await;
}

#[tokio::test]
async fn guarded_and_malformed_targets_are_refused_before_anything_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let cfg = config(9, &db);
    let now = SystemTime::now();
    for (target, needle) in [
        ("203.0.113.5", "allowlisted"),
        ("10.0.0.5", "private"),
        ("198.51.100.7; /system reset", "not an IP address"),
        ("198.51.100.0/33", "not an IP address or prefix"),
    ] {
        let mut out = String::new();
        let err = bans::run(&cfg, &add(target), now, &mut out)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{target}: {err}");
    }
    assert!(
        BanLedger::open(&db)
            .unwrap()
            .active(None, now)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unreachable_router_leaves_a_failed_ban_with_its_reason() {
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let cfg = config(port, &db);
    let now = SystemTime::now();
    let mut out = String::new();
    let err = bans::run(&cfg, &add("198.51.100.8"), now, &mut out)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed on 1 router"), "{err}");
    let history = BanLedger::open(&db)
        .unwrap()
        .history("198.51.100.8")
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].state, BanState::Failed);
    assert!(
        history[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("could not connect")
    );
}

#[tokio::test]
async fn ipv6_bans_go_on_the_ipv6_list_by_its_own_name() {
    let (router, server) = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let port = server.local_addr().port();
    let cfg = Config::parse(
        &format!(
            "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"pw\"\n\
             [ledger]\npath = {db:?}\n[enforcement]\naddress_list = \"bl4\"\naddress_list_v6 = \"bl6\"\n"
        ),
        "test.toml",
    )
    .unwrap();
    let now = SystemTime::now();
    let v6_entries = || {
        router
            .address_list(routeros_sim::Family::V6)
            .into_iter()
            .map(|e| (e.list, e.address))
            .collect::<Vec<_>>()
    };
    let one = vec![("bl6".to_owned(), "2001:db8:bad::7/128".to_owned())];

    let mut out = String::new();
    bans::run(&cfg, &add("2001:db8:bad::7"), now, &mut out)
        .await
        .unwrap();
    assert!(out.contains("banned on `bl6`"), "{out}");
    assert_eq!(v6_entries(), one);
    bans::run(&cfg, &add("198.51.100.7"), now, &mut out)
        .await
        .unwrap();
    assert!(router.is_listed("bl4", "198.51.100.7"), "{out}");
    let active = BanLedger::open(&db).unwrap().active(None, now).unwrap();
    let lists: Vec<(&str, &str)> = active
        .iter()
        .map(|b| (b.list.as_str(), b.target.as_str()))
        .collect();
    assert_eq!(lists, [("bl6", "2001:db8:bad::7"), ("bl4", "198.51.100.7")]);

    // Again: the entry (printed with /128) is found and refreshed, not doubled.
    bans::run(&cfg, &add("2001:db8:bad::7"), now, &mut out)
        .await
        .unwrap();
    assert_eq!(v6_entries(), one);

    // --live reads each family's own list and compares in the ledger's form.
    let mut out = String::new();
    let list = BansAction::List {
        filter: Default::default(),
        live: true,
        json: false,
    };
    bans::run(&cfg, &list, now, &mut out).await.unwrap();
    assert!(
        out.contains("2 on the router; missing there: none; not in the ledger: none"),
        "{out}"
    );

    let mut out = String::new();
    let remove = BansAction::Remove {
        target: "2001:db8:bad::7".into(),
        router: None,
        ledger_only: false,
    };
    bans::run(&cfg, &remove, now, &mut out).await.unwrap();
    assert!(out.contains("1 entr(y/ies) removed from `bl6`"), "{out}");
    assert!(v6_entries().is_empty());
    assert!(router.is_listed("bl4", "198.51.100.7"));
    server.shutdown().await;
}
