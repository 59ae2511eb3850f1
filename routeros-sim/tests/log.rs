//! `/log`: print, follow, follow-only, `/log/info`, `/cancel` over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{admin, attr, start, tag_of};
use routeros_sim::{FirewallLogLine, RouterConfig, RouterOsVersion, Service};

#[tokio::test]
async fn print_with_topics_query() {
    let (router, server) = start(RouterConfig::default()).await;
    router.log_login_failure("root", "198.51.100.7".parse().unwrap(), Service::Ssh);
    router.log_firewall(&FirewallLogLine::tcp_syn(
        Some("SCAN"),
        "198.51.100.7:40000".parse().unwrap(),
        "192.0.2.1:23".parse().unwrap(),
    ));
    let mut c = admin(&server).await;
    let reply = c.call(&["/log/print", "?topics=firewall,info"]).await;
    let rows: Vec<_> = reply.iter().filter(|s| s[0] == "!re").collect();
    assert_eq!(rows.len(), 1);
    assert!(attr(rows[0], ".id").unwrap().starts_with('*'));
    assert!(attr(rows[0], "time").is_some());
    assert_eq!(
        attr(rows[0], "message"),
        Some(
            "SCAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1f:2e:3d, proto TCP (SYN), 198.51.100.7:40000->192.0.2.1:23, len 60"
        )
    );
    let reply = c
        .call(&[
            "/log/print",
            "?topics=system,error,critical",
            "=.proplist=message",
        ])
        .await;
    assert_eq!(
        reply[0],
        vec![
            "!re",
            "=message=login failure for user root from 198.51.100.7 via ssh"
        ]
    );
}

#[tokio::test]
async fn follow_only_reaches_every_following_session_and_cancel_interrupts() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut a = admin(&server).await;
    let mut b = admin(&server).await;
    a.send(&[
        "/log/print",
        "=follow-only=",
        "?topics=script,info",
        ".tag=fa",
    ])
    .await;
    // `?#|` works in a follow too: script or system info (not the account logins).
    b.send(&[
        "/log/print",
        "=follow-only=",
        "?topics=script,info",
        "?topics=system,info",
        "?#|",
        ".tag=fb",
    ])
    .await;
    // Both follows are running once a later command on each connection is answered, and
    // nothing old arrives with follow-only.
    assert!(a.sync().await.is_empty());
    assert!(b.sync().await.is_empty());

    // Another session writes to the log like a script's `:log info`.
    let mut w = admin(&server).await;
    assert_eq!(
        w.call(&["/log/info", "=message=hello from a script"]).await,
        vec![vec!["!done".to_owned()]]
    );
    router.log("system,info", "not for a");

    let got = a.recv().await.unwrap();
    assert_eq!(got[0], "!re");
    assert_eq!(attr(&got, "message"), Some("hello from a script"));
    assert_eq!(attr(&got, "topics"), Some("script,info"));
    assert_eq!(tag_of(&got), Some("fa"));
    let first = b.recv().await.unwrap();
    let second = b.recv().await.unwrap();
    assert_eq!(attr(&first, "message"), Some("hello from a script"));
    assert_eq!(attr(&second, "message"), Some("not for a"));
    assert_eq!(tag_of(&second), Some("fb"));
    assert!(
        a.try_recv(Duration::from_millis(150)).await.is_err(),
        "the topics query filters"
    );

    // A follow does not block other commands on the same connection.
    a.send(&["/system/identity/print", ".tag=id"]).await;
    let id = a.recv().await.unwrap();
    assert_eq!(attr(&id, "name"), Some("MikroTik"));
    assert_eq!(tag_of(&id), Some("id"));
    assert_eq!(tag_of(&a.recv().await.unwrap()), Some("id"));

    // Cancel: the cancelled command traps `interrupted` (category 2) and is done.
    a.send(&["/cancel", "=tag=fa", ".tag=c"]).await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(a.recv().await.unwrap());
    }
    assert_eq!(
        replies[0],
        vec!["!trap", "=category=2", "=message=interrupted", ".tag=fa"]
    );
    assert_eq!(replies[1], vec!["!done", ".tag=fa"]);
    assert_eq!(replies[2], vec!["!done", ".tag=c"]);
    router.log("script,info", "after cancel");
    assert!(
        a.try_recv(Duration::from_millis(150)).await.is_err(),
        "nothing after the cancel"
    );
    assert_eq!(
        attr(&b.recv().await.unwrap(), "message"),
        Some("after cancel")
    );
}

