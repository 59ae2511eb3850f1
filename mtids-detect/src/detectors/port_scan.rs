//! [`PortScanDetector`]: many destination ports (or one port on many hosts) from one
//! source, from firewall log rows.

use std::net::IpAddr;
use std::time::Duration;

use super::table::{SourceTable, Window};
use crate::config::{ConfigError, check_range, check_window};
use crate::detector::{Detector, Progress};
use crate::finding::{Evidence, FindingKind, MAX_EVIDENCE_ITEMS, Severity, Source, normalize_ip};
use crate::{Event, Finding, FirewallLog, Protocol, Timestamp};

/// Settings of the port-scan detector, the `[port_scan]` table.
///
/// The default is a plain distinct-port count (every port weighs 1, fire at 15 within
/// 5 minutes). For RouterOS's `psd=21,3s,3,1` set `threshold = 21`, `low_port_weight = 3`,
/// `high_port_weight = 1`, `chain_gap_secs = 3`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortScanConfig {
    /// Run this detector. Default `true`.
    pub enabled: bool,
    /// Ports (and hosts) count while they were hit less than this long ago. Default 300 s,
    /// Zeek's 5 minutes: long enough for nmap's slower timing templates, while a user who
    /// reaches 15 distinct ports of one router in 5 minutes is not a user.
    pub window_secs: u64,
    /// Fire when the weighted count of distinct destination ports reaches this. Default
    /// 15, as Zeek and CrowdSec's MikroTik scenario (CrowdSec fires one port later).
    pub threshold: u32,
    /// Weight of a destination port <= 1024. Default 1 (a plain count); psd uses 3 because
    /// scanners go for the well-known ports first.
    pub low_port_weight: u32,
    /// Weight of a destination port > 1024. Default 1.
    pub high_port_weight: u32,
    /// psd-style chain: when a source is silent this long, its count starts again. Default
    /// 0 (off: only the window applies); psd uses 3 s.
    pub chain_gap_secs: u64,
    /// Host-sweep mode: fire when one source hits the same destination port on this many
    /// distinct hosts within the window. Default 25, Zeek's host-scan threshold; 0 turns it
    /// off. It only sees anything when the logging rule covers forwarded traffic.
    pub sweep_hosts: u32,
    /// Count only connection attempts: a TCP row must be a SYN without ACK, and a row that
    /// logs its connection state must be `new`, `invalid` or `untracked`. Default `true`:
    /// the replies of an allowed connection carry the client's ephemeral port as their
    /// destination, so with a rule that logs both directions every busy server would look
    /// like a scanner.
    pub attempts_only: bool,
    /// Ignore UDP from source port 443 to a port >= 1024: answers of QUIC servers to
    /// connections the router forgot (after a connection-tracking flush RouterOS logs them
    /// as `connection-state:new`, ROUTEROS.md §5), not probes. Default `true`. A scanner
    /// that sends UDP from source port 443 to high ports is not counted either; turn this
    /// off where that matters more than the false alarms.
    pub ignore_quic_answers: bool,
    /// Count only rows whose log prefix is one of these (case-sensitive, trimmed). Default
    /// empty: every row, since a router usually logs only what it wants checked.
    pub log_prefixes: Vec<String>,
    /// Count only rows of these chains (`input`, `forward`, ...). Default empty: all.
    pub chains: Vec<String>,
    /// Most sources tracked at once; past it the least recently seen is forgotten.
    /// Default 65 536: a busy edge router's worth of scanners in a few MiB.
    pub max_sources: usize,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        PortScanConfig {
            enabled: true,
            window_secs: 300,
            threshold: 15,
            low_port_weight: 1,
            high_port_weight: 1,
            chain_gap_secs: 0,
            sweep_hosts: 25,
            attempts_only: true,
            ignore_quic_answers: true,
            log_prefixes: Vec::new(),
            chains: Vec::new(),
            max_sources: 65_536,
        }
    }
}

