//! The `mtids` configuration: `mtids.toml`, then a `.env` file, then the environment.
//!
//! Precedence, lowest first: built-in defaults, the TOML file, variables from `.env` in
//! the current directory, variables of the process environment. Variables are the
//! `MTIDS_*` names of [`ENV_VARS`] and, for a single router, the names the Python seed
//! tools used (`MT_HOST`, `MT_USER`, `MT_PASS`, `MT_PORT`, `TELE_TOKEN`, `CHAT_ID`,
//! `LOG_LEVEL`, `ALERT_THRESHOLD`, `TIME_WINDOW`).
//!
//! Every table rejects unknown keys, and every error names the file (or variable), the
//! key and what was expected. Passwords and tokens are [`Secret`]s: `Debug` never shows
//! them. A password written in a file that other users can read gives a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtids_alert::{AlertConfig, ChatId, Secret, TelegramConfig};
pub use mtids_crowdsec::{CrowdsecConfig, ResolvedConfig as ResolvedCrowdsec};
use mtids_detect::DetectionConfig;
use serde::Deserialize;

use crate::error::CliError;

/// The `MTIDS_*` variables the configuration reads, and what each one sets. Any other
/// `MTIDS_` variable is an error, so a typo never goes unnoticed, except password
/// variables (see [`is_password_variable`]), which a `password_env` names.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "MTIDS_CONFIG",
        "path of the configuration file (same as --config)",
    ),
    ("MTIDS_LOG_LEVEL", "log.level"),
    ("MTIDS_LOG_FORMAT", "log.format (human or json)"),
    ("MTIDS_DRY_RUN", "enforcement.dry_run (true or false)"),
    (
        "MTIDS_ADDRESS_LIST",
        "enforcement.address_list (and address_list_v6 unless MTIDS_ADDRESS_LIST_V6 is set)",
    ),
    ("MTIDS_ADDRESS_LIST_V6", "enforcement.address_list_v6"),
    ("MTIDS_LEDGER_PATH", "ledger.path"),
    ("MTIDS_METRICS_LISTEN", "metrics.listen (ip:port)"),
    ("MTIDS_ROUTER_NAME", "name of the single router"),
    ("MTIDS_ROUTER_HOST", "host of the single router"),
    ("MTIDS_ROUTER_PORT", "API port of the single router"),
    ("MTIDS_ROUTER_USER", "API user of the single router"),
    ("MTIDS_ROUTER_PASSWORD", "API password of the single router"),
    ("MTIDS_TELEGRAM_TOKEN", "alert.telegram.bot_token"),
    ("MTIDS_TELEGRAM_CHAT_ID", "alert.telegram.chat_id"),
    (
        "MTIDS_SETUP_PASSWORD",
        "password of --admin-user for `mtids setup --apply` (read by setup only)",
    ),
];

/// The default configuration files, in the order they are looked for when neither
/// `--config` nor `MTIDS_CONFIG` names one: the first that exists is read.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = ["/etc/mtids/mtids.toml", "mtids.toml"];

/// Whether `name` is a password variable for a router's `password_env`: `MTIDS_PASSWORD_*`
/// or `MTIDS_*_PASSWORD` (e.g. `MTIDS_GW_PASSWORD`). Such variables are never an
/// "unknown variable" error, whether or not the configuration names them, so one
/// environment (or `.env`) can serve several configurations and every command.
pub fn is_password_variable(name: &str) -> bool {
    name.strip_prefix("MTIDS_").is_some_and(|rest| {
        (rest.starts_with("PASSWORD_") && rest.len() > "PASSWORD_".len())
            || (rest.ends_with("_PASSWORD") && rest.len() > "_PASSWORD".len())
    })
}

/// The log levels `log.level` accepts alone or as the default of a filter.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `log.level` value: a level of [`LOG_LEVELS`], or a comma list of such levels
/// and `target=level` directives (tracing's `EnvFilter` syntax). A bare word that is not a
/// level (`warning`) is refused: `EnvFilter` would read it as a target name and silence
/// everything else.
///
/// # Errors
/// What is wrong, with the valid levels.
pub fn check_log_level(level: &str) -> Result<(), String> {
    let expected = || {
        format!(
            "expected one of {} or filters such as `mtids_cli=debug,info`",
            LOG_LEVELS.join(", ")
        )
    };
    if level.trim().is_empty() {
        return Err(format!("empty; {}", expected()));
    }
    for directive in level.split(',').map(str::trim) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            let hint = match directive.to_ascii_lowercase().as_str() {
                "warning" => " (did you mean `warn`?)".to_owned(),
                "err" | "critical" | "fatal" => " (did you mean `error`?)".to_owned(),
                "information" | "notice" | "verbose" => " (did you mean `info`?)".to_owned(),
                _ => String::new(),
            };
            return Err(format!(
                "`{directive}` is not a log level{hint}; {}",
                expected()
            ));
        }
    }
    if tracing_subscriber::EnvFilter::try_new(level).is_err() {
        return Err(format!(
            "`{level}` is not a level or filter; {}",
            expected()
        ));
    }
    Ok(())
}

/// Checks a name that goes into a RouterOS command word (an address list, a user or
/// group name): 1 to 64 letters, digits, `-`, `_`, `.` or `@`. The one rule `check`,
/// `run` and `setup` share.
///
/// # Errors
/// What is wrong with `value`.
pub fn check_router_word(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}` must be 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
        ))
    }
}

/// The seed tools' variables, each with the `MTIDS_*` variable it stands for (which wins
/// when both are set), or the setting it maps to.
const SEED_VARS: &[(&str, &str)] = &[
    ("MT_HOST", "MTIDS_ROUTER_HOST"),
    ("MT_USER", "MTIDS_ROUTER_USER"),
    ("MT_PASS", "MTIDS_ROUTER_PASSWORD"),
    ("MT_PORT", "MTIDS_ROUTER_PORT"),
    ("TELE_TOKEN", "MTIDS_TELEGRAM_TOKEN"),
    ("CHAT_ID", "MTIDS_TELEGRAM_CHAT_ID"),
    ("LOG_LEVEL", "MTIDS_LOG_LEVEL"),
    ("ALERT_THRESHOLD", "detection.brute_force.max_failures"),
    ("TIME_WINDOW", "detection.brute_force.window_secs"),
];

/// The default API port, and the API-SSL port used when `tls` is configured.
pub const API_PORT: u16 = 8728;
/// The default API-SSL port.
pub const API_SSL_PORT: u16 = 8729;

/// The whole configuration, as `mtids.toml` writes it (see `mtids.example.toml`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The routers to protect (`[[router]]` tables).
    #[serde(rename = "router")]
    pub routers: Vec<RouterConfig>,
    /// mtids' own logging.
    pub log: LogConfig,
    /// What is read from the routers.
    pub input: InputConfig,
    /// Detectors, guard (allowlist) and policy (ban durations): mtids-detect's schema.
    pub detection: DetectionConfig,
    /// How bans go to the routers.
    pub enforcement: EnforcementConfig,
    /// Telegram and webhooks: mtids-alert's schema.
    pub alert: AlertConfig,
    /// The SQLite record of bans.
    pub ledger: LedgerConfig,
    /// The optional Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// The optional read-only web page.
    pub web: WebConfig,
    /// The optional CrowdSec Local API: pull its bans, push mtids' own (mtids-crowdsec's
    /// schema, see docs/crowdsec.md).
    pub crowdsec: Option<CrowdsecConfig>,
    /// `crowdsec` with its secrets read, filled by [`Config::load`] (the daemon resolves
    /// a section set in code from the process environment).
    #[serde(skip)]
    pub crowdsec_resolved: Option<ResolvedCrowdsec>,
    /// The local control socket of `mtids run` (`mtids status`, `reload`, `bans`).
    pub control: ControlConfig,
}

/// One router (`[[router]]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouterConfig {
    /// A name for logs, alerts and the ledger; unique.
    pub name: String,
    /// Host name or address of the router's API service.
    pub host: String,
    /// API port: 8728 by default, 8729 when `tls` is set.
    #[serde(default)]
    pub port: Option<u16>,
    /// The API user (give it only the policies `mtids setup` prints).
    pub user: String,
    /// The password written in the file (prefer `password_env` or `password_file`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// The name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// API-SSL settings; absent means plain API.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// A group name, to address several routers at once in `mtids bans`.
    #[serde(default)]
    pub group: Option<String>,
    /// How long to wait for the TCP/TLS connection and login. Default `10s`.
    #[serde(default = "default_connect_timeout", with = "duration_str")]
    pub connect_timeout: Duration,
}

