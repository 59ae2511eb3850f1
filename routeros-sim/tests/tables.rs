//! Address lists, the connection table, resource and own addresses over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Client, admin, attr, serve, start, tag_of};
use routeros_sim::{Connection, Family, ManualClock, Router, RouterConfig, RouterOsVersion};

const AL: &str = "/ip/firewall/address-list";

fn rows(reply: &[Vec<String>]) -> Vec<&Vec<String>> {
    reply.iter().filter(|s| s[0] == "!re").collect()
}

#[tokio::test]
async fn add_print_set_remove_and_the_duplicate_trap() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let add = c
        .call(&[
            "/ip/firewall/address-list/add",
            "=list=bl",
            "=address=198.51.100.7",
            "=comment=scan",
        ])
        .await;
    assert_eq!(add, vec![vec!["!done".to_owned(), "=ret=*1".to_owned()]]);
    let dup = c
        .call(&[
            "/ip/firewall/address-list/add",
            "=list=bl",
            "=address=198.51.100.7",
        ])
        .await;
    assert_eq!(
        dup[0],
        vec!["!trap", "=message=failure: already have such entry"]
    );
    assert_eq!(dup[1], vec!["!done"]);
    c.call(&[
        "/ip/firewall/address-list/add",
        "=list=other",
        "=address=198.51.100.7",
    ])
    .await;
    c.call(&[
        "/ip/firewall/address-list/add",
        "=list=bl",
        "=address=203.0.113.0/24",
        "=timeout=1d",
    ])
    .await;

    // Query with proplist: only list=bl, only the asked properties, in the asked order.
    let reply = c
        .call(&[
            &format!("{AL}/print"),
            "=.proplist=.id,address,timeout,comment",
            "?list=bl",
        ])
        .await;
    let r = rows(&reply);
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0],
        &vec!["!re", "=.id=*1", "=address=198.51.100.7", "=comment=scan"]
    );
    assert_eq!(attr(r[1], "address"), Some("203.0.113.0/24"));
    let timeout = attr(r[1], "timeout").unwrap();
    assert!(
        timeout == "1d" || timeout.starts_with("23h59m"),
        "{timeout}"
    );
    // `?#|`: list=bl or list=other; `?#!` negation.
    let reply = c
        .call(&[
            &format!("{AL}/print"),
            "?list=bl",
            "?list=other",
            "?#|",
            "=count-only=",
        ])
        .await;
    assert_eq!(reply, vec![vec!["!done".to_owned(), "=ret=3".to_owned()]]);
    let reply = c
        .call(&[&format!("{AL}/print"), "?list=bl", "?#!", "=.proplist=list"])
        .await;
    assert_eq!(rows(&reply).len(), 1);
    assert_eq!(attr(rows(&reply)[0], "list"), Some("other"));
    // Full rows carry dynamic/disabled/creation-time.
    let reply = c
        .call(&[&format!("{AL}/print"), "?address=203.0.113.0/24"])
        .await;
    let row = rows(&reply)[0];
    assert_eq!(attr(row, "dynamic"), Some("true"));
    assert_eq!(attr(row, "disabled"), Some("false"));
    let created = attr(row, "creation-time").unwrap();
    assert_eq!(created.len(), "2025-02-11 00:02:30".len(), "{created}");

    // set timeout and comment, then remove; removing again is `no such item`.
    let set = c
        .call(&[
            &format!("{AL}/set"),
            "=.id=*1",
            "=timeout=1h",
            "=comment=again",
        ])
        .await;
    assert_eq!(set, vec![vec!["!done".to_owned()]]);
    let entry = router
        .address_list(Family::V4)
        .into_iter()
        .find(|e| e.id == 1)
        .unwrap();
    assert!(entry.dynamic());
    assert_eq!(entry.comment.as_deref(), Some(&b"again"[..]));
    assert_eq!(
        c.call(&[&format!("{AL}/remove"), "=.id=*1"]).await,
        vec![vec!["!done".to_owned()]]
    );
    let again = c.call(&[&format!("{AL}/remove"), "=.id=*1"]).await;
    assert_eq!(attr(&again[0], "message"), Some("no such item"));
    assert_eq!(again[1], vec!["!done"]);
    assert!(!router.is_listed("bl", "198.51.100.7"));
}

