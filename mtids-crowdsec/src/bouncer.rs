//! The bouncer side: pull the decision stream and keep track of the bans held.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use mtids_detect::IpPrefix;
use reqwest::{Client, StatusCode, Url};

use crate::Secret;
use crate::config::{ResolvedConfig, StreamFilters};
use crate::decision::{MTIDS_ORIGIN, RawDecision, RawStream, StreamUpdate, to_ban};
use crate::error::CrowdsecError;
use crate::http::{build_client, endpoint, read_body, status_error};
use crate::own::OwnBans;

/// Largest stream answer accepted (about 300,000 decisions).
pub const MAX_STREAM_BODY: usize = 64 * 1024 * 1024;

/// Decisions kept per target (several scenarios may ban one address).
const MAX_DECISIONS_PER_TARGET: usize = 16;

/// A timeout for one stream request: generous, a startup snapshot can be large.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const DURING: &str = "decisions stream";

/// A CrowdSec bouncer: pulls `GET /v1/decisions/stream` with its API key.
///
/// The LAPI's side (crowdsec v1.4.6, `StreamDecision` in
/// `pkg/apiserver/controllers/v1/decisions.go`): `startup=true` answers every active
/// decision in `new` and every expired one in `deleted`; otherwise `new` holds decisions
/// created since the bouncer's last pull and `deleted` those that ended since then; the
/// last pull is stored at the end of every successful answer; `scopes` defaults to
/// `ip,range`; each list is deduplicated by value, scope and type.
///
/// The first [`pull`](Self::pull) asks for the snapshot (`startup=true`); later ones for the
/// changes since the previous pull (`startup=false`; the LAPI remembers the bouncer's last
/// pull). After a failed pull the next one asks for the snapshot again. The
/// scopes asked for are always `ip,range`; [`StreamFilters`] adds `origins=` and
/// `scenarios_containing=`.
///
/// The bouncer holds at most `max_pulled_bans` targets: beyond that, new bans are left out
/// and counted in [`SkippedDecisions::over_cap`](crate::SkippedDecisions::over_cap). A
/// target stays held while any of its decisions lasts; it is reported deleted only when
/// the last one ends (the 1.4.6 LAPI reports each decision's end, even when another
/// decision still bans the same address).
#[derive(Debug)]
pub struct Bouncer {
    client: Client,
    stream_url: Url,
    key: Secret,
    filters: StreamFilters,
    max_bans: usize,
    own: OwnBans,
    started: bool,
    /// Target -> its live decisions (id, end).
    held: HashMap<IpPrefix, Vec<(Option<i64>, Instant)>>,
}

impl Bouncer {
    /// A bouncer for the LAPI at `url` (its base, e.g. `http://127.0.0.1:8080`).
    ///
    /// `own` should be the [`OwnBans`] of this process's [`Watcher`](crate::Watcher), if
    /// any, so that bans it pushed are recognised when they come back.
    pub fn new(
        url: &Url,
        key: Secret,
        filters: StreamFilters,
        max_pulled_bans: usize,
        own: OwnBans,
    ) -> Result<Self, CrowdsecError> {
        Ok(Self {
            client: build_client(url, REQUEST_TIMEOUT)?,
            stream_url: endpoint(url, "v1/decisions/stream"),
            key,
            filters,
            max_bans: max_pulled_bans.max(1),
            own,
            started: false,
            held: HashMap::new(),
        })
    }

    /// The bouncer a resolved `[crowdsec]` section asks for; `None` without a bouncer key.
    pub fn from_config(
        config: &ResolvedConfig,
        own: OwnBans,
    ) -> Result<Option<Self>, CrowdsecError> {
        config
            .bouncer_key
            .clone()
            .map(|key| {
                Bouncer::new(
                    &config.url,
                    key,
                    config.filters.clone(),
                    config.max_pulled_bans,
                    own,
                )
            })
            .transpose()
    }

    /// How many targets are held (applied and not yet ended).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Makes the next pull a startup snapshot again (after the integrator lost its state).
    pub fn restart_stream(&mut self) {
        self.started = false;
    }

    /// Pulls once: the snapshot the first time (and after [`restart_stream`](Self::restart_stream)),
    /// the changes since the last successful pull afterwards.
    ///
    /// # Errors
    ///
    /// [`CrowdsecError::Unreachable`], [`CrowdsecError::Status`] (401/403: a wrong bouncer
    /// key), [`CrowdsecError::Malformed`] or [`CrowdsecError::TooLarge`]; nothing of a failed
    /// answer is used, and the next pull is a snapshot.
    pub async fn pull(&mut self) -> Result<StreamUpdate, CrowdsecError> {
        let result = self.pull_once().await;
        // The LAPI may have moved this bouncer's position even though the answer did not
        // reach us whole (a cut connection, a proxy's error page): the next pull takes
        // the snapshot again rather than risk missing changes.
        self.started = result.is_ok();
        result
    }