impl RouterConfig {
    /// A router at `host` with the default port and no password source yet.
    pub fn new(name: impl Into<String>, host: impl Into<String>, user: impl Into<String>) -> Self {
        RouterConfig {
            name: name.into(),
            host: host.into(),
            port: None,
            user: user.into(),
            password: None,
            password_env: None,
            password_file: None,
            tls: None,
            group: None,
            connect_timeout: default_connect_timeout(),
        }
    }

    /// The port to connect to: the configured one, or 8728 (8729 with TLS).
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.tls.is_some() {
            API_SSL_PORT
        } else {
            API_PORT
        })
    }

    /// The password, resolved at load time from `password`, `password_env` or
    /// `password_file` (empty when none is set: RouterOS' default admin has none).
    pub fn password(&self) -> Secret {
        self.password.clone().unwrap_or_else(|| Secret::new(""))
    }
}

impl fmt::Debug for RouterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Secret` redacts itself; spelled out so a new field cannot leak by accident.
        f.debug_struct("RouterConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.effective_port())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("tls", &self.tls)
            .field("group", &self.group)
            .finish()
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// API-SSL (`[router.tls]`): verify the router's certificate against a CA file, or pin its
/// SHA-256 fingerprint. RouterOS without a certificate offers only anonymous DH, which
/// rustls does not speak: assign a certificate to the `api-ssl` service first.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file with the CA (or the self-signed certificate itself).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the router's certificate, hex, colons allowed.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The name to verify against the certificate (default: `host`).
    #[serde(default)]
    pub server_name: Option<String>,
}

/// mtids' own logs (`[log]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `mtids_cli=debug,info`... Default `info`.
    pub level: String,
    /// `human` (default) or `json` (one object per line).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Human,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal or journald.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// What mtids reads from each router (`[input]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct InputConfig {
    /// Follow the router log through the API (`/log/print =follow-only=`). Default true.
    pub api_log: bool,
    /// Receive syslog over UDP on this address (RouterOS `remote` logging action).
    pub syslog_udp: Option<SocketAddr>,
    /// Receive syslog over TCP on this address: octet-counted (RFC 6587) frames, or
    /// frames ending in `syslog_cef_delimiter` or a newline (RouterOS 7.18+ sends CEF over
    /// TCP, each event followed by its `cef-event-delimiter`).
    pub syslog_tcp: Option<SocketAddr>,
    /// Most syslog TCP (and, separately, TLS) senders connected at once; more are closed
    /// on accept. A router keeps one connection. Default 256.
    pub syslog_tcp_max_connections: usize,
    /// A syslog TCP or TLS connection that sends nothing for this long is closed, so idle
    /// or dead peers cannot hold every slot of `syslog_tcp_max_connections`. A router
    /// reconnects when it next logs. Default `5m`.
    #[serde(with = "duration_str")]
    pub syslog_tcp_idle_timeout: Duration,
    /// The receive buffer asked of the kernel for the syslog UDP socket, in bytes, so a
    /// burst is not dropped while the daemon is busy. Linux caps it at
    /// `net.core.rmem_max`; the size granted is logged at start. Default 4 MiB.
    pub syslog_udp_buffer: usize,
    /// What ends one CEF event in a syslog TCP/TLS stream: the router's
    /// `cef-event-delimiter`, written the same way (`\r\n`, the default, or `\n`); the
    /// escapes `\r`, `\n`, `\t` and `\\` are read. A newline always ends a frame too.
    pub syslog_cef_delimiter: String,
    /// Receive syslog over TLS on this address (RouterOS `remote-protocol=tls`), framed
    /// as over TCP. Needs `syslog_tls_cert` and `syslog_tls_key`.
    pub syslog_tls: Option<SocketAddr>,
    /// The TLS listener's certificate chain (PEM, leaf first).
    pub syslog_tls_cert: Option<PathBuf>,
    /// The TLS listener's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub syslog_tls_key: Option<PathBuf>,
    /// Poll the connection table (for asymmetric connections). Default true.
    pub connections: bool,
    /// Poll the IPv6 connection table too (`/ipv6/firewall/connection`). Default true; a
    /// router without IPv6 is detected and that poll skipped.
    pub connections_v6: bool,
    /// How often to poll the connection table. Default `5s`.
    #[serde(with = "duration_str")]
    pub connection_interval: Duration,
    /// Only these protocols are fetched (a server-side query). Default `["tcp", "udp"]`.
    pub connection_protocols: Vec<String>,
    /// Poll `/system/resource` for the CPU load (login-then-CPU-spike). Default true.
    pub resource: bool,
    /// How often to poll `/system/resource`. Default `2s`.
    #[serde(with = "duration_str")]
    pub resource_interval: Duration,
    /// Longest wait between reconnection attempts (backoff doubles up to this). Default `60s`.
    #[serde(with = "duration_str")]
    pub max_backoff: Duration,
    /// How often each connected router is sent a liveness command
    /// (`/system/resource/print =.proplist=uptime`, also the reboot check). Default `5s`.
    #[serde(with = "duration_str")]
    pub liveness_interval: Duration,
    /// How long the liveness command may go unanswered before the link is declared dead
    /// and reconnected. Default `10s`: a stalled link is noticed within
    /// `liveness_interval + liveness_timeout`.
    #[serde(with = "duration_str")]
    pub liveness_timeout: Duration,
    /// Only log rows whose `topics` equal one of these, exactly as the router prints them
    /// (`firewall,info`, `system,error,critical`): a server-side query on the API log
    /// follow. Default empty: every row.
    pub log_topics: Vec<String>,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            api_log: true,
            syslog_udp: None,
            syslog_tcp: None,
            syslog_tcp_max_connections: 256,
            syslog_tcp_idle_timeout: Duration::from_secs(300),
            syslog_udp_buffer: 4 << 20,
            syslog_cef_delimiter: "\\r\\n".to_owned(),
            syslog_tls: None,
            syslog_tls_cert: None,
            syslog_tls_key: None,
            connections: true,
            connections_v6: true,
            connection_interval: Duration::from_secs(5),
            connection_protocols: vec!["tcp".to_owned(), "udp".to_owned()],
            resource: true,
            resource_interval: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            liveness_interval: Duration::from_secs(5),
            liveness_timeout: Duration::from_secs(10),
            log_topics: Vec::new(),
        }
    }
}

