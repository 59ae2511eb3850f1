//! Reading a router's log through the API: a print of what was logged while mtids was
//! away, then `=follow-only=`, each line counted once.

use std::collections::HashSet;
use std::time::Instant;

use mtids_detect::parse_log_row_bytes;
use routeros_proto::net::Client;
use routeros_proto::{Command, Reply};

use super::detection::EventSender;
use super::router::{any_of, send};
use super::{Shared, Stats};

/// Where the log follow stopped, so a reconnect neither repeats nor loses lines.
#[derive(Debug, Default)]
pub(super) struct LogCursor {
    /// The numeric part of the last `.id` processed.
    last_id: Option<u64>,
}

fn numeric_id(id: &str) -> Option<u64> {
    u64::from_str_radix(id.trim_start_matches('*'), 16).ok()
}

/// `=follow-only=` on the log. After a reconnect, the lines logged while disconnected
/// are read with a plain print first (the follow is started before it, so nothing falls
/// in between); `.id`s already processed are skipped. Both carry the `input.log_topics`
/// filter.
pub(super) async fn follow_log(
    shared: &Shared,
    client: &Client,
    events: &EventSender,
    cursor: &mut LogCursor,
) -> Result<(), String> {
    let topics = &shared.config.input.log_topics;
    let mut follow = client.stream(log_command(topics).follow_only());
    let mut seen: HashSet<u64> = HashSet::new();
    if let Some(last) = cursor.last_id {
        let missed = client
            .call(log_command(topics))
            .await
            .map_err(|e| e.to_string())?;
        let ids: Vec<Option<u64>> = missed
            .rows
            .iter()
            .map(|r| r.id().and_then(|i| numeric_id(&i)))
            .collect();
        // If the last line seen is still there, everything after it is new. If it is not
        // (the log ring wrapped, or the router rebooted and restarted its ids), lines
        // with a higher id are new; with no higher id at all the log restarted.
        let start = match ids.iter().position(|id| *id == Some(last)) {
            Some(pos) => pos + 1,
            None if ids.iter().flatten().any(|id| *id > last) => ids
                .iter()
                .position(|id| id.is_some_and(|id| id > last))
                .unwrap_or(ids.len()),
            None => 0,
        };
        let mut resumed = 0usize;
        for row in missed.rows.iter().skip(start) {
            if let Some(id) = row.id().and_then(|i| numeric_id(&i)) {
                seen.insert(id);
            }
            process_log_row(shared, row, events, cursor).await?;
            resumed += 1;
        }
        shared
            .stats
            .duplicate_rows
            .fetch_add(start as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(resumed, skipped = start, "log follow resumed");
    }
    while let Some(row) = follow.next().await {
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
        process_log_row(shared, &row, events, cursor).await?;
    }
    Err("log follow ended".to_owned())
}

async fn process_log_row(
    shared: &Shared,
    row: &Reply,
    events: &EventSender,
    cursor: &mut LogCursor,
) -> Result<(), String> {
    let observed = Instant::now();
    Stats::bump(&shared.stats.log_rows);
    if let Some(id) = row.id().and_then(|i| numeric_id(&i)) {
        cursor.last_id = Some(id);
    }
    let (Some(topics), Some(message)) = (row.get("topics"), row.get("message")) else {
        Stats::bump(&shared.stats.malformed_rows);
        return Ok(());
    };
    let mut scratch = String::new();
    let event = parse_log_row_bytes(topics, message, &mut scratch).into_owned();
    send(shared, events, event, observed).await
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
