//! The recovery commands of the CLI (DESIGN.md §6): `rerun` (a finished instance from a
//! step, with edited input or arguments) and `migrate` (running instances to another
//! version). Each calls the HTTP API and prints its JSON answer.

use clap::Args;
use serde_json::{Value, json};

use crate::cli::args::{ServerArgs, parse_json};
use crate::client::{Client, ClientError};
use crate::output;

/// `gridflow rerun ID [--from STEP] [--input JSON] [--arguments JSON]`.
#[derive(Debug, Args)]
pub struct RerunArgs {
    /// The instance id.
    pub id: String,
    /// Re-run this step and everything downstream of it (default: only the output is
    /// evaluated again).
    #[arg(long = "from")]
    pub from_step: Option<String>,
    /// A start input that replaces the old one, as JSON.
    #[arg(long, value_parser = parse_json)]
    pub input: Option<Value>,
    /// Arguments that replace steps' rendered `with`, as JSON `{"<step>": {...}}`.
    #[arg(long, value_parser = parse_json)]
    pub arguments: Option<Value>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gridflow migrate DEF --to V [--from V] [--mapping JSON] [--dry-run]`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The definition id.
    pub definition: String,
    /// The version to move instances to.
    #[arg(long = "to")]
    pub to_version: u32,
    /// Only instances of this version (default: every older version).
    #[arg(long = "from")]
    pub from_version: Option<u32>,
    /// Old step id to new step id, as JSON `{"<old>": "<new>"}`.
    #[arg(long, value_parser = parse_json)]
    pub mapping: Option<Value>,
    /// Only classify the instances; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gridflow rerun`: prints the instance as the server answers it.
pub async fn rerun(client: &Client, args: RerunArgs) -> Result<(), ClientError> {
    let mut body = json!({});
    if let Some(from_step) = args.from_step {
        body["from_step"] = json!(from_step);
    }
    if let Some(input) = args.input {
        body["input"] = input;
    }
    if let Some(arguments) = args.arguments {
        body["arguments"] = arguments;
    }
    let answer = client
        .post_json(&["instances", &args.id, "rerun"], &body)
        .await?;
    output::json(&answer);
    Ok(())
}

/// `gridflow migrate`: prints the plan (and what moved).
pub async fn migrate(client: &Client, args: MigrateArgs) -> Result<(), ClientError> {
    let mut body = json!({"to_version": args.to_version, "dry_run": args.dry_run});
    if let Some(from_version) = args.from_version {
        body["from_version"] = json!(from_version);
    }
    if let Some(mapping) = args.mapping {
        body["mapping"] = mapping;
    }
    let answer = client
        .post_json(&["definitions", &args.definition, "migrations"], &body)
        .await?;
    output::json(&answer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, ClientCommand, Command};

    #[test]
    fn rerun_and_migrate_parse_their_options() {
        let cli = Cli::try_parse_from([
            "gridflow",
            "rerun",
            "i-1",
            "--from",
            "publish",
            "--arguments",
            r#"{"publish": {"attempts": 2}}"#,
        ])
        .unwrap();
        let Command::Client(ClientCommand::Rerun(args)) = cli.command else {
            panic!("expected rerun");
        };
        assert_eq!(args.from_step.as_deref(), Some("publish"));
        assert_eq!(
            args.arguments,
            Some(serde_json::json!({"publish": {"attempts": 2}}))
        );
        let cli =
            Cli::try_parse_from(["gridflow", "migrate", "flow", "--to", "2", "--dry-run"]).unwrap();
        let Command::Client(ClientCommand::Migrate(args)) = cli.command else {
            panic!("expected migrate");
        };
        assert_eq!((args.to_version, args.dry_run), (2, true));
        let error = Cli::try_parse_from(["gridflow", "migrate", "flow"]).unwrap_err();
        assert_eq!(error.exit_code(), 2, "--to is required");
        let error =
            Cli::try_parse_from(["gridflow", "rerun", "i-1", "--input", "{oops"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }
}
