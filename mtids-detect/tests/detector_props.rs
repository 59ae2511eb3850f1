//! Properties of every detector, the guard and the policy: thresholds are exact, results
//! do not depend on other sources, guarded sources are never banned, memory stays capped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use mtids_detect::detectors::{
    AsymmetricConnectionConfig, AsymmetricConnectionDetector, BlockSide, BruteForceConfig,
    BruteForceDetector, LoginCpuSpikeConfig, LoginCpuSpikeDetector, PortScanConfig,
    PortScanDetector,
};
use mtids_detect::{
    AuthKind, AuthSource, DetectionConfig, DetectionEngine, Detector, Event, Finding, FindingKind,
    GuardConfig, IpPrefix, MacAddr, Outcome, PolicyConfig, Protocol, Source, Timestamp,
};
use proptest::prelude::*;

fn public_v4() -> impl Strategy<Value = IpAddr> {
    // 11.0.0.0 .. 99.255.255.255: routable, never private.
    (11u32..100, any::<u32>())
        .prop_map(|(a, rest)| IpAddr::V4(Ipv4Addr::from((a << 24) | (rest & 0x00ff_ffff))))
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        public_v4(),
        any::<u128>().prop_map(|x| IpAddr::V6(Ipv6Addr::from((0x2001u128 << 112) | (x >> 16)))),
    ]
}

