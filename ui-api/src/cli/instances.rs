//! The instance commands of the CLI (DESIGN.md §6): `deploy`, `start`, `instances`,
//! `show`, `history`, `cancel`, `retry` and `replay`. Each calls the HTTP API and prints
//! the answer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};

use gridflow_core::InstanceStatus;

use crate::client::{self, Client, ClientError};
use crate::output;

/// `gridflow start`: starts an instance, safe to retry; prints its id.
pub async fn start(
    client: &Client,
    definition: &str,
    input: Value,
    version: Option<u32>,
) -> Result<(), ClientError> {
    let mut body = json!({ "input": input });
    if let Some(version) = version {
        body["version"] = json!(version);
    }
    // One key per invocation: a retry after a lost answer or a restart of the
    // server finds the instance this invocation started instead of starting another.
    let key = uuid::Uuid::now_v7().to_string();
    let answer = client
        .post_json_idempotent(&["definitions", definition, "instances"], &body, &key)
        .await?;
    match answer.get("instance_id").and_then(Value::as_str) {
        Some(id) => output::line(id),
        None => output::json(&answer),
    }
    Ok(())
}

/// What `gridflow instances` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only instances with this status.
    pub status: Option<InstanceStatus>,
    /// Only instances of this definition.
    pub definition: Option<String>,
    /// Continue from a previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

/// `gridflow instances`: one page, as a table or (`json`) as the API's JSON.
pub async fn list(client: &Client, list: ListQuery, json: bool) -> Result<(), ClientError> {
    let limit = list.limit.map(|limit| limit.to_string());
    let query: Vec<(&str, &str)> = [
        ("status", list.status.map(InstanceStatus::as_str)),
        ("definition", list.definition.as_deref()),
        ("cursor", list.cursor.as_deref()),
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
    Ok(())
}

/// `gridflow show`: the instance as JSON.
pub async fn show(client: &Client, id: &str) -> Result<(), ClientError> {
    output::json(&client.get(&["instances", id], &[]).await?);
    Ok(())
}

/// `gridflow history`: the instance's history as JSON.
pub async fn history(client: &Client, id: &str) -> Result<(), ClientError> {
    output::json(&client.get(&["instances", id, "history"], &[]).await?);
    Ok(())
}

/// `gridflow cancel`: cancels the instance; prints it.
pub async fn cancel(client: &Client, id: &str, reason: Option<String>) -> Result<(), ClientError> {
    let body = match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    output::json(
        &client
            .post_json(&["instances", id, "cancel"], &body)
            .await?,
    );
    Ok(())
}

/// `gridflow retry`: runs a failed step again; prints the instance.
pub async fn retry(client: &Client, id: &str, step: &str) -> Result<(), ClientError> {
    let answer = client
        .post_json(&["instances", id, "steps", step, "retry"], &json!({}))
        .await?;
    output::json(&answer);
    Ok(())
}

/// `gridflow replay`: the replayed state up to `at`, or (`diff`) what each event changed.
pub async fn replay(
    client: &Client,
    id: &str,
    at: Option<u64>,
    diff: bool,
) -> Result<(), ClientError> {
    let at = at.map(|at| at.to_string());
    let mut query: Vec<(&str, &str)> = at.as_deref().map(|at| ("at", at)).into_iter().collect();
    if diff {
        query.push(("diff", "true"));
    }
    output::json(&client.get(&["instances", id, "replay"], &query).await?);
    Ok(())
}

/// `gridflow deploy FILE…`: one line per file; a file the server refuses is reported on
/// stderr with every problem, and the other files are still deployed.
///
/// A definition that starts a child workflow is refused until the child is deployed, so
/// files go in passes: one refused only for unknown workflows waits for the next pass as
/// long as the pass before deployed something. `deploy workflows/*.yaml` thus deploys
/// children before their parents, whatever the files' order.
pub async fn deploy(client: &Client, files: &[PathBuf]) -> Result<ExitCode, ClientError> {
    let mut all_deployed = true;
    let mut pending = Vec::new();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(source) => pending.push((name, source, content_type(file))),
            Err(error) => {
                all_deployed = false;
                output::error_line(format!("{name}: cannot read the file: {error}"));
            }
        }
    }
    while !pending.is_empty() {
        let mut waiting = Vec::new();
        let mut deployed_any = false;
        for (name, source, kind) in pending {
            match client
                .post_text(&["definitions"], source.clone(), kind)
                .await
            {
                Ok((status, answer)) => {
                    deployed_any = true;
                    report_deployed(&name, status, &answer);
                }
                Err(error @ ClientError::Api { .. }) if waits_for_a_workflow(&error) => {
                    waiting.push((name, source, kind, error));
                }
                Err(error @ ClientError::Api { .. }) => {
                    all_deployed = false;
                    client::report(Some(&name), &error);
                }
                Err(other) => return Err(other),
            }
        }
        if !deployed_any {
            for (name, _, _, error) in &waiting {
                all_deployed = false;
                client::report(Some(name), error);
            }
            break;
        }
        pending = waiting
            .into_iter()
            .map(|(name, source, kind, _)| (name, source, kind))
            .collect();
    }
    Ok(if all_deployed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report_deployed(name: &str, status: reqwest::StatusCode, answer: &Value) {
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

/// Whether the server refused a definition only because a workflow it starts is not
/// deployed yet.
fn waits_for_a_workflow(error: &ClientError) -> bool {
    match error {
        ClientError::Api { details, .. } => {
            !details.is_empty()
                && details.iter().all(|(path, message)| {
                    path.ends_with(".workflow.id") && message.starts_with("unknown workflow")
                })
        }
        _ => false,
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("json") => "application/json",
        _ => "application/yaml",
    }
}
