//! `mtids run` with `log.format = "json"`, as a real process against routeros-sim on
//! loopback: every stderr line is a JSON object with a level and a message, the metrics
//! endpoint's real address is logged and answers, the router password never appears,
//! and SIGTERM stops the daemon cleanly (status 0, a `stopped` line).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use routeros_sim::{Policies, Router, RouterConfig, Server, ServerConfig, Service, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "Sw0rdfish-json-logs";

/// Kills the daemon if the test fails before it stopped it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `within` for a stderr line whose JSON `message` is `message`; every line
/// read on the way is kept in `lines`.
fn wait_for_message(
    rx: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    message: &str,
    within: Duration,
) -> Option<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        lines.push(line.clone());
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v.get("message").and_then(|m| m.as_str()) == Some(message)
        {
            return Some(v);
        }
    }
}

/// The keys of a JSON object in order, duplicates kept (a `serde_json::Value` would
/// silently keep only the last of two equal keys).
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(Visitor)
    }
}

async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: mtids\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_json_serves_metrics_and_stops_on_sigterm() {
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("ids", PASSWORD, Policies::FULL));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mtids.toml");
    // The password in the file (written world-readable: mtids warns about it, without
    // saying the password).
    std::fs::write(
        &config,
        format!(
            "[log]\nformat = \"json\"\n\n\
             [[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"{PASSWORD}\"\n\n\
             [input]\nconnection_interval = \"200ms\"\nresource_interval = \"200ms\"\n\n\
             [ledger]\npath = \"{}\"\n\n\
             [detection.brute_force]\nmax_failures = 5\n\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("bans.db").display()
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mtids"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("MTIDS_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(dir.path()) // No stray .env is read.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let daemon = Daemon(child);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stdout_reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });

    let mut lines = Vec::new();
    let listening = tokio::task::block_in_place(|| {
        wait_for_message(
            &rx,
            &mut lines,
            "metrics endpoint listening",
            Duration::from_secs(20),
        )
    })
    .unwrap_or_else(|| panic!("no metrics address logged:\n{}", lines.join("\n")));
    let addr: SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0, "the real port is logged");
    assert_eq!(listening["level"], "INFO", "{listening}");
    tokio::task::block_in_place(|| {
        wait_for_message(&rx, &mut lines, "connected", Duration::from_secs(20))
    })
    .unwrap_or_else(|| panic!("never connected:\n{}", lines.join("\n")));

    // A brute force, so ban and block lines are in the log too (once the log follow
    // has reached the router).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        router.log_login_failure("admin", "198.51.100.7".parse().unwrap(), Service::Ssh);
    }
    tokio::task::block_in_place(|| {
        wait_for_message(&rx, &mut lines, "blocked", Duration::from_secs(10))
    })
    .unwrap_or_else(|| panic!("no block logged:\n{}", lines.join("\n")));
    assert!(router.is_listed("mtids-blocked", "198.51.100.7"));

    let response = scrape(addr).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("mtids_router_connected{router=\"gw\"} 1"),
        "{response}"
    );
    assert!(
        response.contains("mtids_decisions_total{outcome=\"ban\"} 1"),
        "{response}"
    );

    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let mut daemon = daemon;
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = daemon.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let stdout = stdout_reader.join().unwrap();
    let all = lines.join("\n");
    assert_eq!(exit.code(), Some(0), "{all}");

    assert!(!all.contains(PASSWORD), "the password was logged:\n{all}");
    assert!(
        !stdout.contains(PASSWORD),
        "the password was printed:\n{stdout}"
    );
    let mut messages = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nin\n{all}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        let message = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {line}"));
        messages.push(message.to_owned());
        // No field shadows another (e.g. an event field named like the `target` key).
        let Keys(mut keys) = serde_json::from_str(line).unwrap();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key appears twice: {line}");
        if message == "ban" || message == "blocked" {
            assert_eq!(v["address"], "198.51.100.7", "{line}");
        }
    }
    for expected in [
        "starting",
        "metrics endpoint listening",
        "connected",
        "ban",
        "blocked",
        "shutting down",
        "stopped",
    ] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no {expected:?} line in\n{all}"
        );
    }
    // The world-readable file holding a password was warned about.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"WARN\"") && l.contains("readable")),
        "{all}"
    );
    // The endpoint stopped with the daemon.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    server.shutdown().await;
}
