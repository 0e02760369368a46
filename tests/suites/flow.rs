//! Control flow for partner processes through the in-process engine, on every backend,
//! with an injected clock: joins (a rejected request still reaches the partner through
//! `join: all_done`; `join: any`), a skipped step read as null, and `repeat` (paging
//! through a search; reminders on an interval of the injected clock). Every instance's
//! replayed history must equal its stored state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use gridflow_core::{
    ApprovalStatus, DefinitionId, InstanceId, InstanceStatus, StepStatus, Verdict,
};
use gridflow_runtime::{Approver, DecisionRequest, Engine, EngineOptions, ManualClock};
use gridflow_tests::{
    assert_replay_matches, engine_on, on_every_database, wait_for_status, wait_until,
};

/// An engine on `url` with a manual clock set to 2026-11-22T09:00:00Z.
async fn engine_and_clock(url: &str) -> anyhow::Result<(Engine, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-22T09:00:00Z")?.with_timezone(&chrono::Utc),
    ));
    let engine = engine_on(url, clock.clone(), EngineOptions::default()).await?;
    Ok((engine, clock))
}

async fn start(engine: &Engine, definition: &str, input: Value) -> anyhow::Result<InstanceId> {
    Ok(engine
        .start_instance(&DefinitionId::from(definition), None, input, "alice")
        .await?)
}

/// The `data` of every event of `event_type` in the instance's history.
async fn events(engine: &Engine, id: &InstanceId, event_type: &str) -> anyhow::Result<Vec<Value>> {
    Ok(engine
        .history(id)
        .await?
        .into_iter()
        .filter(|event| event.event_type == event_type)
        .map(|event| event.data)
        .collect())
}

const PARTNER_REQUEST: &str = r#"
id: flow-partner-request
input:
  type: object
  required: [partner]
  properties:
    partner: {type: string}
steps:
  - id: review
    approval: {title: "Send assets to ${input.partner}?", users: [ann]}
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
    with: {shared: true}
  - id: tell_partner
    needs: [deliver]
    join: all_done
    action: core.echo
    with:
      partner: "${input.partner}"
      decision: "${steps.review.decision}"
      comment: "${steps.review.comment}"
      delivered: "${steps.deliver.output}"
output:
  told: "${steps.tell_partner.output}"
  delivery: "${steps.deliver.status}"
"#;