impl PortScanConfig {
    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_window("port_scan.window_secs", self.window_secs)?;
        check_range("port_scan.threshold", self.threshold.into(), 2, 1024)?;
        check_range(
            "port_scan.low_port_weight",
            self.low_port_weight.into(),
            1,
            100,
        )?;
        check_range(
            "port_scan.high_port_weight",
            self.high_port_weight.into(),
            1,
            100,
        )?;
        if self.chain_gap_secs > self.window_secs {
            return Err(ConfigError::invalid(
                "port_scan.chain_gap_secs",
                "must not be longer than port_scan.window_secs (0 turns it off)",
            ));
        }
        if self.sweep_hosts == 1 || self.sweep_hosts > 1024 {
            return Err(ConfigError::invalid(
                "port_scan.sweep_hosts",
                format!(
                    "must be 0 (off) or between 2 and 1024, got {}",
                    self.sweep_hosts
                ),
            ));
        }
        check_range("port_scan.max_sources", self.max_sources as u64, 1, 1 << 24)?;
        Ok(())
    }
}

/// Per-source state: 48 bytes plus 8 heap bytes per distinct port in the window.
#[derive(Debug, Default)]
struct PortState {
    ports: Window,
    /// The only destination seen so far (fingerprint), until `multi_dst`.
    first_dst: u32,
    /// Whether the source has hit more than one destination: only then does it get
    /// host-sweep state, so a flood of sources hitting the router costs one entry each.
    multi_dst: bool,
}

/// Detects port scans and host sweeps in firewall log rows.
///
/// A source's distinct destination ports are kept with the time each was last hit; an
/// event counts while it is less than `window_secs` old (exactly `window_secs` later it has
/// left the window). When the weighted count reaches the threshold the detector fires once
/// and starts counting again from zero, so a scan that goes on fires again after another
/// full threshold (the policy does not ban twice). Rows without a destination port (ICMP)
/// are ignored.
///
/// Host sweeps: once a source has hit two destinations, every (source, port) pair keeps the
/// distinct destinations (IPv4 exactly, IPv6 as a 32-bit fingerprint, which can only
/// undercount) and fires at `sweep_hosts`.
///
/// Memory per tracked source: table overhead (about 100 bytes), 48 bytes of state, and 8
/// bytes per distinct port in the window; sweep state only for multi-destination sources.
pub struct PortScanDetector {
    config: PortScanConfig,
    window_ms: u64,
    sources: SourceTable<IpAddr, PortState>,
    sweeps: SourceTable<(IpAddr, u16), Window>,
}

impl std::fmt::Debug for PortScanDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortScanDetector")
            .field("config", &self.config)
            .field("sources", &self.sources.len())
            .field("sweeps", &self.sweeps.len())
            .finish()
    }
}

/// The name findings of this detector carry.
pub const PORT_SCAN: &str = "port_scan";

