//! Seeded traffic scenarios: benign background plus labelled attacks, written into the
//! router's log, connection table and CPU load the way a real router would show them.
//!
//! Every scenario is deterministic from its seed. Attackers use documentation ranges only
//! (198.51.100.0/24, 203.0.113.0/25, 2001:db8:bad::/48); benign Internet peers use
//! 203.0.113.128/25 and 2001:db8:cafe::/48; the router is 192.0.2.1 with LAN 10.0.0.0/24.
//! None of these is ever contacted: they are only written into log lines and tables.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::clock::ManualClock;
use crate::error::SimError;
use crate::logline::{self, FirewallLogLine, Service};
use crate::model::connection::Connection;
use crate::router::Router;

/// What kind of attack a labelled event sequence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttackKind {
    /// Fast TCP SYN scan of many ports.
    PortScan,
    /// A scan slow enough to slip under short windows.
    SlowScan,
    /// One port probed on many hosts.
    HostSweep,
    /// Repeated login failures on one service.
    BruteForce(Service),
    /// Many distinct user names tried from one source.
    UserEnumeration,
    /// Many connections to a monitored port with no reply traffic.
    AsymmetricFlood,
    /// A successful login followed by a CPU spike.
    LoginCpuSpike,
}

impl AttackKind {
    /// The detector expected to fire (`port-scan`, `brute-force`, `user-enumeration`,
    /// `asymmetric-connection`, `login-cpu-spike`).
    pub fn expected_detector(self) -> &'static str {
        match self {
            AttackKind::PortScan | AttackKind::SlowScan | AttackKind::HostSweep => "port-scan",
            AttackKind::BruteForce(_) => "brute-force",
            AttackKind::UserEnumeration => "user-enumeration",
            AttackKind::AsymmetricFlood => "asymmetric-connection",
            AttackKind::LoginCpuSpike => "login-cpu-spike",
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttackKind::PortScan => f.write_str("port-scan"),
            AttackKind::SlowScan => f.write_str("slow-scan"),
            AttackKind::HostSweep => f.write_str("host-sweep"),
            AttackKind::BruteForce(s) => write!(f, "{s}-brute-force"),
            AttackKind::UserEnumeration => f.write_str("user-enumeration"),
            AttackKind::AsymmetricFlood => f.write_str("asymmetric-flood"),
            AttackKind::LoginCpuSpike => f.write_str("login-cpu-spike"),
        }
    }
}

/// The ground truth for one attack in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroundTruth {
    /// The attacking address.
    pub attacker: IpAddr,
    /// What it does.
    pub kind: AttackKind,
    /// The detector that should catch it.
    pub expected_detector: &'static str,
    /// When the attack starts, from the scenario start.
    pub start: Duration,
    /// When its last event happens.
    pub end: Duration,
}

impl fmt::Display for GroundTruth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attacker={} kind={} detector={} start={}s end={}s",
            self.attacker,
            self.kind,
            self.expected_detector,
            self.start.as_secs(),
            self.end.as_secs()
        )
    }
}

/// One change a scenario makes to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Append a log entry.
    Log {
        /// Topics, e.g. `firewall,info`.
        topics: &'static str,
        /// The message, formatted as RouterOS writes it.
        message: String,
    },
    /// Add a tracked connection.
    Connection(Connection),
    /// Set `cpu-load`.
    CpuLoad(u8),
}

/// An event at an offset from the scenario start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEvent {
    /// Offset from the start.
    pub at: Duration,
    /// What happens.
    pub event: Event,
}

/// A generated scenario: events in time order and the ground truth of its attacks.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's name.
    pub name: String,
    /// The seed it was generated from.
    pub seed: u64,
    /// Events sorted by time.
    pub events: Vec<ScheduledEvent>,
    /// One label per attack (empty for `benign`).
    pub truth: Vec<GroundTruth>,
}

/// The scenarios [`Scenario::build`] knows.
pub const SCENARIOS: &[&str] = &[
    "benign",
    "port-scan",
    "slow-scan",
    "host-sweep",
    "ssh-brute-force",
    "ftp-brute-force",
    "winbox-brute-force",
    "api-brute-force",
    "user-enumeration",
    "asymmetric-flood",
    "login-cpu-spike",
    "ipv6-port-scan",
    "ipv6-brute-force",
    "mixed",
];

