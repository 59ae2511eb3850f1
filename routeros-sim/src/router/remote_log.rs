//! Remote logging: every new log entry that a `/system/logging` rule sends to a remote
//! action goes to that action's `remote`:`remote-port`, in its format and over its
//! protocol, as RouterOS puts it on the wire (ROUTEROS.md section 5):
//!
//! - `default`: `TOPICS MESSAGE`, nothing else;
//! - `syslog` (and `bsd-syslog=yes` before 7.18): `<PRI>Mmm dd hh:mm:ss IDENTITY MESSAGE`,
//!   no topics;
//! - `cef`: `TIME IDENTITY CEF:0|MikroTik|BOARD|VERSION|CLASS|TOPICS|SEVERITY|dvchost=..
//!   dvc=.. msg=..` and the delimiter (even over UDP); login lines add `app= duser=
//!   outcome= src=`.
//!
//! UDP sends one datagram per message; TCP and TLS keep one connection per action and
//! send the bytes bare (only CEF has a delimiter: MikroTik says TCP and TLS work only
//! with CEF). With TLS the router is the client; `check-certificate=yes` verifies the
//! receiver against the certificates given to [`Router::trust_certificate`](crate::Router::trust_certificate).
//!
//! Each action has a bounded queue drained by its own thread (the router core stays
//! synchronous and needs no runtime): when the queue is full or the receiver is away the
//! message is dropped and counted, as a router does. The simulator sends only to loopback
//! addresses, so an API client cannot turn it into a packet source towards anyone else.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::State;
use crate::duration::civil;
use crate::model::menus;

/// Messages waiting per action; more are dropped (and counted).
const QUEUE: usize = 1_024;
/// Remote actions with a sender thread at most; messages for more are dropped (and not
/// counted: an API client could otherwise make a thread per action it adds).
const MAX_WORKERS: usize = 64;
/// How long a TCP connect or write may take before the message is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What one remote action has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteLogStats {
    /// Messages written to the socket.
    pub sent: u64,
    /// Messages dropped: queue full, receiver away, connection or handshake failed.
    pub dropped: u64,
}

/// `remote-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Udp,
    Tcp,
    Tls,
}

