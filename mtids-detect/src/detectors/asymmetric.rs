//! [`AsymmetricConnectionDetector`]: connections that send but are (almost) never answered.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use super::table::SourceTable;
use crate::config::{ConfigError, check_range, check_window};
use crate::detector::Detector;
use crate::finding::{Evidence, FindingKind, Severity, Source, normalize_ip};
use crate::guard::{InterfaceAddress, IpPrefix};
use crate::{ConnectionSample, Event, Finding, Protocol, Timestamp};

/// Which endpoint of an asymmetric connection a finding names (and so which gets banned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockSide {
    /// The endpoint outside the local networks (default). When both are outside (transit
    /// traffic) the source; when both are local, no finding: never block inside.
    #[default]
    Remote,
    /// Always the side that opened the connection.
    Source,
    /// Always the side it was opened to.
    Destination,
}

/// Settings of the asymmetric-connection detector, the `[asymmetric_connection]` table.
/// The defaults are the seed script's (`cfgMinOrigPackets 3`, `cfgMaxReplPackets 2`,
/// `cfgMonitoredPorts {443; 80; 8443}`, `cfgProtocols {"tcp"; "udp"}`,
/// `cfgMaxConnPerCycle 50`): a TLS or HTTP client that sent more than three packets and
/// got at most two back is talking to something that does not answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsymmetricConnectionConfig {
    /// Run this detector. Default `true`.
    pub enabled: bool,
    /// Fire when `orig-packets` is above this. Default 3.
    pub orig_packets_above: u64,
    /// ... and `repl-packets` is at most this. Default 2.
    pub repl_packets_at_most: u64,
    /// Destination ports watched. Default `[443, 80, 8443]`.
    pub ports: Vec<u16>,
    /// Protocols watched, by RouterOS name. Default `["tcp", "udp"]`.
    pub protocols: Vec<String>,
    /// Which endpoint to name. Default `remote`.
    pub block: BlockSide,
    /// Networks that count as local for `block = "remote"`, in addition to the router's
    /// own networks (set at run time). Default empty; while no local network is known at
    /// all, private and loopback ranges count as local.
    pub local_networks: Vec<IpPrefix>,
    /// Most findings per poll of the connection table (samples observed with the same
    /// `now` form one poll). Default 50, the seed's per-cycle cap: a burst of spoofed
    /// half-open connections cannot turn into thousands of findings at once.
    pub max_findings_per_poll: u32,
    /// A connection that fired is remembered (and does not fire again) until it has not
    /// been seen for this long. Default 600 s: longer than RouterOS keeps an unanswered
    /// TCP or UDP entry, so one stuck connection fires once.
    pub remember_secs: u64,
    /// Most connections remembered at once. Default 65 536.
    pub max_connections: usize,
}

impl Default for AsymmetricConnectionConfig {
    fn default() -> Self {
        AsymmetricConnectionConfig {
            enabled: true,
            orig_packets_above: 3,
            repl_packets_at_most: 2,
            ports: vec![443, 80, 8443],
            protocols: vec!["tcp".into(), "udp".into()],
            block: BlockSide::Remote,
            local_networks: Vec::new(),
            max_findings_per_poll: 50,
            remember_secs: 600,
            max_connections: 65_536,
        }
    }
}

impl AsymmetricConnectionConfig {
    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.repl_packets_at_most >= self.orig_packets_above {
            return Err(ConfigError::invalid(
                "asymmetric_connection.repl_packets_at_most",
                "must be below orig_packets_above, or every quiet connection fires",
            ));
        }
        if self.ports.is_empty() {
            return Err(ConfigError::invalid(
                "asymmetric_connection.ports",
                "needs at least one port (set enabled = false to turn the detector off)",
            ));
        }
        self.parsed_protocols()?;
        check_range(
            "asymmetric_connection.max_findings_per_poll",
            self.max_findings_per_poll.into(),
            1,
            100_000,
        )?;
        check_window("asymmetric_connection.remember_secs", self.remember_secs)?;
        check_range(
            "asymmetric_connection.max_connections",
            self.max_connections as u64,
            1,
            1 << 24,
        )?;
        Ok(())
    }

    fn parsed_protocols(&self) -> Result<Vec<Protocol>, ConfigError> {
        if self.protocols.is_empty() {
            return Err(ConfigError::invalid(
                "asymmetric_connection.protocols",
                "needs at least one protocol (e.g. \"tcp\")",
            ));
        }
        self.protocols
            .iter()
            .enumerate()
            .map(|(i, name)| match Protocol::from_name(name) {
                Protocol::Unknown => Err(ConfigError::invalid(
                    format!("asymmetric_connection.protocols[{i}]"),
                    format!(
                        "unknown protocol `{name}` (use tcp, udp, or a RouterOS name or number)"
                    ),
                )),
                p => Ok(p),
            })
            .collect()
    }
}

/// The name findings of this detector carry.
pub const ASYMMETRIC_CONNECTION: &str = "asymmetric_connection";

/// Detects asymmetric connections in connection-table samples.
///
/// A sample fires when its protocol and destination port are watched,
/// `orig-packets > orig_packets_above` and `repl-packets <= repl_packets_at_most`. Samples
/// observed with the same `now` are one poll: at most `max_findings_per_poll` findings per
/// poll, and at most one per target per poll. A connection that fired (identified by its
/// `.id`, protocol and both endpoints) is remembered while it keeps being seen, so the next
/// poll does not fire it again; it is forgotten `remember_secs` after it was last seen.
/// Findings past the per-poll cap are counted in [`AsymmetricConnectionDetector::capped`].
///
/// Memory: about 100 bytes per remembered connection; no per-source state.
pub struct AsymmetricConnectionDetector {
    config: AsymmetricConnectionConfig,
    protocols: Vec<Protocol>,
    local: Vec<IpPrefix>,
    remembered: SourceTable<u64, ()>,
    poll: Option<Timestamp>,
    poll_targets: Vec<IpAddr>,
    capped: u64,
}

