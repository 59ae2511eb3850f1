//! `mtids run`: the daemon.

use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::CliError;

/// Runs the daemon until SIGINT/SIGTERM.
///
/// # Errors
/// A configuration that names no router, or a failure that stops the whole daemon.
pub async fn run(config: Config, args: &RunArgs) -> Result<(), CliError> {
    if config.routers.is_empty() {
        return Err(CliError::Usage(
            "no router configured: add a [[router]] table to the configuration file, or set MT_HOST, MT_USER and MT_PASS".into(),
        ));
    }
    let _ = args;
    Err(CliError::Usage("`mtids run` is not implemented yet".into()))
}
