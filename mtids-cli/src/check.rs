//! `mtids check`: validate the configuration, then log in to every router and verify
//! what mtids relies on, each item passed or failed with the `mtids setup` line that
//! fixes it.
//!
//! Items per router: login (and the API-SSL certificate, verified by the TLS handshake
//! when `tls` is configured), the user's group policies (`/user`, `/user/group`: exactly
//! `api,read,write`, more is flagged), reading the log, the new-connection log rule in
//! chain input, the drop rules in both directions, and the address lists, for IPv4 and
//! IPv6 (each on its configured list). A menu the router does not have (an old version,
//! or no IPv6) is reported as "cannot verify", never as passed.
//!
//! Remote logging: the router's version is read first (`/system/resource`); when mtids
//! listens for syslog (`input.syslog_*`) or the router has the `mtids` logging action,
//! the action is verified in the form of that version (7.18+: `remote-log-format` and
//! `remote-protocol`, only CEF over TCP or TLS; older: `bsd-syslog=yes`), and the rules
//! that send it the `firewall`, `account` and `critical` topics.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use routeros_proto::Command;
use routeros_proto::net::{Client, ClientConfig, Error as ApiError, Fingerprint, TlsConfig};

use crate::CliError;
use crate::config::{Config, RouterConfig};
use crate::setup::{RouterVersion, SyslogFormat, SyslogProtocol};

/// The arguments of `mtids check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Check only this router (by name).
    #[arg(long, value_name = "NAME")]
    pub router: Option<String>,
    /// The log prefix the new-connection log rules use (as given to `mtids setup`).
    #[arg(long, default_value = "MTIDS_NEW", value_name = "PREFIX")]
    pub log_prefix: String,
    /// The `remote-log-format` the `mtids` logging action must have (as given to
    /// `mtids setup --syslog-format`); without it any working form passes.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub syslog_format: Option<SyslogFormat>,
    /// The `remote-protocol` the `mtids` logging action must have (as given to
    /// `mtids setup --syslog-protocol`).
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub syslog_protocol: Option<SyslogProtocol>,
}

/// The result of one check item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Verified.
    Passed,
    /// Verified broken: apply the fix.
    Failed,
    /// Could not be verified (the router lacks the menu, or an earlier item failed).
    Unknown,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Unknown => "????",
        })
    }
}

/// One checked item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The router's name (empty for the configuration itself).
    pub router: String,
    /// What was checked.
    pub what: String,
    /// The result.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// How to fix it (a `mtids setup` line or a configuration key), when failed.
    pub fix: Option<String>,
}

/// Connects and logs in to `router` as configured, or as `login` (user, password) instead.
pub async fn connect(
    router: &RouterConfig,
    login: Option<(&str, &str)>,
) -> Result<Client, CliError> {
    let password = router.password();
    let (user, password) = login.unwrap_or((&router.user, password.expose()));
    let mut config = ClientConfig::new(router.host.clone(), user, password)
        .port(router.effective_port())
        .connect_timeout(router.connect_timeout)
        .command_timeout(Some(Duration::from_secs(30)));
    if let Some(tls) = &router.tls {
        let router_err = |reason: String| CliError::Router {
            router: router.name.clone(),
            reason,
        };
        let mut t = match (&tls.ca_file, &tls.fingerprint) {
            (Some(ca), _) => TlsConfig::with_ca_file(ca).map_err(|e| router_err(e.to_string()))?,
            (None, Some(fp)) => TlsConfig::with_fingerprint(
                fp.parse::<Fingerprint>()
                    .map_err(|e| router_err(format!("tls.fingerprint: {e}")))?,
            ),
            (None, None) => {
                return Err(router_err(
                    "tls needs ca_file or fingerprint (see `mtids setup`)".to_owned(),
                ));
            }
        };
        if let Some(name) = &tls.server_name {
            t = t.server_name(name.clone());
        }
        config = config.tls(t);
    }
    Client::connect(&config)
        .await
        .map_err(|e| CliError::Router {
            router: router.name.clone(),
            reason: e.to_string(),
        })
}

fn is_missing_menu(e: &ApiError) -> bool {
    matches!(e, ApiError::Trap { trap, .. } if trap.message.contains("no such command"))
}

