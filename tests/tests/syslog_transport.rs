//! The syslog listeners as RouterOS 7.18+ and other senders use them, over real loopback
//! sockets: idle TCP senders are closed so a router gets a slot, garbage and overlong
//! lines are counted, kernel drops on a small UDP buffer show in the metrics, CEF over TLS
//! and TCP is split on its `\r\n` delimiter, and a router sending `default`/`syslog`
//! format over TCP (no delimiter: ROUTEROS.md §5) is told what to change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mtids_cli::config::Config;
use mtids_e2e::{Running, Sim, eventually};
use routeros_sim::SelfSignedCertificate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const SOON: Duration = Duration::from_secs(5);

/// Five SSH login failures from `ip` as BSD syslog lines with topics (what today's parser
/// reads), each followed by `\r\n` as RouterOS' `cef-event-delimiter` default.
fn brute_force_lines(ip: &str) -> Vec<u8> {
    (0..5)
        .flat_map(|i| {
            format!(
                "<86>Nov 21 10:00:0{i} gw system,error,critical login failure for user admin from {ip} via ssh\r\n"
            )
            .into_bytes()
        })
        .collect()
}

/// A CEF event as RouterOS 7.18+ sends it (shape from ROUTEROS.md §5).
fn cef_event(i: usize) -> String {
    format!(
        "2026-01-05T07:00:1{i}.004+0100 gw CEF:0|MikroTik|hEX S|7.19 (stable)|16|dhcp,info|Low|dvchost=gw dvc=192.0.2.1 msg=lan-dhcp assigned 192.168.88.2{i} for 02:00:00:00:00:0{i}"
    )
}

/// The value of `series` in the daemon's metrics.
fn metric(running: &Running, series: &str) -> Option<f64> {
    running.daemon.metrics().render().lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

fn lines(outcome: &str) -> String {
    format!("mtids_syslog_lines_total{{outcome=\"{outcome}\"}}")
}

fn syslog_config(sim: &Sim, dir: &std::path::Path) -> Config {
    let mut config = sim.config(dir);
    config.input.api_log = false; // Only syslog reaches the engine.
    config
}

/// Whether the daemon closed `tcp` (end of stream or reset) within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Idle senders filling `syslog_tcp_max_connections` used to lock a real router out for
/// good; now they are closed after `syslog_tcp_idle_timeout` and the router's attack report
/// gets through and is banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_senders_are_closed_so_a_router_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = syslog_config(&sim, dir.path());
    config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap());
    config.input.syslog_tcp_max_connections = 4;
    config.input.syslog_tcp_idle_timeout = Duration::from_secs(1);
    let running = Running::start(config).await;
    let addr = running.daemon.syslog_tcp_addr().unwrap();

    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut locked_out = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut locked_out, Duration::from_millis(200)).await,
        "with every slot taken, a new sender is closed"
    );
    for tcp in &mut idle {
        assert!(
            closed_within(tcp, Duration::from_secs(3)).await,
            "an idle sender is closed after the idle timeout"
        );
    }

    let mut router = TcpStream::connect(addr).await.unwrap();
    router
        .write_all(&brute_force_lines("198.51.100.41"))
        .await
        .unwrap();
    assert!(
        eventually(SOON, || sim.listed("198.51.100.41"))
            .await
            .is_some(),
        "the router's report got through and was banned"
    );
    running.stop().await;
}

/// 2,000 garbage datagrams are 2,000 `unrecognized` events (they were not counted at
/// all before); an overlong line over UDP and over TCP is counted as `too_long`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_overlong_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = syslog_config(&sim, dir.path());
    config.input.syslog_udp = Some("127.0.0.1:0".parse().unwrap());
    config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let udp_addr = running.daemon.syslog_udp_addr().unwrap();
    // The simulated router is 127.0.0.1, so loopback syslog counts under its name.
    let unrecognized = "mtids_events_total{router=\"sim\",kind=\"unrecognized\"}";
    assert_eq!(metric(&running, unrecognized), Some(0.0));

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2000 {
        udp.send_to(
            format!("garbage {i} \x01\x02 not syslog").as_bytes(),
            udp_addr,
        )
        .await
        .unwrap();
        if i % 100 == 99 {
            // Paced, so the default receive buffer never overflows.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(
        eventually(SOON, || metric(&running, unrecognized) == Some(2000.0))
            .await
            .is_some(),
        "{unrecognized} = {:?}",
        metric(&running, unrecognized)
    );
    assert_eq!(metric(&running, &lines("unrecognized")), Some(2000.0));
    assert_eq!(metric(&running, &lines("recognized")), Some(0.0));

    let overlong = vec![b'x'; 9000];
    udp.send_to(&overlong, udp_addr).await.unwrap();
    let mut tcp = TcpStream::connect(running.daemon.syslog_tcp_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(&overlong).await.unwrap();
    tcp.write_all(b"\r\n").await.unwrap();
    // The connection survives an overlong line: the next one is read.
    tcp.write_all(&brute_force_lines("198.51.100.42"))
        .await
        .unwrap();
    assert!(
        eventually(SOON, || metric(&running, &lines("too_long")) == Some(2.0))
            .await
            .is_some(),
        "too_long = {:?}",
        metric(&running, &lines("too_long"))
    );
    assert!(
        eventually(SOON, || sim.listed("198.51.100.42"))
            .await
            .is_some()
    );
    assert_eq!(metric(&running, &lines("recognized")), Some(5.0));
    running.stop().await;
}

/// A burst far larger than a deliberately small receive buffer: the kernel drops
/// datagrams, and its count shows as `mtids_syslog_dropped_total` (Linux: the `drops`
/// column of /proc/net/udp).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_burst_past_a_small_buffer_shows_kernel_drops() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = syslog_config(&sim, dir.path());
    config.input.syslog_udp = Some("127.0.0.1:0".parse().unwrap());
    config.input.syslog_udp_buffer = 1024;
    let running = Running::start(config).await;
    let udp_addr = running.daemon.syslog_udp_addr().unwrap();
    assert_eq!(metric(&running, "mtids_syslog_dropped_total"), Some(0.0));

    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let line = "<134>Nov 21 10:00:01 gw firewall,info input: in:ether1 out:(unknown 0), proto TCP (SYN), 203.0.113.9:4000->192.0.2.1:22, len 60";
    for _ in 0..20_000 {
        sender.send_to(line.as_bytes(), udp_addr).unwrap();
    }
    let dropped = metric(&running, "mtids_syslog_dropped_total").unwrap();
    assert!(dropped > 0.0, "no kernel drops counted after the burst");
    let read = metric(&running, &lines("recognized")).unwrap()
        + metric(&running, &lines("unrecognized")).unwrap();
    assert!(
        dropped + read <= 20_000.0,
        "dropped {dropped} + read {read} exceed what was sent"
    );
    running.stop().await;
}