/// Length of the benign background in every scenario.
const BACKGROUND: Duration = Duration::from_secs(600);
/// When a single attack starts.
const ATTACK_START: Duration = Duration::from_secs(60);

/// SplitMix64: tiny, fast, and the same on every platform (scenarios must replay exactly).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn port(&mut self) -> u16 {
        49_152 + self.below(16_000) as u16
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max))
    }
}

struct Builder {
    rng: Rng,
    events: Vec<ScheduledEvent>,
    truth: Vec<GroundTruth>,
}

const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn lan(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, host))
}

fn benign_peer(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 128 | (host & 0x7F)))
}

fn sock(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

impl Builder {
    fn at(&mut self, at: Duration, event: Event) {
        self.events.push(ScheduledEvent { at, event });
    }

    fn log(&mut self, at: Duration, topics: &'static str, message: String) {
        self.at(at, Event::Log { topics, message });
    }

    fn label(&mut self, attacker: IpAddr, kind: AttackKind, start: Duration, end: Duration) {
        self.truth.push(GroundTruth {
            attacker,
            kind,
            expected_detector: kind.expected_detector(),
            start,
            end,
        });
    }

    /// Admin logins from the LAN, sometimes after one typo; DNS, NTP and HTTPS flows with
    /// normal replies; passive FTP with data connections on high ports; a busy CDN peer.
    fn background(&mut self) {
        let services = [Service::Winbox, Service::Ssh, Service::Web];
        let mut t = Duration::from_secs(5);
        while t < BACKGROUND {
            let via = services[self.rng.below(3) as usize];
            let from = lan(10 + self.rng.below(5) as u8);
            if self.rng.chance(15) {
                // A typo; now and then from MAC-winbox, which logs a MAC instead of an IP.
                let message = if via == Service::Winbox && self.rng.chance(30) {
                    logline::login_failure("admin", "00:0C:42:1F:2E:3D", via)
                } else {
                    logline::login_failure("admin", from, via)
                };
                self.log(t, logline::LOGIN_FAILURE_TOPICS, message);
                t += Duration::from_secs(3);
            }
            self.log(
                t,
                logline::ACCOUNT_TOPICS,
                logline::logged_in("admin", from, via),
            );
            let stay = Duration::from_secs(20 + self.rng.below(60));
            self.log(
                t + stay,
                logline::ACCOUNT_TOPICS,
                logline::logged_out("admin", from, via),
            );
            t += Duration::from_secs(60 + self.rng.below(60));
        }
        let mut t = Duration::ZERO;
        while t < BACKGROUND {
            let client = lan(20 + self.rng.below(30) as u8);
            let dns = sock(benign_peer(53), 53);
            let conn = Connection::udp(sock(client, self.rng.port()), dns)
                .packets(1, 1)
                .bytes(74, 190);
            self.at(t, Event::Connection(conn));
            if self.rng.chance(10) {
                let ntp =
                    Connection::udp(sock(client, 123), sock(benign_peer(123), 123)).bytes(76, 76);
                self.at(t, Event::Connection(ntp));
            }
            let https = Connection::tcp(
                sock(client, self.rng.port()),
                sock(benign_peer(self.rng.below(40) as u8), 443),
            )
            .packets(12 + self.rng.below(40), 10 + self.rng.below(60))
            .bytes(
                2_000 + self.rng.below(5_000),
                20_000 + self.rng.below(500_000),
            );
            self.at(t, Event::Connection(https));
            t += Duration::from_millis(500 + self.rng.below(1_500));
        }
        // Passive FTP: a control connection, then data connections to high server ports.
        let ftp_client = lan(30);
        let ftp_server = benign_peer(21);
        let mut t = Duration::from_secs(30);
        while t < BACKGROUND {
            let control = Connection::tcp(sock(ftp_client, self.rng.port()), sock(ftp_server, 21))
                .connection_type("ftp");
            self.at(t, Event::Connection(control));
            for i in 0..(3 + self.rng.below(5)) {
                let data = Connection::tcp(
                    sock(ftp_client, self.rng.port()),
                    sock(ftp_server, 50_000 + self.rng.below(100) as u16),
                )
                .bytes(300, 1_000_000 + self.rng.below(9_000_000));
                self.at(t + Duration::from_secs(i + 1), Event::Connection(data));
            }
            t += Duration::from_secs(90 + self.rng.below(60));
        }
        // A busy CDN peer: many clients, many connections, big replies.
        let cdn = benign_peer(100);
        let mut t = Duration::from_secs(2);
        while t < BACKGROUND {
            for _ in 0..(5 + self.rng.below(10)) {
                let c = Connection::tcp(
                    sock(lan(20 + self.rng.below(30) as u8), self.rng.port()),
                    sock(cdn, 443),
                )
                .packets(20, 80)
                .bytes(3_000, 400_000);
                self.at(t, Event::Connection(c));
            }
            t += Duration::from_secs(3 + self.rng.below(4));
        }
    }

    fn syn(&mut self, at: Duration, prefix: &str, src: SocketAddr, dst: SocketAddr) {
        let line = FirewallLogLine::tcp_syn(Some(prefix), src, dst);
        self.log(at, logline::FIREWALL_TOPICS, line.to_string());
        let conn = Connection::tcp(src, dst)
            .tcp_state("syn-sent")
            .packets(1, 0)
            .bytes(60, 0)
            .replied(false)
            .timeout(Duration::from_secs(5));
        self.at(at, Event::Connection(conn));
    }

    fn port_scan(
        &mut self,
        attacker: IpAddr,
        target: IpAddr,
        start: Duration,
        ports: u16,
        spacing_ms: u64,
        kind: AttackKind,
    ) {
        let mut t = start;
        let mut chosen: Vec<u16> = (1..=1024).collect();
        for i in 0..chosen.len() {
            let j = i + self.rng.below((chosen.len() - i) as u64) as usize;
            chosen.swap(i, j);
        }
        let src_port = self.rng.port();
        let mut last = t;
        for &port in chosen.iter().take(usize::from(ports)) {
            self.syn(
                t,
                "drop input",
                sock(attacker, src_port),
                sock(target, port),
            );
            last = t;
            t += Duration::from_millis(spacing_ms / 2 + self.rng.below(spacing_ms.max(1)));
        }
        self.label(attacker, kind, start, last);
    }

    fn host_sweep(&mut self, attacker: IpAddr, start: Duration) {
        let mut t = start;
        let mut last = t;
        for host in 2..=41u8 {
            let mut line = FirewallLogLine::tcp_syn(
                Some("sweep"),
                sock(attacker, self.rng.port()),
                sock(IpAddr::V4(Ipv4Addr::new(192, 0, 2, host)), 22),
            );
            line.chain = "forward".to_owned();
            line.out_interface = Some("bridge".to_owned());
            self.log(t, logline::FIREWALL_TOPICS, line.to_string());
            last = t;
            t += Duration::from_millis(100 + self.rng.below(400));
        }
        self.label(attacker, AttackKind::HostSweep, start, last);
    }

    fn brute_force(&mut self, attacker: IpAddr, via: Service, start: Duration) {
        let mut t = start;
        let mut last = t;
        let users = ["admin", "root"];
        for i in 0..30 {
            let user = users[i % 2];
            self.log(
                t,
                logline::LOGIN_FAILURE_TOPICS,
                logline::login_failure(user, attacker, via),
            );
            last = t;
            t += Duration::from_millis(1_000 + self.rng.below(4_000));
        }
        self.label(attacker, AttackKind::BruteForce(via), start, last);
    }

    fn user_enumeration(&mut self, attacker: IpAddr, start: Duration) {
        let mut t = start;
        let mut last = t;
        for user in [
            "admin",
            "root",
            "user",
            "test",
            "guest",
            "support",
            "oracle",
            "ubnt",
            "pi",
            "ftp",
            "mikrotik",
            "backup",
            "",
            "john smith",
        ] {
            self.log(
                t,
                logline::LOGIN_FAILURE_TOPICS,
                logline::login_failure(user, attacker, Service::Ssh),
            );
            last = t;
            t += Duration::from_millis(800 + self.rng.below(1_000));
        }
        self.label(attacker, AttackKind::UserEnumeration, start, last);
    }

    fn asymmetric_flood(&mut self, attacker: IpAddr, start: Duration) {
        let mut t = start;
        let mut last = t;
        for _ in 0..300 {
            let conn = Connection::tcp(
                sock(attacker, self.rng.port()),
                sock(IpAddr::V4(ROUTER), 8291),
            )
            .tcp_state("syn-sent")
            .packets(3 + self.rng.below(5), 0)
            .bytes(180 + self.rng.below(200), 0)
            .replied(false);
            self.at(t, Event::Connection(conn));
            last = t;
            t += self.rng.millis(100);
        }
        self.label(attacker, AttackKind::AsymmetricFlood, start, last);
    }

    fn login_cpu_spike(&mut self, attacker: IpAddr, start: Duration) {
        self.log(
            start,
            logline::ACCOUNT_TOPICS,
            logline::logged_in("admin", attacker, Service::Winbox),
        );
        let spike = start + Duration::from_secs(30);
        let mut t = spike;
        while t < spike + Duration::from_secs(120) {
            let load = 90 + self.rng.below(10) as u8;
            self.at(t, Event::CpuLoad(load));
            t += Duration::from_secs(5);
        }
        self.at(t, Event::CpuLoad(3));
        self.label(attacker, AttackKind::LoginCpuSpike, start, t);
    }

    fn attack(&mut self, name: &str, start: Duration) -> bool {
        let v4 = |last: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 100, last));
        let v4b = |last: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, last & 0x7F));
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, last));
        let router6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        match name {
            "port-scan" => self.port_scan(
                v4(23),
                IpAddr::V4(ROUTER),
                start,
                200,
                40,
                AttackKind::PortScan,
            ),
            "slow-scan" => self.port_scan(
                v4(45),
                IpAddr::V4(ROUTER),
                start,
                30,
                20_000,
                AttackKind::SlowScan,
            ),
            "host-sweep" => self.host_sweep(v4(61), start),
            "ssh-brute-force" => self.brute_force(v4b(11), Service::Ssh, start),
            "ftp-brute-force" => self.brute_force(v4b(12), Service::Ftp, start),
            "winbox-brute-force" => self.brute_force(v4b(13), Service::Winbox, start),
            "api-brute-force" => self.brute_force(v4b(14), Service::Api, start),
            "user-enumeration" => self.user_enumeration(v4(88), start),
            "asymmetric-flood" => self.asymmetric_flood(v4b(66), start),
            "login-cpu-spike" => self.login_cpu_spike(v4(99), start),
            "ipv6-port-scan" => {
                self.port_scan(v6(0x23), router6, start, 200, 40, AttackKind::PortScan)
            }
            "ipv6-brute-force" => self.brute_force(v6(0x99), Service::Ssh, start),
            _ => return false,
        }
        true
    }
}