#[tokio::test]
async fn follow_sends_existing_entries_first_and_untagged_cancel_stops_all() {
    let (router, server) = start(RouterConfig::default()).await;
    router.log("system,info", "old entry");
    let mut c = admin(&server).await;
    c.send(&["/log/print", "=follow=", "=.proplist=message"])
        .await;
    // The entries already there come first: the old entry, then this session's login.
    assert_eq!(c.recv().await.unwrap(), vec!["!re", "=message=old entry"]);
    assert_eq!(
        c.recv().await.unwrap(),
        vec![
            "!re",
            "=message=user admin logged in from 127.0.0.1 via api"
        ]
    );
    router.log("system,info", "new entry");
    assert_eq!(c.recv().await.unwrap(), vec!["!re", "=message=new entry"]);
    c.send(&["/cancel"]).await;
    assert_eq!(
        c.recv().await.unwrap(),
        vec!["!trap", "=category=2", "=message=interrupted"]
    );
    assert_eq!(c.recv().await.unwrap(), vec!["!done"]);
    assert_eq!(c.recv().await.unwrap(), vec!["!done"]);
    let unknown = c.call(&["/cancel", "=tag=nope"]).await;
    assert_eq!(unknown[0][0], "!trap");
}

/// `/cancel` of a follow that never sent a row: 7.24 answers `!trap` (interrupted), then
/// `!empty`, then `!done` on the cancelled tag (ROUTEROS.md §5); before 7.18, which has no
/// `!empty` (§1), the trap and `!done`.
#[tokio::test]
async fn cancelling_a_follow_that_sent_nothing_answers_empty_from_7_18() {
    for (version, empty) in [("7.24", true), ("7.18", true), ("7.17.2", false)] {
        let config = RouterConfig {
            version: RouterOsVersion::parse(version).unwrap(),
            ..RouterConfig::default()
        };
        let (_router, server) = start(config).await;
        let mut c = admin(&server).await;
        c.send(&["/log/print", "=follow-only=", "?topics=nothing", ".tag=f"])
            .await;
        assert!(c.sync().await.is_empty());
        c.send(&["/cancel", "=tag=f", ".tag=c"]).await;
        let mut replies = vec![c.recv().await.unwrap()];
        while replies.last().unwrap()[0] != "!done" {
            replies.push(c.recv().await.unwrap());
        }
        let mut expected = vec![vec![
            "!trap",
            "=category=2",
            "=message=interrupted",
            ".tag=f",
        ]];
        if empty {
            expected.push(vec!["!empty", ".tag=f"]);
        }
        expected.push(vec!["!done", ".tag=f"]);
        assert_eq!(replies, expected, "{version}");
        assert_eq!(
            c.recv().await.unwrap(),
            vec!["!done", ".tag=c"],
            "{version}"
        );
    }
}

#[tokio::test]
async fn log_levels_and_helpers_format_like_routeros() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    c.call(&["/log/warning", "=message=disk almost full"]).await;
    c.call(&["/log/error", "=message=boom"]).await;
    let ip = "2001:db8::66".parse().unwrap();
    router.log_login("alice", ip, Service::Winbox);
    router.log_logout("alice", ip, Service::Winbox);
    router.log_login_failure_mac("", "00:0C:42:1F:2E:3D", Service::Winbox);
    let entries = router.log_entries();
    assert_eq!(
        entries.last().unwrap().message_lossy(),
        "login failure for user  from 00:0C:42:1F:2E:3D via winbox"
    );
    let find = |m: &str| {
        entries
            .iter()
            .find(|e| e.message_lossy() == m)
            .map(|e| e.topics.clone())
    };
    assert_eq!(find("disk almost full").as_deref(), Some("script,warning"));
    assert_eq!(find("boom").as_deref(), Some("script,error"));
    assert_eq!(
        find("user alice logged in from 2001:db8::66 via winbox").as_deref(),
        Some("system,info,account")
    );
    assert_eq!(
        find("user alice logged out from 2001:db8::66 via winbox").as_deref(),
        Some("system,info,account")
    );
}

#[tokio::test]
async fn the_ring_is_bounded() {
    let config = RouterConfig {
        log_capacity: 10,
        ..RouterConfig::default()
    };
    let (router, server) = start(config).await;
    for i in 0..25 {
        router.log("system,info", format!("entry {i}"));
    }
    let mut c = admin(&server).await;
    let reply = c.call(&["/log/print", "=.proplist=message"]).await;
    let rows: Vec<_> = reply.iter().filter(|s| s[0] == "!re").collect();
    assert_eq!(rows.len(), 10);
    assert_eq!(
        attr(rows[9], "message"),
        Some("user admin logged in from 127.0.0.1 via api")
    );
}