impl InputConfig {
    /// `syslog_cef_delimiter` with its escapes read: the bytes that end a CEF event.
    ///
    /// # Errors
    /// Why the value is not a usable delimiter.
    pub fn cef_delimiter(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut chars = self.syslog_cef_delimiter.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
            match chars.next() {
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('\\') => out.push(b'\\'),
                other => {
                    return Err(format!(
                        "unknown escape `\\{}`; write the router's cef-event-delimiter, e.g. `\\r\\n` or `\\n`",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        }
        if out.is_empty() || out.len() > 16 {
            return Err("expected 1 to 16 bytes, e.g. `\\r\\n` (the router's default)".into());
        }
        Ok(out)
    }
}

/// How bans reach the routers (`[enforcement]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "EnforcementFile")]
#[non_exhaustive]
pub struct EnforcementConfig {
    /// The IPv4 address list that the router's drop rules match. Default `mtids-blocked`.
    pub address_list: String,
    /// The IPv6 address list (`/ipv6/firewall/address-list`). Default: `address_list`.
    pub address_list_v6: String,
    /// Decide and log, change nothing on the routers. Default false.
    pub dry_run: bool,
    /// Remove a blocked source's entries from the connection table. Default true.
    pub remove_connections: bool,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        EnforcementConfig {
            address_list: "mtids-blocked".to_owned(),
            address_list_v6: "mtids-blocked".to_owned(),
            dry_run: false,
            remove_connections: true,
        }
    }
}

/// `[enforcement]` as written: an unset `address_list_v6` means the IPv4 list's name.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct EnforcementFile {
    address_list: String,
    address_list_v6: Option<String>,
    dry_run: bool,
    remove_connections: bool,
}

impl Default for EnforcementFile {
    fn default() -> Self {
        let d = EnforcementConfig::default();
        EnforcementFile {
            address_list: d.address_list,
            address_list_v6: None,
            dry_run: d.dry_run,
            remove_connections: d.remove_connections,
        }
    }
}

impl From<EnforcementFile> for EnforcementConfig {
    fn from(f: EnforcementFile) -> Self {
        EnforcementConfig {
            address_list_v6: f.address_list_v6.unwrap_or_else(|| f.address_list.clone()),
            address_list: f.address_list,
            dry_run: f.dry_run,
            remove_connections: f.remove_connections,
        }
    }
}

/// The ban ledger (`[ledger]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LedgerConfig {
    /// The SQLite file. Default `mtids-bans.db` in the current directory.
    pub path: PathBuf,
    /// What `mtids run` does with a ledger file it cannot use at start (zero length,
    /// corrupt, unwritable): move it aside and start a new one (default), or stop.
    pub on_corrupt: OnCorrupt,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            path: PathBuf::from("mtids-bans.db"),
            on_corrupt: OnCorrupt::Recover,
        }
    }
}

/// `ledger.on_corrupt`: what to do with an unusable ledger file at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OnCorrupt {
    /// Move it aside as `<path>.corrupt-<UTC time>` and start a new ledger; the routers'
    /// lists are learned back at the first reconcile.
    #[default]
    Recover,
    /// Refuse to start, naming the file and what is wrong with it.
    Stop,
}

/// The Prometheus endpoint (`[metrics]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address; absent means no endpoint.
    pub listen: Option<SocketAddr>,
}

/// The read-only web page (`[web]`, see docs/operations.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WebConfig {
    /// Serve the page and `/api/state` on this address (plain HTTP unless `tls_cert` is
    /// set: keep it on loopback then, e.g. `127.0.0.1:9185`); absent means no page.
    pub listen: Option<SocketAddr>,
    /// Ask for HTTP basic auth (user [`WebConfig::user`]) with the password in this file
    /// (its first line); the `MTIDS_WEB_PASSWORD` variable is used when no file is set.
    /// Neither: no authentication.
    pub password_file: Option<PathBuf>,
    /// The basic-auth user name (default `mtids`).
    pub user: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with `tls_key`), for a page that is
    /// not on loopback; absent: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// The control socket (`[control]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ControlConfig {
    /// The Unix socket `mtids run` serves (mode 0600) and `mtids status`, `reload`,
    /// `bans` and `alert test` talk to. Default: the ledger's path with `.sock` added.
    pub socket: Option<PathBuf>,
}

impl Config {
    /// The control socket's path: `control.socket`, else `<ledger.path>.sock`.
    pub fn control_socket(&self) -> PathBuf {
        self.control.socket.clone().unwrap_or_else(|| {
            let mut name = self.ledger.path.as_os_str().to_owned();
            name.push(".sock");
            PathBuf::from(name)
        })
    }
}

/// A loaded configuration and what the user should be warned about once logging is up.
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The configuration, with passwords resolved.
    pub config: Config,
    /// Where it came from (`None`: defaults and variables only).
    pub path: Option<PathBuf>,
    /// Warnings (e.g. a world-readable file holding a password), to log at start.
    pub warnings: Vec<String>,
}

/// Variables to apply over the file: the process environment and a `.env` file, each
/// value remembering where it came from so errors can say so.
#[derive(Clone, Debug, Default)]
pub struct Variables {
    vars: BTreeMap<String, (String, String)>,
}

impl Variables {
    /// No variables.
    pub fn new() -> Self {
        Variables::default()
    }

    /// The process environment over the `.env` file of the current directory, if any.
    ///
    /// # Errors
    /// A `.env` line that is not `KEY=VALUE`, naming the file and line.
    pub fn from_process(warnings: &mut Vec<String>) -> Result<Self, CliError> {
        let mut vars = Variables::new();
        let dotenv = Path::new(".env");
        if dotenv.is_file() {
            vars.merge_dotenv_file(dotenv, warnings)?;
        }
        for (key, value) in std::env::vars_os() {
            if let (Some(key), Some(value)) = (key.to_str(), value.to_str()) {
                vars.set(key, value, "environment");
            }
        }
        Ok(vars)
    }

    /// Sets `key` from `origin` (a later call wins).
    pub fn set(&mut self, key: &str, value: &str, origin: &str) {
        self.vars
            .insert(key.to_owned(), (value.to_owned(), origin.to_owned()));
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|(v, _)| v.as_str())
    }

    fn origin(&self, key: &str) -> String {
        self.vars
            .get(key)
            .map_or_else(|| "environment".to_owned(), |(_, o)| o.clone())
    }

    /// Reads a `.env` file: `KEY=VALUE` lines, `export ` allowed, `#` comments, values
    /// optionally in single or double quotes. The file never changes the process
    /// environment; it only feeds the configuration.
    ///
    /// # Errors
    /// An unreadable file, or a line that is not `KEY=VALUE`.
    pub fn merge_dotenv_file(
        &mut self,
        path: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<(), CliError> {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        let secrets = [
            "MT_PASS",
            "MTIDS_ROUTER_PASSWORD",
            "TELE_TOKEN",
            "MTIDS_TELEGRAM_TOKEN",
        ];
        let mut holds_secret = false;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let origin = format!("{}:{}", path.display(), n + 1);
            let Some((key, value)) = line.split_once('=') else {
                return Err(CliError::config(
                    origin,
                    line.chars().take(40).collect::<String>(),
                    "expected KEY=VALUE",
                ));
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(CliError::config(
                    origin,
                    key,
                    "a variable name is letters, digits and `_`",
                ));
            }
            let value = unquote(value.trim());
            holds_secret |= secrets.contains(&key) && !value.is_empty();
            self.set(key, value, &origin);
        }
        if holds_secret {
            warn_if_world_readable(path, warnings);
        }
        Ok(())
    }
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    // An unquoted value may carry a trailing comment.
    value.split(" #").next().unwrap_or(value).trim_end()
}

impl Config {
    /// Loads `path` (when given) and applies `vars` over it, then validates everything.
    ///
    /// # Errors
    /// The first problem found, naming the file or variable and the key.
    pub fn load(path: Option<&Path>, vars: &Variables) -> Result<Loaded, CliError> {
        Config::load_with(path, vars, true)
    }

    /// [`Config::load`] for commands that never contact a router (`replay`, `explain`,
    /// `simulate`, `bans list`, `bans history`): router passwords are not read, so an
    /// unset `password_env` variable or an unreadable `password_file` is no error.
    ///
    /// # Errors
    /// As [`Config::load`], passwords aside.
    pub fn load_offline(path: Option<&Path>, vars: &Variables) -> Result<Loaded, CliError> {
        Config::load_with(path, vars, false)
    }

