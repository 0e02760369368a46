//! The command line (DESIGN.md §6): the clap tree ([`Cli`]) and the dispatch of the
//! client commands, which call a server's HTTP API. One module per command group:
//!
//! - [`args`]: what every client command shares ([`ServerArgs`], the token variable,
//!   `parse_json`);
//! - [`serve`]: the arguments of `serve` and `sandbox`, which `main.rs` runs because it
//!   names the concrete store; [`validate`]: the local `validate`;
//! - [`instances`], [`approvals`], [`audit`], [`tokens`], [`recovery`], [`connectors`], [`ledger`]: the client
//!   commands.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage error (clap's own code for bad arguments, also
//! used when `GRIDFLOW_TOKEN` is missing).

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Parser, Subcommand};
use serde_json::Value;

use gridflow_core::InstanceStatus;

use crate::client::{self, Client, ClientError};
use crate::output;

pub mod approvals;
pub mod args;
pub mod audit;
pub mod connectors;
pub mod instances;
pub mod ledger;
pub mod recovery;
pub mod serve;
pub mod tokens;
pub mod validate;

pub use args::{DEFAULT_SERVER, ServerArgs, TOKEN_VARIABLE, parse_json};
pub use serve::{
    DEFAULT_BIND, DEFAULT_DATABASE_URL, SandboxArgs, ServeArgs, SqliteSync, config_path,
    default_audit_key, default_content_dir,
};
pub use tokens::TokenAction;
pub use validate::{ValidateArgs, validate_files};

