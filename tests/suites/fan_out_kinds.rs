//! `for_each` on approval and wait steps through the real binary and HTTP API, on every
//! backend: an approval fans out over three partners, each item decided by that partner's
//! own approver token (another approver gets 403); a wait fans out over the same partners,
//! each item completed only by its own partner's signal. Inbound (correlated) events reach
//! the item of their partner only, and items time out on their own (in-process engine,
//! injected clock). Replay equals the stored state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::{EngineOptions, ManualClock};
use gridflow_tests::{
    Body, Server, assert_replay_matches, engine_on, on_every_database, wait_for_status,
};

const KIT: &str = r#"
id: partner-kit
steps:
  - id: review
    for_each: "${input.partners}"
    concurrency: 3
    approval:
      title: "Send the kit to ${item.name} (partner ${index})?"
      users: ["${item.approver}"]
  - id: ack
    needs: [review]
    for_each: "${input.partners}"
    wait: {signal: partner_ack, correlate: "${event.partner == item.name}"}
  - id: report
    needs: [ack]
    action: core.echo
    with: {decision: "${steps.review.decision}", acks: "${steps.ack.output}"}
output:
  decision: "${steps.review.decision}"
  decisions: "${steps.review.output.map(o, o.decision)}"
  acks: "${steps.ack.output}"
"#;

/// A token for approver `user`, made by the admin through `POST /tokens`.
async fn approver_token(server: &Server, user: &str) -> anyhow::Result<String> {
    let created = server
        .post(
            "/tokens",
            Body::Json(json!({"user": user, "role": "approver", "groups": []})),
        )
        .await?;
    Ok(created["token"].as_str().context("no token")?.to_owned())
}

/// The pending approvals `token` sees.
async fn pending(server: &Server, token: &str) -> anyhow::Result<Vec<Value>> {
    let page = server.get_as(token, "/approvals?status=pending").await?;
    Ok(page["items"].as_array().context("no items")?.clone())
}

async fn decide(
    server: &Server,
    token: &str,
    approval: &str,
    decision: &str,
) -> anyhow::Result<(u16, Value)> {
    server
        .call_as(
            token,
            Method::POST,
            &format!("/approvals/{approval}/decision"),
            Some(Body::Json(
                json!({"decision": decision, "comment": "from the partner"}),
            )),
        )
        .await
}

/// The items of `step` that succeeded, in history order.
async fn succeeded_items(server: &Server, id: &str, step: &str) -> anyhow::Result<Vec<u64>> {
    let history = server.get(&format!("/instances/{id}/history")).await?;
    let mut items = Vec::new();
    for event in history["events"].as_array().context("no events")? {
        if event["type"] == "step_succeeded"
            && event["data"]["step"] == step
            && let Some(item) = event["data"]["item"].as_u64()
        {
            items.push(item);
        }
    }
    Ok(items)
}

async fn signal(server: &Server, id: &str, partner: &str) -> anyhow::Result<()> {
    server
        .post(
            &format!("/instances/{id}/signals/partner_ack"),
            Body::Json(json!({"partner": partner})),
        )
        .await?;
    Ok(())
}

