//! The approval commands of the CLI (DESIGN.md §6): `gridflow approvals`,
//! `gridflow approve ID [--reject] [--comment TEXT] [--data JSON] [--delegate USER]` and
//! `gridflow signal ID NAME --data JSON`. They call the HTTP API as the token's user.

use clap::Args;
use serde_json::{Value, json};

use crate::cli::args::{ServerArgs, parse_json};
use crate::client::{Client, ClientError};
use crate::output;

/// Arguments of `gridflow approvals`.
#[derive(Debug, Clone, Args)]
pub struct ApprovalsArgs {
    /// Only approvals with this status (pending, approved, rejected, failed, cancelled,
    /// all).
    #[arg(long, default_value = "pending")]
    pub status: String,
    /// Continue from a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `gridflow approve`.
#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    /// The approval id.
    pub id: String,
    /// Reject instead of approving.
    #[arg(long, conflicts_with = "delegate")]
    pub reject: bool,
    /// A comment recorded with the decision.
    #[arg(long)]
    pub comment: Option<String>,
    /// Form data, as JSON.
    #[arg(long, value_parser = parse_json)]
    pub data: Option<Value>,
    /// Hand the decision to this user instead of deciding.
    #[arg(long)]
    pub delegate: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `gridflow signal`.
#[derive(Debug, Clone, Args)]
pub struct SignalArgs {
    /// The instance id.
    pub id: String,
    /// The signal name.
    pub name: String,
    /// The payload, as JSON.
    #[arg(long, value_parser = parse_json, default_value = "{}")]
    pub data: Value,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `gridflow approvals`: one line per approval (id, status, title, and how many artifacts it
/// binds), then the next cursor.
pub async fn list(client: &Client, args: &ApprovalsArgs) -> Result<(), ClientError> {
    let mut query = vec![("status", args.status.as_str())];
    if let Some(cursor) = &args.cursor {
        query.push(("cursor", cursor.as_str()));
    }
    let page = client.get(&["approvals"], &query).await?;
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if items.is_empty() {
        output::line("no approvals");
    }
    for item in items {
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or_default();
        let due = item
            .get("due_at")
            .and_then(Value::as_str)
            .map(|due| format!("  due {due}"))
            .unwrap_or_default();
        // What is being approved (`bind`): the decider reads it with the approval.
        let bound = item
            .get("artifacts")
            .and_then(Value::as_array)
            .map(|artifacts| format!("  binds {} artifact(s)", artifacts.len()))
            .unwrap_or_default();
        let item = item
            .get("item")
            .and_then(Value::as_u64)
            .map(|index| format!("  item {index}"))
            .unwrap_or_default();
        output::line(format!(
            "{}  {}  {}{item}{due}{bound}",
            text("id"),
            text("status"),
            text("title")
        ));
    }
    if let Some(next) = page.get("next_cursor").and_then(Value::as_str) {
        output::line(format!("next page: --cursor {next}"));
    }
    Ok(())
}

/// `gridflow approve`: decides or delegates; prints the approval.
pub async fn approve(client: &Client, args: &ApproveArgs) -> Result<(), ClientError> {
    let mut body = match &args.delegate {
        Some(to) => json!({"decision": "delegate", "to": to}),
        None if args.reject => json!({"decision": "reject"}),
        None => json!({"decision": "approve"}),
    };
    if let Some(comment) = &args.comment {
        body["comment"] = json!(comment);
    }
    if let Some(data) = &args.data {
        body["data"] = data.clone();
    }
    let answer = client
        .post_json(&["approvals", &args.id, "decision"], &body)
        .await?;
    output::json(&answer);
    Ok(())
}

/// `gridflow signal`: delivers the signal; prints the answer.
pub async fn signal(client: &Client, args: &SignalArgs) -> Result<(), ClientError> {
    let answer = client
        .post_json(&["instances", &args.id, "signals", &args.name], &args.data)
        .await?;
    output::json(&answer);
    Ok(())
}
