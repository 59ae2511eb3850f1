//! The input side of one router, run by the engine (mtids-enforce's `Fleet`, which also
//! connects with backoff, checks liveness and applies bans) on each session: read its own
//! addresses, follow its log, poll its connection table and resources.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mtids_detect::{InterfaceAddress, parse_connection_row, parse_resource_row};
use mtids_enforce::{RouterInput, Session};
use routeros_proto::net::{Client, ClientConfig, Error as ApiError, Fingerprint, TlsConfig};
use routeros_proto::{Command, Query, Reply};

use super::detection::{EventSender, Input};
use super::log_follow::{LogCursor, follow_log};
use super::{Shared, Stats, timestamp};
use crate::config::RouterConfig;

/// The input side of one router, run by the engine (mtids-enforce's `Fleet`) on each of
/// its sessions: own addresses to detection, then the log follow and the polls.
pub(crate) struct RouterSession {
    shared: Arc<Shared>,
    index: usize,
    name: String,
    events: EventSender,
    /// Where the log follow stopped, kept across sessions (one session at a time).
    cursor: tokio::sync::Mutex<LogCursor>,
}

impl RouterSession {
    pub(crate) fn new(shared: Arc<Shared>, index: usize, events: EventSender) -> Self {
        let name = shared
            .config
            .routers
            .get(index)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        RouterSession {
            shared,
            index,
            name,
            events,
            cursor: tokio::sync::Mutex::new(LogCursor::default()),
        }
    }
}

#[async_trait]
impl RouterInput for RouterSession {
    async fn run(&self, session: &Session) -> Result<(), String> {
        let mut cursor = self.cursor.lock().await;
        input_session(
            &self.shared,
            self.index,
            &self.name,
            session.client(),
            &self.events,
            &mut cursor,
        )
        .await
    }

    fn describe_connect_error(&self, error: &ApiError) -> String {
        // Certificate errors are fixed in the configuration: name the key.
        let key = match error {
            ApiError::FingerprintMismatch { .. } => Some("tls.fingerprint"),
            ApiError::CertificateRejected { .. } => Some("tls.ca_file"),
            _ => None,
        };
        match key {
            Some(key) => format!("{error} (`{key}` of router `{}`)", self.name),
            None => error.to_string(),
        }
    }
}

/// How to reach `config`'s router; a TLS setting that cannot be used names its key.
pub(crate) fn client_config(config: &RouterConfig) -> Result<ClientConfig, (String, String)> {
    let mut client_config =
        ClientConfig::new(&config.host, &config.user, config.password().expose())
            .port(config.effective_port())
            .connect_timeout(config.connect_timeout)
            .command_timeout(Some(Duration::from_secs(30)));
    if let Some(tls) = &config.tls {
        let mut tls_config = match (&tls.ca_file, &tls.fingerprint) {
            (Some(ca), _) => TlsConfig::with_ca_file(ca)
                .map_err(|e| ("tls.ca_file".to_owned(), e.to_string()))?,
            (None, Some(fp)) => TlsConfig::with_fingerprint(
                fp.parse::<Fingerprint>()
                    .map_err(|e| ("tls.fingerprint".to_owned(), e.to_string()))?,
            ),
            (None, None) => {
                return Err((
                    "tls".to_owned(),
                    "tls needs ca_file or fingerprint".to_owned(),
                ));
            }
        };
        if let Some(name) = &tls.server_name {
            tls_config = tls_config.server_name(name.clone());
        }
        client_config = client_config.tls(tls_config);
    }
    Ok(client_config)
}