/// gridflow: a durable workflow engine.
#[derive(Debug, Parser)]
#[command(name = "gridflow", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the HTTP API and the engine.
    Serve(ServeArgs),
    /// Check definition files locally, without a server.
    Validate(ValidateArgs),
    /// Run the connector simulators alone and print their addresses.
    Sandbox(SandboxArgs),
    /// Audit: verify chains and checkpoints (on a server or offline), export history.
    Audit(audit::AuditArgs),
    /// Commands that call a server.
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that call a server.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Deploy definition files; a file whose content changed becomes a new version.
    Deploy {
        /// Definition files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start an instance of a definition; prints its id.
    Start {
        /// The definition id.
        definition: String,
        /// The start input, as JSON.
        #[arg(long, value_parser = parse_json, default_value = "{}")]
        input: Value,
        /// The definition version (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List instances, newest first.
    Instances {
        /// Only instances with this status (running, waiting, completed, failed, cancelled).
        #[arg(long, value_parser = InstanceStatus::from_str)]
        status: Option<InstanceStatus>,
        /// Only instances of this definition.
        #[arg(long)]
        definition: Option<String>,
        /// Continue from a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Page size (1 to the server's `limits.max_page_size`, 500 by default).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: Option<u32>,
        /// Print the page as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show an instance: status, steps, output.
    Show {
        /// The instance id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show an instance's history.
    History {
        /// The instance id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a running instance.
    Cancel {
        /// The instance id.
        id: String,
        /// Why, recorded in history.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a failed step again.
    Retry {
        /// The instance id.
        id: String,
        /// The step id.
        step: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replay an instance's history, up to a seq.
    Replay {
        /// The instance id.
        id: String,
        /// The seq to replay up to (default: all of it).
        #[arg(long)]
        at: Option<u64>,
        /// Show what changed in the instance at each event (up to `--at`).
        #[arg(long)]
        diff: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the approvals assigned to you (the token's user or groups).
    Approvals(approvals::ApprovalsArgs),
    /// Approve, reject or delegate an approval.
    Approve(approvals::ApproveArgs),
    /// Deliver a signal to an instance.
    Signal(approvals::SignalArgs),
    /// Manage API tokens (admin only): create, list, revoke.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Re-run a completed or failed instance from a step, with edited input or arguments.
    Rerun(recovery::RerunArgs),
    /// Move running instances of a definition to another version (plan with --dry-run).
    Migrate(recovery::MigrateArgs),
    /// List the connectors with their actions and the events they emit.
    Connectors(connectors::ConnectorsArgs),
    /// List the distribution ledger: who received which version of which asset.
    Ledger(ledger::LedgerArgs),
}

impl ClientCommand {
    fn server(&self) -> &ServerArgs {
        match self {
            ClientCommand::Deploy { server, .. }
            | ClientCommand::Start { server, .. }
            | ClientCommand::Instances { server, .. }
            | ClientCommand::Show { server, .. }
            | ClientCommand::History { server, .. }
            | ClientCommand::Cancel { server, .. }
            | ClientCommand::Retry { server, .. }
            | ClientCommand::Replay { server, .. } => server,
            ClientCommand::Token { action } => action.server(),
            ClientCommand::Approvals(args) => &args.server,
            ClientCommand::Approve(args) => &args.server,
            ClientCommand::Signal(args) => &args.server,
            ClientCommand::Rerun(args) => &args.server,
            ClientCommand::Migrate(args) => &args.server,
            ClientCommand::Connectors(args) => &args.server,
            ClientCommand::Ledger(args) => &args.server,
        }
    }
}

/// Runs a client command against its server.
pub async fn run_client(command: ClientCommand) -> ExitCode {
    let token = match std::env::var(TOKEN_VARIABLE) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        Ok(_) | Err(_) => {
            output::error_line(format!(
                "error: {TOKEN_VARIABLE} is not set; export the token that `gridflow serve` printed at start-up"
            ));
            return ExitCode::from(2);
        }
    };
    let client = match Client::new(&command.server().server, token) {
        Ok(client) => client,
        Err(error) => {
            client::report(None, &error);
            return ExitCode::from(2);
        }
    };
    match execute(&client, command).await {
        Ok(code) => code,
        Err(error) => {
            client::report(None, &error);
            ExitCode::FAILURE
        }
    }
}

async fn execute(client: &Client, command: ClientCommand) -> Result<ExitCode, ClientError> {
    match command {
        ClientCommand::Deploy { files, .. } => return instances::deploy(client, &files).await,
        ClientCommand::Start {
            definition,
            input,
            version,
            ..
        } => instances::start(client, &definition, input, version).await?,
        ClientCommand::Instances {
            status,
            definition,
            cursor,
            limit,
            json,
            ..
        } => {
            let query = instances::ListQuery {
                status,
                definition,
                cursor,
                limit,
            };
            instances::list(client, query, json).await?;
        }
        ClientCommand::Show { id, .. } => instances::show(client, &id).await?,
        ClientCommand::History { id, .. } => instances::history(client, &id).await?,
        ClientCommand::Cancel { id, reason, .. } => instances::cancel(client, &id, reason).await?,
        ClientCommand::Retry { id, step, .. } => instances::retry(client, &id, &step).await?,
        ClientCommand::Replay { id, at, diff, .. } => {
            instances::replay(client, &id, at, diff).await?;
        }
        ClientCommand::Token { action } => tokens::run(client, action).await?,
        ClientCommand::Approvals(args) => approvals::list(client, &args).await?,
        ClientCommand::Approve(args) => approvals::approve(client, &args).await?,
        ClientCommand::Signal(args) => approvals::signal(client, &args).await?,
        ClientCommand::Rerun(args) => recovery::rerun(client, args).await?,
        ClientCommand::Migrate(args) => recovery::migrate(client, args).await?,
        ClientCommand::Connectors(args) => connectors::list(client, &args).await?,
        ClientCommand::Ledger(args) => ledger::list(client, &args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use serde_json::json;

    use super::*;
    use crate::http::role::Role;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_follow_the_design() {
        let cli = Cli::try_parse_from(["gridflow", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.bind, DEFAULT_BIND);
        assert_eq!(args.sqlite_synchronous, SqliteSync::Full);
        assert_eq!(
            args.checkpoint_interval,
            std::time::Duration::from_secs(300)
        );
        assert!(!args.sandbox);
    }

    #[test]
    fn audit_key_defaults_to_beside_the_sqlite_file() {
        assert_eq!(
            default_audit_key("sqlite://data/gridflow.db?mode=rwc"),
            PathBuf::from("data/gridflow.key")
        );
        assert_eq!(
            default_audit_key("postgres://u@h/db"),
            PathBuf::from("gridflow.key")
        );
        assert_eq!(
            default_audit_key("sqlite::memory:"),
            PathBuf::from("gridflow.key")
        );
    }

    #[test]
    fn bad_start_input_is_a_usage_error() {
        let error =
            Cli::try_parse_from(["gridflow", "start", "hello", "--input", "{oops"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn token_create_takes_a_role_a_user_and_repeated_groups() {
        let cli = Cli::try_parse_from([
            "gridflow",
            "token",
            "create",
            "--role",
            "approver",
            "--user",
            "bob",
            "--group",
            "brand-managers",
            "--group",
            "legal",
        ])
        .unwrap();
        let Command::Client(ClientCommand::Token {
            action: TokenAction::Create {
                role, user, groups, ..
            },
        }) = cli.command
        else {
            panic!("expected token create");
        };
        assert_eq!(role, Role::Approver);
        assert_eq!(user, "bob");
        assert_eq!(groups, ["brand-managers", "legal"]);
    }

    #[test]
    fn bad_or_missing_token_arguments_are_usage_errors() {
        for arguments in [
            &[
                "gridflow", "token", "create", "--role", "boss", "--user", "bob",
            ][..],
            &["gridflow", "token", "create", "--user", "bob"][..],
            &["gridflow", "token", "create", "--role", "admin"][..],
        ] {
            let error = Cli::try_parse_from(arguments).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{arguments:?}");
        }
    }

    #[test]
    fn approve_parses_its_options_and_refuses_reject_with_delegate() {
        let cli = Cli::try_parse_from([
            "gridflow",
            "approve",
            "i:review:1",
            "--comment",
            "ok",
            "--data",
            "{\"budget\": 3}",
        ])
        .unwrap();
        let Command::Client(ClientCommand::Approve(args)) = cli.command else {
            panic!("expected approve");
        };
        assert_eq!(args.data, Some(json!({"budget": 3})));
        assert!(!args.reject);
        let error = Cli::try_parse_from([
            "gridflow",
            "approve",
            "i:review:1",
            "--reject",
            "--delegate",
            "dan",
        ])
        .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let cli = Cli::try_parse_from(["gridflow", "signal", "i", "ack", "--data", "{}"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Client(ClientCommand::Signal(_))
        ));
    }

    #[test]
    fn bad_status_is_a_usage_error() {
        let error = Cli::try_parse_from(["gridflow", "instances", "--status", "done"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }
}
