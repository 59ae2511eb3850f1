//! Remote logging over real loopback sockets: a logging action configured through the API
//! sends each new log line to a plain UDP/TCP/TLS receiver in this test, in the shapes of
//! ROUTEROS.md section 5; `bsd-syslog` exists before 7.18 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Client, Words, admin, attr, serve, start};
use routeros_sim::{
    FirewallLogLine, ManualClock, Router, RouterConfig, RouterOsVersion, SelfSignedCertificate,
    Server, Service,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

/// 2025-11-22 20:47:18 UTC.
const T0: u64 = 1_763_844_438;

const LOGIN_FAILURE: &str = "login failure for user support from 198.51.100.200 via ssh";
const FIREWALL: &str = "MTIDS_NEW input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:1f:2e:3d, proto TCP (SYN), 198.51.100.7:40000->192.0.2.1:22, len 60";

fn trap(reply: &[Words]) -> Option<&str> {
    reply
        .iter()
        .find(|s| s[0] == "!trap")
        .and_then(|s| attr(s, "message"))
}

fn config(version: RouterOsVersion) -> RouterConfig {
    RouterConfig {
        version,
        identity: "gw".to_owned(),
        board_name: "CCR2004-1G-12S+2XS".to_owned(),
        ..RouterConfig::default()
    }
}

/// A router on a manual clock at [`T0`], served with admin / secret.
async fn router(version: RouterOsVersion) -> (Router, Server) {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0),
    ));
    let router = Router::with_clock(config(version), clock);
    let server = serve(&router).await;
    (router, server)
}

/// Adds action `mtids` with `props` and rules sending `critical` (login failures) and
/// `firewall` lines to it.
async fn configure(c: &mut Client, props: &[String]) {
    let mut add: Vec<&str> = vec![
        "/system/logging/action/add",
        "=name=mtids",
        "=target=remote",
    ];
    add.extend(props.iter().map(String::as_str));
    let reply = c.call(&add).await;
    assert!(trap(&reply).is_none(), "{reply:?}");
    for topics in ["critical", "firewall"] {
        let topics = format!("=topics={topics}");
        let reply = c
            .call(&["/system/logging/add", "=action=mtids", &topics])
            .await;
        assert!(trap(&reply).is_none(), "{reply:?}");
    }
}

fn log_both(router: &Router) {
    router.log_login_failure("support", "198.51.100.200".parse().unwrap(), Service::Ssh);
    router.log_firewall(&FirewallLogLine::tcp_syn(
        Some("MTIDS_NEW"),
        "198.51.100.7:40000".parse().unwrap(),
        "192.0.2.1:22".parse().unwrap(),
    ));
    // Not sent: no rule for `account`.
    router.log(
        "system,info,account",
        "user admin logged in from 10.0.0.9 via winbox",
    );
}