#[tokio::test]
async fn a_router_without_ipv6_knows_no_ipv6_menu() {
    let (router, server) = start(RouterConfig {
        ipv6: false,
        ..RouterConfig::default()
    })
    .await;
    let mut c = admin(&server).await;
    for command in [
        "/ipv6/address/print",
        "/ipv6/firewall/address-list/print",
        "/ipv6/firewall/connection/print",
        "/ipv6/firewall/filter/print",
    ] {
        let reply = c.call(&[command]).await;
        assert_eq!(
            attr(&reply[0], "message"),
            Some("no such command prefix"),
            "{command}"
        );
    }
    let reply = c.call(&["/ip/address/print"]).await;
    assert_eq!(reply.last().unwrap()[0], "!done", "IPv4 menus still answer");
    router.set_ipv6(true);
    let reply = c.call(&["/ipv6/address/print"]).await;
    assert_eq!(reply.last().unwrap()[0], "!done", "IPv6 given back");
}

#[tokio::test]
async fn ipv6_lists_store_prefixes() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    c.call(&[
        "/ipv6/firewall/address-list/add",
        "=list=bl6",
        "=address=2001:db8::7",
    ])
    .await;
    c.call(&[
        "/ipv6/firewall/address-list/add",
        "=list=bl6",
        "=address=2001:db8:1::5/48",
    ])
    .await;
    let dup = c
        .call(&[
            "/ipv6/firewall/address-list/add",
            "=list=bl6",
            "=address=2001:db8::7/128",
        ])
        .await;
    assert_eq!(
        attr(&dup[0], "message"),
        Some("failure: already have such entry")
    );
    let bad = c
        .call(&[
            "/ipv6/firewall/address-list/add",
            "=list=bl6",
            "=address=198.51.100.7",
        ])
        .await;
    assert_eq!(bad[0][0], "!trap");
    let reply = c
        .call(&["/ipv6/firewall/address-list/print", "=.proplist=address"])
        .await;
    let addrs: Vec<&str> = rows(&reply)
        .iter()
        .map(|r| attr(r, "address").unwrap())
        .collect();
    assert_eq!(addrs, vec!["2001:db8::7/128", "2001:db8:1::/48"]);
    // IPv4 menu does not see them.
    let v4 = c
        .call(&["/ip/firewall/address-list/print", "=count-only="])
        .await;
    assert_eq!(attr(&v4[0], "ret"), Some("0"));
}

#[tokio::test]
async fn timeouts_expire_and_reboot_erases_dynamic_entries() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let router = Router::with_clock(RouterConfig::default(), clock.clone());
    let server = serve(&router).await;
    let mut c = admin(&server).await;
    c.call(&[
        &format!("{AL}/add"),
        "=list=bl",
        "=address=198.51.100.1",
        "=timeout=10m",
    ])
    .await;
    c.call(&[
        &format!("{AL}/add"),
        "=list=bl",
        "=address=198.51.100.2",
        "=timeout=1d",
    ])
    .await;
    c.call(&[&format!("{AL}/add"), "=list=bl", "=address=198.51.100.3"])
        .await;
    clock.advance(Duration::from_secs(300));
    let reply = c
        .call(&[
            &format!("{AL}/print"),
            "?address=198.51.100.1",
            "=.proplist=timeout",
        ])
        .await;
    assert_eq!(attr(rows(&reply)[0], "timeout"), Some("5m"));
    clock.advance(Duration::from_secs(301));
    let reply = c.call(&[&format!("{AL}/print"), "=count-only="]).await;
    assert_eq!(attr(&reply[0], "ret"), Some("2"), "the 10m entry expired");
    // Uptime counts from boot; a reboot resets it and erases the dynamic entry.
    let reply = c
        .call(&["/system/resource/print", "=.proplist=uptime"])
        .await;
    assert_eq!(attr(rows(&reply)[0], "uptime"), Some("10m1s"));
    router.reboot();
    assert_eq!(c.recv().await, None, "a reboot drops every session");
    assert_eq!(router.uptime(), Duration::ZERO);
    let left: Vec<String> = router
        .address_list(Family::V4)
        .into_iter()
        .map(|e| e.address)
        .collect();
    assert_eq!(left, vec!["198.51.100.3"]);
    let log: Vec<String> = router
        .log_entries()
        .iter()
        .map(|e| e.message_lossy().into_owned())
        .collect();
    assert_eq!(
        log,
        vec!["router rebooted"],
        "the memory log does not survive a reboot"
    );
}

