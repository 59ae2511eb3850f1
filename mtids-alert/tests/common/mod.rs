//! A real HTTP server on loopback that records requests and answers from a script,
//! and a tracing subscriber that writes into a buffer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use mtids_alert::{Action, Alert, Severity, Threat};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// What the server answers, in order; after the script, `200 {"ok":true}`.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16, &'static str),
    StatusWithHeader(u16, &'static str, &'static str, &'static str),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Clone)]
struct ServerState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Reply,
    arrived: Arc<tokio::sync::Notify>,
}

pub struct TestServer {
    pub base: String,
    state: ServerState,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 in the current runtime.
    pub async fn start(script: Vec<Reply>) -> Self {
        Self::start_with_default(script, Reply::Status(200, r#"{"ok":true,"result":{}}"#)).await
    }

    pub async fn start_with_default(script: Vec<Reply>, default: Reply) -> Self {
        let state = ServerState {
            requests: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
            default,
            arrived: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{addr}"),
            state,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, or panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("expected {n} requests, got {}", self.requests().len());
            }
        }
    }
}

async fn handle(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.default.clone());
    match reply {
        Reply::Status(code, body) => {
            (StatusCode::from_u16(code).unwrap(), body.to_owned()).into_response()
        }
        Reply::StatusWithHeader(code, body, name, value) => (
            StatusCode::from_u16(code).unwrap(),
            [(name, value)],
            body.to_owned(),
        )
            .into_response(),
        Reply::Hang => std::future::pending().await,
    }
}

/// A loopback port with nothing listening (connection refused).
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Everything logged while the guard lives, at TRACE level, as text.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Installs the buffer as this thread's subscriber (tests use the current-thread runtime).
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let buffer = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (buffer, guard)
    }

    /// Installs the buffer process-wide, with `log` records (reqwest, rustls) bridged in too.
    /// For test binaries with a single test.
    pub fn install_global() -> Self {
        let buffer = Self::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .try_init()
            .expect("only one global subscriber per test binary");
        buffer
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

pub const EPOCH_2023: u64 = 1_700_000_000;

/// A brute-force block with an attacker-chosen user name in the evidence.
pub fn hostile_alert() -> Alert {
    Alert::new(
        Threat::LoginBruteForce,
        "203.0.113.7",
        Action::Blocked {
            duration: Some(Duration::from_secs(3600)),
            routers: vec!["core-1".into(), "edge-2".into()],
        },
        "12 failed logins for user <b>root</b>_*[]\nAction: none & co via ssh",
        SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_2023),
    )
    .with_detector("brute-force")
    .with_severity(Severity::High)
    .with_enforced_at(SystemTime::UNIX_EPOCH + Duration::from_millis(EPOCH_2023 * 1000 + 250))
}

/// A plain block from `source`.
pub fn block(source: &str) -> Alert {
    Alert::new(
        Threat::PortScan,
        source,
        Action::Blocked {
            duration: Some(Duration::from_secs(600)),
            routers: vec!["core-1".into()],
        },
        "40 ports in 10 s",
        SystemTime::now(),
    )
}