/// One session's input; returns `Err` with the reason when the connection fails.
async fn input_session(
    shared: &Arc<Shared>,
    index: usize,
    name: &str,
    client: &Client,
    events: &EventSender,
    cursor: &mut LogCursor,
) -> Result<(), String> {
    // Own addresses first: the guard must know them before any event.
    let addresses = client
        .call(Command::new("/ip/address/print").proplist(["address", "interface"]))
        .await
        .map_err(|e| e.to_string())?;
    let own: Vec<InterfaceAddress> = addresses
        .rows
        .iter()
        .filter_map(|r| r.get_str("address").and_then(|a| a.parse().ok()))
        .collect();
    let ipv6 = client
        .call(Command::new("/ipv6/address/print").proplist(["address", "interface"]))
        .await
        .map(|r| {
            r.rows
                .iter()
                .filter_map(|r| r.get_str("address").and_then(|a| a.parse().ok()))
                .collect::<Vec<InterfaceAddress>>()
        })
        .unwrap_or_default();
    let own: Vec<InterfaceAddress> = own.into_iter().chain(ipv6).collect();
    tracing::debug!(router = %name, addresses = own.len(), "router addresses guarded");
    events
        .send(Input::RouterAddresses {
            router: index,
            addresses: own,
        })
        .await
        .map_err(|_| "daemon stopping".to_owned())?;

    let input = &shared.config.input;
    let log = async {
        if input.api_log {
            follow_log(shared, client, events, cursor).await
        } else {
            std::future::pending().await
        }
    };
    let connections = async {
        if input.connections {
            poll_connections(shared, name, client, events).await
        } else {
            std::future::pending().await
        }
    };
    let resources = async {
        if input.resource {
            poll_resources(shared, client, events).await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        r = log => r,
        r = connections => r,
        r = resources => r,
    }
}

/// `name` equal to any of `values`, or-ed on the router (`?name=a ?name=b ?#|`); `None`
/// for no values (no filter).
pub(super) fn any_of(name: &str, values: &[String]) -> Option<Query> {
    let (first, rest) = values.split_first()?;
    let mut query = Query::new().eq(name, first);
    for value in rest {
        query = query.eq(name, value).or();
    }
    Some(query)
}

pub(super) async fn send(
    shared: &Shared,
    events: &EventSender,
    event: mtids_detect::Event<'static>,
    observed: Instant,
) -> Result<(), String> {
    send_at(events, timestamp(shared.now()), event, observed).await
}

/// [`send`] with the event's own time (a log line's, read back after a restart).
pub(super) async fn send_at(
    events: &EventSender,
    now: mtids_detect::Timestamp,
    event: mtids_detect::Event<'static>,
    observed: Instant,
) -> Result<(), String> {
    events
        .send(Input::Event {
            source: events.source(),
            now,
            event,
            observed,
        })
        .await
        .map_err(|_| "daemon stopping".to_owned())
}

/// What the asymmetric-connection detector (the only reader of connection samples) needs
/// from the table, so that the router sends nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectionFilter {
    /// Only rows with `orig-packets` above this...
    orig_packets_above: u64,
    /// ... and `repl-packets` at most this.
    repl_packets_at_most: u64,
}

impl ConnectionFilter {
    fn of(config: &mtids_detect::detectors::AsymmetricConnectionConfig) -> Self {
        ConnectionFilter {
            orig_packets_above: config.orig_packets_above,
            repl_packets_at_most: config.repl_packets_at_most,
        }
    }
}

/// The connection-table print of `menu` (`/ip` or `/ipv6`): the configured protocols,
/// or-ed on the router, and only the rows the asymmetric detector would fire on.
///
/// The cost of a poll to the router is what it sends: `.proplist` keeps each row to the
/// fields `parse_connection_row` needs for the detector (`.id`, protocol, endpoints,
/// packet counters; not `tcp-state`, `seen-reply`, `assured`, timeouts or byte counters),
/// and the query leaves out on the router every row the detector would drop at once
/// (`orig-packets <= N` or `repl-packets > M`): on a healthy router that is nearly all of
/// them. Source: MikroTik's API manual, "Queries" (`print` takes query words evaluated on
/// a stack, `?>name=x` "pushes 'true' if property name has value greater than x", `?<name=x`
/// less than, and an item matches when no `false` is left on the stack, so consecutive
/// words are and-ed): <https://help.mikrotik.com/docs/spaces/ROS/pages/47579160/API>,
/// <https://wiki.mikrotik.com/wiki/Manual:API#Queries>; also ROUTEROS.md
/// "Command sentences". The destination-port check stays here: RouterOS prints the port
/// inside `dst-address` (`ip:port`) on most versions, where a query cannot reach it.
fn connection_command(menu: &str, protocols: &[String], filter: ConnectionFilter) -> Command {
    let command = Command::new(format!("{menu}/firewall/connection/print")).proplist([
        ".id",
        "protocol",
        "src-address",
        "dst-address",
        "src-port",
        "dst-port",
        "orig-packets",
        "repl-packets",
    ]);
    let packets = |query: Query| {
        query
            .gt("orig-packets", filter.orig_packets_above.to_string())
            .lt(
                "repl-packets",
                filter.repl_packets_at_most.saturating_add(1).to_string(),
            )
    };
    let query = match any_of("protocol", protocols) {
        Some(query) => packets(query),
        None => packets(Query::new()),
    };
    command.query(query)
}

