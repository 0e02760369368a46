//! The run-time limits of `[limits]` on every backend: a signal payload too large, signals
//! kept beyond their count or bytes, an action output too large, an inbound event too
//! large. Each is refused with an error naming its limit, and nothing of it is stored.

use std::num::{NonZeroU32, NonZeroU64};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use gridflow_core::limits::Limits;
use gridflow_core::{DefinitionId, InstanceStatus};
use gridflow_runtime::Error;
use gridflow_store::InstanceFilter;
use gridflow_tests::{engine_with_limits, on_every_database, wait_for_status};

/// A JSON string payload of exactly `bytes` bytes (quotes included).
fn payload_of(bytes: usize) -> Value {
    json!("x".repeat(bytes - 2))
}

/// The refusal's limit key, or a failure naming what came instead.
fn refused_by(outcome: Result<(), Error>) -> anyhow::Result<String> {
    match outcome {
        Err(Error::LimitExceeded(exceeded)) => {
            ensure!(
                exceeded.to_string().contains(&exceeded.key()),
                "the message names its limit: {exceeded}"
            );
            Ok(exceeded.key())
        }
        other => bail!("expected a refusal by a limit, got {other:?}"),
    }
}

/// `first` waits for `go`; `later` (after it) waits for `note`, so `note` signals sent
/// meanwhile are kept.
const TWO_WAITS: &str = r#"
id: two-waits
steps:
  - id: first
    wait: {signal: go}
  - id: later
    needs: [first]
    wait: {signal: note}
output: {note: "${steps.later.output.payload}"}
"#;

async fn signal_limits(url: &str) -> anyhow::Result<()> {
    let limits = Limits {
        max_signal_bytes: NonZeroU64::new(200).context("not zero")?,
        max_pending_signals: NonZeroU32::new(3).context("not zero")?,
        max_pending_signal_bytes: NonZeroU64::new(300).context("not zero")?,
        ..Limits::default()
    };
    let engine = engine_with_limits(url, limits).await?;
    engine.deploy(TWO_WAITS).await?;
    let id = engine
        .start_instance(&DefinitionId::from("two-waits"), None, json!({}), "ana")
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Waiting).await?;
    let events_before = engine.history(&id).await?.len();
    let signal = |name: &'static str, bytes: usize| {
        let engine = engine.clone();
        let id = id.clone();
        async move { engine.signal(&id, name, payload_of(bytes), "partner").await }
    };

    // Too large in itself, even for the wait step that would consume it now.
    assert_eq!(
        refused_by(signal("go", 201).await)?,
        "limits.max_signal_bytes"
    );
    assert_eq!(
        refused_by(signal("note", 201).await)?,
        "limits.max_signal_bytes"
    );
    // Kept signals: 150 + 100 bytes fit, 100 more would make 350 bytes.
    signal("note", 150).await?;
    signal("note", 100).await?;
    assert_eq!(
        refused_by(signal("note", 100).await)?,
        "limits.max_pending_signal_bytes"
    );
    // A third small one fits; a fourth passes the count.
    signal("note", 10).await?;
    assert_eq!(
        refused_by(signal("note", 5).await)?,
        "limits.max_pending_signals"
    );
    let history = engine.history(&id).await?;
    ensure!(
        history.len() == events_before + 3,
        "only the three accepted signals were recorded: {} events after {events_before}",
        history.len()
    );
    ensure!(
        history
            .iter()
            .filter(|event| event.event_type == "signal_received")
            .all(|event| event.data["payload"].as_str().map(str::len) != Some(199)),
        "no refused payload is in history"
    );

    // A signal that a wait step consumes at once is not kept, so a full store of kept
    // signals does not refuse it; `later` then consumes the oldest kept one.
    signal("go", 20).await?;
    wait_for_status(&engine, &id, InstanceStatus::Completed).await?;
    let view = engine.instance(&id).await?;
    ensure!(
        view.output
            .as_ref()
            .and_then(|output| output["note"].as_str())
            .map(str::len)
            == Some(148),
        "the oldest kept signal (150 bytes) was consumed: {:?}",
        view.output
    );
    let replayed = engine.replay(&id, None).await?;
    ensure!(
        replayed.matches_stored == Some(true),
        "replay equals the stored state"
    );
    Ok(())
}

