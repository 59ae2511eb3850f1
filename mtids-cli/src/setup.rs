//! `mtids setup`: the RouterOS configuration mtids needs, as an idempotent script to paste
//! into a terminal, or applied through the API (`--apply`).
//!
//! It replaces the click-through the seed tools' READMEs ask for: an API group and user
//! with minimal policies, API-SSL with a certificate, log rules for new connections on
//! the WAN interface, drop rules for the block lists in both directions, and optionally
//! a remote syslog action.
//!
//! The remote logging action depends on the router's version: RouterOS 7.18 replaced
//! `bsd-syslog` with `remote-log-format` and `remote-protocol`, and refuses `bsd-syslog`
//! since (ROUTEROS.md section 5). `--apply` reads the version first
//! (`/system/resource/print`); the printed script is for 7.18 and later unless
//! `--router-version` names another.
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
    /// these log lines), or an interface list: `WAN` (the list the default configuration
    /// of current routers puts the uplink in) or `list:NAME` match with
    /// `in-interface-list=`.
    #[arg(long, default_value = "ether1", value_name = "INTERFACE|WAN|list:NAME")]
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
    /// port 5514 when not given): mtids' `input.syslog_tcp` for CEF over TCP (the
    /// default), `input.syslog_udp` for UDP.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub syslog: Option<String>,
    /// With `--syslog` on RouterOS 7.18+: `remote-log-format`. Default `cef`: it keeps the
    /// topics and has a delimiter, so it can go over TCP. Before 7.18: `syslog` (the
    /// default there, `bsd-syslog=yes`) or `default` only.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub syslog_format: Option<SyslogFormat>,
    /// With `--syslog` on RouterOS 7.18+: `remote-protocol`. Default `tcp` for `cef`
    /// (reliable: no log line lost to a full socket buffer during an attack), `udp` for
    /// `syslog` and `default` (without a delimiter they cannot be split over a stream).
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub syslog_protocol: Option<SyslogProtocol>,
    /// The RouterOS version the printed script is for (`/system resource print`); the
    /// remote logging properties changed in 7.18. Default: 7.18 or later. With `--apply`
    /// the router's own version is used.
    #[arg(long, value_name = "VERSION")]
    pub router_version: Option<String>,
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

impl SetupArgs {
    /// Parses the arguments that follow `mtids setup` (for programs and tests that drive
    /// setup without the command line).
    pub fn parse_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<SetupArgs, CliError> {
        use clap::Parser as _;
        let argv = ["mtids", "setup"].into_iter().chain(args);
        match crate::cli::Cli::try_parse_from(argv) {
            Ok(cli) => match cli.command {
                crate::cli::Command::Setup(a) => Ok(a),
                _ => Err(CliError::Usage("not a setup command".to_owned())),
            },
            Err(e) => Err(CliError::Usage(e.to_string())),
        }
    }
}

/// `remote-log-format` of the remote logging action (RouterOS 7.18+; ROUTEROS.md
/// section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyslogFormat {
    /// `TOPICS MESSAGE`, nothing else.
    Default,
    /// `<PRI>Mmm dd hh:mm:ss IDENTITY MESSAGE`, no topics (`bsd-syslog=yes` before 7.18).
    Syslog,
    /// ArcSight CEF, one event per delimiter (`\r\n`): topics, and for logins `src=`.
    Cef,
}

impl SyslogFormat {
    /// The RouterOS value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogFormat::Default => "default",
            SyslogFormat::Syslog => "syslog",
            SyslogFormat::Cef => "cef",
        }
    }
}

/// `remote-protocol` of the remote logging action (RouterOS 7.18+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyslogProtocol {
    /// One datagram per message.
    Udp,
    /// One connection; only CEF can be split again (by its delimiter).
    Tcp,
    /// TCP with TLS, the router as client.
    Tls,
}

impl SyslogProtocol {
    /// The RouterOS value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogProtocol::Udp => "udp",
            SyslogProtocol::Tcp => "tcp",
            SyslogProtocol::Tls => "tls",
        }
    }
}

/// A RouterOS version as `/system/resource` prints it (`7.20.4 (stable)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouterVersion {
    /// Major (6, 7).
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch (0 when absent).
    pub patch: u16,
}

