//! `mtids setup`: the RouterOS configuration mtids needs, as an idempotent script to paste
//! into a terminal, or applied through the API (`--apply`).
//!
//! It replaces the click-through the seed tools' READMEs ask for: an API group and user
//! with minimal policies, API-SSL with a certificate, log rules for new connections on
//! the WAN interface, drop rules for the block lists in both directions, and optionally
//! a remote syslog action.
//!
//! Policies: the group gets `api` (log in through the API), `read` (`/log/print`, the
//! connection table, `/system/resource`, `/ip/address`, address-list prints) and `write`
//! (address-list add/set/remove, connection remove). Nothing else: no `policy`, `sensitive`,
//! `ssh`, `winbox`, `ftp`, `reboot`, `test`. A missing `read` shows as
//! `not enough permissions (9)` on the first print.
//!
//! Every step is written as a [`Step`]: one item under one menu, found by a few
//! properties, added only when missing. The same list renders the script
//! (`:if ([:len [find where ...]] = 0) do={ add ... }`, so running it twice adds nothing)
//! and drives `--apply` (print with a query, add when the print is empty). `--apply` also
//! repairs what the script cannot see: a rule of ours that was disabled is enabled, an
//! unsigned certificate is signed, `set` steps change only what differs (so a second
//! apply reports every step present), log rules are placed before the filter's first
//! rule, and the mtids user gets the password mtids is configured with.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use routeros_proto::Command;
use routeros_proto::net::Client;

use crate::CliError;
use crate::config::{Config, RouterConfig};

/// The arguments of `mtids setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// The WAN interface whose new connections are logged (port scans are read from
    /// these log lines).
    #[arg(long, default_value = "ether1", value_name = "INTERFACE")]
    pub wan: String,
    /// Name of the RouterOS user mtids logs in as (default: the first router's `user`).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Name of the user group holding the minimal policies.
    #[arg(long, default_value = "mtids", value_name = "NAME")]
    pub group: String,
    /// Only allow the mtids user to log in from this address (the host running mtids).
    #[arg(long, value_name = "ADDRESS")]
    pub allow_from: Option<String>,
    /// The log prefix of the new-connection log rules.
    #[arg(long, default_value = "MTIDS_NEW", value_name = "PREFIX")]
    pub log_prefix: String,
    /// Where the drop rules go: `raw` (prerouting, cheapest: dropped before connection
    /// tracking) or `filter` (input and forward).
    #[arg(long, default_value = "raw", value_parser = ["raw", "filter"])]
    pub drop_in: String,
    /// Name of the certificate created for API-SSL; empty to leave API-SSL alone.
    #[arg(long, default_value = "mtids-api", value_name = "NAME")]
    pub certificate: String,
    /// Send firewall and login log lines to this syslog receiver (`HOST` or `HOST:PORT`,
    /// mtids' `input.syslog_udp`).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub syslog: Option<String>,
    /// Also write the IPv6 rules.
    #[arg(long)]
    pub ipv6: bool,
    /// Apply the steps through the API of the router named `--router` instead of printing
    /// them (asks for confirmation first). Needs an administrator login: `--admin-user` and
    /// the password in `MTIDS_SETUP_PASSWORD`.
    #[arg(long)]
    pub apply: bool,
    /// With `--apply`: do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With `--apply`: the configured router to set up (default: the first).
    #[arg(long, value_name = "NAME")]
    pub router: Option<String>,
    /// With `--apply`: the administrator who may create users and rules.
    #[arg(long, default_value = "admin", value_name = "NAME")]
    pub admin_user: String,
}

/// One idempotent configuration step: an item under `menu`, identified by `find`, created
/// with `attrs` when missing (`attrs` includes `find`'s properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step is for, printed as a comment.
    pub title: String,
    /// The menu, in CLI form (`/ip firewall raw`).
    pub menu: String,
    /// The properties that identify an existing item.
    pub find: Vec<(String, String)>,
    /// The properties of a new item.
    pub attrs: Vec<(String, String)>,
    /// What to do instead of `add` (`set` of a fixed item such as a service).
    pub kind: StepKind,
}