fn run(d: &mut impl Detector, events: &[(u64, Event<'static>)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (t, e) in events {
        d.observe(Timestamp::from_millis(*t), e, &mut out);
    }
    out
}

/// `n` sorted offsets in `[0, span)`.
fn times(n: usize, span: u64) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0..span, n).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn port_scan(threshold: u32, window_secs: u64, low: u32, high: u32) -> PortScanDetector {
    PortScanDetector::new(PortScanConfig {
        threshold,
        window_secs,
        low_port_weight: low,
        high_port_weight: high,
        sweep_hosts: 0,
        ..PortScanConfig::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Distinct ports within the window: fires exactly when the weighted count reaches
    /// the threshold (plain count, and psd-style weights).
    #[test]
    fn port_scan_fires_iff_weighted_distinct_ports_reach_threshold(
        src in any_ip(),
        ports in prop::collection::btree_set(1u16..65535, 1..60),
        threshold in 2u32..40,
        (low, high) in prop_oneof![Just((1u32, 1u32)), Just((3, 1)), (1u32..5, 1u32..5)],
        window_secs in 1u64..600,
        seed in any::<u64>(),
    ) {
        let mut d = port_scan(threshold, window_secs, low, high);
        let ports: Vec<u16> = ports.into_iter().collect();
        let span = window_secs * 1000;
        // Spread over less than one window, in a shuffled port order.
        let mut order = ports.clone();
        let n = order.len();
        for i in 0..n {
            order.swap(i, (seed as usize).wrapping_add(i * 7919) % n);
        }
        let step = (span - 1) / n as u64;
        let events: Vec<(u64, Event<'static>)> = order
            .iter()
            .enumerate()
            .map(|(i, p)| (1_000 + i as u64 * step, syn(src, ip("192.0.2.1"), *p)))
            .collect();
        let score: u32 = ports.iter().map(|p| if *p <= 1024 { low } else { high }).sum();
        let found = run(&mut d, &events);
        prop_assert_eq!(!found.is_empty(), score >= threshold, "score {} threshold {}", score, threshold);
        for f in &found {
            prop_assert_eq!(f.kind, FindingKind::PortScan);
            prop_assert_eq!(f.source, Source::ip(src));
            prop_assert!(f.evidence.count >= u64::from(threshold));
        }
    }

    /// Repeating fewer distinct ports than the threshold never fires, however often.
    #[test]
    fn port_scan_never_fires_below_threshold(
        src in any_ip(),
        threshold in 2u32..30,
        hits in prop::collection::vec((0u64..10_000_000, any::<u16>()), 1..300),
    ) {
        let mut d = port_scan(threshold, 300, 1, 1);
        let allowed = (threshold - 1) as u16;
        let mut hits = hits;
        hits.sort_unstable();
        let events: Vec<_> = hits
            .iter()
            .map(|(t, p)| (*t, syn(src, ip("192.0.2.1"), 1 + p % allowed)))
            .collect();
        prop_assert!(run(&mut d, &events).is_empty());
    }

    /// Host sweep: one port on `n` distinct hosts within the window fires iff n >= hosts.
    #[test]
    fn host_sweep_fires_iff_enough_hosts(
        src in public_v4(),
        hosts in prop::collection::btree_set(any::<u32>(), 1..50),
        sweep_hosts in 2u32..40,
        port in 1u16..65535,
    ) {
        let mut d = PortScanDetector::new(PortScanConfig {
            sweep_hosts,
            ..PortScanConfig::default()
        })
        .unwrap();
        let events: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (i as u64 * 100, syn(src, IpAddr::V4(Ipv4Addr::from(*h)), port)))
            .collect();
        let found = run(&mut d, &events);
        let sweeps = found.iter().filter(|f| f.kind == FindingKind::HostSweep).count();
        prop_assert_eq!(sweeps > 0, hosts.len() >= sweep_hosts as usize);
        prop_assert!(found.iter().all(|f| f.kind != FindingKind::PortScan));
    }

    /// Failed logins: `k` failures within the window fire iff k >= max_failures; distinct
    /// user names fire user enumeration iff they reach distinct_users.
    #[test]
    fn brute_force_fires_iff_failures_reach_threshold(
        src in any_ip(),
        k in 1usize..40,
        max_failures in 1u32..30,
        distinct_users in prop_oneof![Just(0u32), 2u32..20],
        users in 1usize..25,
        window_secs in 1u64..300,
        ts in times(40, 1_000_000),
    ) {
        let mut d = BruteForceDetector::new(BruteForceConfig {
            max_failures,
            distinct_users,
            window_secs,
            ..BruteForceConfig::default()
        })
        .unwrap();
        let span = window_secs * 1000;
        let events: Vec<_> = ts
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, t)| (t % span, failure(src, &format!("user{}", i % users), "ssh")))
            .collect();
        let mut events = events;
        events.sort_by_key(|(t, _)| *t);
        let found = run(&mut d, &events);
        let brute = found.iter().any(|f| f.kind == FindingKind::BruteForce);
        let enumeration = found.iter().any(|f| f.kind == FindingKind::UserEnumeration);
        prop_assert_eq!(brute, k >= max_failures as usize);
        let distinct = users.min(k);
        prop_assert_eq!(enumeration, distinct_users > 0 && distinct >= distinct_users as usize);
    }

    /// Asymmetric samples: a single sample fires iff protocol, port and packet counts match,
    /// and the same connection seen in the next poll never fires again.
    #[test]
    fn asymmetric_fires_iff_predicate_and_only_once(
        orig in 0u64..10,
        repl in 0u64..5,
        port in prop_oneof![Just(443u16), Just(80), Just(8443), 1u16..2000],
        udp in any::<bool>(),
        remote in public_v4(),
    ) {
        let mut d = AsymmetricConnectionDetector::new(AsymmetricConnectionConfig::default()).unwrap();
        let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
        let sample = conn("*1A", protocol, ip("192.168.88.10"), remote, port, orig, repl);
        let first = run(&mut d, &[(1_000, sample.clone())]);
        let expected = orig > 3 && repl <= 2 && [443, 80, 8443].contains(&port);
        prop_assert_eq!(first.len(), usize::from(expected));
        if let Some(f) = first.first() {
            // The remote (non-private) side is named by default.
            prop_assert_eq!(f.source, Source::Ip(remote));
        }
        let second = run(&mut d, &[(3_000, sample)]);
        prop_assert!(second.is_empty());
    }

    /// Login then CPU: fires iff the sample comes less than the window after the login and
    /// is at or above the absolute threshold or the baseline plus the rise.
    #[test]
    fn login_cpu_fires_iff_spike_within_window(
        src in any_ip(),
        baseline in prop::collection::vec(0u8..=100, 0..5),
        load in 0u8..=100,
        delay_ms in 0u64..300_000,
        cpu_above in 50u8..=100,
        rise in 0u8..60,
    ) {
        let mut d = LoginCpuSpikeDetector::new(LoginCpuSpikeConfig {
            cpu_above,
            rise_over_baseline: rise,
            window_secs: 120,
            baseline_secs: 300,
            ..LoginCpuSpikeConfig::default()
        })
        .unwrap();
        let mut events: Vec<(u64, Event<'static>)> = baseline
            .iter()
            .enumerate()
            .map(|(i, c)| (100_000 + i as u64 * 10_000, cpu(*c)))
            .collect();
        let login_at = 200_000;
        events.push((login_at, login(src, "admin")));
        events.push((login_at + delay_ms, cpu(load)));
        let found = run(&mut d, &events);
        let avg = (!baseline.is_empty())
            .then(|| baseline.iter().map(|c| u32::from(*c)).sum::<u32>() / baseline.len() as u32);
        let spike = load >= cpu_above
            || (rise > 0 && avg.is_some_and(|b| u32::from(load) >= (b + u32::from(rise)).min(255)));
        let expected = delay_ms < 120_000 && spike;
        prop_assert_eq!(found.len(), usize::from(expected));
        if let Some(f) = found.first() {
            prop_assert_eq!(f.source, Source::ip(src));
            prop_assert_eq!(f.kind, FindingKind::LoginThenCpuSpike);
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Syn(u16, u8),
    Fail(u8),
    Login,
    Cpu(u8),
    Conn(u16, u64, u64),
}

fn event_for(src: IpAddr, kind: &Kind, n: usize) -> Event<'static> {
    match kind {
        Kind::Syn(port, host) => syn(src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, *host)), *port),
        Kind::Fail(user) => failure(
            src,
            &format!("u{user}"),
            if n % 2 == 0 { "ssh" } else { "ftp" },
        ),
        Kind::Login => login(src, "admin"),
        Kind::Cpu(c) => cpu(*c),
        Kind::Conn(port, o, r) => conn(
            &format!("*{n:X}"),
            Protocol::Tcp,
            src,
            ip("198.18.0.1"),
            *port,
            *o,
            *r,
        ),
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => (prop_oneof![1u16..40, Just(443)], 0u8..30).prop_map(|(p, h)| Kind::Syn(p, h)),
        3 => (0u8..8).prop_map(Kind::Fail),
        1 => Just(Kind::Login),
        1 => (0u8..=100).prop_map(Kind::Cpu),
        1 => (prop_oneof![Just(443u16), Just(80)], 0u64..8, 0u64..4).prop_map(|(p, o, r)| Kind::Conn(p, o, r)),
    ]
}

