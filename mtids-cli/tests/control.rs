//! The control socket through the real binary: `mtids run` against routeros-sim, then
//! `mtids status`, `bans list|show|add|remove|flush`, `reload` (and SIGHUP) and `alert
//! test` as an operator types them. Each command's output is printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mtids_enforce::BanLedger;
use routeros_sim::{Policies, Router, RouterConfig, Server, ServerConfig};

mod common;
use common::{message, start};

/// Reads log lines into `lines` until `done(message, line)` says so; panics with the lines
/// read, naming `what`, after `within`.
fn wait_until(
    rx: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    what: &str,
    within: Duration,
    mut done: impl FnMut(&str, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no {what}:\n{}", lines.join("\n")));
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what}:\n{}", lines.join("\n")));
        lines.push(line.clone());
        if let Some((m, v)) = message(&line)
            && done(&m, &v)
        {
            return v;
        }
    }
}

/// Waits for a log line whose message is `wanted` and that satisfies `also`.
fn wait_for(
    rx: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    wanted: &str,
    also: impl Fn(&serde_json::Value) -> bool,
    within: Duration,
) -> serde_json::Value {
    wait_until(rx, lines, &format!("`{wanted}` line"), within, |m, v| {
        m == wanted && also(v)
    })
}

/// Waits until the router is connected and the control socket listens: the daemon binds
/// the socket after it starts its routers, so either line may come first.
fn wait_ready(rx: &mpsc::Receiver<String>, lines: &mut Vec<String>) {
    let (mut connected, mut listening) = (false, false);
    wait_until(
        rx,
        lines,
        "ready daemon",
        Duration::from_secs(20),
        |m, _| {
            connected |= m == "connected";
            listening |= m == "control socket listening";
            connected && listening
        },
    );
}

/// Runs `mtids --config CONFIG ARGS` (stdin not a terminal); prints and returns its
/// exit code, stdout and stderr.
fn mtids(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_mtids"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("MTIDS_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "$ mtids {}\n{stdout}{stderr}(exit {code})\n",
        args.join(" ")
    );
    (code, stdout, stderr)
}

async fn sim() -> (Router, Server) {
    let router = Router::new(RouterConfig::default());
    router.add_user(routeros_sim::User::new("ids", "pw", Policies::FULL));
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    (router, server)
}

/// Writes a configuration file as an admin would (0600: it holds a password).
fn write_config(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_tcp() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Five failed logins from `ip`, as a router sends them over syslog.
fn attack(syslog: std::net::SocketAddr, ip: &str) {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        let line = format!(
            "<86>Dec  7 01:22:33 gw system,error,critical login failure for user admin from {ip} via ssh"
        );
        udp.send_to(line.as_bytes(), syslog).unwrap();
    }
}

/// An HTTP sink on loopback answering 200 to every request; each request line and body
/// arrives on the receiver.
fn http_sink() -> (std::net::SocketAddr, mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut request_line = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if request_line.is_empty() {
                    request_line = line.trim_end().to_owned();
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(format!(
                "{request_line}\n{}",
                String::from_utf8_lossy(&body)
            ));
        }
    });
    (addr, rx)
}

