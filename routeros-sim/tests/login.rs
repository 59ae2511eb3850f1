//! Login, permissions, limits and session handling over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, admin, attr, start};
use routeros_sim::{LoginMethod, Policies, Policy, RouterConfig, User, challenge_response};

#[tokio::test]
async fn plain_login_succeeds_and_is_logged() {
    let (router, server) = start(RouterConfig::default()).await;
    let _c = admin(&server).await;
    let log = router.log_entries();
    let last = log.last().unwrap();
    assert_eq!(last.topics, "system,info,account");
    assert_eq!(
        last.message_lossy(),
        "user admin logged in from 127.0.0.1 via api"
    );
}

#[tokio::test]
async fn wrong_password_is_trapped_like_a_router_and_logged() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let reply = c.call(&["/login", "=name=admin", "=password=wrong"]).await;
    assert_eq!(reply.len(), 2);
    assert_eq!(
        reply[0],
        vec!["!trap", "=message=invalid user name or password (6)"]
    );
    assert_eq!(reply[1], vec!["!done"]);
    let last = router.log_entries().pop().unwrap();
    assert_eq!(last.topics, "system,error,critical");
    assert_eq!(
        last.message_lossy(),
        "login failure for user admin from 127.0.0.1 via api"
    );
    // The same connection may try again.
    c.login("admin", "secret").await;
}

#[tokio::test]
async fn commands_before_login_are_refused() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let reply = c.call(&["/ip/firewall/address-list/print"]).await;
    assert_eq!(reply[0][0], "!trap");
    assert_eq!(attr(&reply[0], "message"), Some("not logged in"));
    assert_eq!(reply.last().unwrap(), &vec!["!done".to_owned()]);
}

#[tokio::test]
async fn too_many_commands_before_login_end_in_fatal() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = Client::connect(server.local_addr()).await;
    for _ in 0..40 {
        c.send(&["/system/resource/print"]).await;
    }
    let mut saw_fatal = false;
    while let Some(s) = c.recv().await {
        if s[0] == "!fatal" {
            saw_fatal = true;
        }
    }
    assert!(
        saw_fatal,
        "an abusive unauthenticated peer gets !fatal, then the socket closes"
    );
}

#[tokio::test]
async fn legacy_challenge_login_with_a_fresh_challenge_each_time() {
    let config = RouterConfig {
        login: LoginMethod::LegacyChallenge,
        ..RouterConfig::default()
    };
    let (_router, server) = start(config).await;
    let mut c = Client::connect(server.local_addr()).await;
    let first = c.call(&["/login"]).await;
    let challenge1 = attr(&first[0], "ret").unwrap().to_owned();
    assert_eq!(challenge1.len(), 32);
    assert!(challenge1.bytes().all(|b| b.is_ascii_hexdigit()));
    // A wrong response fails as a router does.
    let bad = c
        .call(&[
            "/login",
            "=name=admin",
            "=response=00000000000000000000000000000000ff",
        ])
        .await;
    assert_eq!(
        attr(&bad[0], "message"),
        Some("invalid user name or password (6)")
    );
    // A new challenge, then the right response.
    let second = c.call(&["/login"]).await;
    let challenge2 = attr(&second[0], "ret").unwrap().to_owned();
    assert_ne!(challenge1, challenge2, "each login gets a random challenge");
    let bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&challenge2[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let response = challenge_response(b"secret", &bytes);
    let ok = c
        .call(&["/login", "=name=admin", &format!("=response={response}")])
        .await;
    assert_eq!(ok, vec![vec!["!done".to_owned()]]);
    let print = c.call(&["/system/identity/print"]).await;
    assert_eq!(attr(&print[0], "name"), Some("MikroTik"));
}

#[tokio::test]
async fn a_user_without_write_gets_not_enough_permissions() {
    let (router, server) = start(RouterConfig::default()).await;
    router.add_user(User::new("viewer", "v", Policies::READ));
    router.add_user(User::new("noapi", "n", Policies::FULL.without(Policy::Api)));
    let mut c = Client::connect(server.local_addr()).await;
    c.login("viewer", "v").await;
    let reply = c
        .call(&[
            "/ip/firewall/address-list/add",
            "=list=bl",
            "=address=198.51.100.7",
        ])
        .await;
    assert_eq!(
        reply[0],
        vec!["!trap", "=message=not enough permissions (9)"]
    );
    assert_eq!(reply[1], vec!["!done"]);
    let reply = c.call(&["/log/info", "=message=hi"]).await;
    assert_eq!(
        attr(&reply[0], "message"),
        Some("not enough permissions (9)")
    );
    let reply = c.call(&["/ip/firewall/address-list/print"]).await;
    assert_eq!(reply.last().unwrap()[0], "!done");
    assert!(
        reply.iter().all(|s| s[0] != "!trap"),
        "reading is allowed: {reply:?}"
    );
    // Without the api policy the login itself fails.
    let mut d = Client::connect(server.local_addr()).await;
    let reply = d.call(&["/login", "=name=noapi", "=password=n"]).await;
    assert_eq!(
        attr(&reply[0], "message"),
        Some("invalid user name or password (6)")
    );
}

#[tokio::test]
async fn quit_answers_fatal_and_closes() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    c.send(&["/quit"]).await;
    assert_eq!(
        c.recv().await.unwrap(),
        vec!["!fatal", "session terminated on request"]
    );
    assert_eq!(c.recv().await, None);
    // The logout is logged once the session ends.
    for _ in 0..50 {
        if router
            .log_entries()
            .iter()
            .any(|e| e.message_lossy().contains("logged out"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no logout entry: {:?}", router.log_entries());
}

#[tokio::test]
async fn max_sessions_refuses_extra_connections() {
    let config = RouterConfig {
        max_sessions: 2,
        ..RouterConfig::default()
    };
    let (router, server) = start(config).await;
    let _a = admin(&server).await;
    let _b = admin(&server).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(&["/login", "=name=admin", "=password=secret"]).await;
    assert_eq!(
        c.recv().await,
        None,
        "the third session is closed by the router"
    );
    assert_eq!(router.session_count(), 2);
    drop(_a);
    // A slot frees up once a session ends.
    for _ in 0..50 {
        if router.session_count() < 2 {
            let _d = admin(&server).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the closed session never freed its slot");
}

#[tokio::test]
async fn garbage_on_the_wire_ends_the_session_with_fatal() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send_raw(&[0xF8, 1, 2, 3]).await;
    let s = c.recv().await.unwrap();
    assert_eq!(s[0], "!fatal");
    assert!(s[1].contains("reserved control byte"), "{s:?}");
    assert_eq!(c.recv().await, None);
}

#[tokio::test]
async fn api_ssl_with_a_self_signed_certificate() {
    let (router, server, cert) = common::start_tls(RouterConfig::default()).await;
    let mut c = Client::connect_tls(server.local_addr(), &cert).await;
    c.login("admin", "secret").await;
    router.set_cpu_load(37);
    let reply = c
        .call(&["/system/resource/print", "=.proplist=cpu-load"])
        .await;
    assert_eq!(reply[0], vec!["!re", "=cpu-load=37"]);
    let last_login = router
        .log_entries()
        .into_iter()
        .rev()
        .find(|e| e.topics == "system,info,account")
        .unwrap();
    assert!(last_login.message_lossy().ends_with("via api-ssl"));
    assert_eq!(cert.sha256_fingerprint().len(), 64);
}
