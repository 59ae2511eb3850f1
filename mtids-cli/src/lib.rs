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
    let mut warnings = Vec::new();
    let vars = Variables::from_process(&mut warnings)?;
    let mut loaded = Config::load(cli.config.as_deref(), &vars)?;
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
    // The simulation prints its own progress: only warnings from the logs, unless asked.
    if matches!(cli.command, Command::Simulate(_))
        && !cli.debug
        && loaded.config.log.level == "info"
    {
        loaded.config.log.level = "warn".to_owned();
    }
    logging::init(&loaded.config.log.level, loaded.config.log.format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    runtime.block_on(async move {
        match &cli.command {
            Command::Run(args) => {
                let reload_cli = cli_for_reload(&cli);
                let reloader: daemon::control::Reloader =
                    std::sync::Arc::new(move || load_config(&reload_cli).map(|l| l.config));
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
        }
    })
}