#[tokio::test]
async fn connection_table_print_query_count_and_remove() {
    let (router, server) = start(RouterConfig::default()).await;
    let syn = Connection::tcp(
        "198.51.100.7:40000".parse().unwrap(),
        "192.0.2.1:22".parse().unwrap(),
    )
    .tcp_state("syn-received")
    .packets(1, 0)
    .bytes(60, 0)
    .replied(false);
    let id = router.add_connection(syn);
    router.add_connection(Connection::udp(
        "10.0.0.5:5353".parse().unwrap(),
        "192.0.2.53:53".parse().unwrap(),
    ));
    router.add_connection(Connection::icmp(
        "10.0.0.5".parse().unwrap(),
        "192.0.2.9".parse().unwrap(),
    ));
    router.add_connection(Connection::tcp(
        "[2001:db8::7]:1".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    ));
    let mut c = admin(&server).await;
    let reply = c
        .call(&[
            "/ip/firewall/connection/print",
            "=.proplist=.id,src-address,dst-address,protocol,repl-packets,seen-reply",
            "?protocol=tcp",
            "?protocol=udp",
            "?#|",
        ])
        .await;
    let r = rows(&reply);
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0],
        &vec![
            "!re",
            "=.id=*1",
            "=src-address=198.51.100.7:40000",
            "=dst-address=192.0.2.1:22",
            "=protocol=tcp",
            "=repl-packets=0",
            "=seen-reply=false"
        ]
    );
    let count = c
        .call(&[
            "/ip/firewall/connection/print",
            "=count-only=",
            "?seen-reply=false",
        ])
        .await;
    assert_eq!(attr(&count[0], "ret"), Some("1"));
    let v6 = c
        .call(&["/ipv6/firewall/connection/print", "=.proplist=src-address"])
        .await;
    assert_eq!(attr(rows(&v6)[0], "src-address"), Some("[2001:db8::7]:1"));
    let id = format!("=.id=*{id:X}");
    assert_eq!(
        c.call(&["/ip/firewall/connection/remove", &id]).await,
        vec![vec!["!done".to_owned()]]
    );
    let gone = c.call(&["/ip/firewall/connection/remove", &id]).await;
    assert_eq!(attr(&gone[0], "message"), Some("no such item"));
    assert_eq!(router.connection_count(), 3);
}

#[tokio::test]
async fn resource_and_own_addresses() {
    let (router, server) = start(RouterConfig::default()).await;
    router.set_cpu_load(93);
    let mut c = admin(&server).await;
    let reply = c
        .call(&[
            "/system/resource/print",
            "=.proplist=cpu-load,uptime,version,board-name",
        ])
        .await;
    let row = rows(&reply)[0];
    assert_eq!(attr(row, "cpu-load"), Some("93"));
    assert_eq!(attr(row, "version"), Some("7.20.4 (stable)"));
    assert_eq!(attr(row, "board-name"), Some("RB5009UG+S+"));
    assert!(attr(row, "uptime").is_some());
    router
        .add_own_address("198.51.100.254/24", "ether2")
        .unwrap();
    let reply = c
        .call(&["/ip/address/print", "=.proplist=address,interface"])
        .await;
    let addrs: Vec<&str> = rows(&reply)
        .iter()
        .map(|r| attr(r, "address").unwrap())
        .collect();
    assert!(addrs.contains(&"192.0.2.1/24"));
    assert!(addrs.contains(&"198.51.100.254/24"));
    assert!(
        !addrs.iter().any(|a| a.contains(':')),
        "IPv6 addresses live in /ipv6/address"
    );
    let reply = c.call(&["/ipv6/address/print", "=.proplist=address"]).await;
    assert_eq!(attr(rows(&reply)[0], "address"), Some("2001:db8::1/64"));
}