/// How a step changes the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// `add` when nothing matches `find`.
    Add,
    /// `set` the item matching `find` to `attrs` (always; setting twice changes nothing).
    Set,
    /// `add`, then `sign` the certificate (when missing).
    AddCertificate,
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn add(title: &str, menu: &str, find: &[(&str, &str)], extra: &[(&str, &str)]) -> Step {
    let mut attrs = kv(find);
    attrs.extend(kv(extra));
    Step {
        title: title.to_owned(),
        menu: menu.to_owned(),
        find: kv(find),
        attrs,
        kind: StepKind::Add,
    }
}

/// The steps for `args` and the configuration (address-list names, user).
pub fn steps(args: &SetupArgs, config: &Config) -> Result<Vec<Step>, CliError> {
    for (what, value) in [
        ("--wan", args.wan.as_str()),
        ("--group", args.group.as_str()),
        ("--log-prefix", args.log_prefix.as_str()),
        ("--admin-user", args.admin_user.as_str()),
    ] {
        check_word(what, value)?;
    }
    if !args.certificate.is_empty() {
        check_word("--certificate", &args.certificate)?;
    }
    let user = args
        .user
        .clone()
        .or_else(|| config.routers.first().map(|r| r.user.clone()))
        .unwrap_or_else(|| "mtids".to_owned());
    check_word("--user", &user)?;
    let list4 = config.enforcement.address_list.as_str();
    let list6 = config.enforcement.address_list_v6.as_str();
    check_word("enforcement.address_list", list4)?;
    check_word("enforcement.address_list_v6", list6)?;

    let mut s = vec![add(
        "API group with the minimal policies: api (login), read (log, connections, resource), write (address lists, connection removal)",
        "/user group",
        &[("name", &args.group)],
        &[("policy", "api,read,write"), ("comment", "mtids")],
    )];
    // Created disabled with a placeholder password: never a known password on a live user.
    let mut user_extra = vec![
        ("group", args.group.as_str()),
        ("password", "CHANGE-ME"),
        ("disabled", "yes"),
        ("comment", "mtids"),
    ];
    if let Some(from) = &args.allow_from {
        let ip = from
            .split('/')
            .next()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok());
        if ip.is_none() {
            return Err(CliError::Usage(format!(
                "--allow-from: `{from}` is not an IP address or prefix"
            )));
        }
        user_extra.push(("address", from.as_str()));
    }
    let mut u = add(
        "API user (then set its password: /user set <name> password=...)",
        "/user",
        &[("name", &user)],
        &user_extra,
    );
    u.title = format!(
        "API user `{user}`, created disabled: then `/user set {user} password=... disabled=no` and give mtids that password (password_env or password_file)"
    );
    s.push(u);

    if !args.certificate.is_empty() {
        let cert = args.certificate.as_str();
        s.push(Step {
            title: "self-signed certificate for API-SSL (mtids pins its SHA-256 `fingerprint`: /certificate print detail)".to_owned(),
            menu: "/certificate".to_owned(),
            find: kv(&[("name", cert)]),
            attrs: kv(&[
                ("name", cert),
                ("common-name", cert),
                ("days-valid", "3650"),
                ("key-usage", "digital-signature,key-encipherment,tls-server"),
            ]),
            kind: StepKind::AddCertificate,
        });
        s.push(Step {
            title: "API-SSL with that certificate (rustls cannot talk to API-SSL without one)"
                .to_owned(),
            menu: "/ip service".to_owned(),
            find: kv(&[("name", "api-ssl")]),
            attrs: kv(&[
                ("certificate", cert),
                ("tls-version", "only-1.2"),
                ("disabled", "no"),
            ]),
            kind: StepKind::Set,
        });
    }

    for (chain, title) in [
        (
            "input",
            "log new connections to the router from the WAN (port scans)",
        ),
        (
            "forward",
            "log new connections through the router from the WAN (port scans of hosts behind it)",
        ),
    ] {
        let comment = format!("mtids: log new {chain}");
        s.push(add(
            title,
            "/ip firewall filter",
            &[("comment", &comment)],
            &[
                ("chain", chain),
                ("in-interface", &args.wan),
                ("connection-state", "new"),
                ("action", "log"),
                ("log-prefix", &args.log_prefix),
            ],
        ));
    }

    let mut families = vec![("/ip", list4)];
    if args.ipv6 {
        families.push(("/ipv6", list6));
    }
    for (family, list) in families {
        let rules: &[(&str, &str, &str)] = if args.drop_in == "raw" {
            &[
                ("prerouting", "src-address-list", "from"),
                ("prerouting", "dst-address-list", "to"),
            ]
        } else {
            &[
                ("input", "src-address-list", "from"),
                ("forward", "src-address-list", "from"),
                ("forward", "dst-address-list", "to"),
            ]
        };
        let table = if args.drop_in == "raw" {
            "raw"
        } else {
            "filter"
        };
        for (chain, matcher, dir) in rules {
            let comment = format!("mtids: drop {chain} {dir} {list}");
            s.push(add(
                &format!("drop traffic {dir} addresses on `{list}` ({chain})"),
                &format!("{family} firewall {table}"),
                &[("comment", &comment)],
                &[("chain", chain), (matcher, list), ("action", "drop")],
            ));
        }
    }

    if let Some(target) = &args.syslog {
        let (host, port) = match target.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
                h.trim_matches(|c| c == '[' || c == ']').to_owned(),
                p.to_owned(),
            ),
            _ => (target.clone(), "5514".to_owned()),
        };
        if host.parse::<std::net::IpAddr>().is_err() || port.parse::<u16>().is_err() {
            return Err(CliError::Usage(format!(
                "--syslog: `{target}` is not IP[:PORT] (RouterOS needs an address, not a name)"
            )));
        }
        s.push(add(
            "remote syslog action towards mtids (BSD syslog, as mtids' syslog listener expects)",
            "/system logging action",
            &[("name", "mtids")],
            &[
                ("target", "remote"),
                ("remote", &host),
                ("remote-port", &port),
                ("bsd-syslog", "yes"),
            ],
        ));
        for topics in ["firewall", "account", "critical"] {
            s.push(add(
                &format!("send `{topics}` log lines to mtids"),
                "/system logging",
                &[("action", "mtids"), ("topics", topics)],
                &[],
            ));
        }
    }
    Ok(s)
}

