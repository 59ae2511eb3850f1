//! `mtids bans list|show|add|remove|flush|history`: view and manage bans across routers.
//!
//! When `mtids run` serves its control socket, `add`, `remove` and `flush` go through
//! it: the daemon's router connections apply them and its policy learns at once (an
//! unbanned address is banned again on its next attack). Without a daemon they go
//! straight to the ledger and the routers. `list` and `show` read the ledger, which the
//! daemon keeps current (reading it beside a running daemon is safe).
//!
//! The ledger (`[ledger] path`) is the record; the routers' address lists are what is
//! enforced. `add` records the ban, then puts it on every selected router and marks it
//! applied or failed; `remove` takes the entry off the routers and marks the ban removed;
//! `list --live` compares the ledger with each router's list. Every address is validated,
//! and the guard of `[detection.guard]` (allowlist, private ranges) is honoured: an
//! operator cannot ban an allowlisted address by mistake either.

use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use mtids_detect::{Guard, IpPrefix};
use mtids_enforce::{BanLedger, BanRecord, NewBan};
use routeros_proto::net::{Client, Error as ApiError};
use routeros_proto::{Command, Query};

use crate::CliError;
use crate::config::{Config, RouterConfig};
use crate::daemon::control::Request;

/// The arguments of `mtids bans`.
#[derive(Debug, Clone, clap::Args)]
pub struct BansArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: BansAction,
}

/// The `mtids bans` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BansAction {
    /// Active bans from the ledger; with `--live`, compared with the routers' lists.
    List {
        /// Which bans.
        #[command(flatten)]
        filter: BanFilter,
        /// Also read each router's address list and show what differs.
        #[arg(long)]
        live: bool,
        /// One JSON object per ban.
        #[arg(long)]
        json: bool,
    },
    /// Ban an address or prefix on the routers (and record it).
    Add {
        /// The address or prefix (`198.51.100.7`, `2001:db8::/64`).
        target: String,
        /// How long (`1h`, `2d`, `30m`).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Why, for the address-list comment and the ledger.
        #[arg(long, default_value = "manual ban")]
        reason: String,
        /// Only this router (by name, or a group name).
        #[arg(long, value_name = "NAME")]
        router: Option<String>,
        /// Record in the ledger only; the daemon applies it when it (re)connects.
        #[arg(long)]
        ledger_only: bool,
    },
    /// Lift a ban: remove the entry from the routers and mark the ban removed.
    Remove {
        /// The address or prefix.
        target: String,
        /// Only this router (by name, or a group name).
        #[arg(long, value_name = "NAME")]
        router: Option<String>,
        /// Change the ledger only.
        #[arg(long)]
        ledger_only: bool,
    },
    /// Remove every active ban (or those the filters select) from the routers and the
    /// ledger, after a confirmation.
    Flush {
        /// Which bans (all when no filter is given).
        #[command(flatten)]
        filter: BanFilter,
        /// Do not ask (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// One address: every ban recorded for it, with its evidence and state changes.
    Show {
        /// The address or prefix.
        target: String,
    },
    /// Every ban ever recorded for an address, with its state changes (as `show`).
    History {
        /// The address or prefix.
        target: String,
    },
}

/// Which bans `list` and `flush` select; every given filter must match.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BanFilter {
    /// Bans covering this address (a host ban of it, or a prefix containing it).
    #[arg(long, value_name = "ADDRESS")]
    pub ip: Option<String>,
    /// Bans inside this prefix (`203.0.113.0/24`).
    #[arg(long, value_name = "CIDR")]
    pub range: Option<String>,
    /// Bans decided by this detector (`brute_force`, `port_scan`, `manual`...).
    #[arg(long, value_name = "NAME")]
    pub detector: Option<String>,
    /// Bans on this router (by name, or a group name).
    #[arg(long, value_name = "NAME")]
    pub router: Option<String>,
    /// Bans made within this long (`30m`, `4h`, `2d`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
}

/// A [`BanFilter`] with its addresses parsed.
struct Selection<'c> {
    ip: Option<IpAddr>,
    range: Option<IpPrefix>,
    detector: Option<String>,
    routers: Vec<&'c str>,
    after: Option<SystemTime>,
}

