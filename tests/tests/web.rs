//! The read-only web page of a daemon defending routeros-sim, loaded in a real headless
//! Chromium over loopback: a brute force from a user named like a script shows as text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mtids_e2e::{Running, Sim, eventually, fail_logins};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOON: Duration = Duration::from_secs(5);
const ATTACKER: &str = "198.51.100.7";
const HOSTILE_USER: &str = "<script>alert(1)</script>";

/// `GET path` over a new TCP connection: the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    get_with(addr, path, "").await
}

/// As [`get`], with extra header lines (each ending in `\r\n`).
async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: mtids\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Headless Chromium on `url`, with a throw-away profile and nothing contacted but
/// loopback; `extra` adds `--dump-dom` or `--screenshot=...`. Returns its stdout.
fn chromium(profile: &Path, url: &str, extra: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs (Debian package `chromium`, installed by .ci/run)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of each cell of the first row of the bans table (in `dom`, as Chromium dumps
/// it) that has `target` in it.
fn ban_row(dom: &str, target: &str) -> Vec<String> {
    let table = dom
        .split("<table id=\"bans\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no bans table:\n{dom}"));
    let row = table
        .split("<tr>")
        .find(|r| r.contains(&format!(">{target}</td>")))
        .unwrap_or_else(|| panic!("no row for {target} in the bans table:\n{table}"));
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let text = cell.split_once('>').map_or("", |(_, t)| t);
            text.split("</td>").next().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_ban_with_its_evidence_and_a_hostile_user_name_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    config.web.listen = Some("127.0.0.1:0".parse().unwrap());
    let running = Running::start(config).await;
    let addr = running.daemon.web_addr().expect("the page is bound");
    assert_ne!(addr.port(), 0, "the real port, not the configured 0");

    fail_logins(&sim.router, ATTACKER, HOSTILE_USER, 5);
    eventually(SOON, || sim.listed(ATTACKER))
        .await
        .expect("blocked");

    // The JSON for scripts: the status snapshot, the ban with its evidence, the finding.
    let (status, body) = get(addr, "/api/state").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["status"]["routers"][0]["name"], "sim", "{state}");
    assert_eq!(state["status"]["routers"][0]["connected"], true, "{state}");
    let ban = state["bans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["target"] == ATTACKER)
        .unwrap_or_else(|| panic!("no active ban of {ATTACKER} in {state}"));
    assert_eq!(ban["detector"], "brute_force");
    assert!(
        ban["evidence"].as_str().unwrap().contains("alert(1)"),
        "{ban}"
    );
    // Beside the raw JSON, the evidence as `mtids bans show` words it.
    let readable = ban["evidence_text"].as_str().unwrap();
    assert!(
        readable.starts_with("brute_force 5/5 in ") && readable.contains(", seen by sim"),
        "{readable}"
    );
    assert!(
        readable.contains(&format!("\nusers: {HOSTILE_USER}"))
            && readable.contains("\nservices: ssh"),
        "{readable}"
    );
    let recent = &state["recent"][0];
    assert_eq!(recent["decision"], "ban", "{state}");
    assert_eq!(recent["source"], ATTACKER, "{state}");
    let readable = recent["evidence_text"].as_str().unwrap();
    assert!(
        readable.starts_with("brute_force 5/5 in ") && readable.contains("\nservices: ssh"),
        "{readable}"
    );
    let minute = state["series"].as_array().unwrap().last().unwrap().clone();
    assert!(minute["events"].as_u64().unwrap() >= 5, "{minute}");
    assert_eq!(minute["bans"]["brute_force"], 1, "{minute}");

    let url = format!("http://{addr}/");
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        let profile = profile.path().to_owned();
        move || chromium(&profile, &url, &["--dump-dom"])
    })
    .await
    .unwrap();
    assert!(dom.contains(ATTACKER), "attacker not on the page:\n{dom}");
    // The ban's row: its evidence cell reads like `mtids bans show` (the user name
    // escaped), not JSON; its expiry says how far off it is.
    let row = ban_row(&dom, ATTACKER);
    let evidence = row.last().unwrap();
    assert!(
        evidence.starts_with("brute_force 5/5 in ")
            && evidence.contains("users: &lt;script&gt;alert(1)&lt;/script&gt;")
            && evidence.contains("services: ssh"),
        "the evidence cell does not read as text: {evidence}"
    );
    assert!(
        !evidence.contains("{\""),
        "JSON in the evidence cell: {evidence}"
    );
    assert!(
        !dom.contains("\"threshold\""),
        "raw evidence JSON on the page:\n{dom}"
    );
    let expires = &row[4];
    assert!(
        expires.starts_with(ban["expires"].as_str().unwrap())
            && expires.contains(" (in ")
            && expires.ends_with(')'),
        "the expiry of the ban just made is not shown relative to now: {expires}"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the hostile user name is not shown as text:\n{dom}"
    );
    assert!(
        !dom.contains(HOSTILE_USER),
        "the hostile user name became markup:\n{dom}"
    );
    assert!(
        dom.contains("class=\"point\""),
        "the chart has no data points:\n{dom}"
    );
    // The summary line was filled from `/api/state` (not its "loading" or error text).
    assert!(dom.contains("id=\"summary\" class=\"muted\">at "), "{dom}");

    // A screenshot, for docs/web.png (MTIDS_WEB_SCREENSHOT=path keeps it there).
    let shot = std::env::var_os("MTIDS_WEB_SCREENSHOT")
        .map_or_else(|| dir.path().join("web.png"), std::path::PathBuf::from);
    let profile = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking({
        let shot = shot.clone();
        let profile = profile.path().to_owned();
        move || {
            chromium(
                &profile,
                &url,
                &[
                    "--window-size=1280,1100",
                    &format!("--screenshot={}", shot.display()),
                ],
            )
        }
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot ({} bytes)",
        png.len()
    );

    running.daemon.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_password_file_the_page_and_the_api_ask_for_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let mut config = sim.config(dir.path());
    let password = dir.path().join("web.password");
    std::fs::write(&password, "s3cret\n").unwrap();
    config.web.listen = Some("127.0.0.1:0".parse().unwrap());
    config.web.password_file = Some(password);
    let running = Running::start(config).await;
    let addr = running.daemon.web_addr().unwrap();
    for path in ["/", "/api/state"] {
        let (status, _) = get(addr, path).await;
        assert!(status.starts_with("HTTP/1.1 401"), "{path}: {status}");
        // "mtids:wrong"
        let (status, _) = get_with(addr, path, "Authorization: Basic bXRpZHM6d3Jvbmc=\r\n").await;
        assert!(status.starts_with("HTTP/1.1 401"), "{path}: {status}");
        // "mtids:s3cret"
        let (status, body) =
            get_with(addr, path, "Authorization: Basic bXRpZHM6czNjcmV0\r\n").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
        assert!(!body.is_empty());
    }
    running.daemon.shutdown(Duration::from_secs(2)).await;
}

