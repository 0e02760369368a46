//! Approvals, wait steps and signals through the in-process engine, on every backend, with
//! an injected clock for due dates and timeouts. Every instance's replayed history must
//! equal its stored state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure};
use serde_json::{Value, json};

use gridflow_core::{ApprovalStatus, DefinitionId, InstanceStatus, Verdict};
use gridflow_runtime::{Approver, DecisionRequest, Engine, EngineOptions, Error, ManualClock};
use gridflow_tests::{assert_replay_matches, engine_on, on_every_database, wait_for_status};

/// An engine on `url` with a manual clock set to 2026-11-22T09:00:00Z.
async fn engine_and_clock(url: &str) -> anyhow::Result<(Engine, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-22T09:00:00Z")?.with_timezone(&chrono::Utc),
    ));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    Ok((engine, clock))
}

fn approve(data: Value) -> DecisionRequest {
    DecisionRequest::Decide {
        decision: Verdict::Approve,
        comment: Some("fine".to_owned()),
        data,
    }
}

const REVIEW: &str = r#"
id: suite-review
steps:
  - id: review
    approval:
      title: "Ship ${input.order}?"
      users: [ann, bob, cid]
      quorum: 2
      due: 1h
      on_timeout: escalate
      escalate_to: [{users: [lead]}, {groups: [directors]}]
      form: {type: object, properties: {budget: {type: integer, maximum: 100}}}
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
    with: {by: "${steps.review.user}", budget: "${steps.review.data.budget}"}
  - id: ack
    needs: [deliver]
    wait: {signal: partner_ack}
output: {ack: "${steps.ack.output.payload}", delivered: "${steps.deliver.output}"}
"#;

