//! The command line: global options and one variant per subcommand (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;

/// Intrusion detection and auto-blocking for MikroTik RouterOS routers.
///
/// Start with `mtids simulate`: a simulated router under attack, defended by the real
/// daemon, with a report at the end. No router and no configuration needed.
#[derive(Debug, Parser)]
#[command(name = "mtids", version, about, long_about)]
#[non_exhaustive]
pub struct Cli {
    /// Configuration file (TOML). Default: `/etc/mtids/mtids.toml`, else `./mtids.toml`,
    /// else none: defaults, `.env` and variables. Variables: `MTIDS_*` (`MTIDS_LOG_LEVEL`,
    /// `MTIDS_DRY_RUN`, `MTIDS_ROUTER_HOST`, ...: the list is in docs/configuration.md;
    /// a wrong name is an error that lists them), router passwords named by `password_env`
    /// as `MTIDS_<NAME>_PASSWORD` or `MTIDS_PASSWORD_<NAME>`, and the seed's `MT_*`.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "MTIDS_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Log at debug level (overrides `log.level`).
    #[arg(long, global = true)]
    pub debug: bool,
    /// Log format (overrides `log.format`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Protect the configured routers: follow their logs and connection tables, block
    /// attackers on their address lists, record bans and send alerts.
    Run(RunArgs),
    /// Attack a simulated router and watch the real daemon defend it, then print a
    /// report. Exits 0 only if every attack was blocked and no benign source was.
    Simulate(SimulateArgs),
    /// Run detection offline over log files (any RouterOS or syslog header; `-` for
    /// stdin) and show findings, decisions and lines matched per kind. No router needed.
    Replay(crate::replay::ReplayArgs),
    /// Print the RouterOS commands mtids needs (API user, API-SSL, log and drop rules,
    /// syslog), as an idempotent script, or apply them with `--apply`.
    Setup(crate::setup::SetupArgs),
    /// Validate the configuration, log in to each router and verify what mtids relies on;
    /// each item passed or failed with its fix.
    Check(crate::check::CheckArgs),
    /// View and manage bans across routers: list, add, remove, history.
    Bans(crate::bans::BansArgs),
    /// Ask the running daemon where it stands: routers, counters, active bans, alert
    /// queues, ledger health (exit 1 when no daemon runs).
    Status(crate::status::StatusArgs),
    /// Make the running daemon re-read its configuration (as SIGHUP does): what can change
    /// live is applied, what needs a restart is named; a bad file changes nothing.
    Reload,
    /// Alert destinations: `mtids alert test` sends one test alert to each.
    Alert(crate::status::AlertArgs),
    /// Explain log lines one by one (a file, or standard input): the header and format
    /// recognised, the event parsed, which detectors counted it and their state, and what
    /// the guard and the policy decide. No router needed.
    Explain(crate::explain::ExplainArgs),
}

/// Options of `mtids run`.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct RunArgs {
    /// Detect and log, but change nothing on the routers (overrides
    /// `enforcement.dry_run`).
    #[arg(long)]
    pub dry_run: bool,
}

/// Options of `mtids simulate`.
#[derive(Debug, Args)]
#[non_exhaustive]
pub struct SimulateArgs {
    /// The scenario to play (see `--list`).
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Seed of the scenario's random traffic (same seed, same traffic).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Time compression: simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No live progress lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Serve the read-only web page on this address (e.g. 127.0.0.1:9185) during the
    /// simulation, and keep it open after the scenario until Ctrl-C.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<std::net::SocketAddr>,
}
