//! The daemon's side of CrowdSec (issue 14): a task pulls the LAPI's decision stream
//! (mtids-crowdsec's [`Bouncer`]) every `pull_interval` and hands each update to the
//! detection task, which applies the bans through the same guard (allowlist, the routers'
//! own addresses), ledger and [`Fleet`] as its own decisions; and the [`Watcher`] that
//! pushes mtids' own bans.
//!
//! Pulled bans are recorded with the detector [`DETECTOR`]: that is how a deleted CrowdSec
//! decision lifts only bans that came from CrowdSec, never one mtids decided itself.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mtids_crowdsec::{
    Ban, BanReport, Bouncer, Evidence, OwnBans, ResolvedConfig, SkippedDecisions, StreamUpdate,
    Watcher, WatcherConfig,
};
use mtids_detect::{DetectionEngine, Finding, IpPrefix, Timestamp};
use mtids_enforce::{BanOrder, BanState, Fleet, Scope};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::detection::{Input, describe};
use super::{Shared, system_time, timestamp};
use crate::error::CliError;

/// The detector name of bans pulled from CrowdSec (ledger, logs, address-list comment).
pub(crate) const DETECTOR: &str = "crowdsec";

/// The [`BanOrder`] tag of pulled bans: no alert waits for their answers (the tracker's
/// tags count up from 0).
const PULLED_TAG: u64 = u64::MAX;

/// At most this many addresses are named in the log line about bans left out.
const LOG_LEFT_OUT: usize = 10;

/// How often the pull is a full snapshot again rather than a delta. The 1.4.6 LAPI's
/// stream hands a bouncer the decisions created after its previous pull; decisions
/// written in bulk while a pull runs (`cscli decisions import`, a big alert) can commit
/// with an earlier creation time and never appear in a delta: 100 of 10,000 imported
/// decisions were missed that way in `tests/tests/crowdsec.rs`. A snapshot catches up
/// (soon after a bulk delta, see [`BULK`], and once every `RESYNC` in any case); bans
/// already applied with the same end are not sent to the routers again.
const RESYNC: Duration = Duration::from_secs(60);

/// A delta with at least this many decisions is a bulk write: a snapshot follows soon
/// ([`SETTLE`] later), rather than within [`RESYNC`], to catch what the delta missed.
const BULK: usize = 100;

/// How long after a bulk delta the catch-up snapshot is taken (at least two pulls).
const SETTLE: Duration = Duration::from_secs(2);

/// A pulled ban whose end moved by less than this is not ordered again.
const SAME_END: Duration = Duration::from_secs(30);

/// What the daemon keeps of CrowdSec: the watcher (pushes) and the bouncer (pulls) until
/// its task is spawned.
pub(crate) struct Crowdsec {
    pub(crate) watcher: Option<Watcher>,
    /// The routers pulled bans go to (`[crowdsec] group`, else every router).
    scope: Scope,
    bouncer: Mutex<Option<(Bouncer, Duration)>>,
    /// Pulled bans applied, and when they end (touched by the detection task only).
    applied: Mutex<HashMap<IpPrefix, SystemTime>>,
}

impl Crowdsec {
    /// Builds the clients of a resolved `[crowdsec]` section (nothing is contacted yet).
    pub(crate) fn new(config: &ResolvedConfig, group: Option<&str>) -> Result<Crowdsec, CliError> {
        let own = OwnBans::new();
        let bad = |e: mtids_crowdsec::CrowdsecError| {
            CliError::config("configuration", "crowdsec", e.to_string())
        };
        let watcher =
            Watcher::from_config(config, WatcherConfig::default(), own.clone()).map_err(bad)?;
        let bouncer = Bouncer::from_config(config, own).map_err(bad)?;
        if watcher.is_some() {
            tracing::info!(url = %config.url, "pushing bans to the CrowdSec LAPI");
        }
        Ok(Crowdsec {
            watcher,
            scope: group.map_or(Scope::All, |g| Scope::Group(g.to_owned())),
            bouncer: Mutex::new(bouncer.map(|b| (b, config.pull_interval))),
            applied: Mutex::new(HashMap::new()),
        })
    }