async fn quorum_and_signals(url: &str) -> anyhow::Result<()> {
    let (engine, _clock) = engine_and_clock(url).await?;
    engine.deploy(REVIEW).await?;
    let id = engine
        .start_instance(
            &DefinitionId::from("suite-review"),
            None,
            json!({"order": 7}),
            "alice",
        )
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;
    // The signal comes before its wait step is reached: it is kept.
    engine
        .signal(&id, "partner_ack", json!({"ok": true}), "partner")
        .await?;

    let ann = Approver {
        user: "ann",
        groups: &[],
    };
    let page = engine
        .list_approvals(&ann, Some(ApprovalStatus::Pending), None, 50)
        .await?;
    ensure!(page.items.len() == 1, "ann sees {:?}", page.items);
    let approval = &page.items[0];
    ensure!(approval.title == "Ship 7?" && approval.quorum == 2 && approval.due_at.is_some());
    let approval_id = approval.id.clone();

    let starter = Approver {
        user: "alice",
        groups: &[],
    };
    match engine
        .decide(&approval_id, &starter, approve(Value::Null))
        .await
    {
        Err(Error::Forbidden(_)) => {}
        other => bail!("self-approval was not refused: {other:?}"),
    }
    let outsider = Approver {
        user: "eve",
        groups: &[],
    };
    match engine
        .decide(&approval_id, &outsider, approve(Value::Null))
        .await
    {
        Err(Error::Forbidden(_)) => {}
        other => bail!("an outsider's decision was not refused: {other:?}"),
    }
    match engine
        .decide(&approval_id, &ann, approve(json!({"budget": 1000})))
        .await
    {
        Err(Error::Invalid { details, .. }) => {
            ensure!(
                details.iter().any(|detail| detail.path == "data.budget"),
                "{details:?}"
            )
        }
        other => bail!("form violation was not refused: {other:?}"),
    }

    let view = engine
        .decide(&approval_id, &ann, approve(Value::Null))
        .await?;
    ensure!(view.status == "pending" && view.decisions.as_array().map(Vec::len) == Some(1));
    let bob = Approver {
        user: "bob",
        groups: &[],
    };
    let view = engine
        .decide(&approval_id, &bob, approve(json!({"budget": 40})))
        .await?;
    ensure!(view.status == "approved", "{view:?}");
    let cid = Approver {
        user: "cid",
        groups: &[],
    };
    match engine
        .decide(&approval_id, &cid, approve(Value::Null))
        .await
    {
        Err(Error::Conflict(_)) => {}
        other => bail!("a late decision was not refused: {other:?}"),
    }

    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let instance = engine.instance(&id).await?;
    ensure!(
        instance.output
            == Some(json!({"ack": {"ok": true}, "delivered": {"by": "bob", "budget": 40}})),
        "{:?}",
        instance.output
    );
    ensure!(instance.steps["review"].decision.as_deref() == Some("approved"));
    ensure!(
        engine
            .list_approvals(&ann, Some(ApprovalStatus::Pending), None, 50)
            .await?
            .items
            .is_empty()
    );
    assert_replay_matches(&engine, &id).await?;
    match engine
        .signal(&id, "partner_ack", json!({}), "partner")
        .await
    {
        Err(Error::Conflict(_)) => {}
        other => bail!("a finished instance took a signal: {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_self_approval_form_and_a_kept_signal() {
    on_every_database(|url| async move { quorum_and_signals(&url).await })
        .await
        .unwrap();
}

async fn escalation_and_delegation(url: &str) -> anyhow::Result<()> {
    let (engine, clock) = engine_and_clock(url).await?;
    engine.deploy(REVIEW).await?;
    let definition = DefinitionId::from("suite-review");
    let id = engine
        .start_instance(&definition, None, json!({"order": 1}), "alice")
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;
    let ann = Approver {
        user: "ann",
        groups: &[],
    };
    let approval_id = engine.list_approvals(&ann, None, None, 50).await?.items[0]
        .id
        .clone();

    // Delegation: dan becomes an assignee, ann may no longer decide.
    let view = engine
        .decide(
            &approval_id,
            &ann,
            DecisionRequest::Delegate {
                to: "dan".to_owned(),
            },
        )
        .await?;
    ensure!(view.assignees.users.contains(&"dan".to_owned()), "{view:?}");
    match engine
        .decide(&approval_id, &ann, approve(Value::Null))
        .await
    {
        Err(Error::Forbidden(_)) => {}
        other => bail!("a delegator decided: {other:?}"),
    }

    clock.advance(Duration::from_secs(3600));
    engine.tick().await?;
    let lead = Approver {
        user: "lead",
        groups: &[],
    };
    let view = engine.approval(&approval_id).await?;
    ensure!(
        view.level == 1 && view.assignees.users == vec!["lead".to_owned()],
        "{view:?}"
    );
    ensure!(
        engine
            .list_approvals(&lead, None, None, 50)
            .await?
            .items
            .len()
            == 1
    );

    clock.advance(Duration::from_secs(3600));
    engine.tick().await?;
    let directors = ["directors".to_owned()];
    let dora = Approver {
        user: "dora",
        groups: &directors,
    };
    ensure!(engine.approval(&approval_id).await?.level == 2);
    ensure!(
        engine
            .list_approvals(&dora, None, None, 50)
            .await?
            .items
            .len()
            == 1
    );

    clock.advance(Duration::from_secs(3600));
    engine.tick().await?;
    wait_for_status(&engine, &id, InstanceStatus::Failed).await?;
    ensure!(engine.approval(&approval_id).await?.status == "failed");
    ensure!(
        engine.instance(&id).await?.error.map(|error| error.code) == Some("timeout".to_owned())
    );
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_and_a_two_level_escalation_chain_on_the_injected_clock() {
    on_every_database(|url| async move { escalation_and_delegation(&url).await })
        .await
        .unwrap();
}

const CORRELATED: &str = r#"
id: suite-wait
steps:
  - id: ack
    wait: {signal: shipped, timeout: 1h, on_timeout: fail, correlate: "${event.order == input.order}"}
"#;

async fn correlated_signals_and_timeouts(url: &str) -> anyhow::Result<()> {
    let (engine, clock) = engine_and_clock(url).await?;
    engine.deploy(CORRELATED).await?;
    let definition = DefinitionId::from("suite-wait");
    let first = engine
        .start_instance(&definition, None, json!({"order": 1}), "alice")
        .await?;
    let second = engine
        .start_instance(&definition, None, json!({"order": 2}), "alice")
        .await?;
    wait_for_status(&engine, &first, InstanceStatus::Waiting).await?;
    wait_for_status(&engine, &second, InstanceStatus::Waiting).await?;

    let delivered = engine
        .signal_matching("shipped", &json!({"order": 2}), "webhook")
        .await?;
    ensure!(delivered == vec![second.clone()], "{delivered:?}");
    wait_for_status(&engine, &second, InstanceStatus::Completed).await?;
    ensure!(
        engine
            .signal_matching("shipped", &json!({"order": 9}), "webhook")
            .await?
            .is_empty()
    );

    clock.advance(Duration::from_secs(3600));
    engine.tick().await?;
    wait_for_status(&engine, &first, InstanceStatus::Failed).await?;
    assert_replay_matches(&engine, &first).await?;
    assert_replay_matches(&engine, &second).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlated_signals_reach_only_matching_instances_and_waits_time_out() {
    on_every_database(|url| async move { correlated_signals_and_timeouts(&url).await })
        .await
        .unwrap();
}
