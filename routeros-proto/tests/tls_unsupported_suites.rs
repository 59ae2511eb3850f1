//! API-SSL against a TLS server that offers only what rustls cannot do, the way routers
//! do: anonymous DH (a router with no certificate assigned to api-ssl) and DHE only (some
//! RouterOS 6 routers). The server is `openssl s_server` on loopback; the error must say
//! which it is likely to be and how to fix the router.
//!
//! Sources: ROUTEROS.md section 1 ("API-SSL": without a certificate the router only offers
//! anonymous Diffie-Hellman) and section 5 ("API-SSL facts, refined": some 6.x routers
//! offered only DHE suites). A client without anonymous DH gets `SSLV3_ALERT_HANDSHAKE_FAILURE`
//! from a router with no certificate (https://github.com/socialwifi/RouterOS-api/issues/35;
//! PHP clients lower OpenSSL's SECLEVEL to 0 for it,
//! https://github.com/BenMenking/routeros-api/pull/55, citing the wiki's Manual:API-SSL); a
//! 6.x router negotiated `DHE-RSA-AES256-GCM-SHA384` with `openssl s_client`
//! (https://github.com/octo/librouteros/issues/13).
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use routeros_proto::net::{Client, ClientConfig, Error, TlsConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `openssl` command-line tool (Debian: `apt-get install -y openssl`).
fn openssl() -> Command {
    let mut cmd = Command::new("openssl");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A free loopback port (bound, then released for openssl to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `openssl s_server` with `args` and waits until it accepts connections.
async fn s_server(args: &[&str]) -> (Child, u16) {
    let port = free_port();
    let mut child = openssl()
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args(args)
        .spawn()
        .expect("the `openssl` tool runs (install it: apt-get install -y openssl)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("ACCEPT") {
                return;
            }
        }
        panic!("openssl s_server exited before accepting");
    })
    .await
    .expect("openssl s_server accepts within 20 s");
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// A self-signed RSA certificate and key (DHE-RSA needs an RSA key) in `dir`.
async fn rsa_certificate(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let status = openssl()
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout", &key, "-out", &cert])
        .status()
        .await
        .expect("the `openssl` tool runs (install it: apt-get install -y openssl)");
    assert!(status.success());
    (cert, key)
}

async fn connect_tls(port: u16) -> Error {
    // Any pin: the handshake fails before a certificate is looked at.
    let pin = "00".repeat(32).parse().unwrap();
    let config = ClientConfig::new("127.0.0.1", "admin", "secret")
        .port(port)
        .connect_timeout(Duration::from_secs(10))
        .tls(TlsConfig::with_fingerprint(pin));
    Client::connect(&config).await.unwrap_err()
}

fn assert_names_the_fix(err: &Error) {
    assert!(
        matches!(err, Error::NoSupportedCipherSuite { .. }),
        "expected NoSupportedCipherSuite, got {err:?}"
    );
    let text = err.to_string();
    for needed in [
        "no cipher suite rustls supports",
        "no certificate assigned to api-ssl",
        "mtids setup",
        "/ip service set api-ssl certificate=",
        "RouterOS 6",
        "DHE",
        "plain API on a trusted network",
    ] {
        assert!(text.contains(needed), "`{needed}` missing from: {text}");
    }
}

#[tokio::test]
async fn a_router_without_a_certificate_offers_only_anonymous_dh() {
    let (_server, port) = s_server(&[
        "-nocert",
        "-tls1_2",
        "-cipher",
        "ADH-AES256-GCM-SHA384:@SECLEVEL=0",
    ])
    .await;
    assert_names_the_fix(&connect_tls(port).await);
}

#[tokio::test]
async fn an_old_router_offering_only_dhe() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = rsa_certificate(dir.path()).await;
    let (_server, port) = s_server(&[
        "-cert",
        &cert,
        "-key",
        &key,
        "-tls1_2",
        "-cipher",
        "DHE-RSA-AES256-GCM-SHA384",
    ])
    .await;
    assert_names_the_fix(&connect_tls(port).await);
}