/// Only plain words go into the script or a command: no quoting games.
fn check_word(what: &str, value: &str) -> Result<(), CliError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{what}: `{value}` must be 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
        )))
    }
}

fn quote(v: &str) -> String {
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/@*".contains(&b))
        && !v.is_empty()
    {
        v.to_owned()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn props(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn condition(find: &[(String, String)]) -> String {
    find.iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The RouterOS script for `steps`: paste it into a terminal, or `/import` it. Running it
/// again adds nothing.
pub fn render_script(steps: &[Step]) -> String {
    let mut out = String::from(
        "# mtids: router setup. Idempotent: every add is guarded by a find, so running it\n\
         # again changes nothing. Review it, then paste it into a RouterOS terminal.\n",
    );
    for step in steps {
        let _ = writeln!(out, "\n# {}\n{}", step.title, step.menu);
        let cond = condition(&step.find);
        match step.kind {
            StepKind::Add => {
                let _ = writeln!(
                    out,
                    ":if ([:len [find where {cond}]] = 0) do={{ add {} }}",
                    props(&step.attrs)
                );
                if is_log_rule(step) {
                    // The log rules only see what earlier rules accept: put them first.
                    let _ = writeln!(
                        out,
                        ":if ([:len [find]] > 1) do={{ move [find where {cond}] destination=0 }}"
                    );
                }
            }
            StepKind::AddCertificate => {
                let name = step
                    .find
                    .first()
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    ":if ([:len [find where {cond}]] = 0) do={{ add {}; sign {name}; :delay 10s }}",
                    props(&step.attrs)
                );
            }
            StepKind::Set => {
                let _ = writeln!(out, "set [find where {cond}] {}", props(&step.attrs));
            }
        }
    }
    out
}

/// A new-connection log rule, which must come before the filter's other rules.
fn is_log_rule(step: &Step) -> bool {
    step.menu.ends_with("firewall filter")
        && step.attrs.iter().any(|(k, v)| k == "action" && v == "log")
}

/// The API path of a CLI menu: `/ip firewall raw` -> `/ip/firewall/raw`.
fn api_menu(menu: &str) -> String {
    menu.replace(' ', "/")
}

/// What `--apply` did with one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// An item matched: nothing to do.
    Present,
    /// Added (or set).
    Changed,
    /// The router refused: its message.
    Failed(String),
}

/// Applies `steps` through `client`: print with a query, add when nothing matches, set
/// only what differs. Each step's outcome is returned; a failed step does not stop the
/// others, and applying twice reports every step [`Applied::Present`].
///
/// `user_password`: when given, a user step creates the user enabled with this password
/// (mtids' own, from its configuration) instead of disabled with a placeholder. It is sent
/// to the router only, never printed.
pub async fn apply(
    client: &Client,
    steps: &[Step],
    user_password: Option<&str>,
) -> Vec<(Step, Applied)> {
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        let outcome = apply_one(client, step, user_password).await;
        let outcome = match outcome {
            Ok(a) => a,
            Err(e) => Applied::Failed(e.to_string()),
        };
        let mut step = step.clone();
        if step.menu == "/user" && user_password.is_some() {
            step.title = "API user, enabled, with the password mtids is configured with".to_owned();
        }
        results.push((step, outcome));
    }
    results
}

/// Whether a printed value is what a step asks for (`yes` prints as `true`).
fn same_value(printed: &str, wanted: &str) -> bool {
    fn canonical(v: &str) -> &str {
        match v {
            "yes" => "true",
            "no" => "false",
            other => other,
        }
    }
    canonical(printed) == canonical(wanted)
}

async fn apply_one(
    client: &Client,
    step: &Step,
    user_password: Option<&str>,
) -> Result<Applied, routeros_proto::net::Error> {
    let menu = api_menu(&step.menu);
    let mut proplist = vec![".id".to_owned()];
    match step.kind {
        StepKind::Set => proplist.extend(step.attrs.iter().map(|(k, _)| k.clone())),
        StepKind::AddCertificate => proplist.push("fingerprint".to_owned()),
        StepKind::Add => proplist.push("disabled".to_owned()),
    }
    let mut print = Command::new(format!("{menu}/print")).proplist(proplist);
    for (k, v) in &step.find {
        print = print.word(format!("?{k}={v}"));
    }
    let found = client.call(print).await?;
    let row = found.rows.first();
    let id = row.and_then(|r| r.id()).map(|c| c.into_owned());
    match (&step.kind, id) {
        (StepKind::Set, Some(id)) => {
            let differs: Vec<&(String, String)> = step
                .attrs
                .iter()
                .filter(|(k, v)| {
                    let printed = row.and_then(|r| r.get_str(k)).unwrap_or_default();
                    !same_value(&printed, v)
                })
                .collect();
            if differs.is_empty() {
                return Ok(Applied::Present);
            }
            let mut set = Command::new(format!("{menu}/set")).id(&id);
            for (k, v) in differs {
                set = set.attr(k, v);
            }
            client.call(set).await?;
            Ok(Applied::Changed)
        }
        (StepKind::AddCertificate, Some(id))
            if row.and_then(|r| r.get_str("fingerprint")).is_none() =>
        {
            // Added by an earlier run whose signing did not finish.
            client
                .call(Command::new(format!("{menu}/sign")).id(&id))
                .await?;
            Ok(Applied::Changed)
        }
        (StepKind::Set, None) => Ok(Applied::Failed(format!(
            "no item with {} under {}",
            condition(&step.find),
            step.menu
        ))),
        (StepKind::Add, Some(id))
            if row.and_then(|r| r.get_str("disabled")).as_deref() == Some("true")
                && !step
                    .attrs
                    .iter()
                    .any(|(k, v)| k == "disabled" && v == "yes") =>
        {
            // Ours, but disabled since: mtids relies on it (a user created disabled stays so).
            client
                .call(Command::new(format!("{menu}/enable")).id(&id))
                .await?;
            Ok(Applied::Changed)
        }
        (_, Some(_)) => Ok(Applied::Present),
        (kind, None) => {
            let mut add = Command::new(format!("{menu}/add"));
            let is_user = step.menu == "/user";
            for (k, v) in &step.attrs {
                add = match (is_user, k.as_str(), user_password) {
                    (true, "password", Some(pw)) => add.attr(k, pw),
                    (true, "disabled", Some(_)) => add.attr(k, "no"),
                    _ => add.attr(k, v),
                };
            }
            if is_log_rule(step) {
                // The log rules only see what earlier rules let through: put them first.
                let first = client
                    .call(Command::new(format!("{menu}/print")).proplist([".id"]))
                    .await?;
                if let Some(first) = first.rows.first().and_then(|r| r.id()) {
                    add = add.attr("place-before", first.as_ref());
                }
            }
            let done = client.call(add).await?;
            if *kind == StepKind::AddCertificate {
                if let Some(id) = done.ret_str() {
                    client
                        .call(Command::new(format!("{menu}/sign")).id(id))
                        .await?;
                }
            }
            Ok(Applied::Changed)
        }
    }
}

/// `mtids setup --apply` after the confirmation: logs in to `router` as `--admin-user`
/// with `admin_password` and applies `steps`. The user mtids logs in as (the router's
/// `user`) is created with the password mtids is configured with, when it has one.
pub async fn apply_to_router(
    router: &RouterConfig,
    args: &SetupArgs,
    steps: &[Step],
    admin_password: &str,
) -> Result<Vec<(Step, Applied)>, CliError> {
    let client = crate::check::connect(router, Some((&args.admin_user, admin_password))).await?;
    let user_password = router.password();
    let user_password = (args.user.as_ref().is_none_or(|u| *u == router.user)
        && !user_password.expose().is_empty())
    .then(|| user_password.expose());
    let results = apply(&client, steps, user_password).await;
    client.close().await;
    Ok(results)
}

/// `mtids setup` as the binary runs it.
pub async fn execute(config: &Config, args: &SetupArgs) -> Result<(), CliError> {
    let steps = steps(args, config)?;
    if !args.apply {
        print!("{}", render_script(&steps));
        return Ok(());
    }
    let router = match &args.router {
        Some(name) => config
            .routers
            .iter()
            .find(|r| &r.name == name)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--router: no router named `{name}` in the configuration"
                ))
            })?,
        None => config.routers.first().ok_or_else(|| {
            CliError::Usage("--apply needs a [[router]] in the configuration".to_owned())
        })?,
    };
    let password = std::env::var("MTIDS_SETUP_PASSWORD").map_err(|_| {
        CliError::Usage(
            "--apply: set MTIDS_SETUP_PASSWORD to the password of --admin-user".to_owned(),
        )
    })?;
    if !args.yes {
        eprint!(
            "{}\nApply these {} steps to router `{}` ({}) as `{}`? [y/N] ",
            render_script(&steps),
            steps.len(),
            router.name,
            router.host,
            args.admin_user
        );
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::Io {
                context: "reading the confirmation".to_owned(),
                source: e,
            })?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::Usage("not applied: not confirmed".to_owned()));
        }
    }
    let results = apply_to_router(router, args, &steps, &password).await?;
    let mut failed = 0;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (step, outcome) in &results {
        let status = match outcome {
            Applied::Present => "present".to_owned(),
            Applied::Changed => "applied".to_owned(),
            Applied::Failed(why) => {
                failed += 1;
                format!("FAILED: {why}")
            }
        };
        let _ = writeln!(out, "{:<10} {} ({})", status, step.title, step.menu);
    }
    if failed > 0 {
        return Err(CliError::Router {
            router: router.name.clone(),
            reason: format!("{failed} of {} setup steps failed", results.len()),
        });
    }
    Ok(())
}