fn small_config() -> DetectionConfig {
    let mut c = DetectionConfig::default();
    c.port_scan.threshold = 6;
    c.port_scan.sweep_hosts = 5;
    c.brute_force.max_failures = 4;
    c.brute_force.distinct_users = 3;
    c.asymmetric_connection.block = BlockSide::Source;
    c
}

/// A comparable summary of a finding.
fn key(f: &Finding) -> (String, &'static str, u64, u64, Vec<u16>) {
    (
        f.source.to_string(),
        f.kind.as_str(),
        f.time.as_millis(),
        f.evidence.count,
        f.evidence.ports.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Port scan, host sweep and brute force judge each source alone: running the sources
    /// interleaved in any order gives the same findings as running each one by itself.
    #[test]
    fn findings_do_not_depend_on_other_sources_interleaving(
        streams in prop::collection::vec((public_v4(), prop::collection::vec((0u64..5_000, kind()), 1..40)), 1..5),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 200),
    ) {
        let config = small_config();
        let per_source = |events: &[(u64, Event<'static>)]| {
            let mut set = mtids_detect::DetectorSet::new(&config).unwrap();
            // Only the per-source detectors: CPU samples are router-wide by nature.
            set.login_cpu_spike = None;
            set.asymmetric_connection = None;
            run(&mut set, events)
        };
        // Each source's own stream, in time order.
        let streams: Vec<Vec<(u64, Event<'static>)>> = streams
            .iter()
            .map(|(src, evs)| {
                let mut t = 0;
                evs.iter()
                    .enumerate()
                    .map(|(n, (dt, k))| {
                        t += dt;
                        (t, event_for(*src, k, n))
                    })
                    .collect()
            })
            .collect();
        let mut alone: Vec<_> = streams.iter().flat_map(|s| per_source(s)).map(|f| key(&f)).collect();
        alone.sort();
        // A random merge that keeps each source's order.
        let mut cursors = vec![0usize; streams.len()];
        let mut merged = Vec::new();
        let mut picks = picks.into_iter();
        while merged.len() < streams.iter().map(Vec::len).sum::<usize>() {
            let open: Vec<usize> = (0..streams.len()).filter(|i| cursors[*i] < streams[*i].len()).collect();
            let i = match picks.next() {
                Some(ix) => open[ix.index(open.len())],
                None => open[0],
            };
            merged.push(streams[i][cursors[i]].clone());
            cursors[i] += 1;
        }
        let mut together: Vec<_> = per_source(&merged).iter().map(key).collect();
        together.sort();
        prop_assert_eq!(alone, together);
    }

    /// Whatever the events, an allowlisted or router-own source (also written as
    /// IPv4-mapped IPv6, also inside an IPv6 /64 target) never becomes a ban.
    #[test]
    fn guarded_sources_never_become_bans(
        events in prop::collection::vec((0usize..8, 0u64..2_000, kind()), 1..400),
        slash64 in any::<bool>(),
    ) {
        let mut config = small_config();
        config.asymmetric_connection.block = BlockSide::Source;
        config.login_cpu_spike.cpu_above = 50;
        config.guard = GuardConfig {
            allowlist: vec!["45.0.0.0/8".parse().unwrap(), "2001:db8:aa::/48".parse().unwrap(), "2001:db8:cc::1".parse().unwrap()],
            protect_private: false,
            router_addresses: vec!["203.0.113.1/24".into(), "2001:db8:bb::1/64".into()],
        };
        config.policy.ipv6_prefix_len = if slash64 { 64 } else { 128 };
        config.policy.max_new_bans_per_minute = 1000;
        let guarded: [IpAddr; 8] = [
            ip("45.1.2.3"), ip("::ffff:45.9.9.9"), ip("203.0.113.1"), ip("::ffff:203.0.113.1"),
            ip("2001:db8:aa:1::5"), ip("2001:db8:bb::1"), ip("2001:db8:cc::1"),
            // Same /64 as an allowlisted host: guarded only when the /64 is the target.
            if slash64 { ip("2001:db8:cc::99") } else { ip("2001:db8:aa::99") },
        ];
        let mut engine = DetectionEngine::new(&config).unwrap();
        let mut outcomes = Vec::new();
        let mut t = 0;
        for (n, (who, dt, k)) in events.iter().enumerate() {
            t += dt;
            engine.observe(Timestamp::from_millis(t), &event_for(guarded[*who], k, n), &mut outcomes);
        }
        for o in &outcomes {
            if let Outcome::Ban(d) = o {
                prop_assert!(false, "banned {} for {:?}", d.target, d.finding.kind);
            }
        }
    }

    /// However many unique sources flood in, no detector tracks more than its cap.
    #[test]
    fn memory_cap_holds_under_a_flood_of_unique_sources(
        cap in 1usize..200,
        n in 1usize..3_000,
        seed in any::<u32>(),
    ) {
        let mut config = small_config();
        config.port_scan.max_sources = cap;
        config.brute_force.max_sources = cap;
        config.login_cpu_spike.max_logins = cap;
        config.asymmetric_connection.max_connections = cap;
        let mut set = mtids_detect::DetectorSet::new(&config).unwrap();
        let mut out = Vec::new();
        for i in 0..n as u32 {
            let src = IpAddr::V4(Ipv4Addr::from(seed.wrapping_add(i.wrapping_mul(2_654_435_761))));
            let now = Timestamp::from_millis(u64::from(i));
            set.observe(now, &syn(src, ip("198.18.0.1"), (i % 100) as u16 + 1), &mut out);
            set.observe(now, &syn(src, ip("198.18.0.2"), 22), &mut out);
            set.observe(now, &failure(src, "admin", "ssh"), &mut out);
            set.observe(now, &login(src, "admin"), &mut out);
            set.observe(now, &conn(&format!("*{i:X}"), Protocol::Tcp, src, ip("198.18.0.3"), 443, 9, 0), &mut out);
        }
        // port scan: sources + (source, port) sweeps; the others one table each.
        prop_assert!(set.port_scan.as_ref().unwrap().tracked_sources() <= 2 * cap);
        prop_assert!(set.brute_force.as_ref().unwrap().tracked_sources() <= cap);
        prop_assert!(set.login_cpu_spike.as_ref().unwrap().tracked_sources() <= cap);
        prop_assert!(set.asymmetric_connection.as_ref().unwrap().tracked_sources() <= cap);
    }

    /// In any 60 s, no more bans than the flood cap, whatever the findings.
    #[test]
    fn flood_cap_bounds_bans_per_minute(
        cap in 1u32..20,
        gaps in prop::collection::vec(0u64..5_000, 1..300),
    ) {
        let mut config = small_config();
        config.brute_force.max_failures = 1;
        config.brute_force.distinct_users = 0;
        config.policy = PolicyConfig { max_new_bans_per_minute: cap, ..PolicyConfig::default() };
        let mut engine = DetectionEngine::new(&config).unwrap();
        let mut outcomes = Vec::new();
        let mut t = 0;
        let mut bans: Vec<u64> = Vec::new();
        for (i, gap) in gaps.iter().enumerate() {
            t += gap;
            let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i as u32));
            engine.observe(Timestamp::from_millis(t), &failure(src, "root", "ssh"), &mut outcomes);
            for o in outcomes.drain(..) {
                match o {
                    Outcome::Ban(_) => bans.push(t),
                    Outcome::Suppressed(s) => {
                        let flood = matches!(s.reason, mtids_detect::Suppression::Flood { .. });
                        prop_assert!(flood, "{}", s.reason);
                    }
                }
            }
        }
        for (i, start) in bans.iter().enumerate() {
            let in_minute = bans[i..].iter().take_while(|b| **b < start + 60_000).count();
            prop_assert!(in_minute <= cap as usize);
        }
        prop_assert_eq!(bans.len() + engine.policy().floods() as usize, gaps.len());
    }
}

