//! Detection settings: [`DetectionConfig`], one table per detector plus the guard and the
//! policy, deserialised with unknown keys rejected and validated with errors that name the
//! key. The CLI embeds this struct as its detection section; this crate never reads files.

use std::fmt;

use crate::detectors::{
    AsymmetricConnectionConfig, BruteForceConfig, LoginCpuSpikeConfig, PortScanConfig,
};
use crate::guard::GuardConfig;
use crate::policy::PolicyConfig;

/// Errors of the detection configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value detection cannot work with: fix the named key.
    #[error("invalid detection setting `{field}`: {reason}")]
    Invalid {
        /// The key, as a dotted path (`port_scan.window_secs`).
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// Longest window a detector accepts: one week. Windows are kept as `u32` milliseconds
/// relative to a moving base, which needs windows below 2^31 ms (about 24 days).
pub const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;

/// Checks `1 <= value <= MAX_WINDOW_SECS` for a window-like setting.
pub(crate) fn check_window(field: &str, secs: u64) -> Result<(), ConfigError> {
    if secs == 0 || secs > MAX_WINDOW_SECS {
        return Err(ConfigError::invalid(
            field,
            format!("must be between 1 and {MAX_WINDOW_SECS} seconds, got {secs}"),
        ));
    }
    Ok(())
}

/// Checks `min <= value <= max` for a count-like setting.
pub(crate) fn check_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

/// Everything detection needs, as one TOML document:
///
/// ```toml
/// [port_scan]
/// threshold = 15
/// [brute_force]
/// max_failures = 10
/// window_secs = 60
/// [asymmetric_connection]
/// ports = [443, 80, 8443]
/// [login_cpu_spike]
/// cpu_above = 90
/// [guard]
/// allowlist = ["198.51.100.0/24"]
/// [policy]
/// ban_secs = 3600
/// ```
///
/// Every table and key is optional; missing ones take their documented defaults.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Port scans and host sweeps from firewall log rows.
    pub port_scan: PortScanConfig,
    /// Failed logins and user enumeration from authentication log lines.
    pub brute_force: BruteForceConfig,
    /// Unanswered connections in the connection table.
    pub asymmetric_connection: AsymmetricConnectionConfig,
    /// A successful login followed by a CPU spike.
    pub login_cpu_spike: LoginCpuSpikeConfig,
    /// Addresses never to ban.
    pub guard: GuardConfig,
    /// How findings become bans.
    pub policy: PolicyConfig,
}

impl DetectionConfig {
    /// Checks every table; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.port_scan.validate()?;
        self.brute_force.validate()?;
        self.asymmetric_connection.validate()?;
        self.login_cpu_spike.validate()?;
        crate::guard::Guard::new(&self.guard)?;
        self.policy.validate()?;
        Ok(())
    }
}