/// FNV-1a, to mix the scenario name into the seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Scenario {
    /// Generates scenario `name` (one of [`SCENARIOS`]) from `seed`.
    pub fn build(name: &str, seed: u64) -> Result<Self, SimError> {
        let mut b = Builder {
            rng: Rng(seed ^ name_hash(name)),
            events: Vec::new(),
            truth: Vec::new(),
        };
        b.background();
        match name {
            "benign" => {}
            "mixed" => {
                let attacks = &SCENARIOS[1..SCENARIOS.len() - 1];
                for (i, attack) in attacks.iter().enumerate() {
                    let start = ATTACK_START + Duration::from_secs(40 * i as u64);
                    b.attack(attack, start);
                }
            }
            other => {
                if !b.attack(other, ATTACK_START) {
                    return Err(SimError::UnknownScenario {
                        name: other.to_owned(),
                        known: SCENARIOS.join(", "),
                    });
                }
            }
        }
        // Stable sort: events at the same instant keep their generation order.
        b.events.sort_by_key(|e| e.at);
        Ok(Self {
            name: name.to_owned(),
            seed,
            events: b.events,
            truth: b.truth,
        })
    }

    /// Offset of the last event.
    pub fn duration(&self) -> Duration {
        self.events.last().map_or(Duration::ZERO, |e| e.at)
    }

    /// Applies one event to the router.
    pub fn apply(router: &Router, event: &Event) {
        match event {
            Event::Log { topics, message } => {
                router.log(topics, message);
            }
            Event::Connection(c) => {
                router.add_connection(c.clone());
            }
            Event::CpuLoad(p) => router.set_cpu_load(*p),
        }
    }

    /// Plays the scenario at once on a router whose clock is `clock`, moving the clock to
    /// each event's time first (deterministic, no waiting: for tests).
    pub fn run_instant(&self, router: &Router, clock: &ManualClock) {
        let start = crate::clock::Clock::now(clock);
        for e in &self.events {
            clock.set(start + e.at);
            Self::apply(router, &e.event);
        }
    }

    /// Plays the scenario in real time divided by `speed` (1 = real time, 60 = an hour in
    /// a minute). Pair a `speed` above 1 with a [`ScaledClock`](crate::ScaledClock) of the
    /// same factor so log times and timeouts follow the compressed time.
    pub async fn run(&self, router: &Router, speed: f64) {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        let start = tokio::time::Instant::now();
        for e in &self.events {
            tokio::time::sleep_until(start + e.at.div_f64(speed)).await;
            Self::apply(router, &e.event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let a = Scenario::build("port-scan", 7).unwrap();
        let b = Scenario::build("port-scan", 7).unwrap();
        let c = Scenario::build("port-scan", 8).unwrap();
        assert_eq!(a.events, b.events);
        assert_ne!(a.events, c.events);
        assert!(a.events.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn every_scenario_builds_and_labels_its_attacks() {
        for name in SCENARIOS {
            let s = Scenario::build(name, 1).unwrap();
            assert!(!s.events.is_empty(), "{name}");
            match *name {
                "benign" => assert!(s.truth.is_empty()),
                "mixed" => assert_eq!(s.truth.len(), SCENARIOS.len() - 2),
                _ => assert_eq!(s.truth.len(), 1, "{name}"),
            }
            for t in &s.truth {
                assert!(t.start <= t.end);
                assert!(
                    t.end <= s.duration(),
                    "{name}: label ends after the last event"
                );
                let doc = match t.attacker {
                    IpAddr::V4(a) => {
                        let o = a.octets();
                        (o[0], o[1], o[2]) == (198, 51, 100)
                            || ((o[0], o[1], o[2]) == (203, 0, 113) && o[3] < 128)
                    }
                    IpAddr::V6(a) => a.segments()[..3] == [0x2001, 0xdb8, 0xbad],
                };
                assert!(
                    doc,
                    "{name}: attacker {} outside the documentation ranges",
                    t.attacker
                );
            }
        }
        assert!(matches!(
            Scenario::build("nope", 1),
            Err(SimError::UnknownScenario { .. })
        ));
    }

    #[test]
    fn benign_logins_have_at_most_single_typos() {
        let s = Scenario::build("benign", 42).unwrap();
        let failures: Vec<&ScheduledEvent> = s
            .events
            .iter()
            .filter(|e| matches!(&e.event, Event::Log { message, .. } if message.starts_with("login failure")))
            .collect();
        assert!(
            !failures.is_empty(),
            "the background has the occasional typo"
        );
        for pair in failures.windows(2) {
            assert!(
                pair[1].at - pair[0].at > Duration::from_secs(30),
                "typos never come in bursts"
            );
        }
    }

    #[test]
    fn port_scan_hits_many_distinct_ports_fast() {
        let s = Scenario::build("port-scan", 3).unwrap();
        let t = &s.truth[0];
        assert_eq!(t.kind, AttackKind::PortScan);
        assert_eq!(t.expected_detector, "port-scan");
        let lines: Vec<&String> = s
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Log { message, .. } if message.contains("198.51.100.23") => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 200);
        assert!(
            lines[0].starts_with("drop input input: in:ether1 out:(unknown 0), "),
            "{}",
            lines[0]
        );
        assert!(t.end - t.start < Duration::from_secs(15));
    }
}
