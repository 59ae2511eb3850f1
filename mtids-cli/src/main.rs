//! The `mtids` binary: everything lives in the `mtids_cli` library.

fn main() -> std::process::ExitCode {
    mtids_cli::main()
}