impl BanFilter {
    fn parse<'c>(&self, config: &'c Config, now: SystemTime) -> Result<Selection<'c>, CliError> {
        let ip = self
            .ip
            .as_deref()
            .map(|text| {
                text.parse::<IpAddr>()
                    .map(mtids_detect::normalize_ip)
                    .map_err(|_| CliError::Usage(format!("--ip: `{text}` is not an IP address")))
            })
            .transpose()?;
        let range = self
            .range
            .as_deref()
            .map(|text| {
                text.parse::<IpPrefix>()
                    .map_err(|e| CliError::Usage(format!("--range: `{text}` is not a prefix: {e}")))
            })
            .transpose()?;
        let routers = select(config, self.router.as_deref())?
            .into_iter()
            .map(|r| r.name.as_str())
            .collect();
        Ok(Selection {
            ip,
            range,
            detector: self.detector.clone(),
            routers,
            after: self
                .since
                .map(|d| now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH)),
        })
    }
}

impl Selection<'_> {
    fn matches(&self, b: &BanRecord, filtered_router: bool) -> bool {
        let prefix = b.target.parse::<IpPrefix>().ok();
        if let Some(ip) = self.ip
            && !prefix.is_some_and(|p| p.contains(ip))
        {
            return false;
        }
        if let Some(range) = &self.range
            && !prefix
                .is_some_and(|p| p.prefix_len() >= range.prefix_len() && range.contains(p.addr()))
        {
            return false;
        }
        if self.detector.as_deref().is_some_and(|d| d != b.detector) {
            return false;
        }
        if filtered_router && !self.routers.contains(&b.router.as_str()) {
            return false;
        }
        self.after.is_none_or(|after| b.created >= after)
    }
}

/// The active bans `filter` selects.
fn selected(
    config: &Config,
    ledger: &BanLedger,
    filter: &BanFilter,
    now: SystemTime,
) -> Result<Vec<BanRecord>, CliError> {
    let selection = filter.parse(config, now)?;
    Ok(ledger
        .active(None, now)?
        .into_iter()
        .filter(|b| selection.matches(b, filter.router.is_some()))
        .collect())
}

/// Parses and canonicalises a target, refusing what must never be banned.
pub fn parse_target(text: &str, guard: &Guard) -> Result<IpPrefix, CliError> {
    let prefix = parse_prefix(text)?;
    if let Some(reason) = guard.check_prefix(&prefix) {
        return Err(CliError::Usage(format!(
            "refusing to ban {prefix}: {reason} (see [detection.guard])"
        )));
    }
    Ok(prefix)
}

/// Parses an address or prefix (IPv4-mapped IPv6 becomes IPv4).
pub fn parse_prefix(text: &str) -> Result<IpPrefix, CliError> {
    Ok(if text.contains('/') {
        text.parse()
            .map_err(|e| CliError::Usage(format!("`{text}` is not an IP address or prefix: {e}")))?
    } else {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| CliError::Usage(format!("`{text}` is not an IP address or prefix")))?;
        IpPrefix::host(mtids_detect::normalize_ip(ip))
    })
}

/// The canonical text the ledger and RouterOS use: a bare address for a host.
pub fn target_text(target: &IpPrefix) -> String {
    if target.is_host() {
        target.addr().to_string()
    } else {
        target.to_string()
    }
}

fn list_for<'c>(config: &'c Config, target: &IpPrefix) -> (&'static str, &'c str) {
    if target.addr().is_ipv4() {
        (
            "/ip/firewall/address-list",
            &config.enforcement.address_list,
        )
    } else {
        (
            "/ipv6/firewall/address-list",
            &config.enforcement.address_list_v6,
        )
    }
}

fn select<'c>(config: &'c Config, name: Option<&str>) -> Result<Vec<&'c RouterConfig>, CliError> {
    let routers: Vec<_> = config
        .routers
        .iter()
        .filter(|r| name.is_none_or(|n| r.name == n || r.group.as_deref() == Some(n)))
        .collect();
    match (routers.is_empty(), name) {
        (true, Some(n)) => Err(CliError::Usage(format!(
            "--router: no router or group named `{n}` in the configuration"
        ))),
        _ => Ok(routers),
    }
}

