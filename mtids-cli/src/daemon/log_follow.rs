//! Reading a router's log through the API: what was logged while mtids was away (by
//! `.id`, or by time after a reboot restarted the ids), then `=follow-only=`, each line
//! counted once per process. Where the log was read up to is kept in the ledger, so a
//! restarted daemon resumes there and warms its detectors up with the lines just before.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use mtids_detect::{
    Date, DetectionConfig, LineContext, Timestamp, parse_log_row_bytes, parse_log_time,
};
use mtids_enforce::LogPosition;
use routeros_proto::net::{Client, Error as ApiError, Response, RowStream};
use routeros_proto::{Command, Reply};

use super::detection::EventSender;
use super::router::{any_of, send, send_at};
use super::{Shared, Stats, system_time, timestamp};

/// How much the router's boot time, computed from its whole-second uptime and our clock,
/// may move between two readings without meaning a reboot (a real reboot moves it by the
/// whole time the router was down and booting, far more).
const BOOT_SLACK: Duration = Duration::from_secs(3);

/// How often the position is written to the ledger while lines arrive.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Where the log follow stopped, so a reconnect or a restart neither repeats nor loses
/// lines.
#[derive(Debug, Default)]
pub(super) struct LogCursor {
    /// The numeric part of the last `.id` processed.
    last_id: Option<u64>,
    /// That line's own time (the router's clock, read as UTC).
    last_time: Option<Timestamp>,
    /// When the router booted, as of the last connection.
    boot: Option<SystemTime>,
    /// Whether the position saved by an earlier process was looked up.
    loaded: bool,
    /// Whether the position moved since it was last saved.
    dirty: bool,
}

fn numeric_id(id: &str) -> Option<u64> {
    u64::from_str_radix(id.trim_start_matches('*'), 16).ok()
}

/// The longest window of the detectors that read log lines: how far before the saved
/// position a restarted daemon reads again to rebuild their state.
fn warm_up_window(config: &DetectionConfig) -> Duration {
    let secs = config
        .brute_force
        .window_secs
        .max(config.port_scan.window_secs)
        .max(config.login_cpu_spike.window_secs);
    Duration::from_secs(secs)
}

/// Most follow rows held while the catch-up commands run; past it the session is
/// restarted (a flood that large is read again from the position after the reconnect).
const MAX_EARLY_ROWS: usize = 65_536;

/// Runs `command` while reading `follow` into `early`. The client stops reading the socket
/// when a stream's unread replies reach its buffer (routeros-proto's backpressure), so a
/// follow left unread during a flood would hold back this command's own answer.
async fn call_reading_follow(
    client: &Client,
    command: Command,
    follow: &mut RowStream,
    early: &mut VecDeque<Result<Reply, ApiError>>,
) -> Result<Response, String> {
    let call = client.call(command);
    tokio::pin!(call);
    loop {
        tokio::select! {
            response = &mut call => return response.map_err(|e| e.to_string()),
            row = follow.next(), if early.len() < MAX_EARLY_ROWS => match row {
                Some(row) => early.push_back(row),
                None => return Err("log follow ended".to_owned()),
            },
            () = std::future::ready(()), if early.len() >= MAX_EARLY_ROWS => {
                return Err(format!(
                    "more than {MAX_EARLY_ROWS} log lines arrived while catching up; reconnecting to read them from the position"
                ));
            }
        }
    }
}

/// The router's boot time: our clock minus its `uptime` (`/system/resource/print`, see
/// ROUTEROS.md section 2: an uptime that went down means the router rebooted).
async fn read_boot(
    shared: &Shared,
    client: &Client,
    follow: &mut RowStream,
    early: &mut VecDeque<Result<Reply, ApiError>>,
) -> Option<SystemTime> {
    let command = Command::new("/system/resource/print").proplist(["uptime"]);
    let rows = call_reading_follow(client, command, follow, early)
        .await
        .ok()?;
    let uptime = rows
        .rows
        .first()?
        .get_str("uptime")
        .and_then(|u| mtids_enforce::parse_routeros_duration(&u))?;
    shared.now().checked_sub(uptime)
}