/// Waits until action `mtids` counted `sent` and `dropped` messages (the sender thread
/// counts right after the write, which may be after the receiver has the bytes).
async fn settled(router: &Router, sent: u64, dropped: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stats = router.remote_log_stats("mtids").unwrap();
        if (stats.sent, stats.dropped) == (sent, dropped) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats {stats:?}, want sent {sent} dropped {dropped}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn datagram(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("a datagram within 5 s")
        .unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

async fn udp_receiver() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

fn dest(addr: SocketAddr) -> Vec<String> {
    vec![
        format!("=remote={}", addr.ip()),
        format!("=remote-port={}", addr.port()),
    ]
}

/// Reads from `stream` until `want` bytes arrived (or 5 s passed).
async fn read_bytes(stream: &mut (impl AsyncReadExt + Unpin), want: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.len() < want {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("the bytes within 5 s")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

fn cef_login() -> String {
    format!(
        "Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004-1G-12S+2XS|7.20.4 (stable)|10|system,error,critical|High|dvchost=gw dvc=192.0.2.1 msg={LOGIN_FAILURE} app=ssh duser=support outcome=failure src=198.51.100.200\r\n"
    )
}

fn cef_firewall() -> String {
    format!(
        "Nov 22 20:47:18 gw CEF:0|MikroTik|CCR2004-1G-12S+2XS|7.20.4 (stable)|20|firewall,info|Low|dvchost=gw dvc=192.0.2.1 msg={FIREWALL}\r\n"
    )
}

#[tokio::test]
async fn udp_default_sends_topics_and_message_only() {
    let (router, server) = router(RouterOsVersion::new(7, 20, 4)).await;
    let (socket, addr) = udp_receiver().await;
    let mut c = admin(&server).await;
    configure(&mut c, &dest(addr)).await;
    log_both(&router);
    assert_eq!(
        datagram(&socket).await,
        format!("system,error,critical {LOGIN_FAILURE}")
    );
    assert_eq!(datagram(&socket).await, format!("firewall,info {FIREWALL}"));
    settled(&router, 2, 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn udp_syslog_sends_pri_time_identity_and_no_topics() {
    let (router, server) = router(RouterOsVersion::new(7, 20, 4)).await;
    let (socket, addr) = udp_receiver().await;
    let mut c = admin(&server).await;
    let mut props = dest(addr);
    props.push("=remote-log-format=syslog".to_owned());
    configure(&mut c, &props).await;
    log_both(&router);
    // daemon (3): critical (2) -> 26, info (6) -> 30.
    assert_eq!(
        datagram(&socket).await,
        format!("<26>Nov 22 20:47:18 gw {LOGIN_FAILURE}")
    );
    assert_eq!(
        datagram(&socket).await,
        format!("<30>Nov 22 20:47:18 gw {FIREWALL}")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_cef_frames_each_event_with_the_delimiter() {
    let (router, server) = router(RouterOsVersion::new(7, 20, 4)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = admin(&server).await;
    let mut props = dest(listener.local_addr().unwrap());
    props.push("=remote-log-format=cef".to_owned());
    props.push("=remote-protocol=tcp".to_owned());
    configure(&mut c, &props).await;
    log_both(&router);
    let (mut stream, _) = listener.accept().await.unwrap();
    let want = cef_login() + &cef_firewall();
    assert_eq!(read_bytes(&mut stream, want.len()).await, want);
    server.shutdown().await;
}

#[tokio::test]
async fn tls_cef_verifies_the_receiver_when_asked() {
    let (router, server) = router(RouterOsVersion::new(7, 20, 4)).await;
    let cert = SelfSignedCertificate::generate(&["127.0.0.1"]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes());
    use rustls::pki_types::pem::PemObject;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert_der().clone()], key.unwrap())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = admin(&server).await;
    let mut props = dest(listener.local_addr().unwrap());
    props.push("=remote-log-format=cef".to_owned());
    props.push("=remote-protocol=tls".to_owned());
    props.push("=check-certificate=yes".to_owned());
    configure(&mut c, &props).await;

    // Not trusted yet: the handshake fails, the message is dropped and counted.
    router.log_login_failure("support", "198.51.100.200".parse().unwrap(), Service::Ssh);
    let (tcp, _) = listener.accept().await.unwrap();
    assert!(acceptor.accept(tcp).await.is_err());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while router.remote_log_stats("mtids").unwrap().dropped == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    router.trust_certificate(cert.cert_der().clone());
    log_both(&router);
    let (tcp, _) = listener.accept().await.unwrap();
    let mut stream = acceptor.accept(tcp).await.unwrap();
    let want = cef_login() + &cef_firewall();
    assert_eq!(read_bytes(&mut stream, want.len()).await, want);
    settled(&router, 2, 1).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_receiver_away_drops_and_counts_and_iso_time_and_facility_apply() {
    let (router, server) = router(RouterOsVersion::new(7, 20, 4)).await;
    // A port nobody listens on (bound, then closed).
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let mut c = admin(&server).await;
    let mut props = dest(gone_addr);
    props.push("=remote-log-format=cef".to_owned());
    props.push("=remote-protocol=tcp".to_owned());
    configure(&mut c, &props).await;
    log_both(&router);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while router.remote_log_stats("mtids").unwrap().dropped < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(router.remote_log_stats("mtids").unwrap().sent, 0);

    // Point it at a UDP receiver, syslog with ISO 8601 time and facility local0.
    let (socket, addr) = udp_receiver().await;
    let port = format!("=remote-port={}", addr.port());
    let set = c
        .call(&[
            "/system/logging/action/set",
            "=numbers=mtids",
            "=remote-protocol=udp",
            "=remote-log-format=syslog",
            "=syslog-time-format=iso8601",
            "=syslog-facility=local0",
            &port,
        ])
        .await;
    assert!(trap(&set).is_none(), "{set:?}");
    router.log_login_failure("support", "198.51.100.200".parse().unwrap(), Service::Ssh);
    assert_eq!(
        datagram(&socket).await,
        format!("<130>2025-11-22T20:47:18.000+0000 gw {LOGIN_FAILURE}")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bsd_syslog_is_an_unknown_parameter_from_7_18_and_works_before() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let reply = c
        .call(&[
            "/system/logging/action/add",
            "=name=mtids",
            "=target=remote",
            "=remote=127.0.0.1",
            "=bsd-syslog=yes",
        ])
        .await;
    // How the router answers any property its menu does not have (ROUTEROS.md section 5:
    // `bsd-syslog` was removed in 7.18, setting it fails).
    assert_eq!(trap(&reply), Some("unknown parameter bsd-syslog"));
    let defaults = c
        .call(&["/system/logging/action/print", "?name=remote"])
        .await;
    let row = defaults.iter().find(|s| s[0] == "!re").unwrap();
    assert_eq!(attr(row, "remote-protocol"), Some("udp"));
    assert_eq!(attr(row, "remote-log-format"), Some("default"));
    assert_eq!(attr(row, "cef-event-delimiter"), Some("\r\n"));
    assert_eq!(attr(row, "syslog-time-format"), Some("bsd-syslog"));
    assert_eq!(attr(row, "vrf"), Some("main"));
    assert_eq!(attr(row, "bsd-syslog"), None);
    server.shutdown().await;

    // 7.18.2: the new properties, but no `vrf` yet (7.19.6).
    let (_router, server) = start(config(RouterOsVersion::new(7, 18, 2))).await;
    let mut c = admin(&server).await;
    let row = c
        .call(&["/system/logging/action/print", "?name=remote"])
        .await;
    let row = row.iter().find(|s| s[0] == "!re").unwrap();
    assert_eq!(attr(row, "remote-log-format"), Some("default"));
    assert_eq!(attr(row, "vrf"), None);
    server.shutdown().await;

    let (router, server) = router(RouterOsVersion::new(7, 17, 2)).await;
    let (socket, addr) = udp_receiver().await;
    let mut c = admin(&server).await;
    let mut props = dest(addr);
    let refused = c
        .call(&[
            "/system/logging/action/add",
            "=name=x",
            "=target=remote",
            "=remote-log-format=cef",
        ])
        .await;
    assert_eq!(trap(&refused), Some("unknown parameter remote-log-format"));
    props.push("=bsd-syslog=yes".to_owned());
    configure(&mut c, &props).await;
    let version = c
        .call(&["/system/resource/print", "=.proplist=version"])
        .await;
    assert_eq!(attr(&version[0], "version"), Some("7.17.2 (stable)"));
    log_both(&router);
    assert_eq!(
        datagram(&socket).await,
        format!("<26>Nov 22 20:47:18 gw {LOGIN_FAILURE}")
    );
    server.shutdown().await;
}