/// The address-list comment of a manual ban: the same as the daemon writes for it
/// (`mtids manual: <reason>`), so both agree whoever puts it on a router.
fn comment(target: IpPrefix, reason: &str) -> String {
    mtids_enforce::Ban::new(target, None, "manual", reason).comment()
}

/// Connects to `router` with its configured login, runs `op`, closes the connection;
/// either failure as text, for a line of the command's report.
async fn on_router<T, E: std::fmt::Display>(
    router: &RouterConfig,
    op: impl AsyncFnOnce(&Client) -> Result<T, E>,
) -> Result<T, String> {
    let client = crate::check::connect(router, None)
        .await
        .map_err(|e| e.to_string())?;
    let result = op(&client).await.map_err(|e| e.to_string());
    client.close().await;
    result
}

/// Puts `target` on `list` with a timeout; a duplicate entry gets this timeout and
/// comment (the caller passes the ledger's effective expiry, which is never shorter).
/// Returns the entry's `.id` when the router said it.
pub async fn add_on_router(
    client: &Client,
    path: &str,
    list: &str,
    target: &str,
    duration: Duration,
    comment: &str,
) -> Result<Option<String>, ApiError> {
    let timeout = format!("{}s", duration.as_secs().max(1));
    let add = Command::new(format!("{path}/add"))
        .attr("list", list)
        .attr("address", target)
        .attr("timeout", &timeout)
        .attr("comment", comment);
    match client.call(add).await {
        Ok(r) => Ok(r.ret_str()),
        Err(ApiError::Trap { trap, .. }) if trap.message.contains("already have such entry") => {
            let ids = find_on_router(client, path, list, target).await?;
            for id in &ids {
                client
                    .call(
                        Command::new(format!("{path}/set"))
                            .id(id)
                            .attr("timeout", &timeout)
                            .attr("comment", comment),
                    )
                    .await?;
            }
            Ok(ids.into_iter().next())
        }
        Err(e) => Err(e),
    }
}

async fn find_on_router(
    client: &Client,
    path: &str,
    list: &str,
    target: &str,
) -> Result<Vec<String>, ApiError> {
    let mut query = Query::new().eq("list", list).eq("address", target);
    // RouterOS prints an IPv6 host with its full length (`2001:db8::7/128`): ask for both.
    if target.contains(':') && !target.contains('/') {
        query = query.eq("address", format!("{target}/128")).or();
    }
    let found = client
        .call(
            Command::new(format!("{path}/print"))
                .proplist([".id"])
                .query(query.and()),
        )
        .await?;
    Ok(found
        .rows
        .iter()
        .filter_map(|r| r.id().map(|c| c.into_owned()))
        .collect())
}

