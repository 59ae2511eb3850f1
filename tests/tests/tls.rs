//! `mtids` against routeros-sim over API-SSL: real TLS on loopback, the router's
//! certificate pinned by its SHA-256 fingerprint or verified against a CA file, and a wrong
//! pin that must never get a session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mtids_cli::config::TlsConfig;
use mtids_cli::daemon::{Daemon, Options, Report};
use mtids_e2e::{Running, Sim, eventually, fail_logins};
use routeros_sim::{Family, SelfSignedCertificate, TlsIdentity};
use tokio::sync::mpsc;

const SOON: Duration = Duration::from_secs(5);
const ATTACKER: &str = "198.51.100.7";

/// A self-signed certificate for the loopback address the daemon connects to.
fn certificate() -> SelfSignedCertificate {
    SelfSignedCertificate::generate(&["127.0.0.1", "localhost"]).unwrap()
}

fn pin(fingerprint: String) -> TlsConfig {
    let mut tls = TlsConfig::default();
    tls.fingerprint = Some(fingerprint);
    tls
}

/// Whether the router logged the daemon's login on its API-SSL service.
fn logged_in_over_tls(sim: &Sim) -> bool {
    sim.router.log_entries().iter().any(|e| {
        let m = e.message_lossy();
        m.starts_with("user admin logged in") && m.ends_with("via api-ssl")
    })
}

/// Four failures stay below the threshold of 5; the fifth is blocked within a second.
async fn brute_force_is_blocked_within_a_second(sim: &Sim) {
    fail_logins(&sim.router, ATTACKER, "admin", 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sim.listed(ATTACKER), "4 failures are below the threshold");
    let crossing = Instant::now();
    fail_logins(&sim.router, ATTACKER, "admin", 1);
    eventually(SOON, || sim.listed(ATTACKER))
        .await
        .expect("the attacker is blocked over API-SSL");
    let took = crossing.elapsed();
    assert!(took < Duration::from_secs(1), "blocked after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_fingerprint_connects_over_tls_and_blocks_a_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate();
    let fingerprint = cert.sha256_fingerprint();
    let sim = Sim::start_tls(TlsIdentity::SelfSigned(cert)).await;
    let mut config = sim.config(dir.path());
    // The colon-separated upper-case form browsers show is accepted too.
    let shown = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    config.routers[0].tls = Some(pin(shown));
    let running = Running::start(config).await;
    assert!(logged_in_over_tls(&sim), "the session is on api-ssl");

    brute_force_is_blocked_within_a_second(&sim).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_verifies_the_router_and_a_brute_force_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate();
    let ca = dir.path().join("router-ca.pem");
    std::fs::write(&ca, cert.cert_pem()).unwrap();
    let sim = Sim::start_tls(TlsIdentity::SelfSigned(cert)).await;
    let mut config = sim.config(dir.path());
    let mut tls = TlsConfig::default();
    tls.ca_file = Some(ca);
    config.routers[0].tls = Some(tls);
    let running = Running::start(config).await;
    assert!(logged_in_over_tls(&sim), "the session is on api-ssl");

    brute_force_is_blocked_within_a_second(&sim).await;
    running.stop().await;
}

/// Starts the daemon with `config`, lets it try for `for_`, and returns what it reported.
async fn reports_of_a_failing_daemon(
    sim: &Sim,
    config: mtids_cli::config::Config,
    for_: Duration,
) -> Vec<Report> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut options = Options::default();
    options.reports = Some(tx);
    let daemon = Daemon::start(config, options).unwrap();
    // The attack happens on the router meanwhile: the daemon must not see or ban it.
    fail_logins(&sim.router, ATTACKER, "admin", 20);
    tokio::time::sleep(for_).await;
    daemon.shutdown(Duration::from_secs(2)).await;
    let mut reports = Vec::new();
    while let Ok(r) = rx.try_recv() {
        reports.push(r);
    }
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_fingerprint_never_connects_says_what_to_change_and_bans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate();
    let actual = cert.sha256_fingerprint();
    let sim = Sim::start_tls(TlsIdentity::SelfSigned(cert)).await;
    let wrong = certificate().sha256_fingerprint();
    assert_ne!(wrong, actual);
    let mut config = sim.config(dir.path());
    config.routers[0].tls = Some(pin(wrong.clone()));

    let reports = reports_of_a_failing_daemon(&sim, config, Duration::from_millis(1500)).await;

    assert!(
        !reports
            .iter()
            .any(|r| matches!(r, Report::Connected { .. })),
        "a wrong pin must never connect: {reports:?}"
    );
    let errors: Vec<&String> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Disconnected { router, error, .. } => {
                assert_eq!(router, "sim");
                Some(error)
            }
            _ => None,
        })
        .collect();
    assert!(
        errors.len() >= 2,
        "the daemon keeps retrying with backoff: {errors:?}"
    );
    for error in &errors {
        assert!(
            error.contains(&actual) && error.contains(&wrong),
            "the error shows the router's fingerprint and the pinned one: {error}"
        );
        assert!(
            error.contains("pin the new one"),
            "the error says what to change: {error}"
        );
        assert!(
            error.contains("`tls.fingerprint` of router"),
            "the error names the configuration key: {error}"
        );
    }
    assert!(!logged_in_over_tls(&sim), "no session was ever logged in");
    assert_eq!(sim.router.session_count(), 0, "no session is left open");
    assert!(
        sim.router.address_list(Family::V4).is_empty(),
        "nothing was banned"
    );
    assert!(
        !reports
            .iter()
            .any(|r| matches!(r, Report::Outcome { .. } | Report::Blocked { .. })),
        "no decision was made: {reports:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_of_another_certificate_is_rejected_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_tls(TlsIdentity::SelfSigned(certificate())).await;
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, certificate().cert_pem()).unwrap();
    let mut config = sim.config(dir.path());
    let mut tls = TlsConfig::default();
    tls.ca_file = Some(ca);
    config.routers[0].tls = Some(tls);

    let reports = reports_of_a_failing_daemon(&sim, config, Duration::from_millis(800)).await;

    assert!(
        !reports
            .iter()
            .any(|r| matches!(r, Report::Connected { .. })),
        "an unknown issuer must never connect: {reports:?}"
    );
    let error = reports
        .iter()
        .find_map(|r| match r {
            Report::Disconnected { error, .. } => Some(error.clone()),
            _ => None,
        })
        .expect("a Disconnected report");
    assert!(
        error.contains("certificate was rejected")
            && error.contains("pin its SHA-256")
            && error.contains("`tls.ca_file` of router"),
        "the error says what to change: {error}"
    );
    assert!(!logged_in_over_tls(&sim));
    assert!(sim.router.address_list(Family::V4).is_empty());
}