impl RouterVersion {
    /// 7.18: logging actions get `remote-log-format` and `remote-protocol` and lose
    /// `bsd-syslog` (setting it fails there; ROUTEROS.md section 5, ansible
    /// `community.routeros` `plugins/module_utils/_api_data.py`, `system logging action`).
    pub const REMOTE_LOG_FORMAT: RouterVersion = RouterVersion {
        major: 7,
        minor: 18,
        patch: 0,
    };

    /// Parses `7.18`, `7.20.4` or `7.20.4 (stable)`.
    pub fn parse(text: &str) -> Option<RouterVersion> {
        let number = text.split_whitespace().next()?;
        let mut parts = number.split('.');
        // Pre-releases print `7.21beta2`, `7.21rc1`: the digits before the letters count.
        let digits = |p: &str| -> Option<u16> {
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            p[..end].parse().ok()
        };
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), digits)?;
        let patch = parts.next().map_or(Some(0), digits)?;
        if parts.next().is_some() {
            return None;
        }
        Some(RouterVersion {
            major,
            minor,
            patch,
        })
    }

    /// Whether logging actions have `remote-log-format` (7.18 and later).
    pub fn has_remote_log_format(self) -> bool {
        self >= Self::REMOTE_LOG_FORMAT
    }
}

impl std::fmt::Display for RouterVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version `--router-version` names, or 7.18 (the current form) without it.
pub fn script_version(args: &SetupArgs) -> Result<RouterVersion, CliError> {
    match &args.router_version {
        None => Ok(RouterVersion::REMOTE_LOG_FORMAT),
        Some(v) => RouterVersion::parse(v).ok_or_else(|| {
            CliError::Usage(format!(
                "--router-version: `{v}` is not a RouterOS version such as 7.20.4"
            ))
        }),
    }
}

/// Reads the router's version (`/system/resource/print`, `version`).
pub async fn read_version(client: &Client) -> Result<RouterVersion, CliError> {
    let reply = client
        .call(Command::new("/system/resource/print").proplist(["version"]))
        .await
        .map_err(|e| CliError::Usage(format!("reading the RouterOS version: {e}")))?;
    let text = reply
        .rows
        .first()
        .and_then(|r| r.get_str("version").map(|v| v.into_owned()))
        .unwrap_or_default();
    RouterVersion::parse(&text).ok_or_else(|| {
        CliError::Usage(format!(
            "the router's /system/resource version `{text}` is not a RouterOS version"
        ))
    })
}