/// A log row's own time. The router prints its local time without an offset (ROUTEROS.md
/// section 3: `2025-02-11 00:02:30`, 7.18+ with milliseconds, older `jun/19/2024
/// 06:23:51`, or only `06:23:51` today); it is read as UTC, which is consistent between
/// lines of one router (positions compare them with each other).
fn row_time(row: &Reply, ctx: &LineContext) -> Option<Timestamp> {
    parse_log_time(&row.get_str("time")?, ctx)
}

/// `=follow-only=` on the log, after a plain print of what the router logged since the
/// position: lines with a higher `.id` when the router did not reboot, every line since
/// its boot when it did (the RAM log was emptied and the ids started again from `*1`).
/// After a daemon restart the lines within the longest detection window before the
/// position are fed again too, with their own times, so detector state survives the
/// restart. The follow is started before the print, so nothing falls in between; a line
/// that both deliver is processed once. Both carry the `input.log_topics` filter.
pub(super) async fn follow_log(
    shared: &Shared,
    client: &Client,
    events: &EventSender,
    cursor: &mut LogCursor,
) -> Result<(), String> {
    let router = shared
        .config
        .routers
        .get(events.source())
        .map(|r| r.name.clone());
    let topics = &shared.config.input.log_topics;
    let mut follow = client.stream(log_command(topics).follow_only());
    // Follow rows that arrive while the catch-up commands run, processed after them.
    let mut early = VecDeque::new();
    let boot = read_boot(shared, client, &mut follow, &mut early).await;
    let mut warm_up = false;
    if !cursor.loaded {
        cursor.loaded = true;
        let saved = router.as_deref().and_then(|r| {
            shared
                .with_ledger("reading the log position", |l| l.log_position(r))
                .flatten()
        });
        if let Some(pos) = saved {
            cursor.last_id = Some(pos.last_id);
            cursor.last_time = pos.last_time.map(timestamp);
            cursor.boot = pos.boot;
            warm_up = true;
        }
    }
    let rebooted = matches!((cursor.boot, boot), (Some(old), Some(new)) if new > old + BOOT_SLACK);
    let mut seen: HashSet<u64> = HashSet::new();
    if let Some(last) = cursor.last_id {
        let missed =
            call_reading_follow(client, log_command(topics), &mut follow, &mut early).await?;
        let now = shared.now();
        let ctx = LineContext::new(Date::of(timestamp(now)), 0);
        let window = warm_up_window(&shared.config.detection);
        let warm_from = cursor.last_time.map(|t| t.saturating_sub(window));
        let last_time = cursor.last_time;
        let (mut resumed, mut warmed, mut skipped) = (0usize, 0usize, 0usize);
        for row in &missed.rows {
            let id = row.id().and_then(|i| numeric_id(&i));
            let time = row_time(row, &ctx);
            if let Some(id) = id {
                seen.insert(id);
            }
            let new = if rebooted {
                // Every line in the RAM log is of the new boot; by time, to be sure.
                match (time, boot) {
                    (Some(t), Some(boot)) => system_time(t) + BOOT_SLACK >= boot,
                    _ => true,
                }
            } else {
                id.is_none_or(|id| id > last)
            };
            if new {
                process_log_row(shared, row, events, cursor, None).await?;
                resumed += 1;
            } else if warm_up
                && let (Some(t), Some(from), Some(to)) = (time, warm_from, last_time)
                && t >= from
                && t <= to
            {
                process_log_row(shared, row, events, cursor, Some(t)).await?;
                warmed += 1;
            } else {
                skipped += 1;
            }
        }
        shared
            .stats
            .duplicate_rows
            .fetch_add(skipped as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            router = router.as_deref().unwrap_or(""),
            resumed,
            warmed,
            skipped,
            rebooted,
            "log follow resumed"
        );
    }
    cursor.boot = boot.or(cursor.boot);
    cursor.dirty = true;
    save_position(shared, router.as_deref(), cursor);
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let row = tokio::select! {
            row = async { early.pop_front() }, if !early.is_empty() => row,
            row = follow.next(), if early.is_empty() => row,
            _ = save.tick() => {
                save_position(shared, router.as_deref(), cursor);
                continue;
            }
        };
        let Some(row) = row else { break };
        let row = row.map_err(|e| e.to_string())?;
        if row.is_dead() {
            continue;
        }
        if let Some(id) = row.id().and_then(|i| numeric_id(&i))
            && seen.remove(&id)
        {
            Stats::bump(&shared.stats.duplicate_rows);
            continue;
        }
        process_log_row(shared, &row, events, cursor, None).await?;
    }
    save_position(shared, router.as_deref(), cursor);
    Err("log follow ended".to_owned())
}

