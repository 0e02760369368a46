//! What the campaign processes' suites (campaign kit, launch coordination, partner
//! onboarding) add to [`crate::process::Sandbox`]: a step's child instances, a partner's
//! acts in the hub simulator, the hub's and OTMM's state, and waiting on the ledger.

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::process::Sandbox;
use crate::wait_until;

/// How long the suites wait for anything the sandbox does by itself.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until workflow step `step` of `parent` has started `count` child instances and
/// returns them: by item for a fan-out, in the order they started for a repeated step.
pub async fn children(
    sandbox: &Sandbox,
    parent: &str,
    step: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    wait_until(
        PATIENCE,
        &format!("{count} children of {parent} step {step}"),
        || async {
            let view = sandbox.instance(parent).await?;
            let mut children: Vec<(u64, String)> = view["steps"][step]["children"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|child| {
                    let order = child["item"].as_u64().unwrap_or(0);
                    let id = child["instance_id"].as_str().unwrap_or_default().to_owned();
                    (order, id)
                })
                .collect();
            if children.len() < count {
                return Ok(None);
            }
            // Runs of a repeated step have no item; their ids (UUIDs keeping the parent's
            // time) do not sort by start, so they are ordered by their creation instant.
            if children.iter().all(|(order, _)| *order == 0) && children.len() > 1 {
                let mut started = Vec::with_capacity(children.len());
                for (_, id) in &children {
                    let created = sandbox.instance(id).await?["created_at"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    started.push((created, id.clone()));
                }
                started.sort();
                return Ok(Some(started.into_iter().map(|(_, id)| id).collect()));
            }
            children.sort();
            Ok(Some(children.into_iter().map(|(_, id)| id).collect()))
        },
    )
    .await
}

/// A partner user (`login`, a seeded `loginId` of the hub) acknowledges post `post_id` in
/// the hub simulator, as the partner would in the hub's portal.
pub async fn acknowledge(
    sandbox: &Sandbox,
    post_id: &str,
    login: &str,
    ack_type: &str,
) -> anyhow::Result<Value> {
    partner_call(
        sandbox,
        login,
        &format!("/partner/v1/posts/{post_id}/acknowledgements"),
        json!({"ack_type": ack_type}),
    )
    .await
}

/// A partner user (`login`) posts `body` to the hub simulator's partner route `path`,
/// which must answer 2xx.
pub async fn partner_call(
    sandbox: &Sandbox,
    login: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let (status, answer) = sandbox
        .partner("trading_grid", Some(login), Method::POST, path, Some(body))
        .await?;
    ensure!(
        (200..300).contains(&status),
        "POST {path} as {login}: {status} {answer}"
    );
    Ok(answer)
}

/// The state of the simulator of `system` (its persisted `state`).
pub fn state(sandbox: &Sandbox, system: &str) -> anyhow::Result<Value> {
    let records = sandbox.records(system)?;
    Ok(records["state"].clone())
}

/// The hub's notifications whose recipients are exactly the companies `company_ids`.
pub fn notifications_to(hub: &Value, company_ids: &[&str]) -> Vec<Value> {
    hub["notifications"]
        .as_object()
        .into_iter()
        .flat_map(|notifications| notifications.values())
        .filter(|notification| {
            let recipients: Vec<&str> = notification["recipients"]["company_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            recipients == company_ids
        })
        .cloned()
        .collect()
}

/// The hub's posts that reached `company_id`.
pub fn posts_to(hub: &Value, company_id: &str) -> Vec<Value> {
    hub["posts"]
        .as_object()
        .into_iter()
        .flat_map(|posts| posts.values())
        .filter(|post| {
            post["recipients"]
                .as_array()
                .is_some_and(|recipients| recipients.iter().any(|id| id == company_id))
        })
        .cloned()
        .collect()
}

/// The value of metadata field `field` of OTMM asset `asset_id` as the simulator holds it.
pub fn otmm_field(otmm: &Value, asset_id: &str, field: &str) -> Option<String> {
    otmm["assets"][asset_id]["metadata"][field][1]
        .as_str()
        .map(str::to_owned)
}

/// Waits until the ledger rows of `partner` delivered by `instance` are `count` and all
/// have status `status`, and returns them.
pub async fn ledger_rows(
    sandbox: &Sandbox,
    partner: &str,
    instance: &str,
    count: usize,
    status: &str,
) -> anyhow::Result<Vec<Value>> {
    wait_until(
        PATIENCE,
        &format!("{count} {status} ledger rows of {partner} from {instance}"),
        || async {
            let rows: Vec<Value> = sandbox
                .ledger(&format!("?partner={partner}"))
                .await?
                .into_iter()
                .filter(|row| row["instance_id"] == instance)
                .collect();
            let settled = rows.len() == count && rows.iter().all(|row| row["status"] == status);
            Ok(settled.then_some(rows))
        },
    )
    .await
}

/// Replays every instance of `instances`: replay equals the stored state.
pub async fn assert_replays(sandbox: &Sandbox, instances: &[String]) -> anyhow::Result<()> {
    for id in instances {
        sandbox
            .assert_replay(id)
            .await
            .with_context(|| format!("replaying {id}"))?;
    }
    Ok(())
}