    /// Spawns the pull task, which sends each update to the detection task.
    pub(crate) fn spawn_pulls(
        &self,
        shared: &Arc<Shared>,
        to_detection: mpsc::Sender<Input>,
    ) -> Option<JoinHandle<()>> {
        let (bouncer, every) = self
            .bouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(tokio::spawn(pull_loop(
            Arc::clone(shared),
            bouncer,
            every,
            to_detection,
        )))
    }
}

async fn pull_loop(
    shared: Arc<Shared>,
    mut bouncer: Bouncer,
    every: Duration,
    to_detection: mpsc::Sender<Input>,
) {
    let mut shutdown = shared.shutdown.clone();
    let mut reachable = None;
    let mut snapshot_at = tokio::time::Instant::now();
    let mut snapshot_soon: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if snapshot_at.elapsed() >= RESYNC || snapshot_soon.is_some_and(|t| t <= now) {
            bouncer.restart_stream();
        }
        let pulled = tokio::select! {
            pulled = bouncer.pull() => pulled,
            _ = shutdown.changed() => return,
        };
        let up = pulled.is_ok();
        shared.metrics.set_crowdsec_reachable(up);
        match pulled {
            Ok(update) => {
                if update.startup {
                    snapshot_at = tokio::time::Instant::now();
                    snapshot_soon = None;
                } else if update.new.len() >= BULK && snapshot_soon.is_none() {
                    snapshot_soon = Some(tokio::time::Instant::now() + SETTLE.max(every * 2));
                }
                if reachable != Some(true) {
                    tracing::info!(
                        held = bouncer.held(),
                        "pulling decisions from the CrowdSec LAPI"
                    );
                }
                let changed = update.startup
                    || !update.new.is_empty()
                    || !update.deleted.is_empty()
                    || update.skipped.total() > 0
                    || !update.left_out.is_empty();
                if changed
                    && to_detection
                        .send(Input::Crowdsec(Box::new(update)))
                        .await
                        .is_err()
                {
                    return; // The detection task has stopped.
                }
            }
            Err(e) if reachable != Some(false) => {
                tracing::warn!(error = %e, "CrowdSec LAPI pull failed; retrying every pull_interval (local detection and blocking go on)");
            }
            Err(_) => {}
        }
        reachable = Some(up);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Applies one pulled update, in the detection task: new bans through the guard into the
/// ledger and the fleet; ended ones lifted when they came from CrowdSec.
pub(crate) fn apply(
    shared: &Arc<Shared>,
    engine: &mut DetectionEngine,
    fleet: &Arc<Fleet>,
    update: StreamUpdate,
) {
    count_skipped(shared, &update.skipped);
    if !update.left_out.is_empty() {
        let first: Vec<String> = update
            .left_out
            .iter()
            .take(LOG_LEFT_OUT)
            .map(ToString::to_string)
            .collect();
        tracing::warn!(
            left_out = update.left_out.len(),
            first = %first.join(", "),
            "CrowdSec bans left out: crowdsec.max_pulled_bans reached"
        );
    }
    let now_sys = shared.now();
    let now = timestamp(now_sys);
    let Some(state) = shared.crowdsec.as_ref() else {
        return;
    };
    let mut known = state.applied.lock().unwrap_or_else(PoisonError::into_inner);
    if update.startup {
        // A snapshot replaces what was pulled before: pulled bans missing from it (known
        // here, or in the ledger after a restart) have ended.
        let in_snapshot: BTreeSet<IpPrefix> = update.new.iter().map(|b| b.target).collect();
        let mut gone: BTreeSet<IpPrefix> = known
            .keys()
            .filter(|t| !in_snapshot.contains(t))
            .copied()
            .collect();
        if let Some(active) = shared.with_ledger("reading pulled bans", |l| l.active(None, now_sys))
        {
            gone.extend(
                active
                    .iter()
                    .filter(|b| b.detector == DETECTOR)
                    .filter_map(|b| b.target.parse::<IpPrefix>().ok())
                    .filter(|t| !in_snapshot.contains(t)),
            );
        }
        for target in gone {
            known.remove(&target);
            lift(shared, engine, fleet, target, now_sys);
        }
    }
    let mut applied = 0u64;
    let mut unchanged = 0u64;
    for ban in update.new {
        if ban.pushed_by_us {
            shared.metrics.crowdsec_pulled("pushed_by_us", 1);
            continue;
        }
        if let Some(guard) = engine.policy().guard().check_prefix(&ban.target) {
            shared.metrics.crowdsec_pulled("guarded", 1);
            tracing::warn!(address = %ban.target, origin = %ban.origin, scenario = %ban.scenario, reason = %guard, "CrowdSec ban not applied: guarded address");
            continue;
        }
        // The policy knows it is banned: a local finding on it is not banned (and pushed)
        // again while the CrowdSec ban lasts.
        let until = Timestamp::from_millis(
            now.as_millis()
                .saturating_add(u64::try_from(ban.remaining.as_millis()).unwrap_or(u64::MAX)),
        );
        let ends = now_sys + ban.remaining;
        if known.get(&ban.target).is_some_and(|&end| {
            end.duration_since(ends)
                .or_else(|_| ends.duration_since(end))
                .is_ok_and(|d| d < SAME_END)
        }) {
            unchanged += 1;
            continue;
        }
        known.insert(ban.target, ends);
        engine.policy_mut().restore_ban(now, ban.target, until, 1);
        if shared.dry_run() {
            shared.metrics.crowdsec_pulled("dry_run", 1);
            tracing::warn!(address = %ban.target, origin = %ban.origin, scenario = %ban.scenario, dry_run = true, "ban from CrowdSec");
            continue;
        }
        order(fleet, &state.scope, &ban);
        applied += 1;
    }
    if applied > 0 {
        shared.metrics.crowdsec_pulled("applied", applied);
        tracing::info!(bans = applied, "applied bans from CrowdSec");
    }
    if unchanged > 0 {
        shared.metrics.crowdsec_pulled("already_applied", unchanged);
    }
    let ended: BTreeSet<IpPrefix> = update.deleted.iter().map(|b| b.target).collect();
    for target in ended {
        known.remove(&target);
        lift(shared, engine, fleet, target, now_sys);
    }
    known.retain(|_, end| *end > now_sys);
}

fn order(fleet: &Fleet, scope: &Scope, ban: &Ban) {
    let reason = format!("crowdsec {}: {}", ban.origin, ban.scenario);
    let order = BanOrder::new(mtids_enforce::Ban::new(
        ban.target,
        Some(ban.remaining),
        DETECTOR,
        reason,
    ))
    .tag(PULLED_TAG);
    match fleet.order(scope, &order) {
        Ok(per_router) => {
            for (router, result) in per_router {
                if let Err(e) = result {
                    tracing::warn!(%router, address = %ban.target, error = %e, "CrowdSec ban not queued (it stays pending in the ledger)");
                }
            }
        }
        Err(e) => tracing::error!(address = %ban.target, error = %e, "CrowdSec ban not ordered"),
    }
}

/// Lifts `target` when every active ban of it in the ledger came from CrowdSec.
fn lift(
    shared: &Arc<Shared>,
    engine: &mut DetectionEngine,
    fleet: &Arc<Fleet>,
    target: IpPrefix,
    now: SystemTime,
) {
    let rendered = target.to_string();
    let Some(active) = shared.with_ledger("reading a target's bans", |l| {
        Ok(l.history(&rendered)?
            .into_iter()
            .filter(|b| b.state.is_active() && b.remaining(now) != Some(Duration::ZERO))
            .collect::<Vec<_>>())
    }) else {
        return;
    };
    if active.is_empty() || active.iter().any(|b| b.detector != DETECTOR) {
        // Not ours to lift: mtids (or an operator) banned it too, or it is already gone.
        return;
    }
    for ban in &active {
        if ban.state == BanState::Pending || ban.state == BanState::Applied {
            shared.with_ledger("marking a CrowdSec ban removed", |l| {
                l.mark_removed(ban.id, "crowdsec decision ended", now)
            });
        }
    }
    engine.policy_mut().lift_ban(&target);
    shared.metrics.crowdsec_unbanned();
    tracing::info!(address = %target, "CrowdSec decision ended: ban lifted");
    // Off the detection task: the routers answer in their own time (one that is away
    // keeps the entry until its timeout; the ledger no longer re-applies it).
    let fleet = Arc::clone(fleet);
    let scope = shared
        .crowdsec
        .as_ref()
        .map_or(Scope::All, |c| c.scope.clone());
    tokio::spawn(async move {
        if let Err(e) = fleet.unblock(&scope, target).await {
            tracing::warn!(address = %target, error = %e, "lifting a CrowdSec ban failed");
        }
    });
}

fn count_skipped(shared: &Shared, skipped: &SkippedDecisions) {
    for (reason, n) in [
        ("not_ban", skipped.not_ban),
        ("unknown_scope", skipped.unknown_scope),
        ("invalid_value", skipped.invalid_value),
        ("invalid_duration", skipped.invalid_duration),
        ("expired", skipped.expired),
        ("missing_field", skipped.missing_field),
        ("over_cap", skipped.over_cap),
    ] {
        if n > 0 {
            shared.metrics.crowdsec_pulled(reason, n);
        }
    }
}

/// Pushes one of mtids' own ban decisions (never a pulled one) with the finding's
/// evidence; returns at once, whether or not the LAPI is up.
pub(crate) fn push(shared: &Shared, target: IpPrefix, duration: Duration, finding: &Finding) {
    let Some(watcher) = shared.crowdsec.as_ref().and_then(|c| c.watcher.as_ref()) else {
        return;
    };
    let e = &finding.evidence;
    let mut meta: Vec<(String, String)> = vec![
        ("source_ip".to_owned(), finding.source.to_string()),
        ("kind".to_owned(), finding.kind.to_string()),
        ("count".to_owned(), e.count.to_string()),
        ("threshold".to_owned(), e.threshold.to_string()),
    ];
    for user in e.users.iter().take(8) {
        meta.push(("user".to_owned(), user.clone()));
    }
    for service in &e.services {
        meta.push(("service".to_owned(), service.clone()));
    }
    for port in e.ports.iter().take(16) {
        meta.push(("port".to_owned(), port.to_string()));
    }
    let mut report = BanReport::new(
        target,
        duration,
        finding.detector,
        describe(finding),
        system_time(e.last_seen),
    );
    report.started_at = system_time(e.first_seen);
    report = report.with_event(Evidence::new(system_time(e.last_seen), meta));
    for sample in e.samples.iter().take(8) {
        report = report.with_event(Evidence::new(
            system_time(e.last_seen),
            vec![("log".to_owned(), sample.clone())],
        ));
    }
    watcher.submit(report);
}

/// Pushes a ban made by `mtids bans add` (learned from the ledger), once per target.
pub(crate) fn push_manual(
    shared: &Shared,
    target: IpPrefix,
    duration: Duration,
    detector: &str,
    reason: &str,
) {
    if detector == DETECTOR {
        return; // Pulled, by this or another daemon on the ledger: never pushed back.
    }
    let Some(watcher) = shared.crowdsec.as_ref().and_then(|c| c.watcher.as_ref()) else {
        return;
    };
    watcher.submit(BanReport::new(
        target,
        duration,
        detector,
        reason,
        shared.now(),
    ));
}

/// Mirrors the watcher's counters into the metrics (called when they are rendered).
pub(crate) fn refresh_metrics(shared: &Shared) {
    if let Some(watcher) = shared.crowdsec.as_ref().and_then(|c| c.watcher.as_ref()) {
        let s = watcher.stats();
        shared
            .metrics
            .set_crowdsec_pushes(s.delivered, s.dropped, s.rejected);
    }
}

/// Delivers what the watcher still holds, within `within`.
pub(crate) async fn shutdown(shared: &Shared, within: Duration) {
    if let Some(watcher) = shared.crowdsec.as_ref().and_then(|c| c.watcher.as_ref())
        && let Err(e) = watcher.shutdown(within).await
    {
        tracing::warn!(error = %e, "CrowdSec alerts not delivered before shutdown");
    }
}