impl PortScanDetector {
    /// A detector with validated settings.
    pub fn new(config: PortScanConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(PortScanDetector {
            window_ms: config.window_secs.saturating_mul(1000),
            sources: SourceTable::new(config.max_sources),
            sweeps: SourceTable::new(config.max_sources),
            config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &PortScanConfig {
        &self.config
    }

    /// Sources evicted because the table was full, since creation.
    pub fn evicted(&self) -> u64 {
        self.sources.evicted() + self.sweeps.evicted()
    }

    /// Where `src` stands: its weighted count of distinct ports in the window as of its
    /// last packet (see [`crate::DetectorSet::progress`]).
    pub fn progress(&self, src: IpAddr) -> Progress {
        let (low, high) = (self.config.low_port_weight, self.config.high_port_weight);
        let count: u32 = self.sources.get(&normalize_ip(src)).map_or(0, |state| {
            state
                .ports
                .entries()
                .iter()
                .map(|e| if e.key <= 1024 { low } else { high })
                .sum()
        });
        Progress {
            detector: PORT_SCAN,
            measure: "weighted distinct ports",
            count: u64::from(count),
            threshold: u64::from(self.config.threshold),
            window: Duration::from_millis(self.window_ms),
        }
    }

    /// Whether a firewall row passes the `chains` and `log_prefixes` filters.
    pub(crate) fn accepts(&self, row: &FirewallLog<'_>) -> bool {
        if self.config.ignore_quic_answers && is_quic_answer(row) {
            return false;
        }
        if self.config.attempts_only && !is_attempt(row) {
            return false;
        }
        if !self.config.chains.is_empty() && !self.config.chains.iter().any(|c| c == &row.chain) {
            return false;
        }
        if self.config.log_prefixes.is_empty() {
            return true;
        }
        let prefix = row.prefix.as_deref().map_or("", str::trim);
        self.config.log_prefixes.iter().any(|p| p.trim() == prefix)
    }

    /// Counts one packet from `src` to `dst:port` seen at `now`.
    pub fn observe_packet(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        port: u16,
        findings: &mut Vec<Finding>,
    ) {
        let src = normalize_ip(src);
        let dst_fp = fingerprint(normalize_ip(dst));
        let window_ms = self.window_ms;
        let gap_ms = self.config.chain_gap_secs.saturating_mul(1000);
        let (low, high) = (self.config.low_port_weight, self.config.high_port_weight);
        let threshold = self.config.threshold;
        let sweep_on = self.config.sweep_hosts > 0;

        let state = self.sources.touch(src, now, || PortState {
            ports: Window::default(),
            first_dst: dst_fp,
            multi_dst: false,
        });
        if gap_ms > 0 {
            let last = state
                .ports
                .entries()
                .iter()
                .map(|e| state.ports.time_of(e))
                .max();
            if last.is_some_and(|last| now.as_millis().saturating_sub(last.as_millis()) >= gap_ms) {
                state.ports.clear();
            }
        }
        state.ports.expire(now, window_ms);

        // The first time a second destination shows up, seed the sweep state with what the
        // port window knows about the first one (every earlier event went there).
        let mut seed: Vec<(u16, Timestamp)> = Vec::new();
        if sweep_on && !state.multi_dst && !state.ports.is_empty() && state.first_dst != dst_fp {
            state.multi_dst = true;
            seed.extend(
                state
                    .ports
                    .entries()
                    .iter()
                    .map(|e| (e.key as u16, state.ports.time_of(e))),
            );
        } else if sweep_on && state.ports.is_empty() && !state.multi_dst {
            state.first_dst = dst_fp;
        }
        let multi_dst = state.multi_dst;

        state.ports.insert_distinct(now, u32::from(port));
        let score: u32 = state
            .ports
            .entries()
            .iter()
            .map(|e| if e.key <= 1024 { low } else { high })
            .sum();
        if score >= threshold {
            let mut ports: Vec<u16> = state.ports.entries().iter().map(|e| e.key as u16).collect();
            ports.sort_unstable();
            ports.truncate(MAX_EVIDENCE_ITEMS);
            let evidence = Evidence {
                count: u64::from(score),
                threshold: u64::from(threshold),
                window: Duration::from_millis(window_ms),
                first_seen: state.ports.first_time().unwrap_or(now),
                last_seen: now,
                ports,
                destinations: vec![dst],
                samples: vec![format!("{src} -> {dst}:{port}")],
                ..Evidence::default()
            };
            state.ports.clear();
            findings.push(Finding {
                time: now,
                detector: PORT_SCAN,
                kind: FindingKind::PortScan,
                severity: Severity::Medium,
                source: Source::Ip(src),
                evidence,
            });
        }

        if multi_dst {
            let first_dst = self.first_dst_of(src);
            for (p, at) in seed {
                self.sweep_hit(at, src, first_dst, None, p, findings);
            }
            self.sweep_hit(now, src, dst_fp, Some(dst), port, findings);
        }
    }

    fn first_dst_of(&mut self, src: IpAddr) -> u32 {
        self.sources.get_mut(&src).map_or(0, |s| s.first_dst)
    }

    fn sweep_hit(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        dst_fp: u32,
        dst: Option<IpAddr>,
        port: u16,
        findings: &mut Vec<Finding>,
    ) {
        let hosts = self.config.sweep_hosts as usize;
        let window_ms = self.window_ms;
        let w = self.sweeps.touch((src, port), now, Window::default);
        w.expire(now, window_ms);
        w.insert_distinct(now, dst_fp);
        if w.len() >= hosts {
            let destinations: Vec<IpAddr> = if src.is_ipv4() {
                w.entries()
                    .iter()
                    .take(MAX_EVIDENCE_ITEMS)
                    .map(|e| IpAddr::V4(e.key.into()))
                    .collect()
            } else {
                dst.into_iter().collect()
            };
            let evidence = Evidence {
                count: w.len() as u64,
                threshold: hosts as u64,
                window: Duration::from_millis(window_ms),
                first_seen: w.first_time().unwrap_or(now),
                last_seen: now,
                ports: vec![port],
                destinations,
                samples: dst
                    .map(|d| format!("{src} -> {d}:{port}"))
                    .into_iter()
                    .collect(),
                ..Evidence::default()
            };
            w.clear();
            findings.push(Finding {
                time: now,
                detector: PORT_SCAN,
                kind: FindingKind::HostSweep,
                severity: Severity::Medium,
                source: Source::Ip(src),
                evidence,
            });
        }
    }

    /// Approximate bytes held, for monitoring (the bench measures the real figure).
    pub fn memory_bytes(&self) -> usize {
        let ports: usize = self.sources.iter().map(|(_, s)| s.ports.heap_bytes()).sum();
        let sweeps: usize = self.sweeps.iter().map(|(_, w)| w.heap_bytes()).sum();
        ports + sweeps + (self.sources.len() + self.sweeps.len()) * 100
    }
}

/// UDP from port 443 to an ephemeral port: a QUIC server answering (see
/// [`PortScanConfig::ignore_quic_answers`]).
fn is_quic_answer(row: &FirewallLog<'_>) -> bool {
    row.protocol == Protocol::Udp
        && row.src.port == Some(443)
        && row.dst.port.is_some_and(|p| p >= 1024)
}

/// Whether a logged packet opens a connection (see [`PortScanConfig::attempts_only`]).
fn is_attempt(row: &FirewallLog<'_>) -> bool {
    if row.protocol == Protocol::Tcp && !row.tcp_flags.is_empty() && !row.tcp_flags.is_syn_only() {
        return false;
    }
    match row.connection_state.as_deref() {
        None | Some("new" | "invalid" | "untracked") => true,
        Some(_) => false,
    }
}

/// A 32-bit key for a destination: the IPv4 address itself, or a mix of an IPv6 address.
fn fingerprint(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            let folded = (x as u64) ^ ((x >> 64) as u64).rotate_left(29);
            (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
        }
    }
}

impl Detector for PortScanDetector {
    fn name(&self) -> &'static str {
        PORT_SCAN
    }

    fn observe(&mut self, now: Timestamp, event: &Event<'_>, findings: &mut Vec<Finding>) {
        let Event::Firewall(row) = event else {
            return;
        };
        let Some(port) = row.dst.port else {
            return;
        };
        if !self.accepts(row) {
            return;
        }
        self.observe_packet(now, row.src.ip, row.dst.ip, port, findings);
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let window = Duration::from_millis(self.window_ms);
        [self.sources.oldest(), self.sweeps.oldest()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t + window)
    }

    fn handle_timeout(&mut self, now: Timestamp, _findings: &mut Vec<Finding>) {
        // A source last seen a full window ago has nothing left in its window.
        let cutoff = now - Duration::from_millis(self.window_ms);
        self.sources.expire(cutoff);
        self.sweeps.expire(cutoff);
    }

    fn tracked_sources(&self) -> usize {
        self.sources.len() + self.sweeps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_log_row;

    /// UDP answers of a QUIC server to 16 high ports of one client after a conntrack flush
    /// (the shape of ROUTEROS.md §5), then the same from port 4433.
    fn answers(src_port: u16) -> Vec<String> {
        (0..16)
            .map(|i| {
                format!(
                    "input: in:ether1 out:(unknown 0), connection-state:new src-mac 02:00:00:00:00:01, proto UDP, 203.0.113.5:{src_port}->192.0.2.1:{}, len 1252",
                    50_000 + i
                )
            })
            .collect()
    }

    fn findings(config: PortScanConfig, lines: &[String]) -> usize {
        let mut d = PortScanDetector::new(config).unwrap();
        let mut findings = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let e = parse_log_row("firewall,info", line);
            assert!(matches!(e, Event::Firewall(_)), "{line}");
            d.observe(Timestamp::from_secs(i as u64), &e, &mut findings);
        }
        findings.len()
    }

    #[test]
    fn quic_answers_are_not_a_scan_unless_asked() {
        assert_eq!(findings(PortScanConfig::default(), &answers(443)), 0);
        assert_eq!(findings(PortScanConfig::default(), &answers(4433)), 1);
        let counted = PortScanConfig {
            ignore_quic_answers: false,
            ..PortScanConfig::default()
        };
        assert_eq!(findings(counted, &answers(443)), 1);
    }
}
