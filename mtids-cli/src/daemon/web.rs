//! The read-only web page of `mtids run` (`[web] listen`): `GET /` is one static HTML
//! file (vanilla JS, nothing fetched from elsewhere) that polls `GET /api/state`, a JSON
//! object: the control socket's status snapshot (`status`), the active bans with their
//! evidence, raw and as text (`bans`), the last [`RECENT_OUTCOMES`] findings with what
//! was decided (`recent`), and events / findings / bans per detector per minute over 24 h
//! (`series`). Nothing here changes anything. HTTPS with `web.tls_cert` and `web.tls_key`
//! (set up by the daemon), optional basic authentication; on loopback by default.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mtids_detect::Outcome;
use mtids_enforce::Fleet;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Shared, control};
use crate::error::CliError;

/// How many recent outcomes the page shows (older ones are dropped).
pub const RECENT_OUTCOMES: usize = 200;
/// Minutes in the chart's window (24 h).
pub const SERIES_MINUTES: usize = 24 * 60;
/// Most active bans listed (with their evidence) in one answer.
const MAX_BANS: usize = 1000;

const PAGE: &str = include_str!("web/index.html");

/// One minute of the 24 h series.
#[derive(Default, Clone)]
struct Minute {
    /// Minutes since the epoch.
    minute: u64,
    events: u64,
    findings: BTreeMap<&'static str, u64>,
    bans: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Recorded {
    recent: VecDeque<Value>,
    series: VecDeque<Minute>,
}

/// What the page shows beyond the status snapshot, kept in bounded rings.
#[derive(Default)]
pub(crate) struct Recorder(Mutex<Recorded>);

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

impl Recorded {
    fn minute(&mut self, now: SystemTime) -> &mut Minute {
        let minute = minute_of(now);
        let last = self.series.back().map(|m| m.minute);
        if last.is_none_or(|last| minute > last) {
            self.series.push_back(Minute {
                minute,
                ..Minute::default()
            });
            // Drop what fell out of the 24 h window (and bound the ring).
            while self.series.len() > SERIES_MINUTES
                || self
                    .series
                    .front()
                    .is_some_and(|m| m.minute + (SERIES_MINUTES as u64) <= minute)
            {
                self.series.pop_front();
            }
        }
        // A clock that went back counts into the newest minute.
        let len = self.series.len();
        &mut self.series[len - 1]
    }
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// `n` events reached the engine at `now`.
    pub(crate) fn events(&self, now: SystemTime, n: u64) {
        let mut r = self.lock();
        r.minute(now).events += n;
    }

    /// The engine decided `outcome` at `now`.
    pub(crate) fn outcome(&self, now: SystemTime, outcome: &Outcome) {
        let finding = outcome.finding();
        let detector = finding.detector;
        let (decision, why) = match outcome {
            Outcome::Ban(d) => (
                "ban",
                format!("banned for {}", humantime::format_duration(d.duration)),
            ),
            Outcome::Suppressed(s) => ("not banned", s.reason.to_string()),
        };
        // The same evidence a ban keeps (samples bounded), so both read the same way.
        let evidence = mtids_enforce::evidence_json(finding);
        let entry = json!({
            "time": humantime::format_rfc3339_seconds(now).to_string(),
            "detector": detector,
            "source": finding.source.to_string(),
            "severity": finding.severity,
            "decision": decision,
            "why": why,
            "evidence_text": evidence_text(&evidence),
            "evidence": evidence,
        });
        let mut r = self.lock();
        let minute = r.minute(now);
        *minute.findings.entry(detector).or_default() += 1;
        if matches!(outcome, Outcome::Ban(_)) {
            *minute.bans.entry(detector).or_default() += 1;
        }
        if r.recent.len() >= RECENT_OUTCOMES {
            r.recent.pop_front();
        }
        r.recent.push_back(entry);
    }

