//! `gridflow audit verify [--file EXPORT] [--key PUBKEY]` and `gridflow audit export`.
//!
//! With `--file`, verification runs here, offline: no server, no database, only the file
//! and (preferably) the server's public key obtained beforehand (`GET /audit/key`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use gridflow_core::audit::checkpoint::PublicKey;
use gridflow_core::audit::verify::describe;
use gridflow_core::audit::{ExportVerifier, Report};

use crate::cli::args::{ServerArgs, TOKEN_VARIABLE};
use crate::client::{self, Client, ClientError};
use crate::output;

/// `gridflow audit …`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The audit commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Verify every hash chain and the signed checkpoints: on the server, or offline in an
    /// export file (`--file`).
    Verify {
        /// An export file (JSON Lines) to verify offline, without a server.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The server's public key (64 hex characters, or a file holding them) to check the
        /// checkpoints of `--file` against; without it the key inside the file is used,
        /// which proves only that the file is consistent.
        #[arg(long, requires = "file")]
        key: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write an export (JSON Lines: events, checkpoints, public key) to stdout.
    Export {
        /// Only instances created at or after this instant (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only instances created before this instant (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Only instances of this definition.
        #[arg(long)]
        definition: Option<String>,
        /// Only this instance.
        #[arg(long)]
        instance: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs an audit command.
pub async fn run(args: AuditArgs) -> ExitCode {
    match args.command {
        AuditCommand::Verify {
            file: Some(file),
            key,
            ..
        } => verify_file(&file, key.as_deref()),
        AuditCommand::Verify { server, .. } => {
            with_client(&server, |client| async move {
                let report = client.get(&["audit", "verify"], &[]).await?;
                let ok = report.get("ok").and_then(serde_json::Value::as_bool) == Some(true);
                output::json(&report);
                Ok(if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            })
            .await
        }
        AuditCommand::Export {
            from,
            to,
            definition,
            instance,
            server,
        } => {
            with_client(&server, |client| async move {
                let query: Vec<(&str, &str)> = [
                    ("from", from.as_deref()),
                    ("to", to.as_deref()),
                    ("definition", definition.as_deref()),
                    ("instance", instance.as_deref()),
                ]
                .into_iter()
                .filter_map(|(name, value)| value.map(|value| (name, value)))
                .collect();
                let mut response = client.get_stream(&["audit", "export"], &query).await?;
                while let Some(chunk) =
                    response
                        .chunk()
                        .await
                        .map_err(|source| ClientError::Unreachable {
                            url: client.url(&[], &[]).to_string(),
                            source,
                        })?
                {
                    if output::bytes(&chunk).is_err() {
                        // Nobody reads on (a closed pipe): stop quietly.
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
    }
}

async fn with_client<F, Fut>(server: &ServerArgs, run: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, ClientError>>,
{
    let token = match std::env::var(TOKEN_VARIABLE) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        Ok(_) | Err(_) => {
            output::error_line(format!("error: {TOKEN_VARIABLE} is not set"));
            return ExitCode::from(2);
        }
    };
    let client = match Client::new(&server.server, token) {
        Ok(client) => client,
        Err(error) => {
            client::report(None, &error);
            return ExitCode::from(2);
        }
    };
    match run(client).await {
        Ok(code) => code,
        Err(error) => {
            client::report(None, &error);
            ExitCode::FAILURE
        }
    }
}

fn parse_key(key: &str) -> Result<PublicKey, String> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).map_err(|error| format!("cannot read {key}: {error}"))?
    } else {
        key.to_owned()
    };
    // Accept the body of `GET /audit/key` too.
    let text = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| value.get("public_key")?.as_str().map(str::to_owned))
        .unwrap_or(text);
    text.parse::<PublicKey>()
        .map_err(|error| format!("--key: {error}"))
}

/// Verifies an export file offline; prints each problem and the first failing line.
pub fn verify_file(file: &Path, key: Option<&str>) -> ExitCode {
    let trusted = match key.map(parse_key).transpose() {
        Ok(trusted) => trusted,
        Err(message) => {
            output::error_line(format!("error: {message}"));
            return ExitCode::from(2);
        }
    };
    let name = file.display();
    let opened = match std::fs::File::open(file) {
        Ok(opened) => opened,
        Err(error) => {
            output::error_line(format!("error: cannot open {name}: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, opened);
    let mut verifier = ExportVerifier::new(trusted);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                verifier.line(&line);
            }
            Err(error) => {
                output::error_line(format!("error: cannot read {name}: {error}"));
                return ExitCode::FAILURE;
            }
        }
    }
    print_report(&name.to_string(), &verifier.finish(), trusted.is_some())
}

fn print_report(name: &str, report: &Report, trusted: bool) -> ExitCode {
    if report.ok {
        output::line(format!(
            "{name}: ok: {} events in {} instances, {} audit records, {} checkpoints{}",
            report.events,
            report.instances,
            report.audit_records,
            report.checkpoints,
            if trusted {
                ""
            } else {
                " (checked against the key in the file; pass --key to check against the server's)"
            }
        ));
        return ExitCode::SUCCESS;
    }
    for problem in &report.problems {
        output::line(format!("{name}: {}", describe(problem)));
    }
    if let Some(line) = report
        .problems
        .iter()
        .filter_map(|problem| problem.line)
        .min()
    {
        output::line(format!(
            "{name}: verification failed; first failing line: {line}"
        ));
    } else {
        output::line(format!("{name}: verification failed"));
    }
    ExitCode::FAILURE
}