/// Removes every entry for `target` from `list`; returns how many there were.
pub async fn remove_on_router(
    client: &Client,
    path: &str,
    list: &str,
    target: &str,
) -> Result<usize, ApiError> {
    let ids = find_on_router(client, path, list, target).await?;
    for id in &ids {
        match client
            .call(Command::new(format!("{path}/remove")).id(id))
            .await
        {
            Ok(_) => {}
            // Gone already (it timed out meanwhile): what we wanted.
            Err(ApiError::Trap { trap, .. }) if trap.message.contains("no such item") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ids.len())
}

/// The addresses on the lists of one router, IPv4 and IPv6 (each on its own list), in the
/// ledger's form (a host without `/128`). A router without IPv6 has no IPv6 entries.
async fn live_entries(client: &Client, config: &Config) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (path, list) in [
        (
            "/ip/firewall/address-list",
            &config.enforcement.address_list,
        ),
        (
            "/ipv6/firewall/address-list",
            &config.enforcement.address_list_v6,
        ),
    ] {
        let r = match client
            .call(
                Command::new(format!("{path}/print"))
                    .proplist(["address"])
                    .query(Query::new().eq("list", list.as_str())),
            )
            .await
        {
            Ok(r) => r,
            Err(ApiError::Trap { trap, .. })
                if path.starts_with("/ipv6") && trap.message.contains("no such command") =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        out.extend(r.rows.iter().filter_map(|row| {
            let address = row.get_str("address")?;
            Some(match address.parse::<IpPrefix>() {
                Ok(prefix) => target_text(&prefix),
                Err(_) => address.into_owned(),
            })
        }));
    }
    Ok(out)
}

fn fmt_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn ban_line(b: &BanRecord, now: SystemTime) -> String {
    let left = match b.remaining(now) {
        None => "permanent".to_owned(),
        Some(d) => mtids_alert::human_duration(d),
    };
    format!(
        "{:<6} {:<12} {:<28} {:<9} {:<14} {:<16} {}",
        b.id,
        b.router,
        b.target,
        b.state.as_str(),
        left,
        b.detector,
        b.reason
    )
}

fn ban_json(b: &BanRecord, now: SystemTime) -> serde_json::Value {
    serde_json::json!({
        "id": b.id.0,
        "router": b.router,
        "list": b.list,
        "target": b.target,
        "state": b.state.as_str(),
        "detector": b.detector,
        "reason": b.reason,
        "created": fmt_time(b.created),
        "expires": b.expires.map(fmt_time),
        "remaining_secs": b.remaining(now).map(|d| d.as_secs()),
        "router_item": b.router_item,
        "last_error": b.last_error,
    })
}

fn open_ledger(config: &Config) -> Result<BanLedger, CliError> {
    Ok(BanLedger::open(&config.ledger.path)?)
}

/// Runs one `mtids bans` action at `now`, writing its report to `out`.
pub async fn run(
    config: &Config,
    action: &BansAction,
    now: SystemTime,
    out: &mut String,
) -> Result<(), CliError> {
    let guard = Guard::new(&config.detection.guard)
        .map_err(|e| CliError::config("configuration", "detection.guard", e.to_string()))?;
    let mut ledger = open_ledger(config)?;
    match action {
        BansAction::List { filter, live, json } => {
            let routers = select(config, filter.router.as_deref())?;
            let bans = selected(config, &ledger, filter, now)?;
            if *json {
                for b in &bans {
                    let _ = writeln!(out, "{}", ban_json(b, now));
                }
            } else {
                let _ = writeln!(
                    out,
                    "{:<6} {:<12} {:<28} {:<9} {:<14} {:<16} REASON",
                    "ID", "ROUTER", "TARGET", "STATE", "LEFT", "DETECTOR"
                );
                for b in &bans {
                    let _ = writeln!(out, "{}", ban_line(b, now));
                }
                let _ = writeln!(out, "{} active ban(s)", bans.len());
            }
            if *live {
                for r in routers {
                    let entries =
                        on_router(r, async |client| live_entries(client, config).await).await;
                    match entries {
                        Err(e) => {
                            let _ =
                                writeln!(out, "[{}] cannot read the address lists: {e}", r.name);
                        }
                        Ok(entries) => {
                            let recorded: Vec<&str> = bans
                                .iter()
                                .filter(|b| b.router == r.name)
                                .map(|b| b.target.as_str())
                                .collect();
                            let missing: Vec<&str> = recorded
                                .iter()
                                .copied()
                                .filter(|t| !entries.iter().any(|e| e == t))
                                .collect();
                            let extra: Vec<&String> = entries
                                .iter()
                                .filter(|e| !recorded.contains(&e.as_str()))
                                .collect();
                            let _ = writeln!(
                                out,
                                "[{}] {} on the router; missing there: {}; not in the ledger: {}",
                                r.name,
                                entries.len(),
                                if missing.is_empty() {
                                    "none".to_owned()
                                } else {
                                    missing.join(", ")
                                },
                                if extra.is_empty() {
                                    "none".to_owned()
                                } else {
                                    extra
                                        .iter()
                                        .map(|s| s.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                },
                            );
                        }
                    }
                }
            }
        }
        BansAction::Add {
            target,
            duration,
            reason,
            router,
            ledger_only,
        } => {
            let prefix = parse_target(target, &guard)?;
            let text = target_text(&prefix);
            let (path, list) = list_for(config, &prefix);
            let routers = select(config, router.as_deref())?;
            if routers.is_empty() {
                return Err(CliError::Usage(
                    "no [[router]] in the configuration to ban on".to_owned(),
                ));
            }
            if !*ledger_only {
                let request = Request::Ban {
                    target: text.clone(),
                    routers: routers.iter().map(|r| r.name.clone()).collect(),
                    duration_secs: duration.as_secs().max(1),
                    reason: reason.clone(),
                };
                if let Some(answer) = through_daemon(config, &request, out).await? {
                    return answer;
                }
            }
            let mut failed = 0;
            for r in routers {
                let recorded = ledger.record(&NewBan {
                    router: &r.name,
                    list,
                    target: &text,
                    reason,
                    detector: "manual",
                    created: now,
                    duration: Some(*duration),
                })?;
                let id = recorded.id();
                // A second ban of the same address extended the first: the longest
                // expiry wins, on the router as in the ledger.
                let effective = ledger
                    .get(id)
                    .ok()
                    .and_then(|b| b.remaining(now))
                    .filter(|left| left > duration)
                    .unwrap_or(*duration);
                if *ledger_only {
                    let _ = writeln!(out, "[{}] {text}: recorded as ban {id} (pending)", r.name);
                    continue;
                }
                let result = on_router(r, async |client| {
                    add_on_router(
                        client,
                        path,
                        list,
                        &text,
                        effective,
                        &comment(prefix, reason),
                    )
                    .await
                })
                .await;
                match result {
                    Ok(item) => {
                        ledger.mark_applied(id, item.as_deref(), now)?;
                        let _ = writeln!(
                            out,
                            "[{}] {text}: banned on `{list}` for {} (ban {id})",
                            r.name,
                            mtids_alert::human_duration(effective)
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        ledger.mark_failed(id, &e, now)?;
                        let _ = writeln!(out, "[{}] {text}: FAILED: {e}", r.name);
                    }
                }
            }
            if failed > 0 {
                return Err(CliError::Router {
                    router: router.clone().unwrap_or_else(|| "(all)".to_owned()),
                    reason: format!("the ban failed on {failed} router(s); see above"),
                });
            }
        }
        BansAction::Remove {
            target,
            router,
            ledger_only,
        } => {
            // Removing never needs the guard: an allowlisted address may be unbanned.
            let prefix = parse_prefix(target)?;
            let routers = select(config, router.as_deref())?;
            if !*ledger_only {
                let request = Request::Unban {
                    target: target_text(&prefix),
                    routers: routers.iter().map(|r| r.name.clone()).collect(),
                };
                if let Some(answer) = through_daemon(config, &request, out).await? {
                    return answer;
                }
            }
            let failed = remove_direct(
                config,
                &mut ledger,
                prefix,
                &routers,
                *ledger_only,
                now,
                out,
            )
            .await?;
            if failed > 0 {
                return Err(CliError::Router {
                    router: router.clone().unwrap_or_else(|| "(all)".to_owned()),
                    reason: format!("the removal failed on {failed} router(s); see above"),
                });
            }
        }
        BansAction::Flush { filter, yes } => {
            let bans = selected(config, &ledger, filter, now)?;
            // One removal per address, on the routers that hold it.
            let mut targets: Vec<(String, Vec<String>)> = Vec::new();
            for b in &bans {
                match targets.iter_mut().find(|(t, _)| *t == b.target) {
                    Some((_, routers)) => {
                        if !routers.contains(&b.router) {
                            routers.push(b.router.clone());
                        }
                    }
                    None => targets.push((b.target.clone(), vec![b.router.clone()])),
                }
            }
            if targets.is_empty() {
                let _ = writeln!(out, "no active ban matches: nothing to flush");
                return Ok(());
            }
            let question = format!(
                "remove {} ban(s) on {} address(es) from the routers and the ledger?",
                bans.len(),
                targets.len()
            );
            if !*yes && !confirm(&question)? {
                let _ = writeln!(out, "nothing removed");
                return Ok(());
            }
            let mut failed = 0;
            for (target, routers) in &targets {
                let prefix = parse_prefix(target)?;
                let request = Request::Unban {
                    target: target.clone(),
                    routers: routers.clone(),
                };
                match through_daemon(config, &request, out).await? {
                    Some(Ok(())) => {}
                    Some(Err(_)) => failed += 1,
                    None => {
                        let selected: Vec<&RouterConfig> = config
                            .routers
                            .iter()
                            .filter(|r| routers.contains(&r.name))
                            .collect();
                        if remove_direct(config, &mut ledger, prefix, &selected, false, now, out)
                            .await?
                            > 0
                        {
                            failed += 1;
                        }
                    }
                }
            }
            let _ = writeln!(
                out,
                "flushed {} address(es){}",
                targets.len() - failed,
                if failed > 0 {
                    format!("; {failed} failed (see above)")
                } else {
                    String::new()
                }
            );
            if failed > 0 {
                return Err(CliError::Usage(format!(
                    "flush: {failed} address(es) could not be removed everywhere; see above"
                )));
            }
        }
        BansAction::Show { target } | BansAction::History { target } => {
            show(&ledger, target, out)?;
        }
    }
    Ok(())
}

/// Asks `question` on the terminal; refuses when stdin is not one.
fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{question} Not asking without a terminal: add --yes to confirm"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::io("reading the confirmation", e))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Sends a ban or unban to the running daemon. `None`: no daemon runs (do it directly);
/// `Some(result)`: what the daemon did, printed per router into `out`.
async fn through_daemon(
    config: &Config,
    request: &Request,
    out: &mut String,
) -> Result<Option<Result<(), CliError>>, CliError> {
    let Some(answer) = crate::status::request(&config.control_socket(), request).await? else {
        return Ok(None);
    };
    if let Some(e) = crate::status::refused(&answer) {
        return Ok(Some(Err(CliError::Daemon(format!(
            "the daemon refused: {e}"
        )))));
    }
    let target = answer["target"].as_str().unwrap_or_default();
    let mut failed = 0;
    for r in answer["results"].as_array().into_iter().flatten() {
        let ok = r["ok"] == serde_json::Value::Bool(true);
        if !ok {
            failed += 1;
        }
        let _ = writeln!(
            out,
            "[{}] {target}: {}{} (through the daemon)",
            r["router"].as_str().unwrap_or("?"),
            if ok { "" } else { "FAILED: " },
            r["detail"].as_str().unwrap_or_default()
        );
    }
    Ok(Some(if failed > 0 {
        Err(CliError::Daemon(format!(
            "{target}: failed on {failed} router(s); see above"
        )))
    } else {
        Ok(())
    }))
}

/// Removes `prefix` from `routers` (unless `ledger_only`) and marks its bans removed in
/// the ledger; returns on how many routers it failed.
async fn remove_direct(
    config: &Config,
    ledger: &mut BanLedger,
    prefix: IpPrefix,
    routers: &[&RouterConfig],
    ledger_only: bool,
    now: SystemTime,
    out: &mut String,
) -> Result<usize, CliError> {
    let text = target_text(&prefix);
    let (path, list) = list_for(config, &prefix);
    let mut failed = 0;
    {
        for r in routers.iter().copied() {
            let active: Vec<BanRecord> = ledger
                .active(Some(&r.name), now)?
                .into_iter()
                .filter(|b| b.target == text)
                .collect();
            if !ledger_only {
                let result = on_router(r, async |client| {
                    remove_on_router(client, path, list, &text).await
                })
                .await;
                match result {
                    Ok(n) => {
                        let _ = writeln!(
                            out,
                            "[{}] {text}: {n} {} removed from `{list}`",
                            r.name,
                            if n == 1 { "entry" } else { "entries" }
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        let _ = writeln!(out, "[{}] {text}: FAILED: {e}", r.name);
                        continue;
                    }
                }
            }
            for b in active {
                ledger.mark_removed(b.id, "removed by operator (mtids bans remove)", now)?;
                let _ = writeln!(out, "[{}] ban {} marked removed", r.name, b.id);
            }
        }
    }
    Ok(failed)
}

/// `bans show`: every ban of `target`, with its evidence and its state changes.
fn show(ledger: &BanLedger, target: &str, out: &mut String) -> Result<(), CliError> {
    let text = match target.parse::<IpAddr>() {
        Ok(ip) => mtids_detect::normalize_ip(ip).to_string(),
        Err(_) => target.to_owned(),
    };
    let bans = ledger.history(&text)?;
    if bans.is_empty() {
        let _ = writeln!(out, "no bans recorded for {text}");
    }
    for b in &bans {
        let _ = writeln!(
            out,
            "ban {} on {} (`{}`) by {}: {}\n  created {}, expires {}",
            b.id,
            b.router,
            b.list,
            b.detector,
            b.reason,
            fmt_time(b.created),
            b.expires.map_or("never".to_owned(), fmt_time)
        );
        if let Some(evidence) = ledger.evidence(b.id)? {
            render_evidence(&evidence, out);
        }
        let _ = writeln!(out, "  history:");
        for e in ledger.events(b.id)? {
            let _ = writeln!(out, "    {}  {:<8} {}", fmt_time(e.at), e.state, e.detail);
        }
    }
    Ok(())
}

/// The evidence kept with a ban (JSON from [`mtids_enforce::evidence_json`]), a few
/// indented lines (see [`evidence_lines`]).
fn render_evidence(evidence: &str, out: &mut String) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(evidence) else {
        return;
    };
    let Some(lines) = evidence_lines(&v) else {
        return;
    };
    for (i, line) in lines.iter().enumerate() {
        let indent = if i == 0 { "  evidence: " } else { "    " };
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// Evidence as [`mtids_enforce::evidence_json`] writes it (with a ban in the ledger, or
/// with a finding on the web page), as readable lines: first what crossed which threshold
/// (`brute_force 5/5 in 60s, seen by gw`), then one line per non-empty list (`users: admin`,
/// `services: ssh`, `ports: ...`, `destinations: ...`) and one per sample (`sample: ...`).
/// Every text came from a log line: control characters are dropped. `None` when `v` is
/// not an object.
pub(crate) fn evidence_lines(v: &serde_json::Value) -> Option<Vec<String>> {
    if !v.is_object() {
        return None;
    }
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    };
    let list = |key: &str| -> Option<String> {
        let items: Vec<String> = v[key].as_array()?.iter().map(text).collect();
        (!items.is_empty()).then(|| items.join(", "))
    };
    let window = v["window"]["secs"]
        .as_u64()
        .or_else(|| v["window"].as_u64())
        .map_or(String::new(), |s| format!(" in {s}s"));
    let mut lines = vec![format!(
        "{} {}/{}{window}{}",
        text(&v["kind"]),
        text(&v["count"]),
        text(&v["threshold"]),
        v["router"]
            .as_str()
            .map_or(String::new(), |r| format!(", seen by {}", clean(r)))
    )];
    for (label, key) in [
        ("users", "users"),
        ("services", "services"),
        ("ports", "ports"),
        ("destinations", "destinations"),
    ] {
        if let Some(items) = list(key) {
            lines.push(format!("{label}: {items}"));
        }
    }
    for sample in v["samples"].as_array().into_iter().flatten() {
        lines.push(format!("sample: {}", text(sample)));
    }
    Some(lines)
}

/// `mtids bans` as the binary runs it.
pub async fn execute(config: &Config, args: &BansArgs) -> Result<(), CliError> {
    let mut out = String::new();
    let result = run(config, &args.action, SystemTime::now(), &mut out).await;
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_reads_as_lines_without_control_characters() {
        let v = serde_json::json!({
            "kind": "brute_force", "count": 5, "threshold": 5, "window": 60,
            "router": "gw", "users": ["admin", "ro\u{1b}[2Jot"], "services": ["ssh"],
            "ports": [], "samples": ["login failure for user admin from 198.51.100.7 via ssh"],
        });
        assert_eq!(
            evidence_lines(&v).unwrap(),
            [
                "brute_force 5/5 in 60s, seen by gw",
                "users: admin, ro[2Jot",
                "services: ssh",
                "sample: login failure for user admin from 198.51.100.7 via ssh",
            ]
        );
        assert_eq!(evidence_lines(&serde_json::json!("not an object")), None);
        let mut out = String::new();
        render_evidence(&v.to_string(), &mut out);
        assert!(
            out.starts_with("  evidence: brute_force 5/5 in 60s, seen by gw\n    users: admin"),
            "{out}"
        );
    }
}
