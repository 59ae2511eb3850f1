//! Scenarios played into a served router, observed over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{admin, attr, serve, start};
use routeros_sim::{AttackKind, ManualClock, Router, RouterConfig, Scenario, Service};

#[tokio::test]
async fn login_then_cpu_spike_is_visible_through_the_api() {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000),
    ));
    let router = Router::with_clock(
        RouterConfig {
            log_capacity: 10_000,
            ..RouterConfig::default()
        },
        clock.clone(),
    );
    let scenario = Scenario::build("login-cpu-spike", 5).unwrap();
    assert_eq!(scenario.truth[0].kind, AttackKind::LoginCpuSpike);
    // Play up to the middle of the spike.
    let truth = scenario.truth[0].clone();
    let partial = Scenario {
        events: scenario
            .events
            .iter()
            .filter(|e| e.at < truth.start + Duration::from_secs(60))
            .cloned()
            .collect(),
        ..scenario.clone()
    };
    partial.run_instant(&router, &clock);
    let server = serve(&router).await;
    let mut c = admin(&server).await;
    let reply = c
        .call(&[
            "/log/print",
            "?topics=system,info,account",
            "=.proplist=message",
        ])
        .await;
    let wanted = format!(
        "=message=user admin logged in from {} via winbox",
        truth.attacker
    );
    assert!(reply.iter().any(|s| s.contains(&wanted)), "{reply:?}");
    let reply = c
        .call(&["/system/resource/print", "=.proplist=cpu-load"])
        .await;
    let load: u8 = attr(&reply[0], "cpu-load").unwrap().parse().unwrap();
    assert!(load >= 90, "cpu-load {load}");
    let reply = c
        .call(&["/ip/firewall/connection/print", "=count-only="])
        .await;
    assert!(
        attr(&reply[0], "ret").unwrap().parse::<usize>().unwrap() > 50,
        "background connections"
    );
}

#[tokio::test]
async fn a_time_compressed_brute_force_streams_to_a_follower() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    c.send(&[
        "/log/print",
        "=follow-only=",
        "?topics=system,error,critical",
        ".tag=f",
    ])
    .await;
    assert!(c.sync().await.is_empty(), "the follow is running");
    let scenario = Scenario::build("ssh-brute-force", 9).unwrap();
    let attacker = scenario.truth[0].attacker;
    assert_eq!(scenario.truth[0].kind, AttackKind::BruteForce(Service::Ssh));
    let player = router.clone();
    // 700 s of router time at 2000x: well under a second.
    let task = tokio::spawn(async move { scenario.run(&player, 2_000.0).await });
    let mut from_attacker = 0;
    while from_attacker < 30 {
        let s = c.recv().await.expect("follow ended");
        let message = attr(&s, "message").unwrap();
        assert!(message.starts_with("login failure for user "), "{message}");
        if message.ends_with(&format!("from {attacker} via ssh")) {
            from_attacker += 1;
        }
    }
    task.await.unwrap();
}
