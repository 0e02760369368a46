//! `gridflow validate FILE…`: checks definition files locally, without a server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use gridflow_core::validate;

use crate::output;

/// Arguments of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Definition files (YAML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `gridflow validate FILE…`: prints `FILE: ok` or one `FILE: path: message` line per
/// problem; fails when any file is invalid or unreadable.
pub fn validate_files(files: &[PathBuf]) -> ExitCode {
    // Every connector's actions, without configuration: validation needs no system.
    let registry = gridflow_connectors::sandbox::offline_catalog();
    let mut all_valid = true;
    for file in files {
        let name = file.display();
        let source = match std::fs::read_to_string(file) {
            Ok(source) => source,
            Err(error) => {
                all_valid = false;
                output::line(format!("{name}: cannot read the file: {error}"));
                continue;
            }
        };
        match validate::load(&source, &registry) {
            Ok(_) => output::line(format!("{name}: ok")),
            Err(errors) => {
                all_valid = false;
                for error in errors {
                    output::line(format!("{name}: {error}"));
                }
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