fn is_permission(e: &ApiError) -> bool {
    matches!(e, ApiError::Trap { trap, .. } if trap.message.contains("not enough permissions"))
}

/// What mtids needs, and all it should have: log in through the API, read, change
/// address lists and connections.
const NEEDED_POLICIES: [&str; 3] = ["api", "read", "write"];

struct Checker<'a> {
    router: &'a str,
    items: Vec<Item>,
}

impl Checker<'_> {
    fn push(&mut self, what: &str, status: Status, detail: impl Into<String>, fix: Option<&str>) {
        self.items.push(Item {
            router: self.router.to_owned(),
            what: what.to_owned(),
            status,
            detail: detail.into(),
            fix: (status != Status::Passed)
                .then(|| fix.map(str::to_owned))
                .flatten(),
        });
    }

    /// Records an API error for `what`: a missing menu is unknown, anything else failed.
    fn api_error(&mut self, what: &str, e: &ApiError, fix: &str) {
        if is_missing_menu(e) {
            self.push(
                what,
                Status::Unknown,
                format!("cannot verify: {e}"),
                Some(fix),
            );
        } else if is_permission(e) {
            self.push(
                what,
                Status::Failed,
                format!("{e}"),
                Some("the user's group needs policy=api,read,write (mtids setup, `/user group` step)"),
            );
        } else {
            self.push(what, Status::Failed, e.to_string(), Some(fix));
        }
    }
}