/// With `web.tls_cert` and `web.tls_key` the page is HTTPS only: a client that trusts the
/// certificate gets the state, and plain HTTP on that port gets no page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_page_is_served_over_tls_only() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start().await;
    let certificate = routeros_sim::SelfSignedCertificate::generate(&["127.0.0.1"]).unwrap();
    let cert = dir.path().join("web-cert.pem");
    let key = dir.path().join("web-key.pem");
    std::fs::write(&cert, certificate.cert_pem()).unwrap();
    std::fs::write(&key, certificate.key_pem()).unwrap();
    let mut config = sim.config(dir.path());
    config.web.listen = Some("127.0.0.1:0".parse().unwrap());
    config.web.tls_cert = Some(cert);
    config.web.tls_key = Some(key);
    let running = Running::start(config).await;
    let addr = running.daemon.web_addr().unwrap();

    // A client that never finishes its handshake holds up no other.
    let _slow = tokio::net::TcpStream::connect(addr).await.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.cert_der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio::time::timeout(
        SOON,
        tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp),
    )
    .await
    .expect("the handshake is not held up by the idle client")
    .unwrap();
    tls.write_all(b"GET /api/state HTTP/1.1\r\nHost: mtids\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await; // The server may close without notify.
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"status\""), "{response}");

    // Plain HTTP on the TLS port: no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: mtids\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(SOON, plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "plain HTTP got a page"
    );
    running.daemon.shutdown(Duration::from_secs(2)).await;
}
