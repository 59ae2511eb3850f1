//! Helpers for the end-to-end tests: a simulated router on a loopback port, the daemon
//! configured against it, and a loopback HTTP server standing in for Telegram.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fault_proxy;

pub use fault_proxy::FaultProxy;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtids_cli::config::{Config, RouterConfig};
use mtids_cli::daemon::{Daemon, Options, Report};
use routeros_sim::{Router, RouterConfig as SimConfig, Server, ServerConfig, TlsIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The address list the daemon writes to in these tests.
pub const LIST: &str = "mtids-blocked";

/// A simulated router served on 127.0.0.1:0.
pub struct Sim {
    /// The model, to log lines and inspect lists.
    pub router: Router,
    /// The API server.
    pub server: Server,
}

impl Sim {
    /// Starts a simulated RouterOS 7 on the system clock.
    pub async fn start() -> Sim {
        let router = Router::new(SimConfig::default());
        let server = Server::bind(
            router.clone(),
            ServerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .await
        .unwrap();
        Sim { router, server }
    }

    /// Starts a simulated RouterOS 7 serving API-SSL with `identity` on 127.0.0.1:0.
    pub async fn start_tls(identity: TlsIdentity) -> Sim {
        let router = Router::new(SimConfig::default());
        let server = Server::bind(
            router.clone(),
            ServerConfig::tls(SocketAddr::from(([127, 0, 0, 1], 0)), identity),
        )
        .await
        .unwrap();
        Sim { router, server }
    }

    /// A configuration for the daemon against this router, with fast polls, the ledger in
    /// `dir`, and brute force at 5 failures.
    pub fn config(&self, dir: &Path) -> Config {
        let addr = self.server.local_addr();
        let mut router = RouterConfig::new("sim", addr.ip().to_string(), "admin");
        router.port = Some(addr.port());
        let mut config = Config::default();
        config.routers = vec![router];
        config.input.connection_interval = Duration::from_millis(100);
        config.input.resource_interval = Duration::from_millis(50);
        config.input.max_backoff = Duration::from_millis(500);
        config.ledger.path = dir.join("bans.db");
        config.detection.brute_force.max_failures = 5;
        config
    }

    /// Whether `ip` is on the daemon's address list.
    pub fn listed(&self, ip: &str) -> bool {
        self.router.is_listed(LIST, ip)
    }

    /// How many entries of the daemon's list name `ip`.
    pub fn entries(&self, ip: &str) -> usize {
        self.router
            .address_list(routeros_sim::Family::V4)
            .iter()
            .filter(|e| e.list == LIST && e.address == ip)
            .count()
    }
}

/// A running daemon and its reports.
pub struct Running {
    /// The daemon.
    pub daemon: Daemon,
    /// What it reported so far (drained by [`Running::wait_for`]).
    pub reports: mpsc::UnboundedReceiver<Report>,
    /// Everything seen by [`Running::wait_for`].
    pub seen: Vec<Report>,
}

impl Running {
    /// Starts the daemon and waits until it is connected and following the log.
    pub async fn start(config: Config) -> Running {
        Running::start_with(config, Options::default()).await
    }

    /// As [`Running::start`], with `options` (extra notifiers, a clock); its reports
    /// channel is replaced by the one [`Running::wait_for`] reads.
    pub async fn start_with(config: Config, mut options: Options) -> Running {
        let (tx, rx) = mpsc::unbounded_channel();
        options.reports = Some(tx);
        let daemon = Daemon::start(config, options).unwrap();
        let mut running = Running {
            daemon,
            reports: rx,
            seen: Vec::new(),
        };
        running
            .wait_for(Duration::from_secs(10), |r| {
                matches!(r, Report::Connected { .. })
            })
            .await
            .expect("the daemon connects");
        // Let the follow command reach the router.
        tokio::time::sleep(Duration::from_millis(150)).await;
        running
    }

    /// Waits up to `within` for a report matching `pred`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&Report) -> bool,
    ) -> Option<Report> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.reports.recv()).await {
                Ok(Some(r)) => {
                    self.seen.push(r.clone());
                    if pred(&r) {
                        return Some(r);
                    }
                }
                _ => return None,
            }
        }
    }

    /// Stops the daemon.
    pub async fn stop(self) {
        self.daemon.shutdown(Duration::from_secs(2)).await;
    }
}

/// Polls `cond` every 2 ms until it holds or `within` passes; returns how long it took.
pub async fn eventually(within: Duration, cond: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cond().then(|| start.elapsed())
}

/// Logs `n` SSH login failures for `user` from `ip`.
pub fn fail_logins(router: &Router, ip: &str, user: &str, n: usize) {
    let ip: IpAddr = ip.parse().unwrap();
    for _ in 0..n {
        router.log_login_failure(user, ip, routeros_sim::Service::Ssh);
    }
}

/// Sends `n` SSH login failures for `user` from `ip` to the daemon's syslog UDP listener
/// at `to`, as RouterOS' remote logging action sends them (BSD syslog, facility 10).
pub async fn syslog_login_failures(to: SocketAddr, ip: &str, user: &str, n: usize) {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..n {
        let line = format!(
            "<86>Dec  7 01:00:{:02} gw system,error,critical login failure for user {user} from {ip} via ssh",
            i % 60
        );
        udp.send_to(line.as_bytes(), to).await.unwrap();
    }
}

/// A loopback HTTP server that answers every request like the Telegram Bot API and keeps
/// the request bodies.
pub struct HttpSink {
    /// Where it listens, as `http://127.0.0.1:PORT`.
    pub url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl HttpSink {
    /// Starts the server.
    pub async fn start() -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&bodies);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let keep = Arc::clone(&keep);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() < end + 4 + length {
                            continue;
                        }
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                        keep.lock().unwrap().push(body.into_owned());
                        let answer = r#"{"ok":true,"result":{"message_id":1}}"#;
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                            answer.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                        return;
                    }
                });
            }
        });
        HttpSink { url, bodies }
    }

    /// The request bodies received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}