/// The remote logging properties for `version` (besides `target`, `remote`,
/// `remote-port`): `remote-log-format` and `remote-protocol` on 7.18+, `bsd-syslog`
/// before. Errors name the flag that cannot work.
pub fn syslog_properties(
    version: RouterVersion,
    format: Option<SyslogFormat>,
    protocol: Option<SyslogProtocol>,
) -> Result<Vec<(&'static str, &'static str)>, CliError> {
    if !version.has_remote_log_format() {
        if protocol.is_some_and(|p| p != SyslogProtocol::Udp) {
            return Err(CliError::Usage(format!(
                "--syslog-protocol: RouterOS {version} logs remotely over UDP only (TCP and TLS came with 7.18)"
            )));
        }
        return match format.unwrap_or(SyslogFormat::Syslog) {
            SyslogFormat::Syslog => Ok(vec![("bsd-syslog", "yes")]),
            SyslogFormat::Default => Ok(vec![("bsd-syslog", "no")]),
            SyslogFormat::Cef => Err(CliError::Usage(format!(
                "--syslog-format cef: RouterOS {version} has no CEF (7.18 and later)"
            ))),
        };
    }
    let format = format.unwrap_or(SyslogFormat::Cef);
    let protocol = protocol.unwrap_or(if format == SyslogFormat::Cef {
        SyslogProtocol::Tcp
    } else {
        SyslogProtocol::Udp
    });
    if format != SyslogFormat::Cef && protocol != SyslogProtocol::Udp {
        // No framing: over a stream the messages cannot be split again, and MikroTik's
        // manual says TCP and TLS work only with CEF (ROUTEROS.md section 5).
        return Err(CliError::Usage(format!(
            "--syslog-protocol {}: only `cef` can go over TCP or TLS (`{}` has no delimiter); use udp or --syslog-format cef",
            protocol.as_str(),
            format.as_str()
        )));
    }
    Ok(vec![
        ("remote-log-format", format.as_str()),
        ("remote-protocol", protocol.as_str()),
    ])
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
    /// `add` when nothing matches `find`, else `set` what differs (the remote logging
    /// action, whose format and protocol may change between runs).
    AddOrSet,
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

/// The steps for `args` and the configuration (address-list names, user), for the
/// RouterOS version `--router-version` names (7.18 and later without it).
pub fn steps(args: &SetupArgs, config: &Config) -> Result<Vec<Step>, CliError> {
    steps_for(args, config, script_version(args)?)
}

/// `--wan`: `in-interface=NAME`, or `in-interface-list=` for `WAN` and `list:NAME`. `WAN`
/// is the interface list the default configuration of current routers puts the uplink in
/// and matches with (`defconf: drop all from WAN not DSTNATed ... in-interface-list=WAN`,
/// `out-interface-list=WAN` masquerade; `/system default-configuration print`, quoted at
/// <https://tangentsoft.com/mikrotik/wiki?name=Default%20Router%20Configuration>).
fn wan_match(wan: &str) -> (&'static str, &str) {
    match wan.strip_prefix("list:") {
        Some(list) => ("in-interface-list", list),
        None if wan == "WAN" => ("in-interface-list", wan),
        None => ("in-interface", wan),
    }
}

/// The steps for `args` and the configuration on a router running `version`.
pub fn steps_for(
    args: &SetupArgs,
    config: &Config,
    version: RouterVersion,
) -> Result<Vec<Step>, CliError> {
    let (wan_prop, wan) = wan_match(&args.wan);
    for (what, value) in [
        ("--wan", wan),
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
                (wan_prop, wan),
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
        let form = syslog_properties(version, args.syslog_format, args.syslog_protocol)?;
        let mut extra = vec![
            ("target", "remote"),
            ("remote", host.as_str()),
            ("remote-port", port.as_str()),
        ];
        extra.extend(form.iter().copied());
        let title = if version.has_remote_log_format() {
            let described = form
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "remote logging action towards mtids, RouterOS 7.18+ form ({described}; no bsd-syslog, which 7.18 removed); older routers: --router-version"
            )
        } else {
            format!(
                "remote logging action towards mtids, RouterOS {version} form (bsd-syslog; remote-log-format came with 7.18)"
            )
        };
        let mut action = add(
            &title,
            "/system logging action",
            &[("name", "mtids")],
            &extra,
        );
        action.kind = StepKind::AddOrSet;
        s.push(action);
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
    crate::config::check_router_word(value)
        .map_err(|reason| CliError::Usage(format!("{what}: {reason}")))
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
            StepKind::AddOrSet => {
                let set: Vec<(String, String)> = step
                    .attrs
                    .iter()
                    .filter(|a| !step.find.contains(a))
                    .cloned()
                    .collect();
                let _ = writeln!(
                    out,
                    ":if ([:len [find where {cond}]] = 0) do={{ add {} }} else={{ set [find where {cond}] {} }}",
                    props(&step.attrs),
                    props(&set)
                );
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
        StepKind::Set | StepKind::AddOrSet => {
            proplist.extend(step.attrs.iter().map(|(k, _)| k.clone()));
        }
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
        (StepKind::Set | StepKind::AddOrSet, Some(id)) => {
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

/// Logs in to `router` as `--admin-user` with `admin_password` and reads its RouterOS
/// version (the steps depend on it: remote logging changed in 7.18).
pub async fn connect_admin(
    router: &RouterConfig,
    args: &SetupArgs,
    admin_password: &str,
) -> Result<(Client, RouterVersion), CliError> {
    let client = crate::check::connect(router, Some((&args.admin_user, admin_password))).await?;
    match read_version(&client).await {
        Ok(version) => Ok((client, version)),
        Err(e) => {
            client.close().await;
            Err(e)
        }
    }
}

/// Applies `steps` through an administrator's `client`. The user mtids logs in as (the
/// router's `user`) is created with the password mtids is configured with, when it has
/// one.
pub async fn apply_as_admin(
    client: &Client,
    router: &RouterConfig,
    args: &SetupArgs,
    steps: &[Step],
) -> Vec<(Step, Applied)> {
    let user_password = router.password();
    let user_password = (args.user.as_ref().is_none_or(|u| *u == router.user)
        && !user_password.expose().is_empty())
    .then(|| user_password.expose());
    apply(client, steps, user_password).await
}

/// `mtids setup --apply` after the confirmation: logs in to `router` as `--admin-user`,
/// reads its version, and applies the steps for that version. Returns the version and
/// each step's outcome.
pub async fn apply_to_router(
    router: &RouterConfig,
    args: &SetupArgs,
    config: &Config,
    admin_password: &str,
) -> Result<(RouterVersion, Vec<(Step, Applied)>), CliError> {
    let (client, version) = connect_admin(router, args, admin_password).await?;
    let steps = match steps_for(args, config, version) {
        Ok(s) => s,
        Err(e) => {
            client.close().await;
            return Err(e);
        }
    };
    let results = apply_as_admin(&client, router, args, &steps).await;
    client.close().await;
    Ok((version, results))
}

/// The script's first comment: which RouterOS version it is written for.
fn version_comment(args: &SetupArgs, version: RouterVersion) -> String {
    match &args.router_version {
        Some(_) => format!("# Written for RouterOS {version} (--router-version).\n"),
        None => "# Written for RouterOS 7.18 and later (remote-log-format, remote-protocol). For an older\n\
                 # router, give its version: mtids setup --router-version 7.17 ... (bsd-syslog=yes).\n"
            .to_owned(),
    }
}

/// `mtids setup` as the binary runs it.
pub async fn execute(config: &Config, args: &SetupArgs) -> Result<(), CliError> {
    if !args.apply {
        let version = script_version(args)?;
        let steps = steps_for(args, config, version)?;
        print!(
            "{}{}",
            version_comment(args, version),
            render_script(&steps)
        );
        return Ok(());
    }
    // Fail on bad flags before asking for anything.
    steps(args, config)?;
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
    let (client, version) = connect_admin(router, args, &password).await?;
    let steps = match steps_for(args, config, version) {
        Ok(s) => s,
        Err(e) => {
            client.close().await;
            return Err(e);
        }
    };
    if !args.yes {
        eprint!(
            "# Router `{}` runs RouterOS {version}.\n{}\nApply these {} steps to router `{}` ({}) as `{}`? [y/N] ",
            router.name,
            render_script(&steps),
            steps.len(),
            router.name,
            router.host,
            args.admin_user
        );
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        if let Err(e) = read {
            client.close().await;
            return Err(CliError::Io {
                context: "reading the confirmation".to_owned(),
                source: e,
            });
        }
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            client.close().await;
            return Err(CliError::Usage("not applied: not confirmed".to_owned()));
        }
    }
    let results = apply_as_admin(&client, router, args, &steps).await;
    client.close().await;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_routers_print_them() {
        let v = |t: &str| RouterVersion::parse(t);
        assert_eq!(v("7.20.4 (stable)").unwrap().to_string(), "7.20.4");
        assert_eq!(v("7.18").unwrap(), RouterVersion::REMOTE_LOG_FORMAT);
        assert_eq!(v("7.21beta2 (testing)").unwrap().minor, 21);
        assert_eq!(v("7.19rc1").unwrap().to_string(), "7.19.0");
        assert!(v("7.18").unwrap().has_remote_log_format());
        assert!(!v("7.17.2").unwrap().has_remote_log_format());
        assert!(!v("6.49.10 (long-term)").unwrap().has_remote_log_format());
        assert_eq!(v("seven"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("7.1.2.3"), None);
    }

    #[test]
    fn syslog_properties_by_version() {
        let new = RouterVersion::REMOTE_LOG_FORMAT;
        let old = RouterVersion::parse("7.17").unwrap();
        assert_eq!(
            syslog_properties(new, None, None).unwrap(),
            [("remote-log-format", "cef"), ("remote-protocol", "tcp")]
        );
        assert_eq!(
            syslog_properties(new, Some(SyslogFormat::Default), None).unwrap(),
            [("remote-log-format", "default"), ("remote-protocol", "udp")]
        );
        assert_eq!(
            syslog_properties(new, None, Some(SyslogProtocol::Udp)).unwrap(),
            [("remote-log-format", "cef"), ("remote-protocol", "udp")]
        );
        assert!(
            syslog_properties(new, Some(SyslogFormat::Syslog), Some(SyslogProtocol::Tls)).is_err()
        );
        assert_eq!(
            syslog_properties(old, None, None).unwrap(),
            [("bsd-syslog", "yes")]
        );
        assert_eq!(
            syslog_properties(old, Some(SyslogFormat::Default), Some(SyslogProtocol::Udp)).unwrap(),
            [("bsd-syslog", "no")]
        );
        assert!(syslog_properties(old, Some(SyslogFormat::Cef), None).is_err());
        assert!(syslog_properties(old, None, Some(SyslogProtocol::Tcp)).is_err());
    }
}
