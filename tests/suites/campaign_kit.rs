//! The campaign kit of issue 12, end to end on every backend, with the real runtime and
//! store and an injected clock: a parent fans out one child per partner (`for_each` on a
//! workflow step); each child asks that partner's own approver (an assignee expression
//! over the child's input), then repeats a reminder round (a grandchild: a reminder, then
//! a wait for the partner's confirmation that times out after a day) every day until the
//! partner confirms. One partner confirms in the first round, the other only in the
//! second. Every instance of the tree replays to its stored state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_core::approval::Verdict;
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus};
use gridflow_runtime::{
    Approver, DecisionRequest, Engine, EngineOptions, Error, InstanceView, ManualClock,
};
use gridflow_tests::{
    assert_replay_matches, engine_on, on_every_database, wait_for_status, wait_until,
};

/// One reminder round: remind the partner, then wait a day for the confirmation.
const ROUND: &str = r#"
id: kit-reminder-round
input:
  type: object
  required: [partner, round]
  properties:
    partner: {type: object}
    round: {type: integer}
steps:
  - id: remind
    action: core.echo
    with: {to: "${input.partner.name}", round: "${input.round}", text: "Please confirm you received the campaign kit"}
  - id: confirmation
    needs: [remind]
    wait: {signal: kit_received, timeout: 1d, on_timeout: continue}
output:
  confirmed: "${!steps.confirmation.output.timed_out}"
  round: "${input.round}"
"#;

/// One partner: its approver approves the kit, then reminder rounds until it confirms.
const PARTNER: &str = r#"
id: kit-partner
input:
  type: object
  required: [partner]
  properties:
    partner: {type: object}
steps:
  - id: approve
    approval:
      title: "Campaign kit for ${input.partner.name}"
      users: ["${input.partner.approver}"]
  - id: reminders
    needs: [approve]
    when: "${steps.approve.decision == 'approved'}"
    workflow:
      id: kit-reminder-round
      input: {partner: "${input.partner}", round: "${iteration}"}
    repeat: {until: "${steps.reminders.output.confirmed}", max: 5, interval: 1h}
output:
  partner: "${input.partner.name}"
  decision: "${steps.approve.decision}"
  rounds: "${steps.reminders.iterations.map(r, r.round)}"
"#;

/// The kit: one child per partner.
const KIT: &str = r#"
id: campaign-kit
input:
  type: object
  required: [partners]
  properties:
    partners: {type: array}
steps:
  - id: partners
    for_each: "${input.partners}"
    concurrency: 10
    workflow:
      id: kit-partner
      input: {partner: "${item}"}
output: {partners: "${steps.partners.output}"}
"#;

fn approver(user: &str) -> Approver<'_> {
    Approver { user, groups: &[] }
}

/// The children of `step` in `view`, by item.
fn children_of(view: &InstanceView, step: &str) -> anyhow::Result<Vec<InstanceId>> {
    let step = view
        .steps
        .get(step)
        .with_context(|| format!("no step {step}"))?;
    let mut children: Vec<(Option<u32>, InstanceId)> = step
        .children
        .iter()
        .map(|child| (child.item, InstanceId::from(child.instance_id.as_str())))
        .collect();
    children.sort();
    Ok(children.into_iter().map(|(_, id)| id).collect())
}

/// Waits until `step` of `parent` has `count` children, and returns them by item (for a
/// repeated step: in the order they started).
async fn wait_for_children(
    engine: &Engine,
    parent: &InstanceId,
    step: &str,
    count: usize,
) -> anyhow::Result<Vec<InstanceId>> {
    wait_until(
        Duration::from_secs(30),
        &format!("{count} children of {parent} step {step}"),
        || async {
            let view = engine.instance(parent).await?;
            let children = children_of(&view, step)?;
            Ok((children.len() >= count).then_some(children))
        },
    )
    .await
}

/// The one pending approval of `user`.
async fn pending_approval(engine: &Engine, user: &str) -> anyhow::Result<String> {
    wait_until(
        Duration::from_secs(30),
        &format!("the approval of {user}"),
        || async {
            let page = engine
                .list_approvals(
                    &approver(user),
                    Some(gridflow_core::approval::ApprovalStatus::Pending),
                    None,
                    50,
                )
                .await?;
            Ok(match page.items.as_slice() {
                [only] => Some(only.id.clone()),
                _ => None,
            })
        },
    )
    .await
}