    fn load_with(
        path: Option<&Path>,
        vars: &Variables,
        router_passwords: bool,
    ) -> Result<Loaded, CliError> {
        let mut warnings = Vec::new();
        let mut config = match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
                        path: path.to_owned(),
                        source,
                    })?;
                let config = Config::parse(&text, &path.display().to_string())?;
                if config.holds_inline_secret() {
                    warn_if_world_readable(path, &mut warnings);
                }
                config
            }
            None => Config::default(),
        };
        let origin = path.map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
        config.apply_variables(vars)?;
        if router_passwords {
            config.resolve_passwords(&origin, vars, &mut warnings)?;
            config.crowdsec_resolved = config.resolve_crowdsec(&origin, vars, &mut warnings)?;
        }
        config.validate(&origin)?;
        Ok(Loaded {
            config,
            path: path.map(Path::to_owned),
            warnings,
        })
    }

    /// Parses TOML text; `origin` names it in errors. No variables, no validation.
    ///
    /// # Errors
    /// Syntax errors, unknown keys and wrong types, naming the line and the key.
    pub fn parse(text: &str, origin: &str) -> Result<Config, CliError> {
        toml::from_str(text).map_err(|e| {
            let (at, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (String::new(), String::new()),
            };
            let mut message = e.message().trim().to_owned();
            if message.contains("socket address") {
                // Say which value: serde only says the syntax is wrong.
                let value = e.span().and_then(|sp| text.get(sp)).unwrap_or("").trim();
                message = format!(
                    "{value} is not an address and port: {message}; expected e.g. `127.0.0.1:9100` or `[::1]:9100`"
                );
            }
            let message = message.as_str();
            // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
            let hint = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, expected)| {
                    did_you_mean(field, expected.split('`').skip(1).step_by(2))
                })
                .unwrap_or_default();
            CliError::config(
                format!("{origin}{at}"),
                if key.is_empty() {
                    "(document)".to_owned()
                } else {
                    key
                },
                format!("{message}{hint}"),
            )
        })
    }

    fn holds_inline_secret(&self) -> bool {
        self.routers
            .iter()
            .any(|r| r.password.as_ref().is_some_and(|p| !p.expose().is_empty()))
            || self.alert.telegram.is_some()
            || !self.alert.webhook.is_empty()
    }

    fn apply_variables(&mut self, vars: &Variables) -> Result<(), CliError> {
        for (key, (_, origin)) in &vars.vars {
            let named_by_file = self
                .routers
                .iter()
                .any(|r| r.password_env.as_deref() == Some(key.as_str()))
                || self.crowdsec.as_ref().is_some_and(|c| {
                    [&c.bouncer_key_env, &c.machine_password_env]
                        .iter()
                        .any(|v| v.as_deref() == Some(key.as_str()))
                });
            if key.starts_with("MTIDS_")
                && !named_by_file
                && !is_password_variable(key)
                && !ENV_VARS.iter().any(|(k, _)| k == key)
            {
                let known: Vec<&str> = ENV_VARS.iter().map(|(k, _)| *k).collect();
                let hint = did_you_mean(key, known.iter().copied());
                return Err(CliError::config(
                    origin.clone(),
                    key.clone(),
                    format!(
                        "unknown variable{hint}; expected one of {}, or a password variable `MTIDS_<NAME>_PASSWORD` / `MTIDS_PASSWORD_<NAME>` for a router's `password_env`",
                        known.join(", ")
                    ),
                ));
            }
        }
        // MTIDS_* wins over the seed name it replaces.
        let get = |name: &str| -> Option<(&'static str, String)> {
            let names = std::iter::once(name).chain(
                SEED_VARS
                    .iter()
                    .filter(|(_, target)| *target == name)
                    .map(|(seed, _)| *seed),
            );
            for n in names {
                if let Some(v) = vars.get(n) {
                    let stat = ENV_VARS
                        .iter()
                        .map(|(k, _)| *k)
                        .chain(SEED_VARS.iter().map(|(k, _)| *k))
                        .find(|k| *k == n)
                        .unwrap_or("MTIDS");
                    return Some((stat, v.to_owned()));
                }
            }
            None
        };
        let bad = |var: &str, reason: &str| CliError::config(vars.origin(var), var, reason);

        if let Some((_, v)) = get("MTIDS_LOG_LEVEL") {
            self.log.level = v;
        }
        if let Some((var, v)) = get("MTIDS_LOG_FORMAT") {
            self.log.format = match v.to_ascii_lowercase().as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => return Err(bad(var, "expected `human` or `json`")),
            };
        }
        if let Some((var, v)) = get("MTIDS_DRY_RUN") {
            self.enforcement.dry_run = parse_bool(&v)
                .ok_or_else(|| bad(var, "expected true or false (also 1/0, yes/no)"))?;
        }
        if let Some((_, v)) = get("MTIDS_ADDRESS_LIST") {
            self.enforcement.address_list.clone_from(&v);
            self.enforcement.address_list_v6 = v;
        }
        if let Some((_, v)) = get("MTIDS_ADDRESS_LIST_V6") {
            self.enforcement.address_list_v6 = v;
        }
        if let Some((_, v)) = get("MTIDS_LEDGER_PATH") {
            self.ledger.path = PathBuf::from(v);
        }
        if let Some((var, v)) = get("MTIDS_METRICS_LISTEN") {
            self.metrics.listen = Some(
                v.parse()
                    .map_err(|_| bad(var, "expected an ip:port such as 127.0.0.1:9184"))?,
            );
        }
        if let Some((var, v)) = vars.get("ALERT_THRESHOLD").map(|v| ("ALERT_THRESHOLD", v)) {
            self.detection.brute_force.max_failures = v
                .trim()
                .parse()
                .map_err(|_| bad(var, "expected a number of failed logins, e.g. 10"))?;
        }
        if let Some((var, v)) = vars.get("TIME_WINDOW").map(|v| ("TIME_WINDOW", v)) {
            self.detection.brute_force.window_secs = v
                .trim()
                .parse()
                .map_err(|_| bad(var, "expected a number of seconds, e.g. 60"))?;
        }

        // The single router.
        let router_vars = [
            "MTIDS_ROUTER_NAME",
            "MTIDS_ROUTER_HOST",
            "MTIDS_ROUTER_PORT",
            "MTIDS_ROUTER_USER",
            "MTIDS_ROUTER_PASSWORD",
        ];
        let set: Vec<(&'static str, String)> =
            router_vars.iter().filter_map(|name| get(name)).collect();
        if let Some((first, _)) = set.first() {
            if self.routers.len() > 1 {
                return Err(bad(
                    first,
                    &format!(
                        "applies to a single router, but the file defines {}: set it in the file",
                        self.routers.len()
                    ),
                ));
            }
            if self.routers.is_empty() {
                let Some((_, host)) = get("MTIDS_ROUTER_HOST") else {
                    return Err(bad(
                        first,
                        "no router to apply it to: also set MT_HOST (or MTIDS_ROUTER_HOST), or add a [[router]] to the file",
                    ));
                };
                self.routers
                    .push(RouterConfig::new("router", host, "admin"));
            }
            let Some(router) = self.routers.first_mut() else {
                return Ok(());
            };
            if let Some((_, v)) = get("MTIDS_ROUTER_NAME") {
                router.name = v;
            }
            if let Some((_, v)) = get("MTIDS_ROUTER_HOST") {
                router.host = v;
            }
            if let Some((var, v)) = get("MTIDS_ROUTER_PORT") {
                router.port = Some(
                    v.trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad(var, "expected a port number between 1 and 65535"))?,
                );
            }
            if let Some((_, v)) = get("MTIDS_ROUTER_USER") {
                router.user = v;
            }
            if let Some((_, v)) = get("MTIDS_ROUTER_PASSWORD") {
                router.password = Some(Secret::new(v));
                router.password_env = None;
                router.password_file = None;
            }
        }

        // Telegram.
        let token = get("MTIDS_TELEGRAM_TOKEN");
        let chat = get("MTIDS_TELEGRAM_CHAT_ID");
        if token.is_some() || chat.is_some() {
            let chat_id =
                match &chat {
                    Some((var, v)) => Some(parse_chat_id(v).ok_or_else(|| {
                        bad(var, "expected a numeric chat id or an @channel name")
                    })?),
                    None => None,
                };
            match (&mut self.alert.telegram, token, chat_id) {
                (Some(t), token, chat_id) => {
                    if let Some((_, v)) = token {
                        t.bot_token = Secret::new(v);
                    }
                    if let Some(c) = chat_id {
                        t.chat_id = c;
                    }
                }
                (None, Some((_, v)), Some(c)) => {
                    self.alert.telegram = Some(TelegramConfig::new(v, c));
                }
                (None, Some((var, _)), None) => {
                    return Err(bad(var, "a Telegram token needs a chat: also set CHAT_ID"));
                }
                (None, None, _) => {
                    let var = chat.as_ref().map_or("CHAT_ID", |(v, _)| v);
                    return Err(bad(
                        var,
                        "a Telegram chat needs a bot token: also set TELE_TOKEN",
                    ));
                }
            }
        }
        Ok(())
    }

    fn resolve_passwords(
        &mut self,
        origin: &str,
        vars: &Variables,
        warnings: &mut Vec<String>,
    ) -> Result<(), CliError> {
        for (i, router) in self.routers.iter_mut().enumerate() {
            let key = |k: &str| format!("router[{i}].{k}");
            let sources = usize::from(router.password.is_some())
                + usize::from(router.password_env.is_some())
                + usize::from(router.password_file.is_some());
            if sources > 1 {
                return Err(CliError::config(
                    origin,
                    key("password"),
                    "set only one of `password`, `password_env` and `password_file`",
                ));
            }
            if let Some(var) = &router.password_env {
                let value = vars.get(var).ok_or_else(|| {
                    CliError::config(
                        origin,
                        key("password_env"),
                        format!("the variable `{var}` is not set"),
                    )
                })?;
                router.password = Some(Secret::new(value));
            }
            if let Some(file) = &router.password_file {
                let file = &credential_path(file)
                    .map_err(|reason| CliError::config(origin, key("password_file"), reason))?;
                let text = std::fs::read_to_string(file).map_err(|e| {
                    CliError::config(
                        origin,
                        key("password_file"),
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                warn_if_world_readable(file, warnings);
                let first = text.lines().next().unwrap_or("");
                router.password = Some(Secret::new(first));
            }
        }
        Ok(())
    }

    /// Checks the `[crowdsec]` section and reads its secrets, from `vars` (the same
    /// variables as the router passwords' `password_env`) and files (first line, a
    /// warning when others can read it). `None` without the section.
    ///
    /// # Errors
    /// The first bad key, named `crowdsec.<key>`; never the secret itself.
    pub fn resolve_crowdsec(
        &self,
        origin: &str,
        vars: &Variables,
        warnings: &mut Vec<String>,
    ) -> Result<Option<ResolvedCrowdsec>, CliError> {
        let Some(section) = &self.crowdsec else {
            return Ok(None);
        };
        let seen = std::cell::RefCell::new(Vec::new());
        let resolved = section
            .resolve(
                |name| vars.get(name).map(str::to_owned),
                |path| {
                    seen.borrow_mut().push(path.to_owned());
                    std::fs::read_to_string(path)
                },
            )
            .map_err(|e| match e {
                mtids_crowdsec::CrowdsecError::InvalidConfig { field, reason } => {
                    CliError::config(origin, format!("crowdsec.{field}"), reason)
                }
                other => CliError::config(origin, "crowdsec", other.to_string()),
            })?;
        for path in seen.into_inner() {
            warn_if_world_readable(&path, warnings);
        }
        Ok(Some(resolved))
    }

    /// Checks every value the types cannot; `origin` names the file in errors.
    ///
    /// # Errors
    /// Every bad key at once: the first as the error's key, the others listed after it.
    pub fn validate(&self, origin: &str) -> Result<(), CliError> {
        let bad = |key: String, reason: String| (key, reason);
        let mut errors: Vec<(String, String)> = Vec::new();
        if let Err(reason) = check_log_level(&self.log.level) {
            errors.push(bad("log.level".into(), reason));
        }
        if let Some(group) = self.crowdsec.as_ref().and_then(|c| c.group.as_deref())
            && !self
                .routers
                .iter()
                .any(|r| r.group.as_deref() == Some(group))
        {
            errors.push(bad(
                "crowdsec.group".into(),
                format!("no `[[router]]` has `group = \"{group}\"`"),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.routers.iter().enumerate() {
            let key = |k: &str| format!("router[{i}].{k}");
            if r.name.trim().is_empty() || r.name.chars().any(char::is_control) {
                errors.push(bad(key("name"), "expected a non-empty name".into()));
            }
            if !names.insert(r.name.as_str()) {
                errors.push(bad(
                    key("name"),
                    format!("`{}` is used by two routers; names must be unique", r.name),
                ));
            }
            if r.host.trim().is_empty() || r.host.chars().any(|c| c.is_whitespace()) {
                errors.push(bad(
                    key("host"),
                    "expected a host name or IP address".into(),
                ));
            }
            if r.port == Some(0) {
                errors.push(bad(
                    key("port"),
                    "expected a port between 1 and 65535".into(),
                ));
            }
            if r.user.trim().is_empty() {
                errors.push(bad(key("user"), "expected the API user name".into()));
            }
            if let Some(tls) = &r.tls {
                match (&tls.ca_file, &tls.fingerprint) {
                    (Some(_), Some(_)) | (None, None) => {
                        errors.push(bad(
                            key("tls"),
                            "set exactly one of `ca_file` and `fingerprint`".into(),
                        ));
                    }
                    (None, Some(fp)) => {
                        if fp.parse::<routeros_proto::net::Fingerprint>().is_err() {
                            errors.push(bad(
                                key("tls.fingerprint"),
                                "expected the certificate's SHA-256 as 64 hex digits (colons allowed)"
                                    .into(),
                            ));
                        }
                    }
                    (Some(ca), None) => {
                        if !ca.is_file() {
                            errors.push(bad(
                                key("tls.ca_file"),
                                format!("{} is not a readable file", ca.display()),
                            ));
                        }
                    }
                }
            }
            if r.connect_timeout.is_zero() {
                errors.push(bad(key("connect_timeout"), "must be above zero".into()));
            }
        }
        for (key, d) in [
            ("input.connection_interval", self.input.connection_interval),
            ("input.resource_interval", self.input.resource_interval),
            ("input.max_backoff", self.input.max_backoff),
            ("input.liveness_interval", self.input.liveness_interval),
            ("input.liveness_timeout", self.input.liveness_timeout),
        ] {
            if d < Duration::from_millis(10) {
                errors.push(bad(key.into(), "must be at least 10ms".into()));
            }
        }
        if self.input.syslog_tcp_max_connections == 0 {
            errors.push(bad(
                "input.syslog_tcp_max_connections".into(),
                "must be at least 1 (leave input.syslog_tcp unset for no TCP listener)".into(),
            ));
        }
        if self.input.syslog_tcp_idle_timeout < Duration::from_millis(10) {
            errors.push(bad(
                "input.syslog_tcp_idle_timeout".into(),
                "must be at least 10ms".into(),
            ));
        }
        if !(1024..=1 << 30).contains(&self.input.syslog_udp_buffer) {
            errors.push(bad(
                "input.syslog_udp_buffer".into(),
                format!(
                    "{} bytes is outside 1024 to 1073741824 (1 GiB); the default is 4194304 (4 MiB)",
                    self.input.syslog_udp_buffer
                ),
            ));
        }
        if let Err(reason) = self.input.cef_delimiter() {
            errors.push(bad("input.syslog_cef_delimiter".into(), reason));
        }
        if self.input.syslog_tls.is_some() {
            for (key, path) in [
                ("input.syslog_tls_cert", &self.input.syslog_tls_cert),
                ("input.syslog_tls_key", &self.input.syslog_tls_key),
            ] {
                match path {
                    None => {
                        errors.push(bad(
                            key.into(),
                            "required with input.syslog_tls: the listener's PEM file".into(),
                        ));
                    }
                    Some(p) if !p.is_file() => {
                        errors.push(bad(
                            key.into(),
                            format!("{} is not a readable file", p.display()),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for t in &self.input.log_topics {
            if t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
                errors.push(bad(
                    "input.log_topics".into(),
                    format!(
                        "`{t}` is not a topics value; write it as the router prints a row's topics, e.g. `firewall,info` or `system,error,critical`"
                    ),
                ));
            }
        }
        for p in &self.input.connection_protocols {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                errors.push(bad(
                    "input.connection_protocols".into(),
                    format!("`{p}` is not a protocol name such as tcp or udp"),
                ));
            }
        }
        for (key, list) in [
            ("enforcement.address_list", &self.enforcement.address_list),
            (
                "enforcement.address_list_v6",
                &self.enforcement.address_list_v6,
            ),
        ] {
            if let Err(reason) = check_router_word(list) {
                errors.push(bad(key.into(), reason));
            }
        }
        if let Err(mtids_detect::ConfigError::Invalid { field, reason }) = self.detection.validate()
        {
            errors.push(bad(format!("detection.{field}"), reason));
        }
        if let Err(e) = self.alert.notifiers() {
            errors.push(bad("alert".into(), e.to_string()));
        }
        into_config_error(origin, errors)
    }
}

/// `password_file` with a leading `$CREDENTIALS_DIRECTORY/` or `%d/` replaced by the
/// directory systemd's `LoadCredential=` fills (it sets `CREDENTIALS_DIRECTORY` for the
/// service; `%d` is the unit-file specifier for the same directory, see systemd.exec(5)).
fn credential_path(file: &Path) -> Result<PathBuf, String> {
    let text = file.to_string_lossy();
    let Some(rest) = [
        "$CREDENTIALS_DIRECTORY/",
        "${CREDENTIALS_DIRECTORY}/",
        "%d/",
    ]
    .iter()
    .find_map(|p| text.strip_prefix(p)) else {
        return Ok(file.to_owned());
    };
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        format!(
            "{} needs CREDENTIALS_DIRECTORY, which systemd sets for a unit with LoadCredential=; it is not set here",
            file.display()
        )
    })?;
    Ok(PathBuf::from(dir).join(rest))
}

/// All of `errors` as one [`CliError::Config`]: the first names the key, the others
/// follow on lines of their own, so one run shows everything to fix.
fn into_config_error(origin: &str, errors: Vec<(String, String)>) -> Result<(), CliError> {
    let mut iter = errors.into_iter();
    let Some((key, mut reason)) = iter.next() else {
        return Ok(());
    };
    for (k, r) in iter {
        reason.push_str(&format!("\n  also `{k}`: {r}"));
    }
    Err(CliError::config(origin, key, reason))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_chat_id(v: &str) -> Option<ChatId> {
    let v = v.trim();
    if let Ok(id) = v.parse::<i64>() {
        return Some(ChatId::Id(id));
    }
    (v.starts_with('@') && v.len() > 1).then(|| ChatId::Username(v.to_owned()))
}

/// Warns when `path` can be read by any user (mode `o+r`).
fn warn_if_world_readable(path: &Path, warnings: &mut Vec<String>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            warnings.push(format!(
                "{} holds a password or token and is readable by every user: run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, warnings);
}

/// ` (did you mean `x`?)` for the candidate closest to `word`, when one is close enough.
fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The `:line:column` and the dotted key (`router[1].port`) at byte `offset` of a TOML
/// document, for error messages. A best effort over the common layouts: table headers,
/// arrays of tables, `key = value` lines.
fn locate(text: &str, offset: usize) -> (String, String) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let mut table = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut key = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            if i + 1 == line_no {
                key.clone_from(&table);
            }
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let name = name.trim();
            // `[router.tls]` belongs to the last `[[router]]`.
            table = match name.split_once('.') {
                Some((head, rest)) if counts.contains_key(head) => {
                    let n = counts.get(head).map_or(0, |n| n.saturating_sub(1));
                    format!("{head}[{n}].{rest}")
                }
                _ => name.to_owned(),
            };
            if i + 1 == line_no {
                key.clone_from(&table);
            }
        } else if i + 1 == line_no {
            let k = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            key = if table.is_empty() {
                k.to_owned()
            } else if k.is_empty() {
                table.clone()
            } else {
                format!("{table}.{k}")
            };
        }
        if i + 1 >= line_no {
            break;
        }
    }
    (format!(":{line_no}:{col}"), key)
}

/// Durations written as `"5s"`, `"500ms"`, `"1m"`.
mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"500ms\", \"5s\" or \"1m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, vars: &Variables) -> Result<Loaded, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mtids.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), vars)
    }

    fn err_text(text: &str) -> String {
        load_text(text, &Variables::new()).unwrap_err().to_string()
    }

    #[test]
    fn the_cef_delimiter_reads_the_routers_escapes() {
        let mut input = InputConfig::default();
        for (written, bytes) in [
            ("\\r\\n", &b"\r\n"[..]),
            ("\\n", b"\n"),
            ("\r\n", b"\r\n"),
            ("||", b"||"),
            ("\\t\\\\", b"\t\\"),
        ] {
            input.syslog_cef_delimiter = written.to_owned();
            assert_eq!(input.cef_delimiter().unwrap(), bytes, "{written:?}");
        }
        input.syslog_cef_delimiter = "\\".to_owned();
        assert!(input.cef_delimiter().is_err());
    }

    #[test]
    fn ledger_on_corrupt_is_recover_stop_or_a_named_error() {
        let c = load_text("[ledger]\non_corrupt = \"stop\"\n", &Variables::new())
            .unwrap()
            .config;
        assert_eq!(c.ledger.on_corrupt, OnCorrupt::Stop);
        let c = load_text("", &Variables::new()).unwrap().config;
        assert_eq!(c.ledger.on_corrupt, OnCorrupt::Recover);
        let e = err_text("[ledger]\non_corrupt = \"ignore\"\n");
        assert!(e.contains("on_corrupt"), "{e}");
    }

    #[test]
    fn no_file_and_no_variables_gives_sane_defaults() {
        let loaded = Config::load(None, &Variables::new()).unwrap();
        let c = loaded.config;
        assert!(c.routers.is_empty());
        assert_eq!(c.enforcement.address_list, "mtids-blocked");
        assert!(!c.enforcement.dry_run);
        assert_eq!(c.input.connection_interval, Duration::from_secs(5));
        assert_eq!(c.input.syslog_tcp_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.input.syslog_udp_buffer, 4 << 20);
        assert_eq!(c.input.cef_delimiter().unwrap(), b"\r\n");
        assert_eq!(c.log.format, LogFormat::Human);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn the_example_file_loads() {
        let example = include_str!("../../mtids.example.toml");
        let mut vars = Variables::new();
        vars.set("MTIDS_GW_PASSWORD", "pw", "test");
        vars.set("MTIDS_BRANCH_PASSWORD", "pw", "test");
        let c = Config::parse(example, "mtids.example.toml").unwrap();
        assert!(c.routers.len() >= 2, "the example shows several routers");
        let mut c = c;
        let mut w = Vec::new();
        c.apply_variables(&vars).unwrap();
        c.resolve_passwords("example", &vars, &mut w).unwrap();
        // The example's CA file does not exist here: check everything else.
        for r in &mut c.routers {
            if let Some(tls) = &mut r.tls
                && tls.ca_file.is_some()
            {
                tls.ca_file = None;
                tls.fingerprint = Some("ab".repeat(32));
            }
        }
        c.validate("example").unwrap();
    }

    #[test]
    fn routers_ports_and_tls() {
        let loaded = load_text(
            r#"
[[router]]
name = "gw"
host = "192.168.88.1"
user = "mtids"
password = "pw"

[[router]]
name = "branch"
host = "10.1.0.1"
user = "mtids"
group = "branches"
[router.tls]
fingerprint = "AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
"#,
            &Variables::new(),
        )
        .unwrap();
        let r = &loaded.config.routers;
        assert_eq!(r[0].effective_port(), 8728);
        assert_eq!(r[1].effective_port(), 8729);
        assert_eq!(r[1].group.as_deref(), Some("branches"));
        assert_eq!(r[0].password().expose(), "pw");
    }

    #[test]
    fn unknown_keys_are_rejected_with_file_line_and_key() {
        let e = err_text("[[router]]\nname = \"gw\"\nhost = \"h\"\nuser = \"u\"\nprot = 1\n");
        assert!(e.contains("mtids.toml:5:"), "{e}");
        assert!(e.contains("`router[0].prot`"), "{e}");
        assert!(e.contains("unknown field `prot`"), "{e}");

        let e = err_text("[enforcement]\naddress_lst = \"x\"\n");
        assert!(
            e.contains("`enforcement.address_lst`") && e.contains(":2:"),
            "{e}"
        );

        let e = err_text("[detection.brute_force]\nmax_failure = 3\n");
        assert!(e.contains("`detection.brute_force.max_failure`"), "{e}");

        let e = err_text("colour = 1\n");
        assert!(e.contains("`colour`") && e.contains("unknown field"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_say_what_was_expected() {
        let e = err_text("[input]\nconnection_interval = \"often\"\n");
        assert!(
            e.contains("`input.connection_interval`") && e.contains("\"5s\""),
            "{e}"
        );

        let e = err_text("[[router]]\nname = \"gw\"\nhost = \"h\"\nuser = \"u\"\nport = 70000\n");
        assert!(e.contains("`router[0].port`"), "{e}");

        let e = err_text(
            "[[router]]\nname = \"gw\"\nhost = \"h\"\nuser = \"u\"\n[router.tls]\nfingerprint = \"zz\"\n",
        );
        assert!(
            e.contains("`router[0].tls.fingerprint`") && e.contains("64 hex"),
            "{e}"
        );

        let e = err_text("[detection.brute_force]\nmax_failures = 0\n");
        assert!(e.contains("`detection.brute_force.max_failures`"), "{e}");

        let e = err_text("[log]\nlevel = \"loud[\"\n");
        assert!(e.contains("`log.level`"), "{e}");

        let e = err_text("[enforcement]\naddress_list = \"a=b\"\n");
        assert!(e.contains("`enforcement.address_list`"), "{e}");

        let e = err_text("[enforcement]\naddress_list_v6 = \"\"\n");
        assert!(e.contains("`enforcement.address_list_v6`"), "{e}");

        let e = err_text("[enforcement]\nadress_list_v6 = \"six\"\n");
        assert!(e.contains("adress_list_v6"), "{e}");

        let e = err_text("[input]\nsyslog_tcp_max_connections = 0\n");
        assert!(e.contains("`input.syslog_tcp_max_connections`"), "{e}");

        let e = err_text("[input]\nsyslog_tcp_idle_timeout = \"0s\"\n");
        assert!(e.contains("`input.syslog_tcp_idle_timeout`"), "{e}");
        let e = err_text("[input]\nsyslog_udp_buffer = 12\n");
        assert!(e.contains("`input.syslog_udp_buffer`"), "{e}");
        let e = err_text("[input]\nsyslog_cef_delimiter = '\\x'\n");
        assert!(
            e.contains("`input.syslog_cef_delimiter`") && e.contains("\\x"),
            "{e}"
        );
        let e = err_text("[input]\nsyslog_cef_delimiter = ''\n");
        assert!(e.contains("`input.syslog_cef_delimiter`"), "{e}");
        let e = err_text("[input]\nsyslog_tls = \"127.0.0.1:6514\"\n");
        assert!(e.contains("`input.syslog_tls_cert`"), "{e}");
        let e = err_text(
            "[input]\nsyslog_tls = \"127.0.0.1:6514\"\nsyslog_tls_cert = \"/nonexistent/c.pem\"\nsyslog_tls_key = \"/nonexistent/k.pem\"\n",
        );
        assert!(
            e.contains("`input.syslog_tls_cert`") && e.contains("/nonexistent/c.pem"),
            "{e}"
        );

        let e = err_text("[input]\nlog_topics = [\"firewall, info\"]\n");
        assert!(
            e.contains("`input.log_topics`") && e.contains("firewall,info"),
            "{e}"
        );

        let e = err_text(
            "[[router]]\nname = \"gw\"\nhost = \"h\"\nuser = \"u\"\n[[router]]\nname = \"gw\"\nhost = \"h2\"\nuser = \"u\"\n",
        );
        assert!(
            e.contains("`router[1].name`") && e.contains("unique"),
            "{e}"
        );
    }

    #[test]
    fn the_ipv6_list_has_its_own_name_or_follows_the_ipv4_one() {
        let lists = |text: &str, vars: &Variables| {
            let e = load_text(text, vars).unwrap().config.enforcement;
            (e.address_list, e.address_list_v6)
        };
        let none = Variables::new();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(lists("", &none), pair("mtids-blocked", "mtids-blocked"));
        assert_eq!(
            lists("[enforcement]\naddress_list = \"bl\"\n", &none),
            pair("bl", "bl"),
            "unset, the IPv6 list is the IPv4 one"
        );
        let both = "[enforcement]\naddress_list = \"bl4\"\naddress_list_v6 = \"bl6\"\n";
        assert_eq!(lists(both, &none), pair("bl4", "bl6"));
        assert_eq!(
            lists("[enforcement]\naddress_list_v6 = \"bl6\"\n", &none),
            pair("mtids-blocked", "bl6")
        );

        // MTIDS_ADDRESS_LIST sets both, unless MTIDS_ADDRESS_LIST_V6 is set too.
        let mut vars = Variables::new();
        vars.set("MTIDS_ADDRESS_LIST", "env4", "environment");
        assert_eq!(lists(both, &vars), pair("env4", "env4"));
        vars.set("MTIDS_ADDRESS_LIST_V6", "env6", "environment");
        assert_eq!(lists(both, &vars), pair("env4", "env6"));
        let mut vars = Variables::new();
        vars.set("MTIDS_ADDRESS_LIST_V6", "env6", "environment");
        assert_eq!(lists(both, &vars), pair("bl4", "env6"));

        let mut vars = Variables::new();
        vars.set("MTIDS_ADDRESS_LIST_V6", "a=b", ".env:2");
        let e = load_text("", &vars).unwrap_err().to_string();
        assert!(e.contains("`enforcement.address_list_v6`"), "{e}");
    }

    #[test]
    fn ipv6_connections_and_log_topics_have_defaults_and_keys() {
        let none = Variables::new();
        let input = load_text("", &none).unwrap().config.input;
        assert!(input.connections_v6);
        assert!(input.log_topics.is_empty());
        let input = load_text(
            "[input]\nconnections_v6 = false\nlog_topics = [\"firewall,info\", \"system,error,critical\"]\n",
            &none,
        )
        .unwrap()
        .config
        .input;
        assert!(!input.connections_v6);
        assert_eq!(input.log_topics, ["firewall,info", "system,error,critical"]);
    }

    #[test]
    fn config_errors_exit_with_status_2() {
        let e = load_text("nope = 1\n", &Variables::new()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Config::load(
            Some(Path::new("/nonexistent/mtids.toml")),
            &Variables::new(),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("/nonexistent/mtids.toml"), "{e}");
    }

    #[test]
    fn seed_variables_make_a_single_router_and_telegram() {
        let mut vars = Variables::new();
        for (k, v) in [
            ("MT_HOST", "192.168.88.1"),
            ("MT_USER", "py-script"),
            ("MT_PASS", "s3cret"),
            ("MT_PORT", "8730"),
            ("TELE_TOKEN", "123:ABC"),
            ("CHAT_ID", "-100123"),
            ("LOG_LEVEL", "debug"),
            ("ALERT_THRESHOLD", "10"),
            ("TIME_WINDOW", "60"),
        ] {
            vars.set(k, v, "environment");
        }
        let c = Config::load(None, &vars).unwrap().config;
        assert_eq!(c.routers.len(), 1);
        let r = &c.routers[0];
        assert_eq!(
            (r.host.as_str(), r.user.as_str()),
            ("192.168.88.1", "py-script")
        );
        assert_eq!(r.effective_port(), 8730);
        assert_eq!(r.password().expose(), "s3cret");
        let t = c.alert.telegram.as_ref().unwrap();
        assert_eq!(t.bot_token.expose(), "123:ABC");
        assert_eq!(t.chat_id, ChatId::Id(-100_123));
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.detection.brute_force.max_failures, 10);
        assert_eq!(c.detection.brute_force.window_secs, 60);
    }

    #[test]
    fn mtids_variables_override_the_file_and_win_over_seed_names() {
        let mut vars = Variables::new();
        vars.set("MT_HOST", "10.0.0.9", "environment");
        vars.set("MTIDS_ROUTER_HOST", "10.0.0.1", "environment");
        vars.set("MTIDS_DRY_RUN", "yes", "environment");
        vars.set("MTIDS_LOG_FORMAT", "json", "environment");
        let loaded = load_text(
            "[[router]]\nname = \"gw\"\nhost = \"h\"\nuser = \"u\"\n[enforcement]\ndry_run = false\n",
            &vars,
        )
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.routers[0].host, "10.0.0.1");
        assert_eq!(c.routers[0].name, "gw", "the file's name is kept");
        assert!(c.enforcement.dry_run);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn bad_variables_are_named() {
        let mut vars = Variables::new();
        vars.set("MT_HOST", "h", "environment");
        vars.set("MT_PORT", "http", ".env:3");
        let e = Config::load(None, &vars).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = e.to_string();
        assert!(e.starts_with(".env:3: `MT_PORT`"), "{e}");

        let mut vars = Variables::new();
        vars.set("MTIDS_DRYRUN", "1", "environment");
        let e = Config::load(None, &vars).unwrap_err().to_string();
        assert!(
            e.contains("`MTIDS_DRYRUN`") && e.contains("MTIDS_DRY_RUN"),
            "{e}"
        );

        let mut vars = Variables::new();
        vars.set("MT_USER", "u", "environment");
        let e = Config::load(None, &vars).unwrap_err().to_string();
        assert!(e.contains("MT_HOST"), "{e}");

        let mut vars = Variables::new();
        vars.set("TELE_TOKEN", "1:a", "environment");
        let e = Config::load(None, &vars).unwrap_err().to_string();
        assert!(e.contains("`TELE_TOKEN`") && e.contains("CHAT_ID"), "{e}");
    }

    #[test]
    fn router_variables_with_several_routers_are_an_error() {
        let mut vars = Variables::new();
        vars.set("MT_PASS", "x", "environment");
        let e = load_text(
            "[[router]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\n[[router]]\nname = \"b\"\nhost = \"h\"\nuser = \"u\"\n",
            &vars,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`MT_PASS`") && e.contains("single router"),
            "{e}"
        );
    }

    #[test]
    fn passwords_from_env_and_file_and_only_one_source() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file\nignored\n").unwrap();
        let mut vars = Variables::new();
        vars.set("GW_PW", "from-env", "environment");
        let text = format!(
            "[[router]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"GW_PW\"\n\
             [[router]]\nname = \"b\"\nhost = \"h\"\nuser = \"u\"\npassword_file = \"{}\"\n",
            pw.display()
        );
        let c = load_text(&text, &vars).unwrap().config;
        assert_eq!(c.routers[0].password().expose(), "from-env");
        assert_eq!(c.routers[1].password().expose(), "from-file");

        let e = load_text(
            "[[router]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\npassword_env = \"NOPE_UNSET\"\n",
            &Variables::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`router[0].password_env`") && e.contains("NOPE_UNSET"),
            "{e}"
        );

        let e = load_text(
            "[[router]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\npassword = \"x\"\npassword_env = \"Y\"\n",
            &vars,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("only one"), "{e}");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let mut vars = Variables::new();
        vars.set("MT_HOST", "h", "environment");
        vars.set("MT_PASS", "hunter2-router", "environment");
        vars.set("TELE_TOKEN", "999:hunter2-token", "environment");
        vars.set("CHAT_ID", "@ops_team", "environment");
        let loaded = Config::load(None, &vars).unwrap();
        let printed = format!("{loaded:?} {:#?}", loaded.config);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_with_a_password_gets_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mtids.toml");
        std::fs::write(
            &path,
            "[[router]]\nname = \"a\"\nhost = \"h\"\nuser = \"u\"\npassword = \"x\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = Config::load(Some(&path), &Variables::new())
            .unwrap()
            .warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("chmod 600"), "{w:?}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let w = Config::load(Some(&path), &Variables::new())
            .unwrap()
            .warnings;
        assert!(w.is_empty(), "{w:?}");

        // World-readable but no password in it: no warning.
        std::fs::write(&path, "[enforcement]\ndry_run = true\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = Config::load(Some(&path), &Variables::new())
            .unwrap()
            .warnings;
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn dotenv_files_feed_variables_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        std::fs::write(
            &env,
            "# seed settings\nMT_HOST=192.168.88.1\nexport MT_USER='py-script'\nMT_PASS=\"p w\"\nLOG_LEVEL=INFO # comment\n\n",
        )
        .unwrap();
        let mut vars = Variables::new();
        let mut warnings = Vec::new();
        vars.merge_dotenv_file(&env, &mut warnings).unwrap();
        assert_eq!(vars.get("MT_HOST"), Some("192.168.88.1"));
        assert_eq!(vars.get("MT_USER"), Some("py-script"));
        assert_eq!(vars.get("MT_PASS"), Some("p w"));
        assert_eq!(vars.get("LOG_LEVEL"), Some("INFO"));

        std::fs::write(&env, "MT_HOST=h\nthis is not a variable\n").unwrap();
        let e = Variables::new()
            .merge_dotenv_file(&env, &mut warnings)
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(".env:2"), "{e}");
    }

    #[test]
    fn crowdsec_secrets_come_from_variables_and_files_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("bouncer.key");
        std::fs::write(&key, "k3y-from-file\n").unwrap();
        let mut vars = Variables::new();
        // An MTIDS_ variable named by the section is not an unknown variable.
        vars.set("MTIDS_CROWDSEC_PASSWORD", "s3cret-pw", "environment");
        let text = format!(
            "[crowdsec]\nurl = \"http://127.0.0.1:8080\"\nbouncer_key_file = \"{}\"\n\
             machine_id = \"edge-1\"\nmachine_password_env = \"MTIDS_CROWDSEC_PASSWORD\"\n\
             pull_interval = \"500ms\"\n",
            key.display()
        );
        let c = load_text(&text, &vars).unwrap().config;
        let resolved = c.crowdsec_resolved.clone().unwrap();
        assert_eq!(
            resolved.bouncer_key.as_ref().unwrap().expose(),
            "k3y-from-file"
        );
        let machine = resolved.machine.as_ref().unwrap();
        assert_eq!(machine.password.expose(), "s3cret-pw");
        assert!(resolved.push);
        assert_eq!(resolved.pull_interval, Duration::from_millis(500));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("k3y-from-file") && !debug.contains("s3cret-pw"),
            "{debug}"
        );

        let e = load_text(
            "[crowdsec]\nurl = \"http://127.0.0.1:8080\"\nbouncer_key_env = \"NOPE_UNSET_CS\"\n",
            &Variables::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("crowdsec.bouncer_key_env"), "{e}");
        let e = err_text("[crowdsec]\nurl = \"ftp://x\"\nbouncer_key_env = \"X\"\n");
        assert!(e.contains("crowdsec.url"), "{e}");
        let e = err_text("[crowdsec]\nurl = \"http://x\"\nbouncer_key = \"inline\"\n");
        assert!(e.contains("bouncer_key"), "{e}");
        let mut vars = Variables::new();
        vars.set("CS_KEY", "k", "environment");
        let e = load_text(
            "[crowdsec]\nurl = \"http://x\"\nbouncer_key_env = \"CS_KEY\"\ngroup = \"nope\"\n",
            &vars,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("crowdsec.group") && e.contains("nope"), "{e}");
    }
}
