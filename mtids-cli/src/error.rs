//! [`CliError`]: everything that can stop an `mtids` command, and the exit status it maps to.

use std::path::PathBuf;

/// Why an `mtids` command stopped. [`CliError::exit_code`] maps it to the process status:
/// 2 for a configuration or usage problem (fix the file or the command line), 1 for a
/// failure at run time (a router, the ledger, a socket).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A configuration file or variable has a bad key or value: fix what the message names.
    #[error("{origin}: `{key}`: {reason}")]
    Config {
        /// Where the value came from: a file path, `environment` or a `.env` path.
        origin: String,
        /// The key, as a dotted path (`router[0].port`) or a variable name (`MT_PORT`).
        key: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A configuration file could not be read at all.
    #[error("cannot read configuration file {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command line asks for something that cannot be done: fix the arguments.
    #[error("{0}")]
    Usage(String),
    /// A router could not be reached or refused a command that mtids needs.
    #[error("router `{router}`: {reason}")]
    Router {
        /// The router's configured name.
        router: String,
        /// What failed, with the fix when there is one.
        reason: String,
    },
    /// The ban ledger (SQLite file) failed: check the path and its permissions.
    #[error("ban ledger: {0}")]
    Ledger(#[from] mtids_enforce::LedgerError),
    /// Alerts could not be set up.
    #[error("alerts: {0}")]
    Alert(#[from] mtids_alert::AlertError),
    /// The simulated router failed to start.
    #[error("simulated router: {0}")]
    Sim(#[from] routeros_sim::SimError),
    /// A local socket or file failed.
    #[error("{context}: {source}")]
    Io {
        /// What mtids was doing.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The running daemon is not there, or answered with an error (exit 1).
    #[error("{0}")]
    Daemon(String),
    /// The simulation ran but not every attack was blocked, or a benign source was.
    #[error("simulation failed: {0}")]
    SimulationFailed(String),
}

impl CliError {
    /// The process exit status for this error: 2 for configuration and usage errors, 1
    /// otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config { .. } | CliError::ReadConfig { .. } | CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// A configuration error at `key` in `origin`.
    pub(crate) fn config(
        origin: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> CliError {
        CliError::Config {
            origin: origin.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// An I/O error while doing `context`.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_usage_errors_exit_2_runtime_errors_exit_1() {
        assert_eq!(
            CliError::config("mtids.toml", "router[0].port", "x").exit_code(),
            2
        );
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        let io = CliError::io("binding", std::io::Error::other("boom"));
        assert_eq!(io.exit_code(), 1);
        let router = CliError::Router {
            router: "gw".into(),
            reason: "refused".into(),
        };
        assert_eq!(router.exit_code(), 1);
    }

    #[test]
    fn config_error_names_origin_key_and_reason() {
        let e = CliError::config("/etc/mtids.toml", "router[0].port", "expected 1..=65535");
        assert_eq!(
            e.to_string(),
            "/etc/mtids.toml: `router[0].port`: expected 1..=65535"
        );
    }
}
