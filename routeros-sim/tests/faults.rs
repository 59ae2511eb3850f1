//! Fault knobs over real sockets: latency, drop after N sentences, stall, `!fatal`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use tokio::time::Instant;

use common::{admin, start};
use routeros_sim::RouterConfig;

#[tokio::test]
async fn latency_delays_every_answer() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    router.set_latency(Duration::from_millis(120));
    let started = Instant::now();
    let reply = c.call(&["/system/identity/print"]).await;
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.last().unwrap()[0], "!done");
    // Pipelined commands overlap their latency instead of adding it up.
    let started = Instant::now();
    for i in 0..5 {
        c.send(&["/system/identity/print", &format!(".tag={i}")])
            .await;
    }
    for _ in 0..10 {
        c.recv().await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(120 * 5),
        "{:?}",
        started.elapsed()
    );
    router.set_latency(Duration::ZERO);
    assert_eq!(router.latency(), Duration::ZERO);
}

#[tokio::test]
async fn drop_after_n_sentences_closes_the_connection() {
    let (router, server) = start(RouterConfig::default()).await;
    router.set_drop_after(Some(3));
    let mut c = admin(&server).await; // the login's !done is sentence 1
    c.send(&["/system/identity/print"]).await; // !re (2), !done (3), then close
    c.send(&["/system/identity/print"]).await;
    assert_eq!(c.recv().await.unwrap()[0], "!re");
    assert_eq!(c.recv().await.unwrap()[0], "!done");
    assert_eq!(c.recv().await, None);
    router.set_drop_after(None);
    let mut d = admin(&server).await;
    assert_eq!(d.call(&["/system/identity/print"]).await.len(), 2);
}

#[tokio::test]
async fn stall_never_answers() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    router.set_stall(true);
    assert!(router.stalled());
    c.send(&["/system/identity/print"]).await;
    assert!(
        c.try_recv(Duration::from_millis(300)).await.is_err(),
        "a stalled router says nothing"
    );
    router.set_stall(false);
    let reply = c.call(&["/system/identity/print"]).await;
    assert_eq!(
        reply[0][0], "!re",
        "commands sent while stalled were swallowed"
    );
}

#[tokio::test]
async fn send_fatal_reaches_every_session() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut a = admin(&server).await;
    let mut b = admin(&server).await;
    router.send_fatal("out of memory");
    for c in [&mut a, &mut b] {
        assert_eq!(c.recv().await.unwrap(), vec!["!fatal", "out of memory"]);
        assert_eq!(c.recv().await, None);
    }
}

#[tokio::test]
async fn empty_without_done_like_the_faulty_release() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    router.set_omit_done_after_empty(true);
    c.send(&["/ip/firewall/address-list/print", "?list=none", ".tag=e"])
        .await;
    assert_eq!(c.recv().await.unwrap(), vec!["!empty", ".tag=e"]);
    assert!(
        c.try_recv(Duration::from_millis(300)).await.is_err(),
        "no !done follows"
    );
    router.set_omit_done_after_empty(false);
    let reply = c
        .call(&["/ip/firewall/address-list/print", "?list=none"])
        .await;
    assert_eq!(
        reply,
        vec![vec!["!empty".to_owned()], vec!["!done".to_owned()]]
    );
}
