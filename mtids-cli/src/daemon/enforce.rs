//! Bans on one router: optimistic address-list adds, duplicate entries refreshed, the
//! connection table cleaned for asymmetric connections, and reconciliation from the ledger
//! after every (re)connect and router reboot.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtids_detect::IpPrefix;
use mtids_enforce::BanId;
use routeros_proto::Command;
use routeros_proto::net::{Client, Error as ApiError};
use tokio::sync::oneshot;

use super::{Report, Shared, Stats};

/// One ban for one router, from the detection task.
pub(crate) struct BlockRequest {
    pub(crate) target: IpPrefix,
    pub(crate) list: String,
    pub(crate) duration: Duration,
    pub(crate) comment: String,
    pub(crate) detector: String,
    pub(crate) ledger_id: Option<BanId>,
    pub(crate) remove_connections: bool,
    pub(crate) observed: Instant,
    pub(crate) reply: oneshot::Sender<BlockOutcome>,
}

/// What became of a ban on one router.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockOutcome {
    /// On the router's address list; the entry's `.id` when the router said.
    Applied {
        /// The address-list entry's `.id`.
        item: Option<String>,
    },
    /// The router refused or could not be reached; the ledger keeps it pending.
    Failed {
        /// Why.
        error: String,
    },
}

fn list_path(target: &IpPrefix) -> &'static str {
    if target.addr().is_ipv4() {
        "/ip/firewall/address-list"
    } else {
        "/ipv6/firewall/address-list"
    }
}