async fn rejected_request_reaches_the_partner(url: &str) -> anyhow::Result<()> {
    let (engine, _clock) = engine_and_clock(url).await?;
    engine.deploy(PARTNER_REQUEST).await?;
    let id = start(&engine, "flow-partner-request", json!({"partner": "acme"})).await?;
    wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;
    let ann = Approver {
        user: "ann",
        groups: &[],
    };
    let page = engine
        .list_approvals(&ann, Some(ApprovalStatus::Pending), None, 50)
        .await?;
    let approval = page.items.first().context("ann has no approval")?;
    engine
        .decide(
            &approval.id,
            &ann,
            DecisionRequest::Decide {
                decision: Verdict::Reject,
                comment: Some("not this season".to_owned()),
                data: Value::Null,
            },
        )
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let view = engine.instance(&id).await?;
    ensure!(view.steps["deliver"].status == StepStatus::Skipped);
    ensure!(
        view.output
            == Some(json!({
                "told": {
                    "partner": "acme",
                    "decision": "rejected",
                    "comment": "not this season",
                    "delivered": null,
                },
                "delivery": "skipped",
            })),
        "output {:?}",
        view.output
    );
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_still_reaches_the_partner_through_an_all_done_join() {
    on_every_database(|url| async move { rejected_request_reaches_the_partner(&url).await })
        .await
        .unwrap();
}

const SKIPPED_READ: &str = r#"
id: flow-skipped-read
steps:
  - id: review
    when: "${input.review}"
    approval: {title: "Review?", users: [ann]}
  - id: deliver
    needs: [review]
    action: core.echo
    with: {sent: true}
output:
  decision: "${steps.review.decision}"
  reviewed: "${steps.review.output}"
  user: "${steps.review.user}"
  error: "${steps.review.error}"
"#;

async fn skipped_step_reads_as_null(url: &str) -> anyhow::Result<()> {
    let (engine, _clock) = engine_and_clock(url).await?;
    engine.deploy(SKIPPED_READ).await?;
    let id = start(&engine, "flow-skipped-read", json!({"review": false})).await?;
    // Before: the instance failed after all its steps ran ("no such key: decision").
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let view = engine.instance(&id).await?;
    ensure!(view.steps["review"].status == StepStatus::Skipped);
    ensure!(
        view.output
            == Some(json!({"decision": null, "reviewed": null, "user": null, "error": null})),
        "output {:?}",
        view.output
    );
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_step_is_read_as_null() {
    on_every_database(|url| async move { skipped_step_reads_as_null(&url).await })
        .await
        .unwrap();
}

const FIRST_ANSWER: &str = r#"
id: flow-first-answer
steps:
  - id: by_mail
    action: core.echo
    with: {channel: mail}
  - id: by_portal
    wait: {signal: portal_answer}
  - id: first
    needs: [by_mail, by_portal]
    join: any
    action: core.echo
    with: {mail: "${steps.by_mail.status}", portal: "${steps.by_portal.status}"}
output: {first: "${steps.first.output}", portal: "${steps.by_portal.output}"}
"#;

async fn join_any(url: &str) -> anyhow::Result<()> {
    let (engine, _clock) = engine_and_clock(url).await?;
    engine.deploy(FIRST_ANSWER).await?;
    let id = start(&engine, "flow-first-answer", json!({})).await?;
    // `first` runs once the mail succeeded, while the portal still waits.
    wait_until(
        Duration::from_secs(30),
        "the any-join to succeed",
        || async {
            Ok(
                (engine.instance(&id).await?.steps["first"].status == StepStatus::Succeeded)
                    .then_some(()),
            )
        },
    )
    .await?;
    let view = engine.instance(&id).await?;
    ensure!(view.status == InstanceStatus::Waiting, "{:?}", view.status);
    ensure!(
        view.steps["first"].output == Some(json!({"mail": "succeeded", "portal": "waiting"})),
        "{:?}",
        view.steps["first"].output
    );
    // The other need goes on; the instance completes once it has ended.
    engine
        .signal(&id, "portal_answer", json!({"ok": true}), "partner")
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_any_runs_once_one_need_succeeded_and_the_others_go_on() {
    on_every_database(|url| async move { join_any(&url).await })
        .await
        .unwrap();
}

const PAGING: &str = r#"
id: flow-paging
steps:
  - id: search
    action: core.echo
    with: {page: "${iteration}", query: "${input.query}"}
    repeat: {until: "${steps.search.output.page >= 3}", max: 10}
output:
  pages: "${steps.search.iterations}"
  last: "${steps.search.output.page}"
"#;

async fn paging(url: &str) -> anyhow::Result<()> {
    let (engine, _clock) = engine_and_clock(url).await?;
    engine.deploy(PAGING).await?;
    let id = start(&engine, "flow-paging", json!({"query": "spring"})).await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let output = engine.instance(&id).await?.output.context("no output")?;
    let pages: Vec<i64> = output["pages"]
        .as_array()
        .context("pages is not a list")?
        .iter()
        .filter_map(|page| page["page"].as_i64())
        .collect();
    ensure!(pages == [1, 2, 3], "{output}");
    ensure!(output["last"] == json!(3), "{output}");
    // History shows every run: three scheduled runs, each with its own number.
    let runs = events(&engine, &id, "step_iteration_succeeded").await?;
    let numbers: Vec<i64> = runs
        .iter()
        .filter_map(|run| run["iteration"].as_i64())
        .collect();
    ensure!(numbers == [1, 2, 3], "{runs:?}");
    ensure!(events(&engine, &id, "step_repeat_scheduled").await?.len() == 2);
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_pages_through_a_search_until_the_last_page() {
    on_every_database(|url| async move { paging(&url).await })
        .await
        .unwrap();
}

const REMINDERS: &str = r#"
id: flow-reminders
steps:
  - id: remind
    action: core.echo
    with: {reminder: "${iteration}", acknowledged: "${iteration >= 3}"}
    repeat: {until: "${steps.remind.output.acknowledged}", max: 5, interval: 1h}
output: {reminders: "${size(steps.remind.iterations)}"}
"#;

/// How many runs of `remind` have succeeded.
async fn runs(engine: &Engine, id: &InstanceId) -> anyhow::Result<usize> {
    Ok(events(engine, id, "step_iteration_succeeded").await?.len())
}

async fn reminders(url: &str) -> anyhow::Result<()> {
    let (engine, clock) = engine_and_clock(url).await?;
    engine.deploy(REMINDERS).await?;
    let id = start(&engine, "flow-reminders", json!({})).await?;
    for reminder in 1..=2 {
        // The run ends and the step waits its interval: the instance is waiting.
        wait_until(Duration::from_secs(30), "a reminder to be sent", || async {
            Ok((runs(&engine, &id).await? == reminder).then_some(()))
        })
        .await?;
        wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;
        let status = engine.instance(&id).await?.steps["remind"].status;
        ensure!(status == StepStatus::Waiting, "{status:?}");
        let scheduled = events(&engine, &id, "step_repeat_scheduled").await?;
        let next = scheduled.last().context("no step_repeat_scheduled")?;
        ensure!(next["iteration"] == json!(reminder + 1), "{next}");
        ensure!(next["fire_at"].is_string(), "{next}");
        clock.advance(Duration::from_secs(59 * 60));
        engine.tick().await?;
        ensure!(
            runs(&engine, &id).await? == reminder
                && engine.instance(&id).await?.status == InstanceStatus::Waiting,
            "the next reminder ran before its interval"
        );
        clock.advance(Duration::from_secs(60));
        engine.tick().await?;
    }
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let view = engine.instance(&id).await?;
    ensure!(
        view.output == Some(json!({"reminders": 3})),
        "{:?}",
        view.output
    );
    ensure!(view.steps["remind"].output == Some(json!({"reminder": 3, "acknowledged": true})));
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_sends_reminders_on_an_interval_of_the_injected_clock_until_acknowledged() {
    on_every_database(|url| async move { reminders(&url).await })
        .await
        .unwrap();
}

const EXHAUSTED: &str = r#"
id: flow-exhausted
steps:
  - id: poll
    action: core.echo
    with: {ready: false}
    repeat: {until: "${steps.poll.output.ready}", max: 2}
  - id: give_up
    action: core.echo
    with: {ready: false}
    repeat: {until: "${steps.give_up.output.ready}", max: 2, on_exhausted: continue}
"#;

async fn exhausted(url: &str) -> anyhow::Result<()> {
    let (engine, _clock) = engine_and_clock(url).await?;
    engine.deploy(EXHAUSTED).await?;
    let id = start(&engine, "flow-exhausted", json!({})).await?;
    wait_for_status(&engine, &id, InstanceStatus::Failed).await?;
    let view = engine.instance(&id).await?;
    match &view.error {
        Some(error) if error.code == "repeat_exhausted" => {}
        other => bail!("expected repeat_exhausted, got {other:?}"),
    }
    assert_replay_matches(&engine, &id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_a_repeat_fails_the_instance_with_repeat_exhausted() {
    on_every_database(|url| async move { exhausted(&url).await })
        .await
        .unwrap();
}
