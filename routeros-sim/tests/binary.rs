//! The `routeros-sim` binary and PEM-file TLS, end to end over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, attr};
use routeros_sim::{
    Policies, Router, RouterConfig, SelfSignedCertificate, Server, ServerConfig, SimError,
    TlsIdentity, User,
};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sim(args: &[&str]) -> (Running, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_routeros-sim"))
        .args(args)
        .env("ROUTEROS_SIM_PASSWORD", "binary-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    (
        Running(child),
        line.trim()
            .parse()
            .expect("first stdout line is the bound address"),
    )
}

#[tokio::test]
async fn the_binary_prints_its_address_and_plays_a_scenario() {
    let (_sim, addr) = spawn_sim(&[
        "--listen",
        "127.0.0.1:0",
        "--user",
        "ops",
        "--version",
        "7.17",
        "--scenario",
        "port-scan",
        "--seed",
        "4",
        "--speed",
        "1000",
    ]);
    assert_ne!(addr.port(), 0);
    let mut c = Client::connect(addr).await;
    c.login("ops", "binary-secret").await;
    // 7.17 answers an empty print with a bare !done.
    assert_eq!(
        c.call(&["/ip/firewall/address-list/print"]).await,
        vec![vec!["!done".to_owned()]]
    );
    // At 1000x the scan (60 s into the scenario) arrives within a fraction of a second.
    for _ in 0..100 {
        let reply = c
            .call(&["/log/print", "=count-only=", "?topics=firewall,info"])
            .await;
        if attr(&reply[0], "ret").unwrap().parse::<u32>().unwrap() >= 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the port scan never reached the log");
}

#[tokio::test]
async fn api_ssl_from_pem_files_and_a_clear_error_for_a_bad_file() {
    let cert = SelfSignedCertificate::generate(&["localhost"]).unwrap();
    let dir = std::env::temp_dir().join(format!("routeros-sim-pem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert_pem()).unwrap();
    std::fs::write(&key_path, cert.key_pem()).unwrap();

    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("admin", "secret", Policies::FULL));
    let identity = TlsIdentity::PemFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
    };
    let server = Server::bind(
        router.clone(),
        ServerConfig::tls("127.0.0.1:0".parse().unwrap(), identity),
    )
    .await
    .unwrap();
    let mut c = Client::connect_tls(server.local_addr(), &cert).await;
    c.login("admin", "secret").await;

    let bad = TlsIdentity::PemFiles {
        cert: key_path.clone(),
        key: key_path.clone(),
    };
    let err = Server::bind(
        router,
        ServerConfig::tls("127.0.0.1:0".parse().unwrap(), bad),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SimError::TlsFile {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("key.pem"),
        "the error names the file: {err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fast_scenario_says_how_often_to_poll_the_connection_table() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_routeros-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--scenario",
            "mixed",
            "--speed",
            "60",
        ])
        .env("ROUTEROS_SIM_PASSWORD", "binary-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    let hint = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .take(200)
        .find(|l| l.contains("input.connection_interval"))
        .expect("a speed-up names the poll interval that keeps up with it");
    // 5 s of router time at 60x: 83 ms of real time.
    assert!(hint.contains("\"83ms\""), "{hint}");
}