// ---- window boundaries: an event exactly `window` old has left the window ----

#[test]
fn port_scan_window_boundary_is_exclusive() {
    let src = ip("198.51.100.7");
    let dst = ip("192.0.2.1");
    let mut d = port_scan(2, 60, 1, 1);
    let at_boundary = run(
        &mut d,
        &[(0, syn(src, dst, 22)), (60_000, syn(src, dst, 23))],
    );
    assert!(
        at_boundary.is_empty(),
        "exactly one window apart must not count together"
    );
    let mut d = port_scan(2, 60, 1, 1);
    let inside = run(
        &mut d,
        &[(0, syn(src, dst, 22)), (59_999, syn(src, dst, 23))],
    );
    assert_eq!(inside.len(), 1);
    assert_eq!(inside[0].evidence.ports, vec![22, 23]);
}

#[test]
fn psd_chain_restarts_after_a_gap() {
    let src = ip("198.51.100.7");
    let dst = ip("192.0.2.1");
    let psd = PortScanConfig {
        threshold: 21,
        low_port_weight: 3,
        high_port_weight: 1,
        chain_gap_secs: 3,
        sweep_hosts: 0,
        ..PortScanConfig::default()
    };
    // 7 low ports 2.999 s apart: one chain, fires at the seventh (7 * 3 = 21).
    let mut d = PortScanDetector::new(psd.clone()).unwrap();
    let events: Vec<_> = (0..7)
        .map(|i| (i * 2_999, syn(src, dst, 20 + i as u16)))
        .collect();
    assert_eq!(run(&mut d, &events).len(), 1);
    // Exactly 3 s apart: each packet starts a new chain, never fires.
    let mut d = PortScanDetector::new(psd).unwrap();
    let events: Vec<_> = (0..30)
        .map(|i| (i * 3_000, syn(src, dst, 20 + i as u16)))
        .collect();
    assert!(run(&mut d, &events).is_empty());
}

#[test]
fn brute_force_window_boundary_is_exclusive() {
    let src = ip("198.51.100.7");
    let config = BruteForceConfig {
        max_failures: 2,
        distinct_users: 0,
        window_secs: 60,
        ..BruteForceConfig::default()
    };
    let mut d = BruteForceDetector::new(config.clone()).unwrap();
    assert!(
        run(
            &mut d,
            &[
                (0, failure(src, "a", "ssh")),
                (60_000, failure(src, "a", "ssh"))
            ]
        )
        .is_empty()
    );
    let mut d = BruteForceDetector::new(config).unwrap();
    assert_eq!(
        run(
            &mut d,
            &[
                (0, failure(src, "a", "ssh")),
                (59_999, failure(src, "a", "ssh"))
            ]
        )
        .len(),
        1
    );
}

