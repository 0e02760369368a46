//! The `gridflow` binary: the composition root.
//!
//! It parses the command line and runs the command. `serve` and `sandbox` are run by
//! [`server`], which wires the concrete store (`SqlStore`), the connectors, the clock and
//! the engine into the HTTP application; every other command is run by the library's
//! `cli` module.

use std::process::ExitCode;

use clap::Parser;

use gridflow::cli::{Cli, Command};
use gridflow::output;

mod server;

/// mimalloc: the engine allocates and frees many small JSON values per commit, where the
/// system allocator spent about a fifth of the W1 benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit with clap's code 2.
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => exit_code(server::serve(args).await),
        Command::Validate(args) => gridflow::cli::validate_files(&args.files),
        Command::Sandbox(args) => exit_code(server::sandbox(args).await),
        Command::Audit(args) => gridflow::cli::audit::run(args).await,
        Command::Client(command) => gridflow::cli::run_client(command).await,
    }
}

/// 0, or 1 after the error and its causes on one stderr line.
fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::error_line(format!("error: {}", output::error_chain(error.as_ref())));
            ExitCode::FAILURE
        }
    }
}