/// When the next connection poll of a router is due: polls come every
/// `input.connection_interval` while the table shows suspicious rows, and back off
/// (doubling, up to [`QUIET_BACKOFF`] times the interval) while it shows none, so a quiet
/// router is asked less often; the first suspicious row brings the interval back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PollPace {
    base: Duration,
    current: Duration,
}

/// How far a quiet router's connection polls back off: at most this many intervals apart.
const QUIET_BACKOFF: u32 = 4;

impl PollPace {
    fn new(base: Duration) -> Self {
        PollPace {
            base,
            current: base,
        }
    }

    /// The pause before the next poll, after a poll that returned `rows` suspicious rows.
    fn after(&mut self, rows: u64) -> Duration {
        self.current = if rows > 0 {
            self.base
        } else {
            (self.current * 2).min(self.base * QUIET_BACKOFF)
        };
        self.current
    }
}

/// Where in the interval `router`'s polls fall: a fixed offset from its name, so the polls
/// of many routers spread over the interval instead of all firing at once.
fn poll_phase(router: &str, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    router.hash(&mut h);
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(h.finish() % millis)
}

/// Polls the IPv4 connection table, and the IPv6 one with `input.connections_v6`. A
/// router without IPv6 refuses the `/ipv6` print with a trap: that poll is then left out
/// for the rest of the session, with one warning, and the connection stays up.
async fn poll_connections(
    shared: &Shared,
    router: &str,
    client: &Client,
    events: &EventSender,
) -> Result<(), String> {
    let input = &shared.config.input;
    let filter = ConnectionFilter::of(&shared.config.detection.asymmetric_connection);
    let mut pace = PollPace::new(input.connection_interval);
    let mut v6 = input.connections_v6;
    tokio::time::sleep(poll_phase(router, input.connection_interval)).await;
    loop {
        let command = connection_command("/ip", &input.connection_protocols, filter);
        let mut rows = match stream_connection_rows(shared, events, client, command).await? {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(%router, error = %e, "connection table poll refused");
                0
            }
        };
        if v6 {
            let command = connection_command("/ipv6", &input.connection_protocols, filter);
            match stream_connection_rows(shared, events, client, command).await? {
                Ok(n) => rows += n,
                Err(e) => {
                    tracing::warn!(%router, error = %e, "IPv6 connection table poll refused (no IPv6 on this router?): polling IPv4 only until the next reconnect");
                    v6 = false;
                }
            }
        }
        tokio::time::sleep(pace.after(rows)).await;
    }
}

/// Runs one connection-table print and turns its rows into events as they arrive (the
/// table is never held whole); unreadable rows are counted and skipped. `Ok(Ok(rows))`
/// with the rows read; `Ok(Err(trap))` when the router refused the print; `Err` when the
/// connection failed or the daemon stops.
async fn stream_connection_rows(
    shared: &Shared,
    events: &EventSender,
    client: &Client,
    command: Command,
) -> Result<Result<u64, ApiError>, String> {
    let observed = Instant::now();
    let mut stream = client.stream(command);
    let mut rows = 0;
    let mut trap = None;
    while let Some(item) = stream.next().await {
        let row = match item {
            Ok(row) => row,
            Err(e @ ApiError::Trap { .. }) => {
                trap.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        rows += 1;
        Stats::bump(&shared.stats.connection_rows);
        let fields = text_fields(&row);
        match parse_connection_row(fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))) {
            Ok(sample) => {
                let event = mtids_detect::Event::Connection(sample).into_owned();
                send(shared, events, event, observed).await?;
            }
            Err(e) => {
                Stats::bump(&shared.stats.malformed_rows);
                tracing::debug!(error = %e, "connection row skipped");
            }
        }
    }
    Ok(match trap {
        Some(e) => Err(e),
        None => Ok(rows),
    })
}

