//! `mtids simulate`: the real daemon, over real loopback sockets, against an in-process
//! routeros-sim router playing a scenario with ground truth; then a report.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use mtids_alert::{AlertError, Notification, Notifier};
use mtids_detect::{IpPrefix, Outcome};
use routeros_sim::{
    Family, Router, RouterConfig as SimRouterConfig, ScaledClock, Scenario, Server, ServerConfig,
};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::cli::SimulateArgs;
use crate::config::{Config, RouterConfig};
use crate::daemon::{Daemon, Options, Report, Stats};
use crate::error::CliError;

/// A notifier that keeps every alert: simulate's stand-in for Telegram.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    alerts: Mutex<Vec<(Instant, Notification)>>,
}

impl RecordingNotifier {
    /// The sources of the alerts received so far, with when they arrived.
    pub fn sources(&self) -> Vec<(Instant, String)> {
        let alerts = match self.alerts.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        alerts
            .iter()
            .filter_map(|(at, n)| match n {
                Notification::Alert(a) => Some((*at, a.source.clone())),
                _ => None,
            })
            .collect()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn name(&self) -> &str {
        "simulation"
    }

    async fn notify(&self, notification: &Notification) -> Result<(), AlertError> {
        let mut alerts = match self.alerts.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        alerts.push((Instant::now(), notification.clone()));
        Ok(())
    }
}

/// One attack of the scenario and what the daemon did about it.
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    /// The attack kind, e.g. `ssh-brute-force`.
    pub attack: String,
    /// The attacker's address.
    pub attacker: IpAddr,
    /// A finding named the attacker.
    pub detected: bool,
    /// From the attack's first event to the finding, in (real) milliseconds.
    pub detect_ms: Option<f64>,
    /// The attacker (or its prefix) was on the router's address list.
    pub blocked: bool,
    /// From the deciding event's arrival to the router's answer to the add, in ms.
    pub block_latency_ms: Option<f64>,
    /// An alert about the attacker reached the local sink.
    pub alerted: bool,
}

/// The simulation's result.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// One row per attack.
    pub attacks: Vec<AttackResult>,
    /// Addresses blocked that are not attackers.
    pub false_positives: Vec<String>,
    /// Events the engine processed.
    pub events: u64,
    /// Events per second of wall time.
    pub events_per_sec: f64,
    /// Rows that could not be read (counted and skipped).
    pub malformed_rows: u64,
    /// Wall time of the run, seconds.
    pub elapsed_secs: f64,
}

impl SimulationReport {
    /// Every attack blocked and no benign source blocked.
    pub fn passed(&self) -> bool {
        self.attacks.iter().all(|a| a.blocked) && self.false_positives.is_empty()
    }
}

/// Plays a scenario against routeros-sim and prints the report.
///
/// # Errors
/// An unknown scenario, a failure to start, or a simulation in which an attack was not
/// blocked or a benign source was ([`CliError::SimulationFailed`], status 1).
pub async fn simulate(config: Config, args: &SimulateArgs) -> Result<(), CliError> {
    if args.list {
        for name in routeros_sim::SCENARIOS {
            println!("{name}");
        }
        return Ok(());
    }
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 10_000.0) {
        return Err(CliError::Usage(
            "--speed must be a number above 0 and at most 10000".into(),
        ));
    }
    let report = run_simulation(config, args).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::io("writing the report", std::io::Error::other(e)))?;
        println!("{text}");
    } else {
        print_report(&report);
    }
    if report.passed() {
        Ok(())
    } else {
        let missed = report.attacks.iter().filter(|a| !a.blocked).count();
        Err(CliError::SimulationFailed(format!(
            "{missed} attack(s) not blocked, {} benign source(s) blocked",
            report.false_positives.len()
        )))
    }
}

