//! `mtids run`: the daemon, until SIGINT or SIGTERM. With `metrics.listen` set, the daemon
//! also serves the Prometheus endpoint (and logs `metrics endpoint listening` with its
//! bound address); it is the last thing to stop.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::daemon::{Daemon, Options};
use crate::error::CliError;

/// Runs the daemon until SIGINT/SIGTERM, then delivers pending alerts (5 s at most) and
/// closes the ledger.
///
/// # Errors
/// No router configured (status 2), or the ledger or alerts could not be set up.
pub async fn run(mut config: Config, args: &RunArgs) -> Result<(), CliError> {
    if config.routers.is_empty() {
        return Err(CliError::Usage(
            "no router configured: add a [[router]] table to the configuration file, or set MT_HOST, MT_USER and MT_PASS".into(),
        ));
    }
    if args.dry_run {
        config.enforcement.dry_run = true;
    }
    tracing::info!(
        routers = config.routers.len(),
        dry_run = config.enforcement.dry_run,
        ledger = %config.ledger.path.display(),
        "starting"
    );
    let daemon = Daemon::start(config, Options::default())?;
    wait_for_signal().await?;
    tracing::info!("shutting down");
    daemon.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

async fn wait_for_signal() -> Result<(), CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CliError::io("installing the SIGTERM handler", e))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| CliError::io("waiting for SIGINT", e)),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CliError::io("waiting for Ctrl-C", e))
    }
}
