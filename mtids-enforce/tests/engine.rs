//! The engine's own API over real loopback sockets: the input hook runs on every session
//! and ends it when it fails, and every ban's outcome comes back as an event with its tag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{LIST, Sim, ban, ledger};
use mtids_enforce::{
    BanOrder, BanState, Blocked, Fleet, FleetConfig, FleetEvent, FleetRouter, RouterInput,
    RouterOsConfig, Scope, Session,
};
use tokio::sync::mpsc;

/// Counts sessions; fails the first one after a short while, keeps the others.
struct Hook {
    sessions: AtomicU64,
}

#[async_trait]
impl RouterInput for Hook {
    async fn run(&self, session: &Session) -> Result<(), String> {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        // The hook has the session's connection.
        session
            .client()
            .call(routeros_proto::Command::new("/system/identity/print"))
            .await
            .map_err(|e| e.to_string())?;
        if session.connection() == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err("the hook gave up".to_owned());
        }
        std::future::pending().await
    }
}

async fn next(
    events: &mut mpsc::UnboundedReceiver<FleetEvent>,
    what: &str,
    pred: impl Fn(&FleetEvent) -> bool,
) -> FleetEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("the fleet runs");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_runs_per_session_and_a_failing_hook_ends_the_session() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(Hook {
        sessions: AtomicU64::new(0),
    });
    let (tx, mut events) = mpsc::unbounded_channel();
    let router = FleetRouter::new(sim.client_config("admin", ""), RouterOsConfig::new("gw"))
        .input(hook.clone());
    let fleet = Fleet::builder()
        .config(
            FleetConfig::default()
                .backoff(Duration::from_millis(50), Duration::from_millis(400))
                .liveness(Duration::from_millis(100), Duration::from_millis(500)),
        )
        .ledger(ledger(&dir))
        .events(tx)
        .start(vec![router]);

    let first = next(&mut events, "a connection", |e| {
        matches!(e, FleetEvent::Connected { .. })
    })
    .await;
    assert!(matches!(first, FleetEvent::Connected { connection: 1, .. }));
    let lost = next(&mut events, "the loss", |e| {
        matches!(e, FleetEvent::Lost { .. })
    })
    .await;
    let FleetEvent::Lost {
        reason, retry_in, ..
    } = lost
    else {
        unreachable!()
    };
    assert_eq!(reason, "the hook gave up");
    // The session passed liveness checks before the hook failed: the backoff is the first
    // step, 50 ms with 50-100 % jitter.
    assert!(retry_in <= Duration::from_millis(50), "{retry_in:?}");
    let second = next(&mut events, "the reconnect", |e| {
        matches!(e, FleetEvent::Connected { .. })
    })
    .await;
    assert!(matches!(
        second,
        FleetEvent::Connected { connection: 2, .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.sessions.load(Ordering::SeqCst), 2);
    assert_eq!(fleet.status("gw").unwrap().connections, 2);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_is_answered_by_tag_applied_or_refused_never_failed_for_a_lost_link() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger(&dir);
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut enforce = RouterOsConfig::new("gw");
    enforce.command_timeout = Duration::from_millis(300);
    let router = FleetRouter::new(
        sim.client_config("admin", "")
            .connect_timeout(Duration::from_millis(300)),
        enforce,
    );
    let fleet = Fleet::builder()
        .config(
            FleetConfig::default()
                .backoff(Duration::from_millis(50), Duration::from_millis(200))
                .liveness(Duration::from_millis(100), Duration::from_millis(300)),
        )
        .ledger(ledger.clone())
        .events(tx)
        .start(vec![router]);
    next(&mut events, "reconciled", |e| {
        matches!(e, FleetEvent::Reconciled { .. })
    })
    .await;

    // Applied now, with its tag.
    let gw = Scope::Router("gw".into());
    fleet
        .order(
            &gw,
            &BanOrder::new(
                ban("198.51.100.7", 600).with_evidence(serde_json::json!({"users": ["admin"]})),
            )
            .tag(7),
        )
        .unwrap();
    let applied = next(&mut events, "applied", |e| {
        matches!(e, FleetEvent::Applied { .. })
    })
    .await;
    assert!(
        matches!(
            &applied,
            FleetEvent::Applied {
                tag: 7,
                blocked: Blocked::Added { .. },
                ..
            }
        ),
        "{applied:?}"
    );
    // The evidence is in the ledger, once; not copied into the router's queue and event
    // (a JSON tree per router per ban on a fleet, issue 15).
    let FleetEvent::Applied { ban: sent, .. } = &applied else {
        unreachable!()
    };
    assert_eq!(sent.evidence, None);
    let recorded = ledger.lock().unwrap().history("198.51.100.7").unwrap();
    let kept = ledger.lock().unwrap().evidence(recorded[0].id).unwrap();
    assert!(kept.is_some_and(|e| e.contains("admin")));

    // The router's own address: refused, as a Failed event with the reason.
    fleet
        .order(&gw, &BanOrder::new(ban("192.0.2.0/24", 600)).tag(8))
        .unwrap();
    let refused = next(&mut events, "refused", |e| {
        matches!(e, FleetEvent::Failed { .. })
    })
    .await;
    let FleetEvent::Failed { tag, error, .. } = refused else {
        unreachable!()
    };
    assert_eq!(tag, 8);
    assert!(error.contains("own address"), "{error}");

    // The router stalls: the ban is recorded pending at once, the link is declared dead,
    // and the ban is applied once the router answers again, reported by its tag.
    sim.router.set_stall(true);
    fleet
        .order(&gw, &BanOrder::new(ban("198.51.100.9", 600)).tag(9))
        .unwrap();
    let history = ledger.lock().unwrap().history("198.51.100.9").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].state, BanState::Pending);
    next(&mut events, "the loss", |e| {
        matches!(e, FleetEvent::Lost { .. })
    })
    .await;
    sim.router.set_stall(false);
    let applied = next(&mut events, "applied after the return", |e| {
        matches!(e, FleetEvent::Applied { .. } | FleetEvent::Failed { .. })
    })
    .await;
    assert!(
        matches!(&applied, FleetEvent::Applied { tag: 9, .. }),
        "{applied:?}"
    );
    assert!(sim.router.is_listed(LIST, "198.51.100.9"));
    assert_eq!(
        ledger.lock().unwrap().history("198.51.100.9").unwrap()[0].state,
        BanState::Applied
    );
    fleet.shutdown().await;
}