/// Polls `/system/resource` for the CPU detectors. (The reboot check is the engine's
/// liveness command.)
async fn poll_resources(
    shared: &Arc<Shared>,
    client: &Client,
    events: &EventSender,
) -> Result<(), String> {
    let mut interval = tokio::time::interval(shared.config.input.resource_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let rows = client
            .call(Command::new("/system/resource/print").proplist(["cpu-load", "uptime"]))
            .await
            .map_err(|e| e.to_string())?;
        let observed = Instant::now();
        for row in &rows.rows {
            Stats::bump(&shared.stats.resource_rows);
            let fields = text_fields(row);
            match parse_resource_row(fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))) {
                Ok(sample) => {
                    send(
                        shared,
                        events,
                        mtids_detect::Event::Resource(sample),
                        observed,
                    )
                    .await?;
                }
                Err(e) => {
                    Stats::bump(&shared.stats.malformed_rows);
                    tracing::debug!(error = %e, "resource row skipped");
                }
            }
        }
    }
}

/// A row's attributes as text for mtids-detect's row parsers: borrowed when they are
/// UTF-8 (the usual case), decoded lossily when a router sent other bytes.
fn text_fields(row: &Reply) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    row.attributes()
        .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queries(c: &Command) -> Vec<String> {
        c.queries()
            .map(|q| String::from_utf8_lossy(q).into_owned())
            .collect()
    }

    const FILTER: ConnectionFilter = ConnectionFilter {
        orig_packets_above: 3,
        repl_packets_at_most: 2,
    };

    #[test]
    fn the_connection_query_ors_the_protocols_and_keeps_only_suspicious_rows() {
        let c = connection_command("/ip", &["tcp".into(), "udp".into()], FILTER);
        assert_eq!(c.path(), b"/ip/firewall/connection/print");
        assert_eq!(
            queries(&c),
            [
                "?protocol=tcp",
                "?protocol=udp",
                "?#|",
                "?>orig-packets=3",
                "?<repl-packets=3"
            ]
        );
        assert_eq!(
            c.attribute(".proplist")
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            Some(
                ".id,protocol,src-address,dst-address,src-port,dst-port,orig-packets,repl-packets"
                    .to_owned()
            )
        );
        let c = connection_command("/ipv6", &["tcp".into()], FILTER);
        assert_eq!(c.path(), b"/ipv6/firewall/connection/print");
        assert_eq!(
            queries(&c),
            ["?protocol=tcp", "?>orig-packets=3", "?<repl-packets=3"]
        );
        assert_eq!(
            queries(&connection_command("/ip", &[], FILTER)),
            ["?>orig-packets=3", "?<repl-packets=3"]
        );
    }

    #[test]
    fn quiet_routers_are_polled_less_often_until_rows_come_back() {
        let base = Duration::from_secs(5);
        let mut pace = PollPace::new(base);
        assert_eq!(pace.after(0), base * 2);
        assert_eq!(pace.after(0), base * 4);
        assert_eq!(pace.after(0), base * 4, "backs off at most 4 intervals");
        assert_eq!(pace.after(1), base, "a suspicious row tightens at once");
        assert_eq!(pace.after(3), base);
    }

    #[test]
    fn poll_phases_spread_over_the_interval() {
        let interval = Duration::from_secs(5);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| poll_phase(&format!("r{i}"), interval))
            .collect();
        assert!(phases.iter().all(|p| *p < interval));
        assert_eq!(poll_phase("r1", interval), poll_phase("r1", interval));
        // No 150 ms slice holds more than a few percent of 1,000 routers.
        let mut slots = [0u32; 34];
        for p in &phases {
            slots[(p.as_millis() / 150) as usize] += 1;
        }
        assert!(slots.iter().all(|&n| n < 70), "{slots:?}");
    }

    /// The findings of the asymmetric detector over every row `command` returns, and
    /// what the router sent for it.
    async fn findings_of(
        router: &routeros_sim::Router,
        client: &Client,
        command: Command,
    ) -> (Vec<String>, routeros_sim::SentCount) {
        use mtids_detect::detectors::{AsymmetricConnectionConfig, AsymmetricConnectionDetector};
        router.reset_sent();
        let path = String::from_utf8_lossy(command.path()).into_owned();
        let rows = client.call(command).await.unwrap().rows;
        let sent = router.sent(&path);
        let mut detector =
            AsymmetricConnectionDetector::new(AsymmetricConnectionConfig::default()).unwrap();
        let mut findings = Vec::new();
        let now = mtids_detect::Timestamp::from_secs(1_700_000_000);
        for row in &rows {
            let fields = text_fields(row);
            let sample =
                parse_connection_row(fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))).unwrap();
            detector.observe_sample(now, &sample, &mut findings);
        }
        let mut out: Vec<String> = findings
            .iter()
            .map(|f| format!("{:?} {:?}", f.source, f.evidence))
            .collect();
        out.sort();
        (out, sent)
    }

    /// A 10,000-row table with an asymmetric flood among benign rows (and rows on each
    /// side of both thresholds): the filtered poll finds exactly what a plain `print` of
    /// the whole table finds, for a tenth of the bytes or less.
    #[tokio::test]
    async fn the_filtered_poll_finds_what_a_plain_print_finds_for_a_tenth_of_the_bytes() {
        use routeros_sim::{Connection, Router, RouterConfig, Server, ServerConfig};
        use std::net::SocketAddr;
        let router = Router::new(RouterConfig::default());
        let ep = |a: [u8; 4], port: u16| SocketAddr::from((a, port));
        let mut rows = Vec::new();
        for i in 0..9_800u32 {
            let [_, _, b, c] = i.to_be_bytes();
            let benign = Connection::tcp(ep([10, 0, b, c], 40_000), ep([93, 184, 0, 1], 443))
                .packets(12, 10);
            rows.push(if i % 2 == 0 {
                benign
            } else {
                Connection::udp(ep([10, 0, b, c], 50_000), ep([9, 9, 9, 9], 53))
            });
        }
        // The flood: 5 remote sources opening connections to port 443 nobody answers.
        for i in 0..190u16 {
            let src = ep([203, 0, 113, (i % 5) as u8 + 1], 10_000 + i);
            rows.push(Connection::tcp(src, ep([192, 0, 2, 1], 443)).packets(6, 0));
        }
        // On the thresholds (orig > 3, repl <= 2): fires, does not, does not, fires.
        rows.push(
            Connection::tcp(ep([198, 51, 100, 1], 1000), ep([192, 0, 2, 1], 80)).packets(4, 2),
        );
        rows.push(
            Connection::tcp(ep([198, 51, 100, 2], 1000), ep([192, 0, 2, 1], 80)).packets(3, 0),
        );
        rows.push(
            Connection::tcp(ep([198, 51, 100, 3], 1000), ep([192, 0, 2, 1], 80)).packets(9, 3),
        );
        rows.push(
            Connection::udp(ep([198, 51, 100, 4], 1000), ep([192, 0, 2, 1], 8443)).packets(40, 0),
        );
        // Suspicious counters on an unwatched port: returned by both, fires in neither.
        for i in 0..6u8 {
            rows.push(
                Connection::tcp(ep([198, 51, 100, 10 + i], 1000), ep([192, 0, 2, 1], 25))
                    .packets(9, 0),
            );
        }
        assert_eq!(rows.len(), 10_000);
        router.add_connections(rows);
        let server = Server::bind(
            router.clone(),
            ServerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let client = Client::connect(
            &ClientConfig::new(addr.ip().to_string(), "admin", "").port(addr.port()),
        )
        .await
        .unwrap();

        let plain = Command::new("/ip/firewall/connection/print");
        let (all, plain_sent) = findings_of(&router, &client, plain).await;
        let filtered = connection_command("/ip", &["tcp".into(), "udp".into()], FILTER);
        let (some, filtered_sent) = findings_of(&router, &client, filtered).await;
        assert_eq!(
            all.len(),
            7,
            "5 flood sources and 2 on the thresholds: {all:#?}"
        );
        assert_eq!(all, some, "same findings both ways");
        assert_eq!(plain_sent.sentences, 10_001);
        // 190 flood rows, 2 on the thresholds, 6 on port 25, and the `!done`.
        assert_eq!(filtered_sent.sentences, 199, "only the suspicious rows");
        eprintln!(
            "10,000 rows: plain print {} sentences {} B, filtered {} sentences {} B",
            plain_sent.sentences, plain_sent.bytes, filtered_sent.sentences, filtered_sent.bytes
        );
        assert!(
            plain_sent.bytes >= 10 * filtered_sent.bytes,
            "plain {} B, filtered {} B",
            plain_sent.bytes,
            filtered_sent.bytes
        );
    }
}
