//! The client against a tiny local HTTP server playing the LAPI, for answers the real one
//! does not give on demand: null lists, unknown scopes, bad durations, invalid addresses,
//! garbage, expired tokens and 401s. Loopback only.

// Helpers outside #[test] functions unwrap too: a panic in a test is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use mtids_crowdsec::{
    BanReport, Bouncer, CrowdsecError, MachineCredentials, OwnBans, Secret, StreamFilters,
    Submitted, Url, Watcher, WatcherConfig,
};

#[derive(Default)]
struct Fake {
    /// Answers to the next stream requests (status, body).
    stream_answers: VecDeque<(u16, String)>,
    /// Query strings and X-Api-Key values seen.
    stream_requests: Vec<(String, Option<String>)>,
    /// Logins so far; each gets token `tok-N`.
    logins: u32,
    /// What `expire` the login answers.
    expire: String,
    /// Answer 401 to the next alert post this many times.
    refuse_alerts: u32,
    /// Alert bodies accepted, with the token they came with.
    alerts: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn stream(
    State(fake): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let mut fake = fake.lock().unwrap();
    let key = headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap().to_owned());
    fake.stream_requests.push((query.unwrap_or_default(), key));
    let (status, body) = fake
        .stream_answers
        .pop_front()
        .unwrap_or((200, r#"{"new":null,"deleted":null}"#.to_owned()));
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn login(State(fake): State<Shared>, body: String) -> (StatusCode, String) {
    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
    if request["password"] != "pw" || request["machine_id"] != "m1" {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"message":"incorrect Username or Password"}"#.into(),
        );
    }
    let mut fake = fake.lock().unwrap();
    fake.logins += 1;
    let answer = serde_json::json!({"code": 200, "expire": fake.expire, "token": format!("tok-{}", fake.logins)});
    (StatusCode::OK, answer.to_string())
}

async fn alerts(
    State(fake): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let mut fake = fake.lock().unwrap();
    let token = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let current = format!("Bearer tok-{}", fake.logins);
    if fake.refuse_alerts > 0 || token != current {
        fake.refuse_alerts = fake.refuse_alerts.saturating_sub(1);
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"message":"token is expired"}"#.into(),
        );
    }
    fake.alerts.push((token, body));
    (StatusCode::CREATED, r#"["1"]"#.into())
}

async fn serve() -> (Url, Shared) {
    let fake: Shared = Arc::new(Mutex::new(Fake {
        expire: "2100-01-01T00:00:00Z".into(),
        ..Fake::default()
    }));
    let app = Router::new()
        .route("/v1/decisions/stream", get(stream))
        .route("/v1/watchers/login", post(login))
        .route("/v1/alerts", post(alerts))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (Url::parse(&format!("http://{addr}")).unwrap(), fake)
}

fn bouncer(url: &Url) -> Bouncer {
    Bouncer::new(
        url,
        Secret::new("bouncer-key"),
        StreamFilters::new(vec!["cscli".into(), "crowdsec".into()], vec!["ssh".into()]),
        1000,
        OwnBans::new(),
    )
    .unwrap()
}

fn answer(fake: &Shared, status: u16, body: &str) {
    fake.lock()
        .unwrap()
        .stream_answers
        .push_back((status, body.to_owned()));
}