/// Runs the simulation and returns its report (no printing besides progress).
///
/// # Errors
/// An unknown scenario, or a failure to start the simulated router or the daemon.
pub async fn run_simulation(
    mut config: Config,
    args: &SimulateArgs,
) -> Result<SimulationReport, CliError> {
    let scenario = Scenario::build(&args.scenario, args.seed)
        .map_err(|e| CliError::Usage(format!("--scenario: {e}")))?;
    let clock = Arc::new(ScaledClock::new(SystemTime::now(), args.speed));
    let router = Router::with_clock(SimRouterConfig::default(), clock.clone());
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .await?;
    let addr = server.local_addr();

    // The daemon as a user would configure it, pointed at the simulated router; polls
    // fast enough for compressed time.
    let mut sim_router = RouterConfig::new("sim", addr.ip().to_string(), "admin");
    sim_router.port = Some(addr.port());
    config.routers = vec![sim_router];
    config.input.connection_interval = Duration::from_millis(100);
    config.input.resource_interval = Duration::from_millis(50);
    config.input.max_backoff = Duration::from_secs(1);
    config.enforcement.dry_run = false;
    let ledger = temp_ledger_path();
    config.ledger.path.clone_from(&ledger);
    config.alert.dispatcher.max_messages_per_window = 0;
    config.web.listen = args.web;
    // The simulated asymmetric flood hits Winbox (8291) on the router itself; the
    // detector's default ports are the seed's web ports only.
    let ports = &mut config.detection.asymmetric_connection.ports;
    if !ports.is_empty() && !ports.contains(&8291) {
        ports.push(8291);
    }
    let list = config.enforcement.address_list.clone();
    let list6 = config.enforcement.address_list_v6.clone();

    let recorder = Arc::new(RecordingNotifier::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sim_clock = clock.clone();
    let options = Options {
        clock: Arc::new(move || routeros_sim::Clock::now(sim_clock.as_ref())),
        extra_notifiers: vec![recorder.clone() as Arc<dyn Notifier>],
        reports: Some(tx),
    };
    let daemon = Daemon::start(config, options)?;
    let stats = daemon.stats();
    if let Some(addr) = daemon.metrics_addr()
        && !args.quiet
    {
        eprintln!("metrics of the simulated defence: http://{addr}/metrics");
    }
    if let Some(addr) = daemon.web_addr() {
        eprintln!("web page of the simulated defence: http://{addr}/");
    }

    // Wait until the daemon is logged in and following before the scenario starts.
    let started = Instant::now();
    let mut reports: Vec<(Instant, Report)> = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(r @ Report::Connected { .. })) => {
                reports.push((Instant::now(), r));
                break;
            }
            Ok(Some(r)) => reports.push((Instant::now(), r)),
            _ => {
                return Err(CliError::SimulationFailed(
                    "the daemon did not connect to the simulated router within 10 s".into(),
                ));
            }
        }
    }
    // Let the follow command reach the router before the first line is logged.
    tokio::time::sleep(Duration::from_millis(100)).await;

    if !args.quiet {
        eprintln!(
            "simulating `{}` (seed {}, {} events, {} attacks, {:.0}x time) against a simulated router on {addr}",
            scenario.name,
            scenario.seed,
            scenario.events.len(),
            scenario.truth.len(),
            args.speed
        );
    }
    let play_start = Instant::now();
    let play = scenario.run(&router, args.speed);
    tokio::pin!(play);
    let total = scenario.duration().div_f64(args.speed);
    let mut progress = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            () = &mut play => break,
            Some(r) = rx.recv() => {
                if !args.quiet {
                    progress_line(&r);
                }
                reports.push((Instant::now(), r));
            }
            _ = progress.tick() => {
                if !args.quiet {
                    eprintln!(
                        "  [{:>3.0}%] {} events, {} bans",
                        (play_start.elapsed().as_secs_f64() / total.as_secs_f64().max(0.001) * 100.0).min(100.0),
                        Stats::get(&stats.events),
                        Stats::get(&stats.bans),
                    );
                }
            }
        }
    }
    // Let the last polls and blocks land.
    let grace = tokio::time::sleep(Duration::from_millis(1500));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            () = &mut grace => break,
            Some(r) = rx.recv() => {
                if !args.quiet {
                    progress_line(&r);
                }
                reports.push((Instant::now(), r));
            }
        }
    }
    let elapsed = started.elapsed();
    let listed: Vec<String> = router
        .address_list(Family::V4)
        .into_iter()
        .chain(router.address_list(Family::V6))
        .filter(|e| e.list == list || e.list == list6)
        .map(|e| e.address)
        .collect();
    let events = Stats::get(&stats.events);
    let malformed = Stats::get(&stats.malformed_rows);
    if let Some(addr) = daemon.web_addr() {
        eprintln!("scenario done; the page stays on http://{addr}/ until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    daemon.shutdown(Duration::from_secs(2)).await;
    while let Ok(r) = rx.try_recv() {
        reports.push((Instant::now(), r));
    }
    server.shutdown().await;
    let _ = std::fs::remove_file(&ledger);
    for suffix in ["-wal", "-shm"] {
        let mut p = ledger.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }

    let alerts = recorder.sources();
    let covers = |text: &str, ip: IpAddr| -> bool {
        text.parse::<IpPrefix>().is_ok_and(|p| p.contains(ip))
            || text.parse::<IpAddr>().is_ok_and(|a| a == ip)
    };
    let mut attacks = Vec::new();
    for truth in &scenario.truth {
        let attack_start = play_start + truth.start.div_f64(args.speed);
        let detected_at = reports.iter().find_map(|(at, r)| match r {
            Report::Outcome { outcome, .. } if outcome_source(outcome) == Some(truth.attacker) => {
                Some(*at)
            }
            _ => None,
        });
        let block_latency = reports.iter().find_map(|(_, r)| match r {
            Report::Blocked {
                target, latency, ..
            } if covers(target, truth.attacker) => Some(*latency),
            _ => None,
        });
        attacks.push(AttackResult {
            attack: truth.kind.to_string(),
            attacker: truth.attacker,
            detected: detected_at.is_some(),
            detect_ms: detected_at
                .map(|at| at.saturating_duration_since(attack_start).as_secs_f64() * 1e3),
            blocked: listed.iter().any(|l| covers(l, truth.attacker)),
            block_latency_ms: block_latency.map(|l| l.as_secs_f64() * 1e3),
            alerted: alerts.iter().any(|(_, s)| covers(s, truth.attacker)),
        });
    }
    let false_positives = listed
        .iter()
        .filter(|l| !scenario.truth.iter().any(|t| covers(l, t.attacker)))
        .cloned()
        .collect();
    Ok(SimulationReport {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        attacks,
        false_positives,
        events,
        events_per_sec: events as f64 / elapsed.as_secs_f64().max(0.001),
        malformed_rows: malformed,
        elapsed_secs: elapsed.as_secs_f64(),
    })
}

fn outcome_source(outcome: &Outcome) -> Option<IpAddr> {
    outcome.finding().source.as_ip()
}

fn temp_ledger_path() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("mtids-simulate-{}-{nanos}.db", std::process::id()))
}