#[tokio::test]
async fn empty_prints_answer_empty_on_7_18_only() {
    let (_r, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let reply = c
        .call(&["/ip/firewall/address-list/print", "?list=nothing"])
        .await;
    assert_eq!(
        reply,
        vec![vec!["!empty".to_owned()], vec!["!done".to_owned()]]
    );
    let tagged = {
        c.send(&["/ip/firewall/connection/print", ".tag=e"]).await;
        (c.recv().await.unwrap(), c.recv().await.unwrap())
    };
    assert_eq!(tagged.0, vec!["!empty", ".tag=e"]);
    assert_eq!(tagged.1, vec!["!done", ".tag=e"]);

    let old = RouterConfig {
        version: RouterOsVersion::parse("7.17").unwrap(),
        ..RouterConfig::default()
    };
    let (_r, server) = start(old).await;
    let mut c = admin(&server).await;
    let reply = c.call(&["/ip/firewall/address-list/print"]).await;
    assert_eq!(reply, vec![vec!["!done".to_owned()]]);
}

#[tokio::test]
async fn unknown_commands_are_trapped_as_a_router_does() {
    let (_r, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let reply = c.call(&["/interface/frobnicate/print"]).await;
    assert_eq!(
        reply[0],
        vec!["!trap", "=category=0", "=message=no such command prefix"]
    );
    assert_eq!(reply[1], vec!["!done"]);
    let reply = c.call(&["/ip/firewall/address-list/frobnicate"]).await;
    assert_eq!(attr(&reply[0], "message"), Some("no such command"));
    let reply = c.call(&["/ip/firewall/print"]).await;
    assert_eq!(
        attr(&reply[0], "message"),
        Some("no such command"),
        "/ip/firewall is a menu"
    );
    let reply = c.call(&["/ip/firewall/address-list/print", "?#x"]).await;
    assert_eq!(
        reply[0][0], "!trap",
        "a malformed query is an error for that command only"
    );
    let reply = c.call(&["/system/identity/print"]).await;
    assert_eq!(reply.last().unwrap()[0], "!done", "the session goes on");
}

#[tokio::test]
async fn pipelined_tagged_adds_are_all_answered_with_their_tags() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    for i in 0..500u32 {
        let addr = format!("=address=198.51.{}.{}", 100 + i / 250, i % 250);
        c.send(&[
            &format!("{AL}/add"),
            "=list=bulk",
            &addr,
            &format!(".tag={i}"),
        ])
        .await;
    }
    let mut seen = vec![false; 500];
    for _ in 0..500 {
        let s = c.recv().await.unwrap();
        assert_eq!(s[0], "!done", "{s:?}");
        let tag: usize = tag_of(&s).unwrap().parse().unwrap();
        assert!(attr(&s, "ret").unwrap().starts_with('*'));
        seen[tag] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(router.address_list(Family::V4).len(), 500);
}

#[tokio::test]
async fn many_sessions_share_one_router() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut tasks = Vec::new();
    for n in 0..10u32 {
        let addr = server.local_addr();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.login("admin", "secret").await;
            for i in 0..20u32 {
                let a = format!("=address=203.0.113.{}", n * 20 + i);
                let reply = c.call(&[&format!("{AL}/add"), "=list=shared", &a]).await;
                assert_eq!(reply[0][0], "!done");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(router.address_list(Family::V4).len(), 200);
}

#[tokio::test]
async fn following_address_lists_and_connections_reports_changes_and_dead_items() {
    let (router, server) = start(RouterConfig::default()).await;
    router
        .add_address_list_entry("bl", "198.51.100.1", None, None)
        .unwrap();
    let mut f = admin(&server).await;
    f.send(&[
        &format!("{AL}/print"),
        "=follow=",
        "?list=bl",
        "=.proplist=.id,address",
        ".tag=al",
    ])
    .await;
    f.send(&[
        "/ip/firewall/connection/print",
        "=follow-only=",
        "=.proplist=.id,dst-address",
        ".tag=ct",
    ])
    .await;
    let initial = f.sync().await;
    assert_eq!(
        initial,
        vec![vec!["!re", "=.id=*1", "=address=198.51.100.1", ".tag=al"]]
    );

    // Another session adds and removes; the follower sees both, the removal as .dead.
    let mut w = admin(&server).await;
    w.call(&[&format!("{AL}/add"), "=list=bl", "=address=198.51.100.2"])
        .await;
    w.call(&[&format!("{AL}/add"), "=list=other", "=address=198.51.100.3"])
        .await;
    assert_eq!(
        f.recv().await.unwrap(),
        vec!["!re", "=.id=*2", "=address=198.51.100.2", ".tag=al"]
    );
    w.call(&[&format!("{AL}/remove"), "=.id=*1"]).await;
    assert_eq!(
        f.recv().await.unwrap(),
        vec!["!re", "=.id=*1", "=.dead=true", ".tag=al"]
    );

    // The handle fills the connection table; the follower sees the new row.
    let id = router.add_connection(Connection::tcp(
        "198.51.100.7:40000".parse().unwrap(),
        "192.0.2.1:8291".parse().unwrap(),
    ));
    let row = f.recv().await.unwrap();
    assert_eq!(
        row,
        vec![
            "!re".to_owned(),
            format!("=.id=*{id:X}"),
            "=dst-address=192.0.2.1:8291".to_owned(),
            ".tag=ct".to_owned()
        ]
    );
    router.remove_connection(id);
    assert_eq!(tag_of(&f.recv().await.unwrap()), Some("ct"));

    f.send(&["/cancel", "=tag=al"]).await;
    assert_eq!(
        f.recv().await.unwrap(),
        vec!["!trap", "=category=2", "=message=interrupted", ".tag=al"]
    );
    assert_eq!(f.recv().await.unwrap(), vec!["!done", ".tag=al"]);
    assert_eq!(f.recv().await.unwrap(), vec!["!done"]);
    let unknown = f.call(&["/system/resource/print", "=follow="]).await;
    assert_eq!(
        attr(&unknown[0], "message"),
        Some("follow is not simulated on this menu")
    );
}