#[test]
fn login_cpu_window_boundary_is_exclusive() {
    let src = ip("198.51.100.7");
    let mut d = LoginCpuSpikeDetector::new(LoginCpuSpikeConfig::default()).unwrap();
    assert!(run(&mut d, &[(0, login(src, "admin")), (120_000, cpu(100))]).is_empty());
    let mut d = LoginCpuSpikeDetector::new(LoginCpuSpikeConfig::default()).unwrap();
    assert_eq!(
        run(&mut d, &[(0, login(src, "admin")), (119_999, cpu(100))]).len(),
        1
    );
}

#[test]
fn handle_timeout_forgets_expired_sources() {
    let mut d = port_scan(10, 60, 1, 1);
    let mut out = Vec::new();
    for i in 0..100u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        d.observe(
            Timestamp::from_secs(u64::from(i)),
            &syn(src, ip("192.0.2.1"), 22),
            &mut out,
        );
    }
    assert_eq!(d.tracked_sources(), 100);
    // The oldest source (seen at 0 s) expires at 60 s.
    assert_eq!(d.poll_timeout(), Some(Timestamp::from_secs(60)));
    d.handle_timeout(Timestamp::from_secs(100), &mut out);
    // Seen at 41..=99 s are less than 60 s old at 100 s; the one seen at 40 s is exactly
    // one window old and gone.
    assert_eq!(d.tracked_sources(), 59);
    d.handle_timeout(Timestamp::from_secs(1_000), &mut out);
    assert_eq!(d.tracked_sources(), 0);
    assert_eq!(d.poll_timeout(), None);
    assert!(out.is_empty());
}

// ---- detector specifics ----

#[test]
fn brute_force_per_service_counts_services_apart() {
    let src = ip("198.51.100.7");
    let config = BruteForceConfig {
        max_failures: 4,
        distinct_users: 0,
        per_service: true,
        ..BruteForceConfig::default()
    };
    let mixed: Vec<_> = (0..6)
        .map(|i| {
            (
                i * 1_000,
                failure(src, "admin", if i % 2 == 0 { "ssh" } else { "ftp" }),
            )
        })
        .collect();
    let mut d = BruteForceDetector::new(config.clone()).unwrap();
    assert!(
        run(&mut d, &mixed).is_empty(),
        "3 ssh + 3 ftp stay below 4 each"
    );
    let mut d = BruteForceDetector::new(BruteForceConfig {
        per_service: false,
        ..config
    })
    .unwrap();
    assert_eq!(run(&mut d, &mixed).len(), 1, "6 across services reach 4");
}

#[test]
fn mac_source_is_reported_but_never_banned() {
    let mac = MacAddr([0x00, 0x0c, 0x42, 0x01, 0x02, 0x03]);
    let mut config = DetectionConfig::default();
    config.brute_force.max_failures = 3;
    let mut engine = DetectionEngine::new(&config).unwrap();
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let e = auth(AuthKind::Failure, AuthSource::Mac(mac), "admin", "winbox");
        engine.observe(Timestamp::from_secs(i), &e, &mut outcomes);
    }
    assert_eq!(outcomes.len(), 1);
    match &outcomes[0] {
        Outcome::Suppressed(s) => {
            assert_eq!(s.reason, mtids_detect::Suppression::NotAnIpAddress);
            assert_eq!(s.finding.source, Source::Mac(mac));
            assert_eq!(s.finding.kind, FindingKind::BruteForce);
        }
        Outcome::Ban(d) => panic!("a MAC source became a ban on {}", d.target),
    }
}

#[test]
fn several_logins_before_a_spike_are_all_flagged() {
    let mut d = LoginCpuSpikeDetector::new(LoginCpuSpikeConfig::default()).unwrap();
    let (a, b, old) = (ip("198.51.100.7"), ip("203.0.113.50"), ip("192.0.2.99"));
    let found = run(
        &mut d,
        &[
            (0, login(old, "backup")),
            (10_000, cpu(10)),
            (200_000, login(a, "admin")),
            (230_000, login(b, "ops")),
            (260_000, cpu(97)),
            (270_000, cpu(99)),
        ],
    );
    let sources: BTreeSet<String> = found.iter().map(|f| f.source.to_string()).collect();
    assert_eq!(
        sources,
        ["198.51.100.7", "203.0.113.50"].map(String::from).into()
    );
    assert_eq!(found.len(), 2, "each login is flagged once");
    assert!(
        found
            .iter()
            .all(|f| f.evidence.count == 2 && f.severity == mtids_detect::Severity::Medium)
    );
}

#[test]
fn cpu_rise_over_baseline_fires_below_the_absolute_threshold() {
    let src = ip("198.51.100.7");
    let mut d = LoginCpuSpikeDetector::new(LoginCpuSpikeConfig::default()).unwrap();
    let found = run(
        &mut d,
        &[
            (0, cpu(10)),
            (10_000, cpu(20)),
            (20_000, login(src, "admin")),
            (30_000, cpu(55)),
            (40_000, cpu(56)),
        ],
    );
    // Baseline 15 %, rise 40 points: 55 % is a spike although far below 90 %.
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].evidence.threshold, 55);
}