fn config_text(
    port: u16,
    syslog_udp: std::net::SocketAddr,
    syslog_tcp: std::net::SocketAddr,
    db: &Path,
    level: &str,
    allowlist: &str,
    webhook: Option<std::net::SocketAddr>,
) -> String {
    let webhook = webhook.map_or(String::new(), |addr| {
        format!("[[alert.webhook]]\nname = \"sink\"\nurl = \"http://{addr}/hook\"\n\n")
    });
    format!(
        "[log]\nformat = \"json\"\nlevel = \"{level}\"\n\n\
         [[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"pw\"\n\n\
         [input]\napi_log = false\nsyslog_udp = \"{syslog_udp}\"\nsyslog_tcp = \"{syslog_tcp}\"\n\n\
         [ledger]\npath = \"{}\"\n\n\
         {webhook}\
         [detection.guard]\nallowlist = [{allowlist}]\n\n\
         [detection.brute_force]\nmax_failures = 5\n",
        db.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_bans_and_flush_through_a_running_daemon() {
    let (router, server) = sim().await;
    let port = server.local_addr().port();
    let (syslog_udp, syslog_tcp) = (free_udp(), free_tcp());
    let (sink, bodies) = http_sink();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let config = dir.path().join("mtids.toml");
    write_config(
        &config,
        &config_text(port, syslog_udp, syslog_tcp, &db, "info", "", Some(sink)),
    );

    // No daemon yet: a clear message, exit 1.
    let (code, _, stderr) = mtids(&config, &["status"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("mtids is not running"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (daemon, rx) = start(&config, dir.path());
    let mut lines = Vec::new();
    tokio::task::block_in_place(|| wait_ready(&rx, &mut lines));
    let socket = dir.path().join("bans.db.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    for ip in ["11.0.0.1", "11.0.0.2"] {
        attack(syslog_udp, ip);
        tokio::task::block_in_place(|| {
            wait_for(
                &rx,
                &mut lines,
                "ban",
                |v| v["address"] == ip,
                Duration::from_secs(20),
            );
        });
    }
    // A manual ban goes through the daemon.
    let (code, stdout, _) = mtids(
        &config,
        &[
            "bans",
            "add",
            "203.0.113.9",
            "--reason",
            "seen in the web log",
        ],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("[gw] 203.0.113.9: applied"), "{stdout}");
    assert!(stdout.contains("through the daemon"), "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(router.is_listed("mtids-blocked", "11.0.0.1")
        && router.is_listed("mtids-blocked", "11.0.0.2"))
    {
        assert!(Instant::now() < deadline, "bans not on the router");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(router.is_listed("mtids-blocked", "203.0.113.9"));

    let (code, stdout, _) = mtids(&config, &["status"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("gw"), "{stdout}");
    assert!(stdout.contains("connected"), "{stdout}");
    assert!(stdout.contains("3 ban(s) on 3 address(es)"), "{stdout}");
    assert!(stdout.contains("sink"), "{stdout}");
    let (code, stdout, _) = mtids(&config, &["status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["routers"][0]["name"], "gw");
    assert_eq!(status["routers"][0]["connected"], true);
    assert!(status["routers"][0]["since"].is_string());
    assert!(status["routers"][0]["bans_applied"].as_u64().unwrap() >= 3);
    assert_eq!(status["active_bans"], 3);
    assert!(status["counters"]["events"].as_u64().unwrap() >= 10);
    assert_eq!(status["counters"]["bans"], 2);
    assert_eq!(status["ledger"]["backlog"], 0);
    assert!(status["ledger"]["failing_since"].is_null());

    // Filters.
    let (_, stdout, _) = mtids(&config, &["bans", "list", "--ip", "11.0.0.1"]);
    assert!(
        stdout.contains("11.0.0.1") && !stdout.contains("11.0.0.2"),
        "{stdout}"
    );
    assert!(stdout.contains("1 active ban(s)"), "{stdout}");
    let (_, stdout, _) = mtids(&config, &["bans", "list", "--range", "11.0.0.0/30"]);
    assert!(stdout.contains("2 active ban(s)"), "{stdout}");
    assert!(!stdout.contains("203.0.113.9"), "{stdout}");
    let (_, stdout, _) = mtids(&config, &["bans", "list", "--detector", "manual"]);
    assert!(
        stdout.contains("203.0.113.9") && stdout.contains("1 active ban(s)"),
        "{stdout}"
    );
    let (_, stdout, _) = mtids(
        &config,
        &["bans", "list", "--since", "1h", "--router", "gw"],
    );
    assert!(stdout.contains("3 active ban(s)"), "{stdout}");
    let (code, _, stderr) = mtids(&config, &["bans", "list", "--range", "11.0.0.0/99"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--range"), "{stderr}");

    // Show: the history of one address.
    let (code, stdout, _) = mtids(&config, &["bans", "show", "11.0.0.1"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("by brute_force"), "{stdout}");
    assert!(stdout.contains("applied"), "{stdout}");
    // The finding's evidence, kept in the ledger.
    assert!(
        stdout.contains("evidence: brute_force 5/5 in 60s, seen by gw"),
        "{stdout}"
    );
    assert!(stdout.contains("users: admin"), "{stdout}");
    assert!(stdout.contains("services: ssh"), "{stdout}");
    assert!(stdout.contains("history:"), "{stdout}");

    // Flush: refused without a terminal and without --yes; nothing removed.
    let (code, _, stderr) = mtids(&config, &["bans", "flush", "--detector", "brute_force"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(router.is_listed("mtids-blocked", "11.0.0.1"));
    let (code, stdout, _) = mtids(
        &config,
        &["bans", "flush", "--detector", "brute_force", "--yes"],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("flushed 2 address(es)"), "{stdout}");
    assert!(!router.is_listed("mtids-blocked", "11.0.0.1"));
    assert!(!router.is_listed("mtids-blocked", "11.0.0.2"));
    assert!(router.is_listed("mtids-blocked", "203.0.113.9"));
    let active = BanLedger::open(&db)
        .unwrap()
        .active(None, SystemTime::now())
        .unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].target, "203.0.113.9");
    // The policy forgot them at once: the next attack is banned again.
    attack(syslog_udp, "11.0.0.1");
    tokio::task::block_in_place(|| {
        wait_for(
            &rx,
            &mut lines,
            "ban",
            |v| v["address"] == "11.0.0.1",
            Duration::from_secs(20),
        );
    });

    // Remove through the daemon.
    let (code, stdout, _) = mtids(&config, &["bans", "remove", "203.0.113.9"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("removed from the router"), "{stdout}");
    assert!(!router.is_listed("mtids-blocked", "203.0.113.9"));

    // Alert test through the daemon: the sink gets it.
    while bodies.try_recv().is_ok() {}
    let (code, stdout, _) = mtids(&config, &["alert", "test"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("through the running daemon"), "{stdout}");
    assert!(stdout.contains("sink") && stdout.contains("OK"), "{stdout}");
    let body = tokio::task::block_in_place(|| {
        loop {
            let body = bodies.recv_timeout(Duration::from_secs(10)).unwrap();
            if body.contains("mtids alert test") {
                break body;
            }
        }
    });
    assert!(body.contains("test"), "{body}");

    drop(daemon);
    let (code, _, stderr) = mtids(&config, &["status"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("mtids is not running"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_allowlist_and_log_level_and_a_bad_file_keeps_the_old_config() {
    let (_router, server) = sim().await;
    let port = server.local_addr().port();
    let (syslog_udp, syslog_tcp) = (free_udp(), free_tcp());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bans.db");
    let config = dir.path().join("mtids.toml");
    let write = |level: &str, allowlist: &str| {
        write_config(
            &config,
            &config_text(port, syslog_udp, syslog_tcp, &db, level, allowlist, None),
        );
    };
    write("info", "");
    let (mut daemon, rx) = start(&config, dir.path());
    let mut lines = Vec::new();
    tokio::task::block_in_place(|| wait_ready(&rx, &mut lines));
    // At info, a syslog TCP connection logs nothing (its line is at debug).
    drop(std::net::TcpStream::connect(syslog_tcp).unwrap());

    write("debug", "\"11.0.0.5\"");
    let status = Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let reloaded = tokio::task::block_in_place(|| {
        wait_for(
            &rx,
            &mut lines,
            "configuration reloaded",
            |_| true,
            Duration::from_secs(20),
        )
    });
    println!("SIGHUP -> {reloaded}");
    let applied = reloaded["applied"].as_str().unwrap();
    assert!(
        applied.contains("detection") && applied.contains("log.level"),
        "{reloaded}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("syslog connection")),
        "a debug line before the reload"
    );
    // Debug now: the TCP connection is logged.
    drop(std::net::TcpStream::connect(syslog_tcp).unwrap());
    tokio::task::block_in_place(|| {
        wait_for(
            &rx,
            &mut lines,
            "syslog connection",
            |v| v["level"] == "DEBUG",
            Duration::from_secs(10),
        );
    });
    // The new allowlist: the attacker is guarded, not banned.
    attack(syslog_udp, "11.0.0.5");
    tokio::task::block_in_place(|| {
        wait_for(
            &rx,
            &mut lines,
            "finding not banned",
            |v| v["source"] == "11.0.0.5" && v["reason"].as_str().unwrap().contains("allowlisted"),
            Duration::from_secs(20),
        );
    });
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "SIGHUP stopped the daemon"
    );

    // A change that needs a restart is named.
    write_config(
        &config,
        &config_text(
            port,
            syslog_udp,
            free_tcp(),
            &db,
            "debug",
            "\"11.0.0.5\"",
            None,
        ),
    );
    let (code, stdout, _) = mtids(&config, &["reload"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("only applied after a restart") && stdout.contains("input"),
        "{stdout}"
    );

    // So is a new `[crowdsec]` section (it was silently ignored before).
    let key = dir.path().join("bouncer.key");
    std::fs::write(&key, "0123456789abcdef\n").unwrap();
    let with_crowdsec = format!(
        "{}\n[crowdsec]\nurl = \"http://127.0.0.1:9\"\nbouncer_key_file = \"{}\"\n",
        std::fs::read_to_string(&config).unwrap(),
        key.display()
    );
    write_config(&config, &with_crowdsec);
    let (code, stdout, _) = mtids(&config, &["reload"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("only applied after a restart") && stdout.contains("crowdsec"),
        "{stdout}"
    );

    // A bad file: `mtids reload` fails with the error, the daemon keeps the old config;
    // SIGHUP logs the error.
    write_config(
        &config,
        "[detection.brute_force]\nmax_failures = \"many\"\n",
    );
    let (code, _, stderr) = mtids(&config, &["reload"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(stderr.contains("max_failures"), "{stderr}");
    assert!(stderr.contains("previous configuration"), "{stderr}");
    // SIGHUP with the bad file: the error is logged, the daemon runs on.
    let status = Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::task::block_in_place(|| {
        wait_for(
            &rx,
            &mut lines,
            "reload failed: still running with the previous configuration",
            |v| v["error"].as_str().unwrap().contains("max_failures"),
            Duration::from_secs(10),
        );
    });
    assert!(daemon.0.try_wait().unwrap().is_none());
    // Still guarded by the allowlist of the last good file. (The control socket is the
    // one of that file: the bad file names no ledger, so ask with a good one.)
    let good = dir.path().join("good.toml");
    write_config(
        &good,
        &config_text(
            port,
            syslog_udp,
            syslog_tcp,
            &db,
            "debug",
            "\"11.0.0.5\"",
            None,
        ),
    );
    let (code, stdout, _) = mtids(&good, &["status"]);
    assert_eq!(code, 0, "{stdout}");
    attack(syslog_udp, "11.0.0.5");
    tokio::task::block_in_place(|| {
        wait_for(
            &rx,
            &mut lines,
            "finding not banned",
            |v| v["source"] == "11.0.0.5",
            Duration::from_secs(20),
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_without_a_daemon_hits_the_loopback_sink() {
    let (sink, bodies) = http_sink();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mtids.toml");
    write_config(
        &config,
        &format!(
            "[ledger]\npath = \"{}\"\n\n\
             [[alert.webhook]]\nname = \"sink\"\nurl = \"http://{sink}/hook\"\n\n\
             [[alert.webhook]]\nname = \"closed\"\nurl = \"http://{}/hook\"\ntimeout = \"2s\"\nretry = {{ max_attempts = 1 }}\n",
            dir.path().join("bans.db").display(),
            free_tcp()
        ),
    );
    let (code, stdout, stderr) = mtids(&config, &["alert", "test"]);
    assert!(stdout.contains("directly (no daemon running)"), "{stdout}");
    assert!(stdout.contains("sink") && stdout.contains("OK"), "{stdout}");
    assert!(
        stdout.contains("closed") && stdout.contains("FAILED"),
        "{stdout}"
    );
    assert_eq!(code, 1, "{stderr}");
    let body =
        tokio::task::block_in_place(|| bodies.recv_timeout(Duration::from_secs(10))).unwrap();
    assert!(body.contains("mtids alert test"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_alert_destinations_without_sending_anything() {
    let (_router, server) = sim().await;
    let port = server.local_addr().port();
    let (sink, requests) = http_sink();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mtids.toml");
    write_config(
        &config,
        &format!(
            "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"pw\"\n\n\
             [ledger]\npath = \"{}\"\n\n\
             [alert.telegram]\nbot_token = \"123456:ABC-def\"\nchat_id = 42\napi_url = \"http://{sink}\"\n\n\
             [[alert.webhook]]\nname = \"sink\"\nurl = \"http://{sink}/hook\"\n\n\
             [[alert.webhook]]\nname = \"closed\"\nurl = \"http://{}/hook\"\n",
            dir.path().join("bans.db").display(),
            free_tcp()
        ),
    );
    let (_, stdout, _) = mtids(&config, &["check"]);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("alert destination {name}")))
            .unwrap_or_else(|| panic!("no item for {name}:\n{stdout}"))
            .to_owned()
    };
    assert!(line("telegram").contains("PASS"), "{stdout}");
    assert!(line("sink").contains("PASS"), "{stdout}");
    assert!(line("closed").contains("FAIL"), "{stdout}");
    // A getMe and a HEAD: nothing was posted.
    let mut seen = Vec::new();
    while let Ok(r) = requests.recv_timeout(Duration::from_millis(500)) {
        seen.push(r);
    }
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /bot123456:ABC-def/getMe")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|r| r.starts_with("HEAD /hook")), "{seen:?}");
    assert!(seen.iter().all(|r| !r.starts_with("POST")), "{seen:?}");
}
