//! API-SSL: the tokio client with rustls against a fake router over real loopback TLS,
//! with rcgen self-signed certificates.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_peer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use net_peer::{FakeRouter, Io, Peer};
use routeros_proto::Command;
use routeros_proto::net::{Client, ClientConfig, Error, Fingerprint, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";

/// A self-signed certificate for `names`, as (certificate PEM, key PEM, DER).
fn certificate(names: &[&str]) -> (String, String, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        certified.cert.der().to_vec(),
    )
}

/// Starts a fake router that accepts TLS with the given certificate and runs `script`.
async fn tls_router<F, Fut>(cert_pem: &str, key_pem: &str, script: F) -> FakeRouter
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut script = Some(script);
    FakeRouter::start_with(
        1,
        Box::new(move |peer| Box::pin((script.take().expect("one connection"))(peer))),
        move |tcp| {
            let acceptor = acceptor.clone();
            Box::pin(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => Box::new(tls) as Box<dyn Io>,
                    // The client refused us: the script sees a closed stream.
                    Err(_) => Box::new(tokio::io::duplex(64).0) as Box<dyn Io>,
                }
            })
        },
    )
    .await
}

/// Logs in and answers one `/system/identity/print`.
async fn serve_identity(mut peer: Peer) {
    assert!(peer.login_plain(USER, PASSWORD).await);
    let cmd = peer.expect("/system/identity/print").await;
    peer.reply(&cmd, &["!re", "=name=gw"]).await;
    peer.reply(&cmd, &["!done"]).await;
    peer.wait_closed().await;
}

/// The script of a router whose client gives up during the handshake.
async fn expect_nothing(mut peer: Peer) {
    assert!(
        peer.recv().await.is_none(),
        "the client must not send commands"
    );
}

fn config(port: u16, tls: TlsConfig) -> ClientConfig {
    ClientConfig::new("127.0.0.1", USER, PASSWORD)
        .port(port)
        .connect_timeout(Duration::from_secs(5))
        .tls(tls)
}

