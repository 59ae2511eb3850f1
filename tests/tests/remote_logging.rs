//! The whole remote logging path, with nothing hand-written on the wire: `mtids setup
//! --apply` configures routeros-sim (RouterOS 7.20.4) to send its log to the daemon's
//! syslog listener in one of the 7.18+ forms, the simulated router then logs login
//! failures and a port scan and sends them itself (ROUTEROS.md section 5 shapes), and the
//! daemon, reading syslog only, puts both attackers on the address list.
//!
//! One test per form: `default` and `syslog` over UDP, CEF over TCP, CEF over TLS. CEF and
//! the topic-less `syslog` format need the 7.18+ parsers, CEF over TCP the delimiter
//! framing and CEF over TLS the TLS listener (`input.syslog_tls`, `input.syslog_tls_cert`,
//! `input.syslog_tls_key`); those come from other branches of the same change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use mtids_cli::config::Config;
use mtids_cli::setup::{self, Applied, SetupArgs};
use mtids_e2e::{Running, Sim, eventually, fail_logins};
use routeros_sim::{FirewallLogLine, SelfSignedCertificate};

const WITHIN: Duration = Duration::from_secs(10);
const BRUTE: &str = "198.51.100.41";
const SCANNER: &str = "198.51.100.42";

fn setup_args(syslog: SocketAddr, format: &str, protocol: &str) -> SetupArgs {
    let target = syslog.to_string();
    SetupArgs::parse_args([
        "--apply",
        "--yes",
        "--syslog",
        &target,
        "--syslog-format",
        format,
        "--syslog-protocol",
        protocol,
    ])
    .unwrap()
}

/// A free loopback port (bound, then released) for a listener whose address the daemon
/// does not report.
fn free_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// Where the daemon listens, given how the test configured it.
enum Listener {
    Udp,
    Tcp,
    /// The TLS listener at this address, with this certificate.
    Tls(SocketAddr, SelfSignedCertificate),
}

/// Starts the daemon on syslog only (no API log), lets `mtids setup --apply` point the
/// router's `mtids` logging action at it in `format` over `protocol`, then attacks and
/// waits for both attackers to be listed.
async fn router_to_syslog_to_address_list(format: &str, protocol: &str, listener: Listener) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.input.api_log = false;
    match &listener {
        Listener::Udp => config.input.syslog_udp = Some("127.0.0.1:0".parse().unwrap()),
        Listener::Tcp => config.input.syslog_tcp = Some("127.0.0.1:0".parse().unwrap()),
        Listener::Tls(addr, cert) => {
            let cert_path = dir.path().join("syslog.crt");
            let key_path = dir.path().join("syslog.key");
            std::fs::write(&cert_path, cert.cert_pem()).unwrap();
            std::fs::write(&key_path, cert.key_pem()).unwrap();
            // Parsed from TOML: these keys belong to the TLS listener's branch.
            let input = Config::parse(
                &format!(
                    "[input]\napi_log = false\nsyslog_tls = \"{addr}\"\nsyslog_tls_cert = {:?}\nsyslog_tls_key = {:?}\n",
                    cert_path.display().to_string(),
                    key_path.display().to_string()
                ),
                "tls.toml",
            )
            .expect("the TLS syslog listener's configuration keys")
            .input;
            let mut input = input;
            input.connection_interval = config.input.connection_interval;
            input.resource_interval = config.input.resource_interval;
            input.max_backoff = config.input.max_backoff;
            config.input = input;
        }
    }
    let running = Running::start(config).await;
    let target = match &listener {
        Listener::Udp => running.daemon.syslog_udp_addr().unwrap(),
        Listener::Tcp => running.daemon.syslog_tcp_addr().unwrap(),
        Listener::Tls(addr, _) => *addr,
    };

    let setup_config = sim.config(dir.path());
    let args = setup_args(target, format, protocol);
    let (version, results) =
        setup::apply_to_router(&setup_config.routers[0], &args, &setup_config, "")
            .await
            .unwrap();
    assert!(version.has_remote_log_format(), "{version}");
    for (step, outcome) in &results {
        assert!(
            !matches!(outcome, Applied::Failed(_)),
            "{} ({}): {outcome:?}",
            step.title,
            step.menu
        );
    }

    fail_logins(&sim.router, BRUTE, "admin", 6);
    for port in 1000..1040u16 {
        sim.router.log_firewall(&FirewallLogLine::tcp_syn(
            Some("MTIDS_NEW"),
            format!("{SCANNER}:40000").parse().unwrap(),
            format!("192.0.2.1:{port}").parse().unwrap(),
        ));
    }
    let brute = eventually(WITHIN, || sim.listed(BRUTE)).await;
    let scan = eventually(WITHIN, || sim.listed(SCANNER)).await;
    let stats = sim.router.remote_log_stats("mtids");
    assert!(
        brute.is_some(),
        "{format} over {protocol}: the brute force was not blocked from syslog (router sent {stats:?})"
    );
    assert!(
        scan.is_some(),
        "{format} over {protocol}: the port scan was not blocked from syslog (router sent {stats:?})"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_over_udp() {
    router_to_syslog_to_address_list("default", "udp", Listener::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_udp() {
    router_to_syslog_to_address_list("syslog", "udp", Listener::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_over_tcp() {
    router_to_syslog_to_address_list("cef", "tcp", Listener::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_over_tls() {
    let cert = SelfSignedCertificate::generate(&["127.0.0.1", "localhost"]).unwrap();
    router_to_syslog_to_address_list("cef", "tls", Listener::Tls(free_port(), cert)).await;
}