#[test]
fn asymmetric_block_side_and_per_poll_cap() {
    let local = ip("192.168.88.10");
    let remote = ip("198.51.100.80");
    let sample = conn("*1", Protocol::Tcp, local, remote, 443, 6, 0);
    for (block, expected) in [
        (BlockSide::Remote, remote),
        (BlockSide::Source, local),
        (BlockSide::Destination, remote),
    ] {
        let mut d = AsymmetricConnectionDetector::new(AsymmetricConnectionConfig {
            block,
            ..AsymmetricConnectionConfig::default()
        })
        .unwrap();
        let f = run(&mut d, &[(0, sample.clone())]);
        assert_eq!(f[0].source, Source::Ip(expected), "{block:?}");
    }
    // Inbound: remote opened it, so the remote is the source.
    let mut d = AsymmetricConnectionDetector::new(AsymmetricConnectionConfig::default()).unwrap();
    let inbound = conn("*2", Protocol::Tcp, remote, local, 443, 6, 0);
    assert_eq!(run(&mut d, &[(0, inbound)])[0].source, Source::Ip(remote));
    // Both local: never a finding in remote mode.
    let inside = conn("*3", Protocol::Tcp, local, ip("192.168.88.20"), 443, 6, 0);
    assert!(run(&mut d, &[(0, inside)]).is_empty());

    // 80 distinct remotes in one poll: 50 findings, the rest capped and fired next poll.
    let mut d = AsymmetricConnectionDetector::new(AsymmetricConnectionConfig::default()).unwrap();
    let poll: Vec<_> = (0..80u32)
        .map(|i| {
            (
                5_000,
                conn(
                    &format!("*{i:X}"),
                    Protocol::Tcp,
                    local,
                    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)),
                    443,
                    9,
                    1,
                ),
            )
        })
        .collect();
    assert_eq!(run(&mut d, &poll).len(), 50);
    assert_eq!(d.capped(), 30);
    let next: Vec<_> = poll.iter().map(|(_, e)| (10_000, e.clone())).collect();
    assert_eq!(
        run(&mut d, &next).len(),
        30,
        "capped ones fire in the next poll, the others not again"
    );
    assert!(
        run(
            &mut d,
            &next
                .iter()
                .map(|(_, e)| (15_000, e.clone()))
                .collect::<Vec<_>>()
        )
        .is_empty()
    );
}

#[test]
fn configs_reject_bad_values_naming_the_key() {
    let bad: Vec<(&str, DetectionConfig)> = vec![
        ("port_scan.window_secs", {
            let mut c = DetectionConfig::default();
            c.port_scan.window_secs = 0;
            c
        }),
        ("port_scan.threshold", {
            let mut c = DetectionConfig::default();
            c.port_scan.threshold = 1;
            c
        }),
        ("brute_force.distinct_users", {
            let mut c = DetectionConfig::default();
            c.brute_force.distinct_users = 1;
            c
        }),
        ("asymmetric_connection.protocols[1]", {
            let mut c = DetectionConfig::default();
            c.asymmetric_connection.protocols = vec!["tcp".into(), "tpc".into()];
            c
        }),
        ("asymmetric_connection.repl_packets_at_most", {
            let mut c = DetectionConfig::default();
            c.asymmetric_connection.repl_packets_at_most = 3;
            c
        }),
        ("login_cpu_spike.cpu_above", {
            let mut c = DetectionConfig::default();
            c.login_cpu_spike.cpu_above = 101;
            c
        }),
        ("guard.router_addresses[0]", {
            let mut c = DetectionConfig::default();
            c.guard.router_addresses = vec!["gw.local".into()];
            c
        }),
    ];
    for (field, config) in bad {
        let err = DetectionEngine::new(&config).unwrap_err().to_string();
        assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
    }
}