/// One message for one action.
#[derive(Debug)]
pub(super) struct Outgoing {
    action: String,
    dest: SocketAddr,
    source: Option<IpAddr>,
    protocol: Protocol,
    check_certificate: bool,
    payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Worker {
    tx: SyncSender<Outgoing>,
    counters: Arc<Counters>,
}

/// The per-action queues and their sender threads.
#[derive(Debug, Default)]
pub(super) struct Forwarder {
    workers: Mutex<HashMap<String, Worker>>,
    trusted: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl Forwarder {
    /// Queues `messages`; a full queue drops the message and counts it.
    pub(super) fn dispatch(&self, messages: Vec<Outgoing>) {
        if messages.is_empty() {
            return;
        }
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for msg in messages {
            if !workers.contains_key(&msg.action) && workers.len() >= MAX_WORKERS {
                continue;
            }
            let worker = workers
                .entry(msg.action.clone())
                .or_insert_with(|| spawn_worker(self.trusted.clone()));
            match worker.tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    worker.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// What action `name` has sent and dropped, if it was ever given a message.
    pub(super) fn stats(&self, name: &str) -> Option<RemoteLogStats> {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.get(name).map(|w| RemoteLogStats {
            sent: w.counters.sent.load(Ordering::Relaxed),
            dropped: w.counters.dropped.load(Ordering::Relaxed),
        })
    }

    /// Adds a certificate that `check-certificate=yes` accepts as a trust anchor.
    pub(super) fn trust(&self, cert: CertificateDer<'static>) {
        self.trusted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cert);
    }
}

fn spawn_worker(trusted: Arc<Mutex<Vec<CertificateDer<'static>>>>) -> Worker {
    let (tx, rx) = sync_channel(QUEUE);
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    // The thread ends when the router (holding the sender) is dropped. Without a thread
    // the receiver is gone, and every message counts as dropped.
    let _ = std::thread::Builder::new()
        .name("sim-remote-log".to_owned())
        .spawn(move || run_worker(&rx, &c, &trusted));
    Worker { tx, counters }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

type ConnKey = (SocketAddr, Option<IpAddr>, Protocol, bool);

fn run_worker(
    rx: &Receiver<Outgoing>,
    counters: &Counters,
    trusted: &Mutex<Vec<CertificateDer<'static>>>,
) {
    let mut conn: Option<(ConnKey, Conn)> = None;
    while let Ok(msg) = rx.recv() {
        let key = (msg.dest, msg.source, msg.protocol, msg.check_certificate);
        if conn.as_ref().is_some_and(|(k, _)| *k != key) {
            conn = None;
        }
        if conn.is_none() {
            conn = open(&msg, trusted).ok().map(|c| (key, c));
        }
        let sent = match conn.as_mut() {
            Some((_, c)) => send(c, &msg).is_ok(),
            None => false,
        };
        if sent {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            conn = None;
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn open(msg: &Outgoing, trusted: &Mutex<Vec<CertificateDer<'static>>>) -> std::io::Result<Conn> {
    match msg.protocol {
        Protocol::Udp => {
            let any = if msg.dest.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            let socket = UdpSocket::bind(SocketAddr::new(msg.source.unwrap_or(any), 0))?;
            Ok(Conn::Udp(socket))
        }
        Protocol::Tcp => Ok(Conn::Tcp(connect_tcp(msg.dest)?)),
        Protocol::Tls => {
            let config =
                tls_config(msg.check_certificate, trusted).map_err(std::io::Error::other)?;
            let name = ServerName::IpAddress(msg.dest.ip().into());
            let client =
                rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
            let mut stream = rustls::StreamOwned::new(client, connect_tcp(msg.dest)?);
            // Handshake now, so a refused certificate drops this message, not a later one.
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock)?;
            }
            Ok(Conn::Tls(Box::new(stream)))
        }
    }
}

fn connect_tcp(dest: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&dest, IO_TIMEOUT)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn send(conn: &mut Conn, msg: &Outgoing) -> std::io::Result<()> {
    match conn {
        Conn::Udp(socket) => socket.send_to(&msg.payload, msg.dest).map(|_| ()),
        Conn::Tcp(stream) => stream.write_all(&msg.payload),
        Conn::Tls(stream) => {
            stream.write_all(&msg.payload)?;
            stream.flush()
        }
    }
}

fn tls_config(
    check_certificate: bool,
    trusted: &Mutex<Vec<CertificateDer<'static>>>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if check_certificate {
        let mut roots = rustls::RootCertStore::empty();
        for cert in trusted.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // A certificate that is no trust anchor is left out: the handshake then fails.
            let _ = roots.add(cert.clone());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `check-certificate=no`: the router encrypts but does not verify the receiver.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---- what goes on the wire ----

/// `remote-log-format` (before 7.18: `bsd-syslog=yes` is `Syslog`, `no` is `Default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Default,
    Syslog,
    Cef,
}

/// What a message needs from the router besides its action.
pub(super) struct Origin<'a> {
    pub identity: &'a str,
    pub board: &'a str,
    /// `/system/resource` `version`, e.g. `7.20.4 (stable)`.
    pub version: String,
    /// The router's address for `dvc=` when the action has no `src-address`.
    pub address: IpAddr,
}

/// Whether a log entry with `entry_topics` matches a rule's `topics`: it has every listed
/// topic and none of the `!`-negated ones (MikroTik manual, Log: `!` excludes a topic).
fn topics_match(rule: &str, entry_topics: &str) -> bool {
    let has = |t: &str| entry_topics.split(',').any(|e| e.trim() == t);
    let mut any = false;
    for t in rule.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        any = true;
        let ok = match t.strip_prefix('!') {
            Some(neg) => !has(neg),
            None => has(t),
        };
        if !ok {
            return false;
        }
    }
    any
}

impl State {
    /// The messages a new log entry makes for the remote actions its topics reach (one per
    /// action, however many rules point at it).
    pub(super) fn remote_messages(
        &self,
        origin: &Origin<'_>,
        time: SystemTime,
        topics: &str,
        message: &[u8],
    ) -> Vec<Outgoing> {
        let modern = self.config.version.has_remote_log_format();
        let actions = self.menu_rows(menus::logging_action(self.config.version).path);
        let mut out: Vec<Outgoing> = Vec::new();
        for rule in self.menu_rows(menus::LOGGING.path) {
            if rule.is("disabled") || !topics_match(&rule.text("topics"), topics) {
                continue;
            }
            let name = rule.text("action");
            if out.iter().any(|o| o.action == name) {
                continue;
            }
            let Some(action) = actions
                .iter()
                .find(|a| a.get("name") == Some(name.as_bytes()))
            else {
                continue;
            };
            if action.get("target") != Some(b"remote") {
                continue;
            }
            let Ok(ip) = action.text("remote").parse::<IpAddr>() else {
                continue;
            };
            // Only loopback: the simulator is never a packet source towards anyone else.
            if !ip.is_loopback() {
                continue;
            }
            let port: u16 = action.text("remote-port").parse().unwrap_or(514);
            let source = action
                .text("src-address")
                .parse::<IpAddr>()
                .ok()
                .filter(|a| !a.is_unspecified());
            let (format, protocol) = if modern {
                let format = match action.text("remote-log-format").as_str() {
                    "syslog" => Format::Syslog,
                    "cef" => Format::Cef,
                    _ => Format::Default,
                };
                let protocol = match action.text("remote-protocol").as_str() {
                    "tcp" => Protocol::Tcp,
                    "tls" => Protocol::Tls,
                    _ => Protocol::Udp,
                };
                (format, protocol)
            } else if action.is("bsd-syslog") {
                (Format::Syslog, Protocol::Udp)
            } else {
                (Format::Default, Protocol::Udp)
            };
            let prefix = rule.text("prefix");
            let mut text = String::new();
            if !prefix.is_empty() {
                text.push_str(&prefix);
                text.push(' ');
            }
            text.push_str(&String::from_utf8_lossy(message));
            let iso = action.text("syslog-time-format") == "iso8601";
            let stamp = if iso { iso_time(time) } else { bsd_time(time) };
            let payload = match format {
                Format::Default => format!("{topics} {text}").into_bytes(),
                Format::Syslog => {
                    let pri = facility_code(&action.text("syslog-facility")) * 8
                        + severity_code(&action.text("syslog-severity"), topics);
                    format!("<{pri}>{stamp} {} {text}", origin.identity).into_bytes()
                }
                Format::Cef => {
                    let delimiter = action
                        .get("cef-event-delimiter")
                        .filter(|d| !d.is_empty())
                        .unwrap_or(b"\r\n");
                    let mut p = cef_line(origin, source, &stamp, topics, &text).into_bytes();
                    p.extend_from_slice(delimiter);
                    p
                }
            };
            out.push(Outgoing {
                action: name,
                dest: SocketAddr::new(ip, port),
                source,
                protocol,
                check_certificate: action.is("check-certificate"),
                payload,
            });
        }
        out
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss` (RFC 3164: a one-digit day is padded with a space), UTC.
fn bsd_time(t: SystemTime) -> String {
    let c = civil(t);
    let month = MONTHS
        .get(c.month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        c.day, c.hour, c.minute, c.second
    )
}

/// ISO 8601 with milliseconds and the offset (`+0000`: the simulator keeps UTC).
fn iso_time(t: SystemTime) -> String {
    let c = civil(t);
    let millis = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}+0000",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// RFC 3164 facility numbers, by RouterOS' `syslog-facility` names.
fn facility_code(name: &str) -> u32 {
    match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => 3, // daemon, the default
    }
}

/// RFC 3164 severity: the configured one, or with `auto` the most severe level among the
/// entry's topics (`info` when none: `<30>` is daemon.info, ROUTEROS.md section 5).
fn severity_code(name: &str, topics: &str) -> u32 {
    let code = |t: &str| match t {
        "emergency" => Some(0),
        "alert" => Some(1),
        "critical" => Some(2),
        "error" => Some(3),
        "warning" => Some(4),
        "notice" => Some(5),
        "info" => Some(6),
        "debug" => Some(7),
        _ => None,
    };
    if name != "auto" {
        return code(name).unwrap_or(6);
    }
    topics
        .split(',')
        .filter_map(|t| code(t.trim()))
        .min()
        .unwrap_or(6)
}

/// CEF's extension escaping: `\`, `=` and line ends.
fn cef_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The CEF event class: the numbers seen in captures (`system` 10, `dhcp` 16, ROUTEROS.md
/// section 5); other topics get the simulator's own numbers. Receivers must not rely on it.
fn cef_class(topics: &str) -> u32 {
    match topics.split(',').next().unwrap_or_default() {
        "system" => 10,
        "dhcp" => 16,
        "firewall" => 20,
        "script" => 30,
        _ => 0,
    }
}

fn cef_severity(topics: &str) -> &'static str {
    let has = |t: &str| topics.split(',').any(|x| x == t);
    if has("critical") || has("emergency") || has("alert") {
        "High"
    } else if has("error") || has("warning") {
        "Medium"
    } else {
        "Low"
    }
}

/// `app= duser= outcome= src=` of a login line (`login failure for user U from A via S`,
/// `user U logged in from A via S`).
fn login_fields(text: &str) -> Option<String> {
    let (rest, via) = text.rsplit_once(" via ")?;
    let (user, outcome, from) = if let Some(r) = rest.strip_prefix("login failure for user ") {
        let (user, from) = r.rsplit_once(" from ")?;
        (user, "failure", from)
    } else {
        let r = rest.strip_prefix("user ")?;
        let (user, from) = r.rsplit_once(" logged in from ")?;
        (user, "success", from)
    };
    let mut fields = format!(
        "app={} duser={} outcome={outcome}",
        cef_escape(via),
        cef_escape(user)
    );
    if let Ok(ip) = from.parse::<IpAddr>() {
        fields.push_str(&format!(" src={ip}"));
    }
    Some(fields)
}

fn cef_line(
    origin: &Origin<'_>,
    source: Option<IpAddr>,
    stamp: &str,
    topics: &str,
    text: &str,
) -> String {
    let identity = origin.identity;
    let mut line = format!(
        "{stamp} {identity} CEF:0|MikroTik|{}|{}|{}|{topics}|{}|dvchost={} dvc={} msg={}",
        origin.board,
        origin.version,
        cef_class(topics),
        cef_severity(topics),
        cef_escape(identity),
        source.unwrap_or(origin.address),
        cef_escape(text),
    );
    if let Some(fields) = login_fields(text) {
        line.push(' ');
        line.push_str(&fields);
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1_000 + millis)
    }

    fn outgoing(action: &str) -> Outgoing {
        Outgoing {
            action: action.to_owned(),
            dest: "127.0.0.1:9".parse().unwrap(),
            source: None,
            protocol: Protocol::Udp,
            check_certificate: false,
            payload: b"x".to_vec(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let forwarder = Forwarder::default();
        // A worker whose sender thread never drains its queue.
        let (tx, _rx) = sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        forwarder.workers.lock().unwrap().insert(
            "stuck".to_owned(),
            Worker {
                tx,
                counters: counters.clone(),
            },
        );
        forwarder.dispatch((0..QUEUE + 5).map(|_| outgoing("stuck")).collect());
        let stats = forwarder.stats("stuck").unwrap();
        assert_eq!((stats.sent, stats.dropped), (0, 5));
    }

    #[test]
    fn the_number_of_sender_threads_is_bounded() {
        let forwarder = Forwarder::default();
        forwarder.dispatch(
            (0..MAX_WORKERS + 3)
                .map(|i| outgoing(&format!("a{i}")))
                .collect(),
        );
        assert_eq!(forwarder.workers.lock().unwrap().len(), MAX_WORKERS);
        assert!(forwarder.stats(&format!("a{}", MAX_WORKERS + 1)).is_none());
    }

    #[test]
    fn times_in_both_syslog_time_formats() {
        // 2024-09-05 01:37:18.004 UTC
        let t = at(1_725_500_238, 4);
        assert_eq!(bsd_time(t), "Sep  5 01:37:18");
        assert_eq!(iso_time(t), "2024-09-05T01:37:18.004+0000");
    }

    #[test]
    fn topics_match_all_listed_and_none_negated() {
        assert!(topics_match("firewall", "firewall,info"));
        assert!(topics_match("critical", "system,error,critical"));
        assert!(topics_match("system,!debug", "system,info,account"));
        assert!(!topics_match("system,!account", "system,info,account"));
        assert!(!topics_match("firewall,debug", "firewall,info"));
        assert!(!topics_match("", "firewall,info"));
    }

    #[test]
    fn priority_from_facility_and_severity() {
        assert_eq!(
            facility_code("daemon") * 8 + severity_code("auto", "system,info,account"),
            30
        );
        assert_eq!(severity_code("auto", "system,error,critical"), 2);
        assert_eq!(
            facility_code("local0") * 8 + severity_code("warning", "x"),
            132
        );
    }

    #[test]
    fn cef_escapes_and_login_fields() {
        assert_eq!(cef_escape("a=b\\c"), "a\\=b\\\\c");
        assert_eq!(
            login_fields("login failure for user sup port from 198.51.100.200 via ssh").as_deref(),
            Some("app=ssh duser=sup port outcome=failure src=198.51.100.200")
        );
        assert_eq!(
            login_fields("user admin logged in from 192.0.2.9 via winbox").as_deref(),
            Some("app=winbox duser=admin outcome=success src=192.0.2.9")
        );
        assert_eq!(
            login_fields("login failure for user x from 02:00:00:00:00:01 via mac-winbox")
                .as_deref(),
            Some("app=mac-winbox duser=x outcome=failure")
        );
        assert_eq!(login_fields("router rebooted"), None);
    }
}