async fn partners_approve_and_acknowledge(url: &str) -> anyhow::Result<()> {
    let server = Server::start(url)?;
    server
        .post("/definitions", Body::Text(KIT.to_owned()))
        .await?;
    let partners = json!([
        {"name": "acme", "approver": "ann"},
        {"name": "bolt", "approver": "bob"},
        {"name": "core", "approver": "cid"},
    ]);
    let started = server
        .post(
            "/definitions/partner-kit/instances",
            Body::Json(json!({"input": {"partners": partners}})),
        )
        .await?;
    let id = started["instance_id"]
        .as_str()
        .context("no instance_id")?
        .to_owned();

    // Each approver sees exactly their partner's item, with its index.
    let mut tokens = Vec::new();
    let mut approvals = Vec::new();
    for (index, user) in ["ann", "bob", "cid"].into_iter().enumerate() {
        let token = approver_token(&server, user).await?;
        let items = gridflow_tests::wait_until(
            std::time::Duration::from_secs(30),
            "the approvals of the fan-out",
            || async {
                let items = pending(&server, &token).await?;
                Ok((!items.is_empty()).then_some(items))
            },
        )
        .await?;
        ensure!(items.len() == 1, "{user} sees {items:?}");
        let approval = &items[0];
        ensure!(approval["item"] == json!(index), "{approval}");
        ensure!(approval["step"] == "review", "{approval}");
        ensure!(
            approval["assignees"]["users"] == json!([user]),
            "{approval}"
        );
        let name = partners[index]["name"].as_str().context("name")?;
        ensure!(
            approval["title"] == format!("Send the kit to {name} (partner {index})?"),
            "{approval}"
        );
        let approval_id = approval["id"].as_str().context("no id")?.to_owned();
        ensure!(
            approval_id == format!("{id}:review:1:{index}"),
            "{approval_id}"
        );
        tokens.push(token);
        approvals.push(approval_id);
    }

    // Another partner's approver may not decide ann's item.
    let (status, body) = decide(&server, &tokens[1], &approvals[0], "approve").await?;
    ensure!(status == 403, "bob deciding ann's item: {status} {body}");

    let (status, body) = decide(&server, &tokens[0], &approvals[0], "approve").await?;
    ensure!(status == 200, "{status} {body}");
    ensure!(body["status"] == "approved" && body["item"] == 0, "{body}");
    let (status, body) = decide(&server, &tokens[1], &approvals[1], "reject").await?;
    ensure!(
        status == 200 && body["status"] == "rejected",
        "{status} {body}"
    );
    // A rejection rejects bob's item only: cid's is still open, and decides.
    let (status, body) = decide(&server, &tokens[2], &approvals[2], "approve").await?;
    ensure!(
        status == 200 && body["status"] == "approved",
        "{status} {body}"
    );
    let (status, body) = decide(&server, &tokens[2], &approvals[2], "approve").await?;
    ensure!(status == 409, "a second decision: {status} {body}");

    // The waits: bolt's acknowledgement completes bolt's item, not acme's.
    signal(&server, &id, "bolt").await?;
    ensure!(
        succeeded_items(&server, &id, "ack").await? == vec![1],
        "after bolt's signal"
    );
    let instance = server.get(&format!("/instances/{id}")).await?;
    ensure!(instance["status"] == "waiting", "{instance}");
    ensure!(
        instance["steps"]["ack"]["status"] == "waiting",
        "{instance}"
    );
    signal(&server, &id, "core").await?;
    signal(&server, &id, "acme").await?;
    let instance = gridflow_tests::wait_until(
        std::time::Duration::from_secs(30),
        "the instance to complete",
        || async {
            let instance = server.get(&format!("/instances/{id}")).await?;
            Ok((instance["status"] == "completed").then_some(instance))
        },
    )
    .await?;
    ensure!(
        succeeded_items(&server, &id, "ack").await? == vec![1, 2, 0],
        "each item completed by its own partner's signal"
    );
    let output = &instance["output"];
    ensure!(output["decision"] == "rejected", "{output}");
    ensure!(
        instance["steps"]["review"]["decision"] == "rejected",
        "{instance}"
    );
    ensure!(
        output["decisions"] == json!(["approved", "rejected", "approved"]),
        "{output}"
    );
    ensure!(
        output["acks"] == json!([{"partner": "acme"}, {"partner": "bolt"}, {"partner": "core"}]),
        "{output}"
    );

    // Events about items carry data.item; each step ends with one event without it.
    let history = server.get(&format!("/instances/{id}/history")).await?;
    let events = history["events"].as_array().context("no events")?;
    for step in ["review", "ack"] {
        let whole: Vec<&Value> = events
            .iter()
            .filter(|event| {
                event["type"] == "step_succeeded"
                    && event["data"]["step"] == step
                    && event["data"].get("item").is_none()
            })
            .collect();
        ensure!(whole.len() == 1, "{step}: {whole:?}");
    }
    let requested: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "approval_requested")
        .map(|event| &event["data"]["item"])
        .collect();
    ensure!(
        requested == [&json!(0), &json!(1), &json!(2)],
        "{requested:?}"
    );

    // The approvals read model kept every item's outcome.
    let all = server.get_as(&tokens[1], "/approvals?status=all").await?;
    match all["items"].as_array().map(Vec::as_slice) {
        Some([only]) if only["status"] == "rejected" && only["item"] == 1 => {}
        other => bail!("bob's approvals: {other:?}"),
    }

    let replay = server.get(&format!("/instances/{id}/replay")).await?;
    ensure!(
        replay["matches_stored"] == Value::Bool(true),
        "instance {id}: replayed state differs from the stored state: {replay}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_approve_their_own_items_and_acknowledge_their_own_waits() {
    on_every_database(|url| async move { partners_approve_and_acknowledge(&url).await })
        .await
        .unwrap();
}

const WAITS: &str = r#"
id: partner-waits
steps:
  - id: ack
    for_each: "${input.partners}"
    concurrency: 2
    wait: {signal: partner_ack, timeout: 7d, on_timeout: continue, correlate: "${event.partner == item}"}
output: {acks: "${steps.ack.output}"}
"#;

async fn inbound_events_reach_their_partners_item(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-22T09:00:00Z")?.with_timezone(&chrono::Utc),
    ));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    engine.deploy(WAITS).await?;
    let id = engine
        .start_instance(
            &DefinitionId::from("partner-waits"),
            None,
            json!({"partners": ["acme", "bolt", "core"]}),
            "alice",
        )
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;

    // An inbound event for a partner whose item is not waiting yet (concurrency 2) or for
    // no partner at all reaches no one; bolt's reaches bolt's item.
    for nobody in ["core", "zeta"] {
        let delivered = engine
            .signal_matching("partner_ack", &json!({"partner": nobody}), "trading_grid")
            .await?;
        ensure!(delivered.is_empty(), "{nobody}: {delivered:?}");
    }
    let delivered = engine
        .signal_matching("partner_ack", &json!({"partner": "bolt"}), "trading_grid")
        .await?;
    ensure!(delivered == vec![id.clone()], "{delivered:?}");
    // bolt's item freed its slot: core's item waits now, and its event reaches it.
    let delivered = engine
        .signal_matching("partner_ack", &json!({"partner": "core"}), "trading_grid")
        .await?;
    ensure!(delivered == vec![id.clone()], "{delivered:?}");

    // acme never answers: its item times out on its own and continues with null.
    clock.advance(Duration::from_secs(7 * 86_400 + 1));
    engine.tick().await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let instance = engine.instance(&id).await?;
    ensure!(
        instance.output == Some(json!({"acks": [null, {"partner": "bolt"}, {"partner": "core"}]})),
        "{:?}",
        instance.output
    );
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_events_reach_only_their_partners_item_and_items_time_out_alone() {
    on_every_database(|url| async move { inbound_events_reach_their_partners_item(&url).await })
        .await
        .unwrap();
}