fn approve() -> DecisionRequest {
    DecisionRequest::Decide {
        decision: Verdict::Approve,
        comment: Some("kit checked".to_owned()),
        data: Value::Null,
    }
}

async fn campaign_kit(url: &str) -> anyhow::Result<()> {
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z")?.with_timezone(&chrono::Utc),
    ));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    for definition in [ROUND, PARTNER, KIT] {
        if let Err(error) = engine.deploy(definition).await {
            anyhow::bail!("deploying {definition}: {error:?}");
        }
    }
    let partners = json!([
        {"name": "acme", "approver": "ann"},
        {"name": "bolt", "approver": "bob"},
    ]);
    let kit = engine
        .start_instance(
            &DefinitionId::from("campaign-kit"),
            None,
            json!({"partners": partners}),
            "alice",
        )
        .await?;
    let children = wait_for_children(&engine, &kit, "partners", 2).await?;
    for (child, partner) in children.iter().zip(["acme", "bolt"]) {
        let view = engine.instance(child).await?;
        let parent = view.parent.as_ref().context("the child names no parent")?;
        ensure!(parent.instance_id == kit.as_str(), "{parent:?}");
        ensure!(view.input["partner"]["name"] == partner, "{:?}", view.input);
    }

    // Each child's approval is its partner's approver's: bob may not decide ann's.
    let ann = pending_approval(&engine, "ann").await?;
    let bob = pending_approval(&engine, "bob").await?;
    ensure!(ann.starts_with(children[0].as_str()), "{ann}");
    ensure!(bob.starts_with(children[1].as_str()), "{bob}");
    match engine.decide(&ann, &approver("bob"), approve()).await {
        Err(Error::Forbidden(_)) => {}
        other => anyhow::bail!("bob deciding ann's approval: {other:?}"),
    }
    engine.decide(&ann, &approver("ann"), approve()).await?;
    engine.decide(&bob, &approver("bob"), approve()).await?;

    // Round 1 for each: acme confirms, bolt does not.
    let acme_round = wait_for_children(&engine, &children[0], "reminders", 1).await?;
    let bolt_round = wait_for_children(&engine, &children[1], "reminders", 1).await?;
    wait_for_status(&engine, &acme_round[0], InstanceStatus::Waiting).await?;
    wait_for_status(&engine, &bolt_round[0], InstanceStatus::Waiting).await?;
    engine
        .signal(
            &acme_round[0],
            "kit_received",
            json!({"by": "acme"}),
            "acme",
        )
        .await?;
    wait_for_status(&engine, &children[0], InstanceStatus::Completed).await?;

    // A day later bolt's first round times out; an hour after that, round 2 reminds again.
    clock.advance(Duration::from_secs(86_400 + 1));
    engine.tick().await?;
    wait_for_status(&engine, &bolt_round[0], InstanceStatus::Completed).await?;
    wait_for_status(&engine, &children[1], InstanceStatus::Waiting).await?;
    clock.advance(Duration::from_secs(3_600 + 1));
    engine.tick().await?;
    let bolt_rounds = wait_for_children(&engine, &children[1], "reminders", 2).await?;
    let second = bolt_rounds
        .iter()
        .find(|round| **round != bolt_round[0])
        .context("no second round")?
        .clone();
    wait_for_status(&engine, &second, InstanceStatus::Waiting).await?;
    let round = engine.instance(&second).await?;
    ensure!(round.input["round"] == 2, "{:?}", round.input);
    engine
        .signal(&second, "kit_received", json!({"by": "bolt"}), "bolt")
        .await?;

    wait_for_status(&engine, &kit, InstanceStatus::Completed).await?;
    let done = engine.instance(&kit).await?;
    ensure!(
        done.output
            == Some(json!({"partners": [
                {"partner": "acme", "decision": "approved", "rounds": [1]},
                {"partner": "bolt", "decision": "approved", "rounds": [1, 2]},
            ]})),
        "{:?}",
        done.output
    );
    let mut tree = vec![kit.clone()];
    tree.extend(children.iter().cloned());
    tree.extend(acme_round);
    tree.extend(bolt_rounds);
    for instance in &tree {
        assert_replay_matches(&engine, instance).await?;
    }
    ensure!(tree.len() == 6, "{tree:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_kit_reaches_each_partner_through_its_own_child() {
    on_every_database(|url| async move { campaign_kit(&url).await })
        .await
        .unwrap();
}
