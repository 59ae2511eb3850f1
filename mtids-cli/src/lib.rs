//! `mtids`: intrusion detection and auto-blocking for MikroTik RouterOS routers.
//!
//! This crate is the `mtids` binary's library: the command line ([`cli`]), the
//! configuration ([`config`]), logging, and the commands. The daemon wires the workspace
//! crates together: `routeros-proto` talks to the routers, `mtids-detect` turns their logs
//! and tables into ban decisions, `mtids-enforce` records bans, `mtids-alert` tells a
//! human. Only this crate reads files, sets up logging and spawns tasks.
//!
//! ```
//! use clap::Parser;
//! use mtids_cli::cli::{Cli, Command};
//!
//! let cli = Cli::parse_from(["mtids", "--debug", "simulate", "--seed", "3"]);
//! assert!(cli.debug);
//! assert!(matches!(cli.command, Command::Simulate(ref s) if s.seed == 3));
//! ```

pub mod bans;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
mod error;
pub mod explain;
pub mod logging;
pub mod metrics;
pub mod replay;
pub mod run;
pub mod setup;
pub mod simulate;
pub mod status;

use std::process::ExitCode;

use clap::Parser;

pub use error::CliError;

use crate::cli::{Cli, Command};
use crate::config::{Config, Variables};

/// The process entry point: parses the command line, runs the command, prints the error
/// if any, and returns the exit status (2 for configuration and usage errors, 1 for
/// run-time failures).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtids: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Loads the configuration for `cli` (file, `.env`, environment) and applies the global
/// flags to it; returns it with the warnings to log.
///
/// # Errors
/// A configuration error naming the file or variable and the key.
pub fn load_config(cli: &Cli) -> Result<config::Loaded, CliError> {
    load_config_for(cli, contacts_routers(&cli.command))
}

/// As [`load_config`]; `online`: the router passwords are resolved (the daemon's own
/// reload needs them, the `mtids reload` client does not).
fn load_config_for(cli: &Cli, online: bool) -> Result<config::Loaded, CliError> {
    let mut warnings = Vec::new();
    let vars = Variables::from_process(&mut warnings)?;
    let path = config_path(cli.config.as_deref());
    let mut loaded = if online {
        Config::load(path.as_deref(), &vars)?
    } else {
        Config::load_offline(path.as_deref(), &vars)?
    };
    loaded.warnings.extend(warnings);
    if cli.debug {
        loaded.config.log.level = "debug".to_owned();
    }
    if let Some(format) = cli.log_format {
        loaded.config.log.format = format;
    }
    Ok(loaded)
}

/// The global options of `cli`, to load the configuration again on a reload.
fn cli_for_reload(cli: &Cli) -> Cli {
    Cli {
        config: cli.config.clone(),
        debug: cli.debug,
        log_format: cli.log_format,
        command: Command::Reload,
    }
}

/// The configuration file to read: `--config` (or `MTIDS_CONFIG`), else the first of
/// [`config::DEFAULT_CONFIG_PATHS`] that exists, else none (defaults and variables only).
/// A default path that is named but missing (the container image sets
/// `MTIDS_CONFIG=/etc/mtids/mtids.toml` for a file mounted at run time) counts as not
/// named, so `mtids simulate` works without one; any other missing file is an error.
pub fn config_path(named: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    match named {
        Some(p)
            if p.exists()
                || !config::DEFAULT_CONFIG_PATHS
                    .iter()
                    .any(|d| std::path::Path::new(d) == p) =>
        {
            Some(p.to_owned())
        }
        _ => config::DEFAULT_CONFIG_PATHS
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file()),
    }
}

/// Whether `command` may contact a router, and so needs router passwords. `replay`,
/// `explain`, `simulate` (its own simulated router), `status`, `reload` and `alert` (they
/// talk to the daemon or to alert destinations), `bans list` (without `--live`) and `bans
/// history` never do: they never ask for a password.
fn contacts_routers(command: &Command) -> bool {
    use crate::bans::BansAction;
    !matches!(
        command,
        Command::Simulate(_)
            | Command::Replay(_)
            | Command::Explain(_)
            | Command::Status(_)
            | Command::Reload
            | Command::Alert(_)
    ) && !matches!(
        command,
        Command::Bans(b) if matches!(
            b.action,
            BansAction::List { live: false, .. } | BansAction::History { .. }
        )
    )
}

/// For read-only ledger commands: says which ledger is read, and when it does not exist,
/// says so instead of creating an empty one. `false`: nothing to read.
fn ledger_to_read(config: &Config, command: &Command) -> bool {
    use crate::bans::BansAction;
    let Command::Bans(b) = command else {
        return true;
    };
    if !matches!(
        b.action,
        BansAction::List { .. } | BansAction::History { .. }
    ) {
        return true;
    }
    let path = &config.ledger.path;
    if path.exists() {
        eprintln!("ledger: {}", path.display());
        true
    } else {
        eprintln!(
            "no ban ledger at {} (ledger.path): no bans recorded there yet; give --config (or MTIDS_LEDGER_PATH) for the daemon's ledger",
            path.display()
        );
        false
    }
}

/// Runs one parsed command line to completion on a new tokio runtime.
///
/// # Errors
/// Whatever stopped the command; [`CliError::exit_code`] gives the status.
pub fn execute(cli: Cli) -> Result<(), CliError> {
    let mut loaded = match load_config(&cli) {
        // The running daemon is not asked: it keeps the configuration it has.
        Err(e) if matches!(cli.command, Command::Reload) => {
            return Err(CliError::Daemon(format!(
                "reload refused: {e}\n(the running daemon was not asked to reload: it keeps running with the previous configuration)"
            )));
        }
        loaded => loaded?,
    };
    // The simulation prints its own progress (bans included): only errors from the logs,
    // so no WARN line lands in the middle of it, unless asked.
    if matches!(cli.command, Command::Simulate(_))
        && !cli.debug
        && loaded.config.log.level == "info"
    {
        loaded.config.log.level = "error".to_owned();
    }
    logging::init(&loaded.config.log.level, loaded.config.log.format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if !ledger_to_read(&loaded.config, &cli.command) {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    runtime.block_on(async move {
        match &cli.command {
            Command::Run(args) => {
                let reload_cli = cli_for_reload(&cli);
                let reloader: daemon::control::Reloader = std::sync::Arc::new(move || {
                    load_config_for(&reload_cli, true).map(|l| l.config)
                });
                run::run(loaded.config, args, Some(reloader)).await
            }
            Command::Simulate(args) => simulate::simulate(loaded.config, args).await,
            Command::Replay(args) => replay::execute(&loaded.config.detection, args),
            Command::Setup(args) => setup::execute(&loaded.config, args).await,
            Command::Check(args) => check::execute(&loaded.config, args).await,
            Command::Bans(args) => bans::execute(&loaded.config, args).await,
            Command::Status(args) => status::status(&loaded.config, args).await,
            Command::Reload => status::reload(&loaded.config).await,
            Command::Alert(args) => status::alert(&loaded.config, args).await,
            Command::Explain(args) => explain::execute(&loaded.config.detection, args),
        }
    })
}
