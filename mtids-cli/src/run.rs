//! `mtids run`: the daemon, until SIGINT or SIGTERM. With `metrics.listen` set, the daemon
//! also serves the Prometheus endpoint (and logs `metrics endpoint listening` with its
//! bound address); it is the last thing to stop. It serves the control socket
//! (`mtids status`, `reload`, `bans`, `alert test`); SIGHUP reloads the configuration
//! as `mtids reload` does.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::daemon::control::Reloader;
use crate::daemon::{Daemon, Options};
use crate::error::CliError;

/// Runs the daemon until SIGINT/SIGTERM (SIGHUP: reload with `reloader`), then delivers pending alerts (5 s at most) and
/// closes the ledger.
///
/// # Errors
/// No router configured (status 2), or the ledger or alerts could not be set up.
pub async fn run(
    mut config: Config,
    args: &RunArgs,
    reloader: Option<Reloader>,
) -> Result<(), CliError> {
    if config.routers.is_empty() {
        return Err(CliError::Usage(
            "no router configured: add a [[router]] table to the configuration file, or set MT_HOST, MT_USER and MT_PASS".into(),
        ));
    }
    let loaded = config.clone();
    if args.dry_run {
        config.enforcement.dry_run = true;
    }
    tracing::info!(
        routers = config.routers.len(),
        dry_run = config.enforcement.dry_run,
        ledger = %config.ledger.path.display(),
        "starting"
    );
    // Before the start: a SIGHUP while starting is then a reload, not the end.
    let mut signals = Signals::new()?;
    let mut daemon = Daemon::start(config, Options::default())?;
    if let Err(e) = daemon.serve_control(loaded, reloader, Vec::new()) {
        daemon.shutdown(Duration::from_secs(5)).await;
        return Err(e);
    }
    while signals.next().await == Signal::Reload {
        tracing::info!("SIGHUP: reloading the configuration");
        // The answer is logged by the daemon (applied, restart needed, or the error).
        if let Err(e) = daemon.reload().await {
            tracing::error!(error = %e, "SIGHUP: reload failed");
        }
    }
    tracing::info!("shutting down");
    daemon.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

/// SIGINT, SIGTERM (stop) and SIGHUP (reload), installed once at start: a SIGHUP during
/// the start is not lost (nor fatal).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())
                    .map_err(|e| CliError::io("installing the SIGTERM handler", e))?,
                hup: signal(SignalKind::hangup())
                    .map_err(|e| CliError::io("installing the SIGHUP handler", e))?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = self.term.recv() => Signal::Stop,
                _ = self.hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