fn progress_line(report: &Report) {
    match report {
        Report::Outcome { outcome, .. } => match outcome.as_ref() {
            Outcome::Ban(d) => eprintln!(
                "  detected {:<22} {:<28} -> ban {} for {}s",
                d.finding.kind.as_str(),
                d.finding.source.to_string(),
                d.target,
                d.duration.as_secs()
            ),
            // Repeats from a source that is already blocked are expected: not news.
            Outcome::Suppressed(s)
                if matches!(s.reason, mtids_detect::Suppression::AlreadyBanned { .. }) => {}
            Outcome::Suppressed(s) => eprintln!(
                "  detected {:<22} {:<28} -> not banned: {}",
                s.finding.kind.as_str(),
                s.finding.source.to_string(),
                s.reason
            ),
        },
        Report::Blocked {
            target, latency, ..
        } => eprintln!(
            "  blocked  {target:<51} in {:.2} ms",
            latency.as_secs_f64() * 1e3
        ),
        Report::BlockFailed { target, error, .. } => {
            eprintln!("  block of {target} failed: {error}");
        }
        Report::Disconnected { router, error, .. } => {
            eprintln!("  lost router {router}: {error}");
        }
        Report::Connected { .. } => {}
    }
}

fn print_report(r: &SimulationReport) {
    println!();
    println!(
        "{:<20} {:<16} {:>8} {:>11} {:>8} {:>12} {:>6}",
        "attack", "attacker", "detected", "detect (ms)", "blocked", "block (ms)", "alert"
    );
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let mut by_result: BTreeMap<bool, usize> = BTreeMap::new();
    for a in &r.attacks {
        *by_result.entry(a.blocked).or_default() += 1;
        println!(
            "{:<20} {:<16} {:>8} {:>11} {:>8} {:>12} {:>6}",
            a.attack,
            a.attacker.to_string(),
            yes(a.detected),
            ms(a.detect_ms),
            yes(a.blocked),
            ms(a.block_latency_ms),
            yes(a.alerted)
        );
    }
    println!();
    println!(
        "attacks blocked: {}/{}   false positives: {}{}",
        by_result.get(&true).copied().unwrap_or(0),
        r.attacks.len(),
        r.false_positives.len(),
        if r.false_positives.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.false_positives.join(", "))
        }
    );
    println!(
        "events: {} in {:.1} s ({:.0}/s), malformed rows skipped: {}",
        r.events, r.elapsed_secs, r.events_per_sec, r.malformed_rows
    );
    println!("result: {}", if r.passed() { "PASS" } else { "FAIL" });
}