/// `remote-protocol=tls`: the router is a TLS client without a certificate (ROUTEROS.md
/// §5). Events framed with `\r\n` arrive as lines: CEF events one line each, and a brute
/// force (in a line format today's parser reads) is banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_tls_are_split_on_the_delimiter_and_ban() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let certificate = SelfSignedCertificate::generate(&["127.0.0.1"]).unwrap();
    let cert = dir.path().join("syslog-cert.pem");
    let key = dir.path().join("syslog-key.pem");
    std::fs::write(&cert, certificate.cert_pem()).unwrap();
    std::fs::write(&key, certificate.key_pem()).unwrap();
    let mut config = syslog_config(&sim, dir.path());
    config.input.syslog_tls = Some("127.0.0.1:0".parse().unwrap());
    config.input.syslog_tls_cert = Some(cert);
    config.input.syslog_tls_key = Some(key);
    let running = Running::start(config).await;
    let addr = running.daemon.syslog_tls_addr().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.cert_der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap();

    let mut stream = Vec::new();
    for i in 0..3 {
        stream.extend_from_slice(cef_event(i).as_bytes());
        stream.extend_from_slice(b"\r\n");
    }
    stream.extend_from_slice(&brute_force_lines("198.51.100.43"));
    // Written in small pieces, so events straddle TLS records and reads.
    for piece in stream.chunks(50) {
        tls.write_all(piece).await.unwrap();
        tls.flush().await.unwrap();
    }
    assert!(
        eventually(SOON, || sim.listed("198.51.100.43"))
            .await
            .is_some(),
        "the brute force over TLS was banned"
    );
    // Eight frames: three CEF events (recognised or not, depending on the parser) and
    // five login failures; nothing overlong, nothing glued together.
    let total = |r: &Running| {
        metric(r, &lines("recognized")).unwrap() + metric(r, &lines("unrecognized")).unwrap()
    };
    assert!(
        eventually(SOON, || total(&running) == 8.0).await.is_some(),
        "lines read: {}",
        total(&running)
    );
    assert_eq!(metric(&running, &lines("too_long")), Some(0.0));

    // Plain text on the TLS port is a failed handshake: closed, nothing read from it.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(&brute_force_lines("198.51.100.45"))
        .await
        .unwrap();
    // Read to the end: rustls may send an alert record before closing.
    let mut answer = Vec::new();
    let end = tokio::time::timeout(SOON, plain.read_to_end(&mut answer)).await;
    assert!(end.is_ok(), "the plain sender is closed");
    assert!(!sim.listed("198.51.100.45"));
    assert_eq!(total(&running), 8.0);
    running.stop().await;
}

/// Everything logged by this test binary (every test shares one global subscriber).
fn logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .init();
        buffer
    })
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// RouterOS `syslog` format over TCP: no delimiter, no octet count (ROUTEROS.md §5), so
/// messages run together. The sender is told once (over two connections) to use CEF for
/// TCP/TLS or UDP for this format; CEF over TCP from rsyslog-style and router senders keeps
/// working on the same listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unframed_routeros_syslog_over_tcp_is_warned_about_once() {
    let logs = logs();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = syslog_config(&sim, dir.path());
    config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let addr = running.daemon.syslog_tcp_addr().unwrap();

    let unframed = "<30>Sep 25 01:37:18 MikroTik user abc logged in from 192.168.88.1 via api<30>Sep 25 01:37:19 MikroTik user abc logged out from 192.168.88.1 via api";
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(unframed.as_bytes()).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let warning = "remote-log-format=cef";
    assert!(
        eventually(SOON, || logs.text().contains(warning))
            .await
            .is_some(),
        "no framing warning in:\n{}",
        logs.text()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = logs.text();
    assert_eq!(
        text.matches(warning).count(),
        1,
        "one warning per sender:\n{text}"
    );
    assert!(text.contains("remote-protocol=udp"), "{text}");

    // The same listener reads CEF framed with `\r\n`: three events, three lines.
    let before = metric(&running, &lines("recognized")).unwrap()
        + metric(&running, &lines("unrecognized")).unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for i in 0..3 {
        tcp.write_all(format!("{}\r\n", cef_event(i)).as_bytes())
            .await
            .unwrap();
    }
    tcp.write_all(&brute_force_lines("198.51.100.44"))
        .await
        .unwrap();
    assert!(
        eventually(SOON, || sim.listed("198.51.100.44"))
            .await
            .is_some()
    );
    let after = metric(&running, &lines("recognized")).unwrap()
        + metric(&running, &lines("unrecognized")).unwrap();
    assert_eq!(after - before, 8.0);
    running.stop().await;
}