/// Checks one router: every item, in order.
pub async fn check_router(router: &RouterConfig, args: &CheckArgs, config: &Config) -> Vec<Item> {
    let mut c = Checker {
        router: &router.name,
        items: Vec::new(),
    };
    let client = match connect(router, None).await {
        Ok(client) => client,
        Err(e) => {
            c.push(
                "login",
                Status::Failed,
                e.to_string(),
                Some("mtids setup (`/user` step), then the user's password in password_env or password_file"),
            );
            return c.items;
        }
    };
    let transport = if router.tls.is_some() {
        "API-SSL, certificate verified"
    } else {
        "plain API"
    };
    c.push(
        "login",
        Status::Passed,
        format!("as `{}` over {transport}", router.user),
        None,
    );
    if router.tls.is_none() {
        c.push(
            "API-SSL",
            Status::Unknown,
            "not configured: the password crosses the network in clear",
            Some("mtids setup (`/certificate` and `/ip service` steps), then [router.tls] fingerprint = ..."),
        );
    }

    // Policies: the user's group, then the group's policy list.
    let group = client
        .call(
            Command::new("/user/print")
                .proplist(["group"])
                .word(format!("?name={}", router.user)),
        )
        .await;
    let fix_group = "mtids setup: /user group add name=mtids policy=api,read,write";
    match group {
        Ok(r) => {
            let group = r
                .rows
                .first()
                .and_then(|row| row.get_str("group").map(|g| g.into_owned()));
            match group {
                Some(group) => {
                    let policy = client
                        .call(
                            Command::new("/user/group/print")
                                .proplist(["policy"])
                                .word(format!("?name={group}")),
                        )
                        .await;
                    match policy {
                        Ok(p) => {
                            let list = p
                                .rows
                                .first()
                                .and_then(|row| row.get_str("policy").map(|s| s.into_owned()))
                                .unwrap_or_default();
                            // RouterOS 7 lists denied policies too, as `!name`.
                            let have: Vec<&str> = list
                                .split(',')
                                .map(str::trim)
                                .filter(|p| !p.is_empty() && !p.starts_with('!'))
                                .collect();
                            let missing: Vec<&str> = NEEDED_POLICIES
                                .into_iter()
                                .filter(|p| !have.contains(p))
                                .collect();
                            let extra: Vec<&str> = have
                                .iter()
                                .copied()
                                .filter(|p| !NEEDED_POLICIES.contains(p))
                                .collect();
                            if !missing.is_empty() {
                                c.push(
                                    "policies",
                                    Status::Failed,
                                    format!("group `{group}` lacks {}", missing.join(",")),
                                    Some(fix_group),
                                );
                            } else if !extra.is_empty() {
                                let fix = format!(
                                    "/user group set {group} policy=api,read,write (or mtids setup: a group of its own for mtids)"
                                );
                                c.push(
                                    "policies",
                                    Status::Failed,
                                    format!(
                                        "group `{group}` also grants {}: more than mtids needs",
                                        extra.join(",")
                                    ),
                                    Some(&fix),
                                );
                            } else {
                                c.push(
                                    "policies",
                                    Status::Passed,
                                    format!("group `{group}`: api,read,write only"),
                                    None,
                                );
                            }
                        }
                        Err(e) => c.api_error("policies", &e, fix_group),
                    }
                }
                None => c.push(
                    "policies",
                    Status::Unknown,
                    "user not listed",
                    Some(fix_group),
                ),
            }
        }
        Err(e) => c.api_error("policies", &e, fix_group),
    }

    // Reading the log (needs `read`).
    match client
        .call(
            Command::new("/log/print")
                .proplist([".id"])
                .word("?topics=mtids-check-matches-nothing"),
        )
        .await
    {
        Ok(_) => c.push("log readable", Status::Passed, "/log/print answered", None),
        Err(e) => c.api_error("log readable", &e, fix_group),
    }

    // The new-connection log rules.
    let fix_log = "mtids setup (`/ip firewall filter` log steps, --wan and --log-prefix)";
    match client
        .call(
            Command::new("/ip/firewall/filter/print")
                .proplist([".id", "chain", "disabled"])
                .word("?action=log")
                .word(format!("?log-prefix={}", args.log_prefix)),
        )
        .await
    {
        Ok(r) => {
            let chains: Vec<String> = r
                .rows
                .iter()
                .filter(|row| row.get_str("disabled").as_deref() != Some("true"))
                .filter_map(|row| row.get_str("chain").map(|c| c.into_owned()))
                .collect();
            // Port scans on the router itself are read from the input chain's lines.
            if !chains.iter().any(|c| c == "input") {
                c.push(
                    "log rules",
                    Status::Failed,
                    format!(
                        "no enabled log rule in chain input with log-prefix={}",
                        args.log_prefix
                    ),
                    Some(fix_log),
                );
            } else {
                match shadowing_drop(&client, &args.log_prefix, config).await {
                    Ok(Some(rule)) => c.push(
                        "log rules",
                        Status::Failed,
                        format!(
                            "{rule} comes before the log rule in chain input: the new connections it drops are never logged"
                        ),
                        Some(&format!(
                            "move the log rule above it: /ip firewall filter move [find chain=input log-prefix=\"{}\"] destination=0",
                            args.log_prefix
                        )),
                    ),
                    Ok(None) => c.push(
                        "log rules",
                        Status::Passed,
                        format!("chains {}", chains.join(",")),
                        None,
                    ),
                    Err(e) => c.api_error("log rules", &e, fix_log),
                }
            }
        }
        Err(e) => c.api_error("log rules", &e, fix_log),
    }

    // Drop rules for both directions, in raw or filter.
    let list = &config.enforcement.address_list;
    let fix_drop = "mtids setup (`/ip firewall raw` drop steps)";
    for (matcher, what) in [
        ("src-address-list", "drop rule from blocked"),
        ("dst-address-list", "drop rule to blocked"),
    ] {
        let mut found = None;
        let mut error = None;
        for table in ["raw", "filter"] {
            match client
                .call(
                    Command::new(format!("/ip/firewall/{table}/print"))
                        .proplist([".id", "chain"])
                        .word("?action=drop")
                        .word(format!("?{matcher}={list}"))
                        .word("?disabled=false"),
                )
                .await
            {
                Ok(r) if !r.rows.is_empty() => {
                    found = Some(table);
                    break;
                }
                Ok(_) => {}
                Err(e) => error = Some(e),
            }
        }
        match (found, error) {
            (Some(table), _) => c.push(what, Status::Passed, format!("in {table}"), None),
            (None, Some(e)) => c.api_error(what, &e, fix_drop),
            (None, None) => c.push(
                what,
                Status::Failed,
                format!("no enabled drop rule with {matcher}={list}"),
                Some(fix_drop),
            ),
        }
    }

    // The address list: readable, and how many entries it holds (one count, not a dump).
    match client
        .call(
            Command::new("/ip/firewall/address-list/print")
                .attr("count-only", "")
                .word(format!("?list={list}")),
        )
        .await
    {
        Ok(r) => c.push(
            "address list",
            Status::Passed,
            format!(
                "`{list}` readable, {} entries",
                r.ret_str().unwrap_or_else(|| "?".into())
            ),
            None,
        ),
        Err(e) => c.api_error("address list", &e, fix_group),
    }
    check_ipv6(
        &mut c,
        &client,
        &config.enforcement.address_list_v6,
        fix_group,
    )
    .await;
    check_remote_logging(&mut c, &client, args, config).await;
    client.close().await;
    c.items
}