    fn snapshot(&self) -> (Vec<Value>, Vec<Value>) {
        let r = self.lock();
        let recent = r.recent.iter().rev().cloned().collect();
        let series = r
            .series
            .iter()
            .map(|m| {
                json!({
                    "minute": humantime::format_rfc3339_seconds(
                        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(m.minute * 60)
                    ).to_string(),
                    "events": m.events,
                    "findings": m.findings,
                    "bans": m.bans,
                })
            })
            .collect();
        (recent, series)
    }
}

/// Evidence as the text `mtids bans show` prints for it, one line per fact (`None` for
/// what is not an evidence object).
fn evidence_text(evidence: &Value) -> Option<String> {
    crate::bans::evidence_lines(evidence).map(|lines| lines.join("\n"))
}

/// The whole `/api/state` answer.
pub(crate) fn state(shared: &Shared, fleet: &Fleet, started: SystemTime) -> Value {
    let now = shared.now();
    let status = control::status_snapshot(shared, fleet, started);
    let bans: Vec<Value> = shared
        .with_ledger("listing active bans for the web page", |l| {
            let active = l.active(None, now)?;
            let mut out = Vec::with_capacity(active.len().min(MAX_BANS));
            for ban in active.into_iter().take(MAX_BANS) {
                let evidence = l.evidence(ban.id)?;
                let readable = evidence
                    .as_deref()
                    .and_then(|e| serde_json::from_str::<Value>(e).ok())
                    .and_then(|v| evidence_text(&v));
                out.push(json!({
                    "target": ban.target,
                    "router": ban.router,
                    "detector": ban.detector,
                    "reason": ban.reason,
                    "created": humantime::format_rfc3339_seconds(ban.created).to_string(),
                    "expires": ban.expires.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    "state": format!("{:?}", ban.state),
                    "evidence": evidence,
                    "evidence_text": readable,
                }));
            }
            Ok(out)
        })
        .unwrap_or_default();
    let (recent, series) = shared.web.snapshot();
    json!({
        "now": humantime::format_rfc3339_seconds(now).to_string(),
        "status": status,
        "bans": bans,
        "recent": recent,
        "series": series,
    })
}

/// The `Authorization` header value the page asks for, if a password is configured
/// (`web.password_file`, else `MTIDS_WEB_PASSWORD`).
pub(crate) fn expected_auth(config: &crate::config::WebConfig) -> Result<Option<String>, CliError> {
    use base64::Engine as _;
    let password = match &config.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::io(format!("reading web.password_file {}", path.display()), e)
            })?;
            Some(text.lines().next().unwrap_or_default().to_owned())
        }
        None => std::env::var("MTIDS_WEB_PASSWORD").ok(),
    };
    let Some(password) = password else {
        return Ok(None);
    };
    if password.is_empty() {
        return Err(CliError::config(
            "configuration",
            "web.password_file",
            "the password is empty",
        ));
    }
    let user = config.user.as_deref().unwrap_or("mtids");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Ok(Some(format!("Basic {token}")))
}

/// Compares without an early exit, so the time taken says nothing about the password.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Binds `addr` at once (port 0 picks one); must run inside a tokio runtime.
pub(crate) fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, CliError> {
    let context = || format!("binding the web page on {addr} (web.listen)");
    let listener = std::net::TcpListener::bind(addr).map_err(|e| CliError::io(context(), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| CliError::io(context(), e))?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| CliError::io(context(), e))
}

/// Most TLS handshakes in progress at once; connections past it are closed at once.
const MAX_HANDSHAKES: usize = 64;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The page's HTTPS listener: handshakes run beside each other (a slow client holds up
/// no other), bounded in number and time; failed ones are dropped quietly.
pub(crate) struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: tokio::task::JoinSet<
        Option<(
            tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
            SocketAddr,
        )>,
    >,
}

impl TlsListener {
    pub(crate) fn new(tcp: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        TlsListener {
            tcp,
            acceptor,
            handshakes: tokio::task::JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) if self.handshakes.len() < MAX_HANDSHAKES => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "web page: TLS handshake failed");
                                    None
                                }
                                Err(_) => None,
                            }
                        });
                    }
                    Ok(_) => {} // Too many handshakes at once: this one is dropped.
                    Err(e) => {
                        tracing::warn!(error = %e, "web page: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves the page until the returned sender fires or is dropped.
pub(crate) fn spawn<L>(
    listener: L,
    shared: Arc<Shared>,
    fleet: Arc<Fleet>,
    auth: Option<String>,
) -> (oneshot::Sender<()>, JoinHandle<()>)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let started = shared.now();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                (
                    [
                        (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (
                            axum::http::header::CONTENT_SECURITY_POLICY,
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
                        ),
                    ],
                    PAGE,
                )
            }),
        )
        .route(
            "/api/state",
            axum::routing::get(move || {
                let shared = Arc::clone(&shared);
                let fleet = Arc::clone(&fleet);
                async move {
                    // Reads the ledger: off the async workers.
                    let answer =
                        tokio::task::spawn_blocking(move || state(&shared, &fleet, started)).await;
                    match answer {
                        Ok(v) => (
                            axum::http::StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            v.to_string(),
                        ),
                        Err(_) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            r#"{"error":"building the state failed"}"#.to_owned(),
                        ),
                    }
                }
            }),
        );
    let app = app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let auth = auth.clone();
            async move {
                if let Some(expected) = auth {
                    let given = request
                        .headers()
                        .get(axum::http::header::AUTHORIZATION)
                        .map(|v| v.as_bytes().to_vec())
                        .unwrap_or_default();
                    if !same(&given, expected.as_bytes()) {
                        return axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::UNAUTHORIZED,
                            [(
                                axum::http::header::WWW_AUTHENTICATE,
                                "Basic realm=\"mtids\"",
                            )],
                            "authentication required\n",
                        ));
                    }
                }
                next.run(request).await
            }
        },
    ));
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "web page stopped");
        }
    });
    (stop, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn series_keeps_24_hours_only() {
        let r = Recorder::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for m in 0..(SERIES_MINUTES as u64 + 100) {
            r.events(t0 + Duration::from_secs(m * 60), 2);
        }
        let (_, series) = r.snapshot();
        assert_eq!(series.len(), SERIES_MINUTES);
        assert_eq!(series[0]["events"], 2);
    }
}
