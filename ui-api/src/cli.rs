//! The command line (DESIGN.md §6): argument parsing, the local `validate`, and the client
//! commands, which call a server's HTTP API.
//!
//! `serve` is parsed here but run by `main.rs`, the composition root, because it names
//! the concrete store. Exit codes: 0 ok, 1 failure, 2 usage error (clap's own code for
//! bad arguments, also used when `GRIDFLOW_TOKEN` is missing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use gridflow_core::InstanceStatus;
use gridflow_core::validate;

use crate::auth::Role;
use crate::client::{Client, ClientError};
use crate::output;

/// The database of `serve` when neither `--database-url` nor the environment names one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://gridflow.db?mode=rwc";
/// The address `serve` listens on by default.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The server the client commands call by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// The environment variable that holds the client commands' token.
pub const TOKEN_VARIABLE: &str = "GRIDFLOW_TOKEN";

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
    Audit(crate::audit_cli::AuditArgs),
    /// Commands that call a server.
    #[command(flatten)]
    Client(ClientCommand),
}

/// Arguments of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The database: `sqlite://FILE?mode=rwc` or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "GRIDFLOW_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        // The URL may carry a password: never show the environment's value in --help.
        hide_env_values = true
    )]
    pub database_url: String,
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_BIND)]
    pub bind: String,
    /// Run the connectors against their local simulators, started with the server.
    #[arg(long)]
    pub sandbox: bool,
    /// The connector configuration (`gridflow.toml`); without this option, `gridflow.toml`
    /// in the working directory is read when it exists.
    #[arg(long, env = "GRIDFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite only: `full` syncs every commit to disk, `normal` only at checkpoints
    /// (faster; the last commits may be lost on a power loss, not on a crash).
    #[arg(long, value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_synchronous: SqliteSync,
    /// The file of the Ed25519 key that signs audit checkpoints, created (mode 0600) on
    /// first start. Default: beside the SQLite file (`gridflow.db` → `gridflow.key`), or
    /// `./gridflow.key` for PostgreSQL.
    #[arg(long, env = "GRIDFLOW_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
    /// How often to sign an audit checkpoint (`30s`, `5m`, `1h`); `0` signs only on demand
    /// (`POST /api/v1/audit/checkpoints`).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: std::time::Duration,
}

/// The default audit key file for a database URL: beside a SQLite file, with the
/// extension `.key`; `./gridflow.key` otherwise.
pub fn default_audit_key(database_url: &str) -> PathBuf {
    let sqlite = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or_default())
        .filter(|path| !path.is_empty() && !path.contains(":memory:"));
    match sqlite {
        Some(path) => Path::new(path).with_extension("key"),
        None => PathBuf::from("gridflow.key"),
    }
}

/// Arguments of `sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// The configuration whose `[sandbox] state_dir` keeps the simulators' state; as for
    /// `serve`, `gridflow.toml` is read when it exists.
    #[arg(long, env = "GRIDFLOW_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The configuration file that `serve` and `sandbox` read: the one named, else
/// `gridflow.toml` when it exists; `None` means no file (nothing configured).
pub fn config_path(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(path) => Some(path.to_owned()),
        None => {
            let default = PathBuf::from(gridflow_connectors::config::DEFAULT_FILE);
            default.exists().then_some(default)
        }
    }
}

/// `--sqlite-synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    /// Sync every commit.
    Full,
    /// Sync at WAL checkpoints.
    Normal,
}

/// Arguments of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Definition files (YAML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Where the client commands send their calls.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's base URL. The token comes from the environment variable GRIDFLOW_TOKEN.
    #[arg(long, env = "GRIDFLOW_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
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
        /// Page size (1 to 500).
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
    Approvals(crate::approvals_cli::ApprovalsArgs),
    /// Approve, reject or delegate an approval.
    Approve(crate::approvals_cli::ApproveArgs),
    /// Deliver a signal to an instance.
    Signal(crate::approvals_cli::SignalArgs),
    /// Manage API tokens (admin only).
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
}

/// `gridflow token …`.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token for a user; prints the token on stdout, once (only its hash is kept).
    Create {
        /// What the token allows: analyst, approver, auditor or admin.
        #[arg(long, value_parser = Role::from_str)]
        role: Role,
        /// The user the token names (recorded in history as the actor).
        #[arg(long)]
        user: String,
        /// A group of the user (repeat for several), for approval assignment.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
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
            | ClientCommand::Replay { server, .. }
            | ClientCommand::Token {
                action: TokenAction::Create { server, .. },
            } => server,
            ClientCommand::Approvals(args) => &args.server,
            ClientCommand::Approve(args) => &args.server,
            ClientCommand::Signal(args) => &args.server,
        }
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))
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
            output::client_error(None, &error);
            return ExitCode::from(2);
        }
    };
    match execute(&client, command).await {
        Ok(code) => code,
        Err(error) => {
            output::client_error(None, &error);
            ExitCode::FAILURE
        }
    }
}