    async fn pull_once(&mut self) -> Result<StreamUpdate, CrowdsecError> {
        let startup = !self.started;
        let mut url = self.stream_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("startup", if startup { "true" } else { "false" });
            query.append_pair("scopes", "ip,range");
            if !self.filters.origins.is_empty() {
                query.append_pair("origins", &self.filters.origins.join(","));
            }
            if !self.filters.scenarios_containing.is_empty() {
                query.append_pair(
                    "scenarios_containing",
                    &self.filters.scenarios_containing.join(","),
                );
            }
        }
        let response = self
            .client
            .get(url)
            .header("X-Api-Key", self.key.expose())
            .send()
            .await
            .map_err(|e| CrowdsecError::Unreachable {
                during: DURING,
                reason: mtids_http::describe_error(e),
            })?;
        if response.status() != StatusCode::OK {
            return Err(status_error(response, DURING).await);
        }
        let body = read_body(response, MAX_STREAM_BODY, DURING).await?;
        let raw: RawStream =
            serde_json::from_slice(&body).map_err(|e| CrowdsecError::Malformed {
                during: DURING,
                reason: e.to_string(),
            })?;
        let update = self.apply(raw, startup, Instant::now());
        if update.skipped.total() > 0 {
            tracing::debug!(skipped = ?update.skipped, "decisions left out of the pull");
        }
        if update.skipped.over_cap > 0 {
            tracing::warn!(
                left_out = update.skipped.over_cap,
                max_pulled_bans = self.max_bans,
                first = ?update.left_out,
                "pulled bans left out: max_pulled_bans reached"
            );
        }
        Ok(update)
    }

    /// Turns a parsed answer into an update and the new held set.
    fn apply(&mut self, raw: RawStream, startup: bool, now: Instant) -> StreamUpdate {
        let mut update = StreamUpdate {
            startup,
            ..StreamUpdate::default()
        };
        if startup {
            // A snapshot replaces everything; its `deleted` (every expired decision the LAPI
            // still stores) says nothing more.
            self.held.clear();
        } else {
            // Deleted first: a target re-banned within one interval ends up held.
            for decision in raw.deleted.into_iter().flatten() {
                self.take_deleted(decision, now, &mut update);
            }
        }
        for decision in raw.new.into_iter().flatten() {
            self.take_new(decision, now, &mut update);
        }
        // With dedup (the LAPI's default) one answer names a target once per list; a target
        // both deleted and new is simply re-applied.
        update
    }

    fn take_deleted(&mut self, decision: RawDecision, now: Instant, update: &mut StreamUpdate) {
        let mut ban = match to_ban(decision, true) {
            Ok(ban) => ban,
            Err(skip) => return skip.count(&mut update.skipped),
        };
        if let Entry::Occupied(mut entry) = self.held.entry(ban.target) {
            let live = entry.get_mut();
            live.retain(|&(id, end)| end > now && (ban.id.is_none() || id != ban.id));
            if let Some(&(_, end)) = live.iter().max_by_key(|(_, end)| *end) {
                // Another decision still bans this target: keep it, with the time it has.
                tracing::debug!(target = %ban.target, left = ?end.duration_since(now), "decision ended, another still holds");
                return;
            }
            entry.remove();
        }
        ban.pushed_by_us = ban.origin == MTIDS_ORIGIN && self.own.contains(&ban.target, now);
        update.deleted.push(ban);
    }

    fn take_new(&mut self, decision: RawDecision, now: Instant, update: &mut StreamUpdate) {
        let mut ban = match to_ban(decision, false) {
            Ok(ban) => ban,
            Err(skip) => return skip.count(&mut update.skipped),
        };
        let held = self.held.len();
        let end = now + ban.remaining;
        match self.held.entry(ban.target) {
            Entry::Occupied(mut entry) => {
                let live = entry.get_mut();
                live.retain(|&(id, _)| ban.id.is_none() || id != ban.id);
                if live.len() >= MAX_DECISIONS_PER_TARGET {
                    // Keep the longest ones.
                    live.sort_by_key(|(_, end)| std::cmp::Reverse(*end));
                    live.truncate(MAX_DECISIONS_PER_TARGET - 1);
                }
                live.push((ban.id, end));
                if let Some(longest) = live.iter().map(|(_, end)| *end).max() {
                    ban.remaining = longest.saturating_duration_since(now);
                }
            }
            Entry::Vacant(entry) => {
                if held >= self.max_bans {
                    update.skipped.over_cap += 1;
                    if update.left_out.len() < 10 {
                        update.left_out.push(ban.target);
                    }
                    return;
                }
                entry.insert(vec![(ban.id, end)]);
            }
        }
        ban.pushed_by_us = ban.origin == MTIDS_ORIGIN && self.own.contains(&ban.target, now);
        update.new.push(ban);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(id: i64, value: &str, duration: &str, origin: &str) -> RawDecision {
        RawDecision {
            id: Some(id),
            origin: Some(origin.into()),
            kind: Some("ban".into()),
            scope: Some(if value.contains('/') { "Range" } else { "Ip" }.into()),
            value: Some(value.into()),
            duration: Some(duration.into()),
            scenario: Some("s".into()),
            uuid: None,
        }
    }

    fn bouncer(cap: usize, own: OwnBans) -> Bouncer {
        let url = Url::parse("http://127.0.0.1:1").unwrap();
        Bouncer::new(&url, Secret::new("k"), StreamFilters::default(), cap, own).unwrap()
    }

    fn stream(new: Vec<RawDecision>, deleted: Vec<RawDecision>) -> RawStream {
        RawStream {
            new: Some(new),
            deleted: Some(deleted),
        }
    }

    #[test]
    fn cap_leaves_out_new_targets_but_extends_held_ones() {
        let mut b = bouncer(2, OwnBans::new());
        let now = Instant::now();
        let u = b.apply(
            stream(
                vec![
                    raw(1, "192.0.2.1", "1h", "cscli"),
                    raw(2, "192.0.2.2", "1h", "cscli"),
                    raw(3, "192.0.2.3", "1h", "cscli"),
                ],
                vec![],
            ),
            true,
            now,
        );
        assert_eq!(u.new.len(), 2);
        assert_eq!(u.skipped.over_cap, 1);
        assert_eq!(u.left_out, ["192.0.2.3".parse::<IpPrefix>().unwrap()]);
        let u = b.apply(
            stream(vec![raw(4, "192.0.2.1", "2h", "crowdsec")], vec![]),
            false,
            now,
        );
        assert_eq!(u.new.len(), 1, "a held target may get another decision");
        assert_eq!(u.new[0].remaining, Duration::from_secs(7200));
        assert_eq!(b.held(), 2);
    }

    #[test]
    fn a_target_stays_until_its_last_decision_ends() {
        let mut b = bouncer(10, OwnBans::new());
        let now = Instant::now();
        b.apply(
            stream(
                vec![
                    raw(1, "192.0.2.1", "1h", "cscli"),
                    raw(2, "192.0.2.1", "4h", "crowdsec"),
                ],
                vec![],
            ),
            true,
            now,
        );
        let u = b.apply(
            stream(vec![], vec![raw(1, "192.0.2.1", "-1s", "cscli")]),
            false,
            now,
        );
        assert!(u.deleted.is_empty(), "decision 2 still bans it");
        let u = b.apply(
            stream(vec![], vec![raw(2, "192.0.2.1", "-1s", "crowdsec")]),
            false,
            now,
        );
        assert_eq!(u.deleted.len(), 1);
        assert_eq!(b.held(), 0);
        // Deleted decisions of targets never held (an earlier run's) are still reported.
        let u = b.apply(
            stream(vec![], vec![raw(9, "192.0.2.9", "-1s", "cscli")]),
            false,
            now,
        );
        assert_eq!(u.deleted.len(), 1);
    }

    #[test]
    fn a_snapshot_replaces_and_ignores_its_deleted_list() {
        let mut b = bouncer(10, OwnBans::new());
        let now = Instant::now();
        b.apply(
            stream(vec![raw(1, "192.0.2.1", "1h", "cscli")], vec![]),
            true,
            now,
        );
        let u = b.apply(
            stream(
                vec![raw(2, "192.0.2.2", "1h", "cscli")],
                vec![raw(1, "192.0.2.1", "-1h", "cscli")],
            ),
            true,
            now,
        );
        assert!(u.startup && u.deleted.is_empty());
        assert_eq!(u.new.len(), 1);
        assert_eq!(b.held(), 1, "the snapshot replaced what was held");
    }

    #[test]
    fn own_pushes_are_recognised_only_with_origin_mtids() {
        let own = OwnBans::new();
        let now = Instant::now();
        own.record("192.0.2.5".parse().unwrap(), Duration::from_secs(3600), now);
        let mut b = bouncer(10, own);
        let u = b.apply(
            stream(
                vec![
                    raw(1, "192.0.2.5", "1h", "mtids"),
                    raw(2, "192.0.2.6", "1h", "mtids"),
                    raw(3, "192.0.2.5", "1h", "cscli"),
                ],
                vec![],
            ),
            true,
            now,
        );
        let own: Vec<_> = u.new.iter().map(|b| b.pushed_by_us).collect();
        assert_eq!(own, [true, false, false]);
    }
}