/// RouterOS's address form: a bare address for a host, `addr/len` otherwise.
fn address_text(target: &IpPrefix) -> String {
    if target.is_host() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

/// A comment safe for one API word: printable, bounded.
fn clean_comment(comment: &str) -> String {
    comment
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

/// Adds `target` to `list` for `duration` (rounded up to a second). A duplicate entry
/// (`already have such entry`) is found and its timeout refreshed: never an error.
pub(crate) async fn add_to_list(
    client: &Client,
    target: &IpPrefix,
    list: &str,
    duration: Duration,
    comment: &str,
) -> Result<Option<String>, ApiError> {
    let secs = duration.as_secs().max(1) + u64::from(duration.subsec_nanos() > 0);
    let timeout = format!("{secs}s");
    let address = address_text(target);
    let path = list_path(target);
    let add = Command::new(format!("{path}/add"))
        .attr("list", list)
        .attr("address", &address)
        .attr("timeout", &timeout)
        .attr("comment", clean_comment(comment));
    match client.call(add).await {
        Ok(response) => Ok(response.ret_str()),
        Err(ApiError::Trap { trap, .. }) if trap.message.contains("already have such entry") => {
            let print = Command::new(format!("{path}/print"))
                .proplist([".id"])
                .query(
                    routeros_proto::Query::new()
                        .eq("list", list)
                        .eq("address", &address)
                        .and(),
                );
            let found = client.call(print).await?;
            let Some(id) = found
                .rows
                .first()
                .and_then(|r| r.id())
                .map(|c| c.into_owned())
            else {
                return Ok(None);
            };
            let set = Command::new(format!("{path}/set"))
                .id(&id)
                .attr("timeout", &timeout);
            client.call(set).await?;
            Ok(Some(id))
        }
        Err(e) => Err(e),
    }
}

/// Applies one request with `client`, records the result and answers the requester.
pub(crate) async fn apply(
    shared: Arc<Shared>,
    router: String,
    client: Client,
    request: BlockRequest,
) {
    let result = add_to_list(
        &client,
        &request.target,
        &request.list,
        request.duration,
        &request.comment,
    )
    .await;
    let target = request.target.to_string();
    let outcome = match result {
        Ok(item) => {
            let latency = request.observed.elapsed();
            Stats::bump(&shared.stats.blocks_applied);
            if let Some(id) = request.ledger_id {
                let now = shared.now();
                shared.with_ledger("marking a ban applied", |l| {
                    l.mark_applied(id, item.as_deref(), now)
                });
            }
            tracing::info!(%router, %target, latency_ms = latency.as_secs_f64() * 1e3, "blocked");
            shared.report(Report::Blocked {
                router: router.clone(),
                target: target.clone(),
                detector: request.detector.clone(),
                latency,
                dry_run: false,
            });
            if request.remove_connections {
                match remove_connections(&client, request.target.addr()).await {
                    Ok(n) => {
                        shared
                            .stats
                            .connections_removed
                            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(%router, %target, error = %e, "removing connections failed")
                    }
                }
            }
            BlockOutcome::Applied { item }
        }
        Err(e) => {
            Stats::bump(&shared.stats.blocks_failed);
            let error = e.to_string();
            if let Some(id) = request.ledger_id {
                let now = shared.now();
                shared.with_ledger("marking a ban failed", |l| l.mark_failed(id, &error, now));
            }
            tracing::warn!(%router, %target, %error, "block failed; retried on reconnect");
            shared.report(Report::BlockFailed {
                router,
                target,
                error: error.clone(),
            });
            BlockOutcome::Failed { error }
        }
    };
    let _ = request.reply.send(outcome);
}

/// Removes every connection-table entry to or from `ip`; returns how many went.
pub(crate) async fn remove_connections(client: &Client, ip: IpAddr) -> Result<u64, ApiError> {
    let path = if ip.is_ipv4() {
        "/ip/firewall/connection"
    } else {
        "/ipv6/firewall/connection"
    };
    let rows = client
        .call(Command::new(format!("{path}/print")).proplist([".id", "src-address", "dst-address"]))
        .await?;
    let mut removed = 0;
    for row in &rows.rows {
        let involves = ["src-address", "dst-address"].iter().any(|f| {
            row.get_str(f)
                .and_then(|v| host_of(&v))
                .is_some_and(|h| h == ip)
        });
        let Some(id) = row.id() else { continue };
        if !involves {
            continue;
        }
        match client
            .call(Command::new(format!("{path}/remove")).id(id.as_ref()))
            .await
        {
            Ok(_) => removed += 1,
            // Gone already (timed out meanwhile): what we wanted.
            Err(ApiError::Trap { trap, .. }) if trap.message.contains("no such item") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The address of `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:443` or `2001:db8::1`.
pub(crate) fn host_of(endpoint: &str) -> Option<IpAddr> {
    let e = endpoint.trim();
    if let Ok(ip) = e.parse() {
        return Some(ip);
    }
    if let Some(rest) = e.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    e.rsplit_once(':')?.0.parse().ok()
}

/// After a (re)connect or a reboot: what the ledger says should be on this router but
/// is not on its lists is added again, with the time it has left.
pub(crate) async fn reconcile(
    shared: &Shared,
    router: &str,
    client: &Client,
) -> Result<u64, ApiError> {
    let now = shared.now();
    let Some(active) = shared.with_ledger("reading active bans", |l| l.active(Some(router), now))
    else {
        return Ok(0);
    };
    if active.is_empty() {
        return Ok(0);
    }
    let mut listed: HashSet<(String, String)> = HashSet::new();
    for path in ["/ip/firewall/address-list", "/ipv6/firewall/address-list"] {
        let rows = client
            .call(Command::new(format!("{path}/print")).proplist(["list", "address"]))
            .await?;
        for row in &rows.rows {
            if let (Some(list), Some(address)) = (row.get_str("list"), row.get_str("address")) {
                listed.insert((list.into_owned(), address.into_owned()));
            }
        }
    }
    let mut restored = 0;
    for ban in active {
        let Ok(target) = ban.target.parse::<IpPrefix>() else {
            continue;
        };
        if listed.contains(&(ban.list.clone(), address_text(&target))) {
            continue;
        }
        let Some(left) = ban.remaining(now) else {
            continue;
        };
        if left.is_zero() {
            continue;
        }
        let item = add_to_list(client, &target, &ban.list, left, &ban.reason).await?;
        shared.with_ledger("marking a ban applied", |l| {
            l.mark_applied(ban.id, item.as_deref(), now)
        });
        Stats::bump(&shared.stats.blocks_restored);
        restored += 1;
    }
    if restored > 0 {
        tracing::info!(%router, restored, "re-applied bans missing from the router");
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_their_host() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(host_of("198.51.100.7:443"), Some(v4));
        assert_eq!(host_of("198.51.100.7"), Some(v4));
        assert_eq!(host_of("[2001:db8::1]:443"), Some(v6));
        assert_eq!(host_of("2001:db8::1"), Some(v6));
        assert_eq!(host_of("nonsense:1"), None);
    }

    #[test]
    fn comments_lose_control_characters_and_are_bounded() {
        let c = clean_comment(&format!("a\nb\r{}", "x".repeat(500)));
        assert!(!c.contains('\n') && !c.contains('\r'));
        assert_eq!(c.chars().count(), 120);
    }

    #[test]
    fn hosts_are_bare_addresses_networks_keep_their_length() {
        let host: IpPrefix = "198.51.100.7/32".parse().unwrap();
        assert_eq!(address_text(&host), "198.51.100.7");
        let net: IpPrefix = "2001:db8::/64".parse().unwrap();
        assert_eq!(address_text(&net), "2001:db8::/64");
    }
}