/// Writes the cursor to the ledger if it moved (a failure is logged; the next try comes
/// with the next interval).
fn save_position(shared: &Shared, router: Option<&str>, cursor: &mut LogCursor) {
    let (Some(router), Some(last_id), true) = (router, cursor.last_id, cursor.dirty) else {
        return;
    };
    let position = LogPosition {
        last_id,
        last_time: cursor.last_time.map(system_time),
        boot: cursor.boot,
    };
    let now = shared.now();
    if shared
        .with_ledger("saving the log position", |l| {
            l.save_log_position(router, &position, now)
        })
        .is_some()
    {
        cursor.dirty = false;
    }
}

/// One log row to the detectors: at `at` (its own time, for lines read again after a
/// restart), else now.
async fn process_log_row(
    shared: &Shared,
    row: &Reply,
    events: &EventSender,
    cursor: &mut LogCursor,
    at: Option<Timestamp>,
) -> Result<(), String> {
    let observed = Instant::now();
    Stats::bump(&shared.stats.log_rows);
    // A line read again for warm-up lies before the position: it does not move it.
    if at.is_none()
        && let Some(id) = row.id().and_then(|i| numeric_id(&i))
    {
        cursor.last_id = Some(id);
        let ctx = LineContext::new(Date::of(timestamp(shared.now())), 0);
        if let Some(t) = row_time(row, &ctx) {
            cursor.last_time = Some(t);
        }
        cursor.dirty = true;
    }
    let (Some(topics), Some(message)) = (row.get("topics"), row.get("message")) else {
        Stats::bump(&shared.stats.malformed_rows);
        return Ok(());
    };
    let mut scratch = String::new();
    let event = parse_log_row_bytes(topics, message, &mut scratch).into_owned();
    match at {
        None => send(shared, events, event, observed).await,
        Some(now) => send_at(events, now, event, observed).await,
    }
}

/// `/log/print` of the rows mtids reads: every row, or only those whose `topics` equal one
/// of `topics` (a query on the router's side, so other rows never cross the network).
fn log_command(topics: &[String]) -> Command {
    let command = Command::new("/log/print").proplist([".id", "time", "topics", "message"]);
    match any_of("topics", topics) {
        Some(query) => command.query(query),
        None => command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_after_a_star() {
        assert_eq!(numeric_id("*1A"), Some(26));
        assert_eq!(numeric_id("*0"), Some(0));
        assert_eq!(numeric_id("*zz"), None);
    }

    fn queries(c: &Command) -> Vec<String> {
        c.queries()
            .map(|q| String::from_utf8_lossy(q).into_owned())
            .collect()
    }

    #[test]
    fn log_topics_are_or_ed_exact_values() {
        assert!(queries(&log_command(&[])).is_empty());
        let topics = [
            "firewall,info".into(),
            "system,error,critical".into(),
            "system,info,account".into(),
        ];
        assert_eq!(
            queries(&log_command(&topics)),
            [
                "?topics=firewall,info",
                "?topics=system,error,critical",
                "?#|",
                "?topics=system,info,account",
                "?#|"
            ]
        );
        let follow = log_command(&topics).follow_only();
        assert_eq!(queries(&follow).len(), 5);
        assert!(follow.attribute("follow-only").is_some());
    }
}
