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
    let now = timestamp(shared.now());
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

/// The connection-table print of `menu` (`/ip` or `/ipv6`): the configured protocols,
/// or-ed on the router.
fn connection_command(menu: &str, protocols: &[String]) -> Command {
    let command = Command::new(format!("{menu}/firewall/connection/print")).proplist([
        ".id",
        "protocol",
        "src-address",
        "dst-address",
        "src-port",
        "dst-port",
        "orig-packets",
        "repl-packets",
        "tcp-state",
        "seen-reply",
        "assured",
    ]);
    match any_of("protocol", protocols) {
        Some(query) => command.query(query),
        None => command,
    }
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
    let mut interval = tokio::time::interval(input.connection_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut v6 = input.connections_v6;
    loop {
        interval.tick().await;
        let command = connection_command("/ip", &input.connection_protocols);
        match client.call(command).await {
            Ok(r) => send_connection_rows(shared, events, &r.rows).await?,
            Err(e @ ApiError::Trap { .. }) => {
                tracing::warn!(%router, error = %e, "connection table poll refused");
            }
            Err(e) => return Err(e.to_string()),
        }
        if !v6 {
            continue;
        }
        let command = connection_command("/ipv6", &input.connection_protocols);
        match client.call(command).await {
            Ok(r) => send_connection_rows(shared, events, &r.rows).await?,
            Err(e @ ApiError::Trap { .. }) => {
                tracing::warn!(%router, error = %e, "IPv6 connection table poll refused (no IPv6 on this router?): polling IPv4 only until the next reconnect");
                v6 = false;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Turns connection-table rows into events; unreadable rows are counted and skipped.
async fn send_connection_rows(
    shared: &Shared,
    events: &EventSender,
    rows: &[Reply],
) -> Result<(), String> {
    let observed = Instant::now();
    for row in rows {
        Stats::bump(&shared.stats.connection_rows);
        let fields = text_fields(row);
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
    Ok(())
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

    #[test]
    fn the_connection_query_ors_the_protocols() {
        let c = connection_command("/ip", &["tcp".into(), "udp".into()]);
        assert_eq!(c.path(), b"/ip/firewall/connection/print");
        assert_eq!(queries(&c), ["?protocol=tcp", "?protocol=udp", "?#|"]);
        assert_eq!(
            c.attribute(".proplist")
                .map(|p| p.starts_with(b".id,protocol")),
            Some(true)
        );
        let c = connection_command("/ipv6", &["tcp".into()]);
        assert_eq!(c.path(), b"/ipv6/firewall/connection/print");
        assert_eq!(queries(&c), ["?protocol=tcp"]);
        assert!(queries(&connection_command("/ip", &[])).is_empty());
    }
}