#[tokio::test]
async fn null_lists_are_empty_and_filters_and_key_are_sent() {
    let (url, fake) = serve().await;
    let mut b = bouncer(&url);
    answer(&fake, 200, r#"{"new":null,"deleted":null}"#);
    answer(&fake, 200, r#"{}"#);
    let u = b.pull().await.unwrap();
    assert!(u.startup && u.new.is_empty() && u.deleted.is_empty());
    let u = b.pull().await.unwrap();
    assert!(!u.startup && u.new.is_empty());
    let seen = fake.lock().unwrap().stream_requests.clone();
    assert_eq!(
        seen[0].0,
        "startup=true&scopes=ip%2Crange&origins=cscli%2Ccrowdsec&scenarios_containing=ssh"
    );
    assert!(seen[1].0.starts_with("startup=false&"));
    assert_eq!(seen[0].1.as_deref(), Some("bouncer-key"));
}

#[tokio::test]
async fn bad_decisions_are_skipped_and_counted() {
    let (url, fake) = serve().await;
    let mut b = bouncer(&url);
    let body = r#"{"new":[
        {"id":1,"origin":"cscli","type":"ban","scope":"Ip","value":"198.51.100.7","duration":"3h59m59.54s","scenario":"ssh"},
        {"id":2,"origin":"cscli","type":"ban","scope":"Country","value":"FR","duration":"1h","scenario":"ssh"},
        {"id":3,"origin":"cscli","type":"ban","scope":"Ip","value":"198.51.100.8","duration":"a while","scenario":"ssh"},
        {"id":4,"origin":"cscli","type":"ban","scope":"Ip","value":"198.51.100.999","duration":"1h","scenario":"ssh"},
        {"id":5,"origin":"cscli","type":"ban","scope":"Ip","value":"198.51.100.0/24","duration":"1h","scenario":"ssh"},
        {"id":6,"origin":"cscli","type":"ban","scope":"Range","value":"not a range","duration":"1h","scenario":"ssh"},
        {"id":7,"origin":"cscli","type":"captcha","scope":"Ip","value":"198.51.100.9","duration":"1h","scenario":"ssh"},
        {"id":8,"origin":"cscli","type":"ban","scope":"Ip","duration":"1h","scenario":"ssh"},
        {"id":9,"origin":"cscli","type":"ban","scope":"Range","value":"203.0.113.0/24","duration":"2562047h47m16.854775807s","scenario":"ssh","uuid":"u-9"}
    ],"deleted":[
        {"id":10,"origin":"cscli","type":"ban","scope":"Ip","value":"192.0.2.1","duration":"-1m2s","scenario":"ssh"}
    ]}"#;
    // A delta, after an empty snapshot (a snapshot has no `deleted`).
    answer(&fake, 200, r#"{"new":null,"deleted":null}"#);
    answer(&fake, 200, body);
    b.pull().await.unwrap();
    let u = b.pull().await.unwrap();
    let targets: Vec<String> = u.new.iter().map(|b| b.target.to_string()).collect();
    assert_eq!(targets, ["198.51.100.7", "203.0.113.0/24"]);
    assert_eq!(u.new[0].remaining, Duration::from_millis(14_399_540));
    assert_eq!(u.new[1].uuid.as_deref(), Some("u-9"));
    assert_eq!(u.deleted.len(), 1);
    assert_eq!(u.deleted[0].remaining, Duration::ZERO);
    let s = u.skipped;
    assert_eq!(
        (
            s.unknown_scope,
            s.invalid_duration,
            s.invalid_value,
            s.not_ban,
            s.missing_field
        ),
        (1, 1, 3, 1, 1)
    );
    assert_eq!(s.total(), 7);
}

#[tokio::test]
async fn garbage_fails_that_pull_only() {
    let (url, fake) = serve().await;
    let mut b = bouncer(&url);
    answer(&fake, 200, "<html>proxy error</html>");
    answer(&fake, 200, r#"{"new":[{"value": 12}]}"#);
    answer(&fake, 200, r#"{"new":"#);
    answer(&fake, 403, r#"{"message":"access forbidden"}"#);
    answer(&fake, 500, "boom");
    answer(
        &fake,
        200,
        r#"{"new":[{"id":1,"origin":"cscli","type":"ban","scope":"Ip","value":"198.51.100.7","duration":"1h","scenario":"x"}],"deleted":null}"#,
    );
    for _ in 0..3 {
        let e = b.pull().await.unwrap_err();
        assert!(matches!(e, CrowdsecError::Malformed { .. }), "{e}");
    }
    let e = b.pull().await.unwrap_err();
    assert!(
        matches!(e, CrowdsecError::Status { status: 403, ref message, .. } if message == "access forbidden"),
        "{e}"
    );
    let e = b.pull().await.unwrap_err();
    assert!(
        matches!(e, CrowdsecError::Status { status: 500, .. }),
        "{e}"
    );
    // Failed pulls change nothing: this is still the startup snapshot.
    let u = b.pull().await.unwrap();
    assert!(u.startup);
    assert_eq!(u.new.len(), 1);
    let seen = fake.lock().unwrap().stream_requests.clone();
    assert!(
        seen.iter().all(|(q, _)| q.starts_with("startup=true")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_failed_delta_is_followed_by_a_snapshot() {
    let (url, fake) = serve().await;
    let mut b = bouncer(&url);
    let one = r#"{"new":[{"id":1,"origin":"cscli","type":"ban","scope":"Ip","value":"198.51.100.7","duration":"1h","scenario":"x"}],"deleted":null}"#;
    answer(&fake, 200, one);
    answer(&fake, 200, r#"{"new":[{"id":2,"#);
    answer(&fake, 200, one);
    answer(&fake, 200, r#"{"new":null,"deleted":null}"#);
    assert!(b.pull().await.unwrap().startup);
    assert!(b.pull().await.is_err());
    let u = b.pull().await.unwrap();
    assert!(u.startup, "the changes of the lost answer are not lost");
    assert_eq!(u.new.len(), 1);
    assert!(!b.pull().await.unwrap().startup);
    let queries: Vec<String> = fake
        .lock()
        .unwrap()
        .stream_requests
        .iter()
        .map(|(q, _)| q[..12].to_owned())
        .collect();
    assert_eq!(
        queries,
        [
            "startup=true",
            "startup=fals",
            "startup=true",
            "startup=fals"
        ]
    );
}

#[tokio::test]
async fn unreachable_lapi_is_an_error_not_a_hang() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let e = bouncer(&url).pull().await.unwrap_err();
    assert!(matches!(e, CrowdsecError::Unreachable { .. }), "{e}");
}

fn watcher(url: &Url, password: &str, config: WatcherConfig) -> Watcher {
    Watcher::spawn(
        url,
        MachineCredentials::new("m1", password),
        config,
        OwnBans::new(),
    )
    .unwrap()
}

fn fast() -> WatcherConfig {
    let mut c = WatcherConfig::default();
    c.min_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(100);
    c
}

fn report(ip: &str) -> BanReport {
    BanReport::new(
        ip.parse().unwrap(),
        Duration::from_secs(600),
        "port_scan",
        "scan",
        SystemTime::now(),
    )
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn logs_in_again_after_a_401_and_when_the_token_expires() {
    let (url, fake) = serve().await;
    let w = watcher(&url, "pw", fast());
    assert_eq!(w.submit(report("198.51.100.1")), Submitted::Queued);
    wait_for("first alert", || w.stats().delivered == 1).await;
    assert_eq!(w.stats().logins, 1);

    // The LAPI refuses the token once (as after its restart): one new login, no loss.
    fake.lock().unwrap().refuse_alerts = 1;
    w.submit(report("198.51.100.2"));
    wait_for("second alert", || w.stats().delivered == 2).await;
    assert_eq!(w.stats().logins, 2);
    assert_eq!(w.stats().rejected, 0);
    let alerts = fake.lock().unwrap().alerts.clone();
    assert_eq!(alerts[1].0, "Bearer tok-2");
    let body: serde_json::Value = serde_json::from_str(&alerts[1].1).unwrap();
    assert_eq!(body[0]["decisions"][0]["value"], "198.51.100.2");
    assert_eq!(body[0]["scenario"], "mtids/port_scan");

    // Tokens that are already expired are renewed before every push, without a 401.
    let w2 = watcher(&url, "pw", fast());
    fake.lock().unwrap().expire = "2000-01-01T00:00:00Z".into();
    for (i, ip) in ["198.51.100.3", "198.51.100.4"].into_iter().enumerate() {
        w2.submit(report(ip));
        wait_for("alert", || w2.stats().delivered == i as u64 + 1).await;
    }
    assert_eq!(w2.stats().logins, 2);
    assert_eq!(
        w2.stats().retries,
        0,
        "no push went out with an expired token"
    );
}

#[tokio::test]
async fn wrong_password_retries_without_blocking_and_secrets_stay_out_of_debug() {
    let (url, _fake) = serve().await;
    let mut config = fast();
    config.min_backoff = Duration::from_millis(100);
    config.max_backoff = Duration::from_secs(1);
    let w = watcher(&url, "wrong-hunter2", config);
    w.submit(report("198.51.100.5"));
    wait_for("a retried login", || w.stats().retries >= 2).await;
    assert_eq!(w.stats().delivered, 0);
    let printed = format!("{w:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    let e = w.shutdown(Duration::from_millis(50)).await.unwrap_err();
    assert!(
        matches!(e, CrowdsecError::Undelivered { undelivered: 1, .. }),
        "{e}"
    );
    assert_eq!(w.submit(report("198.51.100.6")), Submitted::Closed);
}

#[tokio::test]
async fn submit_returns_at_once_and_the_queue_is_bounded() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let mut config = fast();
    config.queue_capacity = 10;
    let w = watcher(&url, "pw", config);
    let start = Instant::now();
    let mut dropped = 0;
    for i in 0..1000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        if w.submit(report(&ip)) == Submitted::DroppedOldest {
            dropped += 1;
        }
    }
    let took = start.elapsed();
    let stats = w.stats();
    assert_eq!(stats.submitted, 1000);
    assert_eq!(stats.dropped, dropped);
    // At most the queue plus one batch taken from it.
    assert!(stats.queued <= 20, "{stats:?}");
    assert!(dropped >= 980, "{stats:?}");
    assert!(took < Duration::from_secs(1), "1000 submits took {took:?}");
}