#[test]
fn config_from_toml_rejects_unknown_keys_and_fills_defaults() {
    let config: DetectionConfig = toml::from_str(
        r#"
        [port_scan]
        threshold = 21
        low_port_weight = 3
        chain_gap_secs = 3
        [guard]
        allowlist = ["198.51.100.0/24", "2001:db8::1"]
        [policy]
        ipv6_prefix_len = 64
        min_severity = "medium"
        "#,
    )
    .unwrap();
    assert_eq!(config.port_scan.threshold, 21);
    assert_eq!(config.port_scan.window_secs, 300);
    assert_eq!(config.brute_force, BruteForceConfig::default());
    assert_eq!(
        config.guard.allowlist[0],
        "198.51.100.0/24".parse::<IpPrefix>().unwrap()
    );
    config.validate().unwrap();

    let err = toml::from_str::<DetectionConfig>("[port_scan]\nthreshhold = 3\n").unwrap_err();
    assert!(err.to_string().contains("threshhold"), "{err}");
    let err =
        toml::from_str::<DetectionConfig>("[guard]\nallowlist = [\"10.0.0.0/40\"]\n").unwrap_err();
    assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
    let err = toml::from_str::<DetectionConfig>("[portscan]\n").unwrap_err();
    assert!(err.to_string().contains("portscan"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Hostile time: timestamps anywhere in u64 (the end of time included), in any order,
    /// never panic the engine, and its timeouts can always be handled.
    #[test]
    fn any_timestamps_in_any_order_never_panic(
        events in prop::collection::vec((any::<u64>(), 0usize..4, kind()), 1..200),
        extreme in prop::sample::select(vec![0u64, 1, u64::MAX - 1, u64::MAX, 1 << 40]),
    ) {
        let config = small_config();
        let mut engine = DetectionEngine::new(&config).unwrap();
        let mut outcomes = Vec::new();
        let sources = [ip("198.51.100.7"), ip("2001:db8::7"), ip("::ffff:203.0.113.9"), ip("11.2.3.4")];
        for (n, (t, who, k)) in events.iter().enumerate() {
            let t = if n % 5 == 0 { extreme } else { *t };
            let now = Timestamp::from_millis(t);
            engine.observe(now, &event_for(sources[*who], k, n), &mut outcomes);
            if let Some(at) = engine.poll_timeout() {
                engine.handle_timeout(at, &mut outcomes);
            }
        }
        for o in &outcomes {
            if let Outcome::Ban(d) = o {
                prop_assert!(d.reason.len() <= mtids_detect::MAX_REASON_LEN);
                prop_assert!(d.reason.chars().all(|c| !c.is_control()));
            }
        }
    }
}

#[test]
fn replies_and_established_packets_are_not_scan_attempts() {
    use mtids_detect::TcpFlags;
    let server = ip("93.184.216.34");
    let client = ip("198.18.0.10");
    // A web server's replies: source port 443, the client's ephemeral ports as destination.
    let reply =
        |port: u16, flags: TcpFlags, state: Option<&'static str>| match syn(server, client, port) {
            Event::Firewall(mut row) => {
                row.tcp_flags = flags;
                row.connection_state = state.map(Into::into);
                Event::Firewall(row)
            }
            _ => unreachable!(),
        };
    let mut d = port_scan(5, 60, 1, 1);
    let mut events = Vec::new();
    for i in 0..20u16 {
        events.push((
            u64::from(i),
            reply(50_000 + i, TcpFlags::SYN | TcpFlags::ACK, None),
        ));
        events.push((
            u64::from(i),
            reply(51_000 + i, TcpFlags::ACK, Some("established")),
        ));
        events.push((
            u64::from(i),
            reply(52_000 + i, TcpFlags::EMPTY, Some("related")),
        ));
    }
    assert!(run(&mut d, &events).is_empty());
    // The same rows count when attempts_only is off.
    let mut all = PortScanDetector::new(PortScanConfig {
        threshold: 5,
        sweep_hosts: 0,
        attempts_only: false,
        ..PortScanConfig::default()
    })
    .unwrap();
    assert!(!run(&mut all, &events).is_empty());
    // Attempts: SYN alone, state new; UDP without flags.
    let mut d = port_scan(5, 60, 1, 1);
    let attempts: Vec<_> = (0..5u16)
        .map(|i| (u64::from(i), reply(1 + i, TcpFlags::SYN, Some("new"))))
        .collect();
    assert_eq!(run(&mut d, &attempts).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// However often one source offends, a new ban only comes when the previous one is
    /// within `renew_before_secs` of its end, and durations grow up to the cap.
    #[test]
    fn a_banned_source_is_decided_again_only_near_expiry(
        gaps in prop::collection::vec(0u64..4_000, 1..200),
    ) {
        let policy = PolicyConfig {
            ban_secs: 600,
            renew_before_secs: 60,
            max_ban_secs: 2_400,
            max_new_bans_per_minute: 1000,
            ..PolicyConfig::default()
        };
        let mut p = mtids_detect::Policy::new(policy, mtids_detect::Guard::default()).unwrap();
        let mut t = 0;
        let mut current: Option<(u64, u64)> = None; // (expires, duration)
        for gap in gaps {
            t += gap;
            let f = Finding {
                time: Timestamp::from_secs(t),
                detector: "test",
                kind: FindingKind::BruteForce,
                severity: mtids_detect::Severity::High,
                source: Source::ip(ip("11.22.33.44")),
                evidence: mtids_detect::Evidence::default(),
            };
            match p.decide(Timestamp::from_secs(t), f) {
                Outcome::Ban(d) => {
                    let secs = d.duration.as_secs();
                    if let Some((expires, previous)) = current {
                        prop_assert!(expires <= t + 60, "re-banned at {t}, ban ran until {expires}");
                        prop_assert!(secs == (previous * 2).min(2_400) || secs == 600);
                    }
                    prop_assert!((600..=2_400).contains(&secs));
                    current = Some((t + secs, secs));
                }
                Outcome::Suppressed(s) => {
                    let banned = matches!(s.reason, mtids_detect::Suppression::AlreadyBanned { .. });
                    prop_assert!(banned, "{}", s.reason);
                    prop_assert!(current.is_some_and(|(expires, _)| expires > t + 60));
                }
            }
        }
    }
}

#[test]
fn a_forgotten_connection_fires_again() {
    let mut d = AsymmetricConnectionDetector::new(AsymmetricConnectionConfig {
        remember_secs: 60,
        ..AsymmetricConnectionConfig::default()
    })
    .unwrap();
    let stuck = conn(
        "*9",
        Protocol::Tcp,
        ip("192.168.88.10"),
        ip("198.51.100.80"),
        443,
        8,
        0,
    );
    let mut out = Vec::new();
    d.observe(Timestamp::from_secs(0), &stuck, &mut out);
    // Seen in every poll for two minutes: remembered, never fires again.
    for s in (2..120).step_by(2) {
        d.observe(Timestamp::from_secs(s), &stuck, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(d.poll_timeout(), Some(Timestamp::from_secs(178)));
    d.handle_timeout(Timestamp::from_secs(177), &mut out);
    assert_eq!(d.tracked_sources(), 1);
    // Unseen for exactly remember_secs: forgotten, so its next sighting fires again.
    d.handle_timeout(Timestamp::from_secs(178), &mut out);
    assert_eq!(d.tracked_sources(), 0);
    d.observe(Timestamp::from_secs(200), &stuck, &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn host_sweep_window_boundary_is_exclusive() {
    let src = ip("198.51.100.7");
    let config = PortScanConfig {
        sweep_hosts: 2,
        window_secs: 60,
        ..PortScanConfig::default()
    };
    let mut d = PortScanDetector::new(config.clone()).unwrap();
    let apart = [
        (0, syn(src, ip("203.0.113.1"), 3389)),
        (60_000, syn(src, ip("203.0.113.2"), 3389)),
    ];
    assert!(run(&mut d, &apart).is_empty());
    let mut d = PortScanDetector::new(config).unwrap();
    let inside = [
        (0, syn(src, ip("203.0.113.1"), 3389)),
        (59_999, syn(src, ip("203.0.113.2"), 3389)),
    ];
    let found = run(&mut d, &inside);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, FindingKind::HostSweep);
    assert_eq!(
        found[0].evidence.destinations,
        [ip("203.0.113.1"), ip("203.0.113.2")]
    );
}

/// Drives `engine` over `events` (offsets in ms, sources, kinds); `every_time` asks the
/// timeout before every event, otherwise [`DetectionEngine::expire_due`] decides.
fn drive(
    engine: &mut DetectionEngine,
    events: &[(u64, IpAddr, Kind)],
    every_time: bool,
) -> Vec<String> {
    let mut outcomes = Vec::new();
    let mut now = 0;
    for (n, (step, src, kind)) in events.iter().enumerate() {
        now += step;
        let t = Timestamp::from_millis(now);
        if every_time {
            if engine.poll_timeout().is_some_and(|d| d <= t) {
                engine.handle_timeout(t, &mut outcomes);
            }
        } else {
            engine.expire_due(t, &mut outcomes);
        }
        engine.observe(t, &event_for(*src, kind, n), &mut outcomes);
    }
    outcomes.iter().map(|o| format!("{o:?}")).collect()
}

/// A detector of the application's own whose state expires the instant it is observed.
#[derive(Debug, Default)]
struct ZeroWindow {
    seen: Option<Timestamp>,
    expired: usize,
}

impl Detector for ZeroWindow {
    fn name(&self) -> &'static str {
        "zero_window"
    }
    fn observe(&mut self, now: Timestamp, _event: &Event<'_>, _findings: &mut Vec<Finding>) {
        self.seen = Some(now);
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.seen
    }
    fn handle_timeout(&mut self, now: Timestamp, _findings: &mut Vec<Finding>) {
        if self.seen.is_some_and(|t| t <= now) {
            self.seen = None;
            self.expired += 1;
        }
    }
    fn tracked_sources(&self) -> usize {
        usize::from(self.seen.is_some())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// `expire_due` asks the timeout once per point in time, and the outcomes are those of
    /// asking before every event: many events share a millisecond, windows are a second or
    /// two, and the policy remembers offenders for 0 s (asked every time then), 1 s or a day.
    #[test]
    fn expire_due_decides_as_asking_before_every_event(
        events in prop::collection::vec(
            (prop_oneof![4 => Just(0u64), 2 => 1u64..1_500, 1 => Just(2_000u64)], prop::sample::select(vec![ip("11.0.0.1"), ip("11.0.0.2"), ip("11.0.0.3")]), kind()),
            1..300,
        ),
        remember_secs in prop_oneof![Just(0u64), Just(1), Just(86_400)],
        window_secs in 1u64..3,
    ) {
        let mut config = small_config();
        config.port_scan.window_secs = window_secs;
        config.brute_force.window_secs = window_secs;
        config.policy.remember_secs = remember_secs;
        config.policy.max_new_bans_per_minute = 4;
        let mut every = DetectionEngine::new(&config).unwrap();
        let mut due = DetectionEngine::new(&config).unwrap();
        prop_assert_eq!(drive(&mut every, &events, true), drive(&mut due, &events, false));
        prop_assert_eq!(every.detectors().tracked_sources(), due.detectors().tracked_sources());
    }
}

/// With a detector of the application's own, whose windows may be zero, `expire_due` asks
/// every time: state observed at an instant expires at that instant.
#[test]
fn expire_due_asks_every_time_with_a_detector_of_ones_own() {
    let mut engine = DetectionEngine::new(&small_config()).unwrap();
    engine
        .detectors_mut()
        .others
        .push(Box::new(ZeroWindow::default()));
    let t = Timestamp::from_millis(5_000);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        engine.expire_due(t, &mut outcomes);
        engine.observe(t, &cpu(5), &mut outcomes);
    }
    engine.expire_due(t, &mut outcomes);
    // Observed three times at one instant, expired after each: nothing left.
    assert_eq!(engine.detectors().others[0].tracked_sources(), 0);
}
