//! Tracing set-up: human or JSON lines on stderr, filtered by `log.level` (or `--debug`).
//! The filter can be changed while the process runs ([`set_level`]: `mtids reload`).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Replaces the installed subscriber's filter.
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Set by the [`init`] that installed the global subscriber.
static RELOAD: OnceLock<SetFilter> = OnceLock::new();

/// Installs the global subscriber. A second call (tests run several commands in one
/// process) keeps the first subscriber and returns quietly.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour escapes in files or the journal.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => {
            let builder = builder.with_target(false).with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                let _ = RELOAD.set(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                let _ = RELOAD.set(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }
    }
}

/// Changes the log filter of the running process (the same syntax as `log.level`).
///
/// # Errors
/// The filter does not parse, or no subscriber was installed by [`init`].
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log.level `{level}`: {e}"))?;
    let reload = RELOAD
        .get()
        .ok_or_else(|| "logging was not set up by this process".to_owned())?;
    reload(filter)
}