/// The topics `mtids setup --syslog` sends to the `mtids` action.
const SYSLOG_TOPICS: [&str; 3] = ["firewall", "account", "critical"];

/// The router's version, then the `mtids` remote logging action in that version's form,
/// and its rules.
async fn check_remote_logging(
    c: &mut Checker<'_>,
    client: &Client,
    args: &CheckArgs,
    config: &Config,
) {
    let fix_version = "give mtids a user with the `read` policy (mtids setup)";
    let version = match client
        .call(Command::new("/system/resource/print").proplist(["version"]))
        .await
    {
        Ok(r) => {
            let text = r
                .rows
                .first()
                .and_then(|row| row.get_str("version").map(|v| v.into_owned()))
                .unwrap_or_default();
            match RouterVersion::parse(&text) {
                Some(v) => {
                    c.push("router version", Status::Passed, text, None);
                    v
                }
                None => {
                    c.push(
                        "router version",
                        Status::Unknown,
                        format!("`{text}` is not a RouterOS version"),
                        None,
                    );
                    return;
                }
            }
        }
        Err(e) => {
            c.api_error("router version", &e, fix_version);
            return;
        }
    };
    let listens = config.input.syslog_udp.is_some() || config.input.syslog_tcp.is_some();
    let mut fix = format!("mtids setup --syslog IP:PORT --router-version {version}");
    if let Some(f) = args.syslog_format {
        fix.push_str(&format!(" --syslog-format {}", f.as_str()));
    }
    if let Some(p) = args.syslog_protocol {
        fix.push_str(&format!(" --syslog-protocol {}", p.as_str()));
    }
    let what = "remote logging";
    let action = match client
        .call(Command::new("/system/logging/action/print").word("?name=mtids"))
        .await
    {
        Ok(r) => r.rows.into_iter().next(),
        Err(e) => {
            c.api_error(what, &e, &fix);
            return;
        }
    };
    let Some(action) = action else {
        if listens {
            c.push(
                what,
                Status::Failed,
                "mtids listens for syslog (input.syslog_*) but the router has no logging action `mtids`",
                Some(&fix),
            );
        }
        return;
    };
    let get = |k: &str| {
        action
            .get_str(k)
            .map(|v| v.into_owned())
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    if get("target") != "remote" {
        problems.push(format!("target={} (not remote)", get("target")));
    }
    let detail = if version.has_remote_log_format() {
        let format = get("remote-log-format");
        let protocol = get("remote-protocol");
        if action.get_str("bsd-syslog").is_some() {
            problems.push("bsd-syslog is set (removed in 7.18)".to_owned());
        }
        if format != "cef" && protocol != "udp" {
            // ROUTEROS.md section 5: only CEF has a delimiter; TCP and TLS need it.
            problems.push(format!(
                "remote-log-format={format} over {protocol}: only cef can be split on a stream"
            ));
        }
        if let Some(f) = args.syslog_format.filter(|f| f.as_str() != format) {
            problems.push(format!("remote-log-format={format}, not {}", f.as_str()));
        }
        if let Some(p) = args.syslog_protocol.filter(|p| p.as_str() != protocol) {
            problems.push(format!("remote-protocol={protocol}, not {}", p.as_str()));
        }
        let listener = match protocol.as_str() {
            "udp" => Some(("input.syslog_udp", config.input.syslog_udp.is_some())),
            "tcp" => Some(("input.syslog_tcp", config.input.syslog_tcp.is_some())),
            _ => None,
        };
        if let Some((key, false)) = listener.filter(|_| listens) {
            problems.push(format!("sends over {protocol} but mtids has no {key}"));
        }
        format!(
            "to {}:{}, remote-log-format={format} remote-protocol={protocol}",
            get("remote"),
            get("remote-port")
        )
    } else {
        let bsd = get("bsd-syslog") == "true";
        let wanted = args.syslog_format.unwrap_or(SyslogFormat::Syslog);
        if bsd != (wanted == SyslogFormat::Syslog) {
            problems.push(format!(
                "bsd-syslog={}, not what --syslog-format {} needs",
                get("bsd-syslog"),
                wanted.as_str()
            ));
        }
        format!(
            "to {}:{}, bsd-syslog={}",
            get("remote"),
            get("remote-port"),
            get("bsd-syslog")
        )
    };
    match client
        .call(
            Command::new("/system/logging/print")
                .proplist(["topics", "disabled"])
                .word("?action=mtids"),
        )
        .await
    {
        Ok(r) => {
            let sent: Vec<String> = r
                .rows
                .iter()
                .filter(|row| row.get_str("disabled").as_deref() != Some("true"))
                .filter_map(|row| row.get_str("topics").map(|t| t.into_owned()))
                .collect();
            let missing: Vec<&str> = SYSLOG_TOPICS
                .into_iter()
                .filter(|t| !sent.iter().any(|s| s == t))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "no enabled /system logging rule sends {} to it",
                    missing.join(",")
                ));
            }
        }
        Err(e) => {
            c.api_error(what, &e, &fix);
            return;
        }
    }
    if problems.is_empty() {
        c.push(what, Status::Passed, detail, None);
    } else {
        c.push(what, Status::Failed, problems.join("; "), Some(&fix));
    }
}