async fn execute(client: &Client, command: ClientCommand) -> Result<ExitCode, ClientError> {
    match command {
        ClientCommand::Deploy { files, .. } => return deploy(client, &files).await,
        ClientCommand::Start {
            definition,
            input,
            version,
            ..
        } => {
            let mut body = json!({ "input": input });
            if let Some(version) = version {
                body["version"] = json!(version);
            }
            let answer = client
                .post_json(&["definitions", &definition, "instances"], &body)
                .await?;
            match answer.get("instance_id").and_then(Value::as_str) {
                Some(id) => output::line(id),
                None => output::json(&answer),
            }
        }
        ClientCommand::Instances {
            status,
            definition,
            cursor,
            limit,
            json,
            ..
        } => {
            let limit = limit.map(|limit| limit.to_string());
            let query: Vec<(&str, &str)> = [
                ("status", status.map(InstanceStatus::as_str)),
                ("definition", definition.as_deref()),
                ("cursor", cursor.as_deref()),
                ("limit", limit.as_deref()),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key, value)))
            .collect();
            let page = client.get(&["instances"], &query).await?;
            if json {
                output::json(&page);
            } else {
                let items = page
                    .get("items")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let next = page.get("next_cursor").and_then(Value::as_str);
                output::instance_table(items, next);
            }
        }
        ClientCommand::Show { id, .. } => {
            output::json(&client.get(&["instances", &id], &[]).await?)
        }
        ClientCommand::History { id, .. } => {
            output::json(&client.get(&["instances", &id, "history"], &[]).await?);
        }
        ClientCommand::Cancel { id, reason, .. } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            output::json(
                &client
                    .post_json(&["instances", &id, "cancel"], &body)
                    .await?,
            );
        }
        ClientCommand::Retry { id, step, .. } => {
            let answer = client
                .post_json(&["instances", &id, "steps", &step, "retry"], &json!({}))
                .await?;
            output::json(&answer);
        }
        ClientCommand::Replay { id, at, diff, .. } => {
            let at = at.map(|at| at.to_string());
            let mut query: Vec<(&str, &str)> =
                at.as_deref().map(|at| ("at", at)).into_iter().collect();
            if diff {
                query.push(("diff", "true"));
            }
            output::json(&client.get(&["instances", &id, "replay"], &query).await?);
        }
        ClientCommand::Token {
            action: TokenAction::Create {
                role, user, groups, ..
            },
        } => {
            let body = json!({ "user": user, "role": role, "groups": groups });
            let answer = client.post_json(&["tokens"], &body).await?;
            match answer.get("token").and_then(Value::as_str) {
                // The token alone on stdout, so that `$(gridflow token create …)` captures
                // it; what it names goes to stderr.
                Some(token) => {
                    output::line(token);
                    output::error_line(format!(
                        "token for user {user} (role {role}{}); it is shown only this once",
                        if groups.is_empty() {
                            String::new()
                        } else {
                            format!(", groups {}", groups.join(", "))
                        }
                    ));
                }
                None => output::json(&answer),
            }
        }
        ClientCommand::Approvals(args) => crate::approvals_cli::list(client, &args).await?,
        ClientCommand::Approve(args) => crate::approvals_cli::approve(client, &args).await?,
        ClientCommand::Signal(args) => crate::approvals_cli::signal(client, &args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `gridflow deploy FILE…`: one line per file; a file the server refuses is reported on
/// stderr with every problem, and the other files are still deployed.
async fn deploy(client: &Client, files: &[PathBuf]) -> Result<ExitCode, ClientError> {
    let mut all_deployed = true;
    for file in files {
        let name = file.display().to_string();
        let source = match std::fs::read_to_string(file) {
            Ok(source) => source,
            Err(error) => {
                all_deployed = false;
                output::error_line(format!("{name}: cannot read the file: {error}"));
                continue;
            }
        };
        match client
            .post_text(&["definitions"], source, content_type(file))
            .await
        {
            Ok((status, answer)) => {
                let id = answer.get("id").and_then(Value::as_str).unwrap_or_default();
                let version = answer
                    .get("version")
                    .and_then(Value::as_u64)
                    .unwrap_or_default();
                let what = if status == reqwest::StatusCode::CREATED {
                    "deployed"
                } else {
                    "unchanged"
                };
                output::line(format!("{name}: {what} {id} version {version}"));
            }
            Err(error @ ClientError::Api { .. }) => {
                all_deployed = false;
                output::client_error(Some(&name), &error);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(if all_deployed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("json") => "application/json",
        _ => "application/yaml",
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

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
