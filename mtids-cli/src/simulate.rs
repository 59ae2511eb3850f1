//! `mtids simulate`: the real daemon against an in-process simulated router.

use crate::cli::SimulateArgs;
use crate::config::Config;
use crate::error::CliError;

/// Plays a scenario against routeros-sim and prints the report.
///
/// # Errors
/// An unknown scenario, a failure to start, or a simulation in which an attack was not
/// blocked or a benign source was.
pub async fn simulate(config: Config, args: &SimulateArgs) -> Result<(), CliError> {
    if args.list {
        for name in routeros_sim::SCENARIOS {
            println!("{name}");
        }
        return Ok(());
    }
    let _ = config;
    Err(CliError::Usage(
        "`mtids simulate` is not implemented yet".into(),
    ))
}