impl std::fmt::Debug for AsymmetricConnectionDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsymmetricConnectionDetector")
            .field("config", &self.config)
            .field("remembered", &self.remembered.len())
            .finish()
    }
}

impl AsymmetricConnectionDetector {
    /// A detector with validated settings.
    pub fn new(config: AsymmetricConnectionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(AsymmetricConnectionDetector {
            protocols: config.parsed_protocols()?,
            local: config.local_networks.clone(),
            remembered: SourceTable::new(config.max_connections),
            poll: None,
            poll_targets: Vec::new(),
            capped: 0,
            config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &AsymmetricConnectionConfig {
        &self.config
    }

    /// Findings not emitted because a poll had reached `max_findings_per_poll`.
    pub fn capped(&self) -> u64 {
        self.capped
    }

    /// Sets the router's interface addresses: their networks (and the addresses) count as
    /// local, with the configured `local_networks`.
    pub fn set_router_addresses(&mut self, addresses: &[InterfaceAddress]) {
        self.local = self.config.local_networks.clone();
        for a in addresses {
            self.local.push(a.network);
            self.local.push(IpPrefix::host(a.address));
        }
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        if self.local.is_empty() {
            return match normalize_ip(ip) {
                IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
                IpAddr::V6(v6) => {
                    v6.is_loopback()
                        || (v6.segments()[0] & 0xfe00) == 0xfc00
                        || v6.is_unicast_link_local()
                }
            };
        }
        self.local.iter().any(|p| p.contains(ip))
    }

    fn target(&self, src: IpAddr, dst: IpAddr) -> Option<IpAddr> {
        match self.config.block {
            BlockSide::Source => Some(src),
            BlockSide::Destination => Some(dst),
            BlockSide::Remote => match (self.is_local(src), self.is_local(dst)) {
                (true, true) => None,
                (true, false) => Some(dst),
                (false, _) => Some(src),
            },
        }
    }

    /// Checks one connection-table row of the poll taken at `now`.
    pub fn observe_sample(
        &mut self,
        now: Timestamp,
        sample: &ConnectionSample<'_>,
        findings: &mut Vec<Finding>,
    ) {
        if self.poll != Some(now) {
            self.poll = Some(now);
            self.poll_targets.clear();
        }
        if sample.orig_packets <= self.config.orig_packets_above
            || sample.repl_packets > self.config.repl_packets_at_most
            || !self.protocols.contains(&sample.protocol)
            || !sample
                .dst
                .port
                .is_some_and(|p| self.config.ports.contains(&p))
        {
            return;
        }
        let mut h = std::hash::DefaultHasher::new();
        sample.id.as_deref().hash(&mut h);
        sample.protocol.hash(&mut h);
        sample.src.hash(&mut h);
        sample.dst.hash(&mut h);
        let key = h.finish();
        let mut fresh = false;
        self.remembered.touch(key, now, || fresh = true);
        if !fresh {
            return;
        }
        let (src, dst) = (normalize_ip(sample.src.ip), normalize_ip(sample.dst.ip));
        let Some(target) = self.target(src, dst) else {
            return;
        };
        if self.poll_targets.contains(&target) {
            return;
        }
        if self.poll_targets.len() >= self.config.max_findings_per_poll as usize {
            self.capped += 1;
            // Not reported: let a later poll fire it once the burst is over.
            self.remembered.remove(&key);
            return;
        }
        self.poll_targets.push(target);
        let mut evidence = Evidence {
            count: sample.orig_packets,
            threshold: self.config.orig_packets_above.saturating_add(1),
            first_seen: now,
            last_seen: now,
            ports: sample.dst.port.into_iter().collect(),
            destinations: vec![dst],
            ..Evidence::default()
        };
        Evidence::push_text(
            &mut evidence.samples,
            &format!(
                "{} {}->{} orig-packets={} repl-packets={}{}",
                sample.protocol,
                sample.src,
                sample.dst,
                sample.orig_packets,
                sample.repl_packets,
                sample
                    .id
                    .as_deref()
                    .map(|id| format!(" .id={id}"))
                    .unwrap_or_default()
            ),
        );
        findings.push(Finding {
            time: now,
            detector: ASYMMETRIC_CONNECTION,
            kind: FindingKind::AsymmetricConnection,
            severity: Severity::Low,
            source: Source::Ip(target),
            evidence,
        });
    }
}

impl Detector for AsymmetricConnectionDetector {
    fn name(&self) -> &'static str {
        ASYMMETRIC_CONNECTION
    }

    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        if let Event::Connection(sample) = event {
            self.observe_sample(now, sample, findings);
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.remembered
            .oldest()
            .map(|t| t + Duration::from_secs(self.config.remember_secs))
    }

    fn handle_timeout(&mut self, now: Timestamp, _findings: &mut Vec<Finding>) {
        self.remembered
            .expire(now - Duration::from_secs(self.config.remember_secs));
    }

    fn tracked_sources(&self) -> usize {
        self.remembered.len()
    }
}