async fn identity(client: &Client) -> String {
    let response = client
        .call(Command::new("/system/identity/print"))
        .await
        .unwrap();
    response.rows[0].get_str("name").unwrap().into_owned()
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("routeros-proto-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn a_certificate_signed_by_the_ca_file_is_accepted() {
    let (cert, key, _) = certificate(&["127.0.0.1"]);
    let ca = TempFile::new("ca-ok.pem", &cert);
    let router = tls_router(&cert, &key, serve_identity).await;
    let tls = TlsConfig::with_ca_file(&ca.0).unwrap();
    let client = Client::connect(&config(router.port(), tls)).await.unwrap();
    assert_eq!(identity(&client).await, "gw");
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn the_server_name_can_differ_from_the_address() {
    let (cert, key, _) = certificate(&["gw.example"]);
    let router = tls_router(&cert, &key, serve_identity).await;
    let tls = TlsConfig::with_ca_pem(cert.as_bytes())
        .unwrap()
        .server_name("gw.example");
    let client = Client::connect(&config(router.port(), tls)).await.unwrap();
    assert_eq!(identity(&client).await, "gw");
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_rejected_with_advice() {
    let (cert, key, _) = certificate(&["127.0.0.1"]);
    let (other, _, _) = certificate(&["127.0.0.1"]);
    let router = tls_router(&cert, &key, expect_nothing).await;
    let tls = TlsConfig::with_ca_pem(other.as_bytes()).unwrap();
    let err = Client::connect(&config(router.port(), tls))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CertificateRejected { .. }), "{err:?}");
    // rcgen gives both certificates the same subject, so webpki finds the issuer by name
    // and then the signature does not verify.
    let text = err.to_string();
    assert!(
        text.contains("UnknownIssuer") || text.contains("BadSignature"),
        "{text}"
    );
    assert!(
        err.to_string().contains("pin its SHA-256 fingerprint"),
        "{err}"
    );
    router.finish().await;
}

#[tokio::test]
async fn a_pinned_fingerprint_is_accepted_in_either_notation() {
    let (cert, key, der) = certificate(&["router.invalid"]);
    let fingerprint = Fingerprint::of_certificate(&der);
    // As a browser shows it: upper case with colons.
    let colons = fingerprint
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let parsed: Fingerprint = colons.parse().unwrap();
    assert_eq!(parsed, fingerprint);
    // The name does not matter with a pin: the pin is the trust.
    let router = tls_router(&cert, &key, serve_identity).await;
    let client = Client::connect(&config(router.port(), TlsConfig::with_fingerprint(parsed)))
        .await
        .unwrap();
    assert_eq!(identity(&client).await, "gw");
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn a_wrong_fingerprint_is_refused_naming_the_one_seen() {
    let (cert, key, der) = certificate(&["127.0.0.1"]);
    let actual = Fingerprint::of_certificate(&der);
    let pinned: Fingerprint = [0x5a; 32].into();
    let router = tls_router(&cert, &key, expect_nothing).await;
    let err = Client::connect(&config(router.port(), TlsConfig::with_fingerprint(pinned)))
        .await
        .unwrap_err();
    match &err {
        Error::FingerprintMismatch { expected, seen } => {
            assert_eq!(*expected, pinned);
            assert_eq!(*seen, actual);
        }
        other => panic!("expected FingerprintMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains(&actual.to_string()), "{err}");
    router.finish().await;
}

/// A raw TCP listener that runs `script` on the first connection.
async fn raw_peer<F, Fut>(script: F) -> (u16, tokio::task::JoinHandle<()>)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        script(tcp).await;
    });
    (port, task)
}

fn any_pin() -> TlsConfig {
    TlsConfig::with_fingerprint([1; 32].into())
}

#[tokio::test]
async fn a_plain_api_port_behind_a_tls_client_is_named() {
    // A plain API service reads the ClientHello as words and answers in API sentences.
    let (port, task) = raw_peer(|mut tcp| async move {
        let mut hello = [0u8; 16];
        let _ = tcp.read(&mut hello).await.unwrap();
        assert_eq!(hello[0], 0x16, "the client starts a TLS handshake");
        let mut fatal = Vec::new();
        routeros_proto::codec::encode_sentence([&b"!fatal"[..], b"not logged in"], &mut fatal)
            .unwrap();
        tcp.write_all(&fatal).await.unwrap();
        let _ = tcp.shutdown().await;
    })
    .await;
    let err = Client::connect(&config(port, any_pin())).await.unwrap_err();
    assert!(matches!(err, Error::NotTls { .. }), "{err:?}");
    assert!(err.to_string().contains("8729"), "{err}");
    task.await.unwrap();
}

#[tokio::test]
async fn a_router_without_certificate_gets_the_router_setting_in_the_error() {
    // Without a certificate a router offers only anonymous DH, which rustls never asks
    // for: the handshake ends with a handshake_failure alert.
    let (port, task) = raw_peer(|mut tcp| async move {
        let mut hello = [0u8; 16];
        let _ = tcp.read(&mut hello).await.unwrap();
        // TLS record: alert, TLS 1.2, length 2, fatal (2), handshake_failure (40).
        tcp.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
            .await
            .unwrap();
        let _ = tcp.shutdown().await;
    })
    .await;
    let err = Client::connect(&config(port, any_pin())).await.unwrap_err();
    assert!(
        matches!(err, Error::NoSupportedCipherSuite { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("HandshakeFailure"), "{text}");
    assert!(
        text.contains("/ip service set api-ssl certificate="),
        "{text}"
    );
    task.await.unwrap();
}

#[tokio::test]
async fn a_handshake_that_never_finishes_hits_the_connect_timeout_with_a_hint() {
    let (port, task) = raw_peer(|mut tcp| async move {
        // Reads the ClientHello and says nothing.
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    })
    .await;
    let config = config(port, any_pin()).connect_timeout(Duration::from_millis(300));
    let err = Client::connect(&config).await.unwrap_err();
    match &err {
        Error::ConnectTimeout { hint, .. } => assert!(hint.contains("API-SSL port"), "{hint}"),
        other => panic!("expected ConnectTimeout, got {other:?}"),
    }
    task.await.unwrap();
}