#[tokio::test]
async fn signals_over_their_limits_are_refused_and_not_stored() -> anyhow::Result<()> {
    on_every_database(|url| async move { signal_limits(&url).await }).await
}

const BIG_OUTPUT: &str = r#"
id: big-output
input:
  type: object
  properties:
    blob: {type: string}
steps:
  - id: big
    action: core.echo
    with: {blob: "${input.blob}"}
    retry: {max_attempts: 3, initial_interval: 10ms, jitter: false}
"#;

async fn output_limit(url: &str) -> anyhow::Result<()> {
    let limits = Limits {
        max_output_bytes: NonZeroU64::new(100).context("not zero")?,
        ..Limits::default()
    };
    let engine = engine_with_limits(url, limits).await?;
    engine.deploy(BIG_OUTPUT).await?;
    let definition = DefinitionId::from("big-output");
    let small = engine
        .start_instance(&definition, None, json!({"blob": "small"}), "ana")
        .await?;
    wait_for_status(&engine, &small, InstanceStatus::Completed).await?;

    let blob = "y".repeat(200);
    let id = engine
        .start_instance(&definition, None, json!({"blob": blob}), "ana")
        .await?;
    wait_for_status(&engine, &id, InstanceStatus::Failed).await?;
    let view = serde_json::to_value(engine.instance(&id).await?)?;
    let step = &view["steps"]["big"];
    ensure!(step["status"] == "failed", "step failed: {step}");
    ensure!(step["attempts"] == 1, "not retried: {step}");
    ensure!(step["output"].is_null(), "no output kept: {step}");
    ensure!(step["error"]["code"] == "output_too_large", "code: {step}");
    let message = step["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("limits.max_output_bytes") && message.contains("211 bytes"),
        "the error names the limit and the size: {message}"
    );
    let history = engine.history(&id).await?;
    ensure!(
        !history
            .iter()
            .any(|event| event.event_type == "step_succeeded"),
        "no output entered history"
    );
    let replayed = engine.replay(&id, None).await?;
    ensure!(
        replayed.matches_stored == Some(true),
        "replay equals the stored state"
    );
    Ok(())
}

#[tokio::test]
async fn an_output_over_the_limit_fails_the_step_for_good() -> anyhow::Result<()> {
    on_every_database(|url| async move { output_limit(&url).await }).await
}

const ON_EVENT: &str = r#"
id: on-event
triggers:
  - event: dam.changed
    input: {asset: "${event.asset}"}
input:
  type: object
  properties:
    asset: {type: string}
steps:
  - id: note
    action: core.noop
"#;

async fn event_limit(url: &str) -> anyhow::Result<()> {
    let limits = Limits {
        max_signal_bytes: NonZeroU64::new(100).context("not zero")?,
        ..Limits::default()
    };
    let engine = engine_with_limits(url, limits).await?;
    engine.deploy(ON_EVENT).await?;
    let big = json!({"type": "changed", "asset": "z".repeat(120)});
    match engine.deliver_event("dam.changed", &big, "event:dam").await {
        Err(Error::LimitExceeded(exceeded)) => {
            ensure!(exceeded.key() == "limits.max_signal_bytes", "{exceeded}")
        }
        other => bail!("an event over the limit was not refused: {other:?}"),
    }
    let page = engine
        .list_instances(&InstanceFilter::default(), None, 10)
        .await?;
    ensure!(page.items.is_empty(), "nothing started: {:?}", page.items);
    let small = json!({"type": "changed", "asset": "a1"});
    let outcome = engine
        .deliver_event("dam.changed", &small, "event:dam")
        .await?;
    ensure!(
        outcome.started.len() == 1,
        "a small event starts its instance"
    );
    Ok(())
}

#[tokio::test]
async fn an_event_over_the_signal_limit_starts_nothing() -> anyhow::Result<()> {
    on_every_database(|url| async move { event_limit(&url).await }).await
}