/// The IPv6 drop rules and address list, on the IPv6 list's own name. A router without
/// IPv6 has no `/ipv6` menus: these items come out as "cannot verify".
async fn check_ipv6(c: &mut Checker<'_>, client: &Client, list: &str, fix_group: &str) {
    let fix_drop = "mtids setup --ipv6 (`/ipv6 firewall raw` drop steps)";
    for (matcher, what) in [
        ("src-address-list", "IPv6 drop rule from blocked"),
        ("dst-address-list", "IPv6 drop rule to blocked"),
    ] {
        let mut result = Ok(None);
        for table in ["raw", "filter"] {
            let print = Command::new(format!("/ipv6/firewall/{table}/print"))
                .proplist([".id", "chain"])
                .word("?action=drop")
                .word(format!("?{matcher}={list}"))
                .word("?disabled=false");
            match client.call(print).await {
                Ok(r) if !r.rows.is_empty() => {
                    result = Ok(Some(table));
                    break;
                }
                Ok(_) => {}
                Err(e) => result = Err(e),
            }
        }
        match result {
            Ok(Some(table)) => c.push(what, Status::Passed, format!("in {table}"), None),
            Err(e) => c.api_error(what, &e, fix_drop),
            Ok(None) => c.push(
                what,
                Status::Failed,
                format!("no enabled drop rule with {matcher}={list}"),
                Some(fix_drop),
            ),
        }
    }
    let count = Command::new("/ipv6/firewall/address-list/print")
        .attr("count-only", "")
        .word(format!("?list={list}"));
    match client.call(count).await {
        Ok(r) => c.push(
            "IPv6 address list",
            Status::Passed,
            format!(
                "`{list}` readable, {} entries",
                r.ret_str().unwrap_or_else(|| "?".into())
            ),
            None,
        ),
        Err(e) => c.api_error("IPv6 address list", &e, fix_group),
    }
}

/// Formats items as aligned lines, with the fix under each failed one.
pub fn render(items: &[Item]) -> String {
    let mut out = String::new();
    for item in items {
        let router = if item.router.is_empty() {
            String::new()
        } else {
            format!("[{}] ", item.router)
        };
        out.push_str(&format!(
            "{}  {router}{:<24} {}\n",
            item.status, item.what, item.detail
        ));
        if let Some(fix) = &item.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    out
}

/// Checks every configured router (or `args.router`).
pub async fn check(config: &Config, args: &CheckArgs) -> Result<Vec<Item>, CliError> {
    let mut items = vec![Item {
        router: String::new(),
        what: "configuration".to_owned(),
        status: Status::Passed,
        detail: format!("{} router(s)", config.routers.len()),
        fix: None,
    }];
    let routers: Vec<&RouterConfig> = config
        .routers
        .iter()
        .filter(|r| args.router.as_ref().is_none_or(|n| &r.name == n))
        .collect();
    if routers.is_empty() {
        return Err(CliError::Usage(match &args.router {
            Some(n) => format!("--router: no router named `{n}` in the configuration"),
            None => "no [[router]] in the configuration: nothing to check".to_owned(),
        }));
    }
    for router in routers {
        items.extend(check_router(router, args, config).await);
    }
    items.extend(check_alerts(&config.alert).await);
    Ok(items)
}

/// One item per alert destination: reachable, its credentials accepted where the service
/// can say (Telegram `getMe`, a `HEAD` to a webhook); nothing is sent. `mtids alert test`
/// sends a real test message.
async fn check_alerts(alert: &mtids_alert::AlertConfig) -> Vec<Item> {
    let item = |what: String, result: Result<String, String>| {
        let (status, detail, fix) = match result {
            Ok(detail) => (Status::Passed, detail, None),
            Err(detail) => (
                Status::Failed,
                detail,
                Some("check the [alert] section (token, URL), then `mtids alert test`".to_owned()),
            ),
        };
        Item {
            router: "alert".to_owned(),
            what,
            status,
            detail,
            fix,
        }
    };
    let notifiers = match alert.notifiers() {
        Ok(n) => n,
        Err(e) => return vec![item("alert destinations".to_owned(), Err(e.to_string()))],
    };
    let mut items = Vec::new();
    for notifier in notifiers {
        let result = match tokio::time::timeout(
            std::time::Duration::from_secs(15),
            notifier.probe(),
        )
        .await
        {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 15s".to_owned()),
        };
        items.push(item(
            format!("alert destination {}", notifier.name()),
            result,
        ));
    }
    items
}

/// The first enabled drop (or reject, or tarpit) in chain input above the first enabled
/// log rule with `prefix` that can drop new connections, described for the report. A
/// drop of mtids' own lists, or one limited to invalid or established traffic, is fine.
async fn shadowing_drop(
    client: &Client,
    prefix: &str,
    config: &Config,
) -> Result<Option<String>, ApiError> {
    let rules = client
        .call(
            Command::new("/ip/firewall/filter/print")
                .proplist([
                    ".id",
                    "action",
                    "disabled",
                    "log-prefix",
                    "connection-state",
                    "src-address-list",
                    "comment",
                ])
                .word("?chain=input"),
        )
        .await?;
    let ours = [
        config.enforcement.address_list.as_str(),
        config.enforcement.address_list_v6.as_str(),
    ];
    for row in &rules.rows {
        if row.get_str("disabled").as_deref() == Some("true") {
            continue;
        }
        let action = row.get_str("action").unwrap_or_default();
        if action == "log" && row.get_str("log-prefix").as_deref() == Some(prefix) {
            return Ok(None);
        }
        if !matches!(action.as_ref(), "drop" | "reject" | "tarpit") {
            continue;
        }
        let states = row.get_str("connection-state").unwrap_or_default();
        let drops_new = states.is_empty() || states.split(',').any(|s| s.trim() == "new");
        let drops_ours = row
            .get_str("src-address-list")
            .is_some_and(|l| ours.contains(&l.as_ref()));
        if drops_new && !drops_ours {
            let id = row.id().unwrap_or_default();
            let comment = row
                .get_str("comment")
                .filter(|c| !c.is_empty())
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            return Ok(Some(format!("rule {id} action={action}{comment}")));
        }
    }
    Ok(None)
}

/// `mtids check` as the binary runs it: prints the items; fails if any failed.
pub async fn execute(config: &Config, args: &CheckArgs) -> Result<(), CliError> {
    let items = check(config, args).await?;
    let stdout = std::io::stdout();
    let _ = stdout.lock().write_all(render(&items).as_bytes());
    let failed = items.iter().filter(|i| i.status == Status::Failed).count();
    if failed > 0 {
        return Err(CliError::Router {
            router: "check".to_owned(),
            reason: format!("{failed} item(s) failed; apply the fixes above"),
        });
    }
    Ok(())
}
