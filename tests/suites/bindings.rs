//! Approvals bound to artifacts, end to end through the in-process engine on every
//! backend: a DAM connector of the test's own fetches an asset's current bytes into the
//! content store, an approval binds what was fetched, and a publishing connector that
//! declares `effects.delivers` may deliver only what was approved. The asset's bytes
//! change in the DAM between approval and delivery: the delivery is refused with
//! `artifact_not_approved` in history and the publisher is never called. Every instance's
//! replayed history must equal its stored state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use serde_json::{Value, json};

use gridflow_connectors::content::{Artifact, ContentStore};
use gridflow_connectors::effects::Effects;
use gridflow_connectors::{ActionSpec, Connector, Error as ConnectorError, Invocation, Registry};
use gridflow_core::{ApprovalStatus, DefinitionId, InstanceId, InstanceStatus, Verdict};
use gridflow_runtime::{Approver, DecisionRequest, Engine, EngineOptions, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_tests::{assert_replay_matches, on_every_database, wait_for_status};

/// A DAM whose one asset's bytes the test may change in place (same version, new bytes).
struct Dam {
    specs: Vec<ActionSpec>,
    bytes: Mutex<Vec<u8>>,
    content: ContentStore,
}

#[async_trait]
impl Connector for Dam {
    fn name(&self) -> &str {
        "dam"
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.specs
    }

    async fn invoke(&self, invocation: Invocation) -> gridflow_connectors::Result<Value> {
        let asset_id = invocation.arguments["asset_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let bytes = self
            .bytes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let content = self.content.put(&bytes, "image/jpeg", "hero.jpg").await?;
        let artifact = Artifact {
            system: "dam".to_owned(),
            asset_id,
            version: "1".to_owned(),
            content,
        };
        Ok(json!({"content": artifact}))
    }
}

/// A partner channel that delivers the artifacts of its `content` argument.
struct Hub {
    specs: Vec<ActionSpec>,
    calls: AtomicUsize,
    content: ContentStore,
}

#[async_trait]
impl Connector for Hub {
    fn name(&self) -> &str {
        "hub"
    }

    fn actions(&self) -> &[ActionSpec] {
        &self.specs
    }

    async fn invoke(&self, invocation: Invocation) -> gridflow_connectors::Result<Value> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let artifacts: Vec<Artifact> =
            serde_json::from_value(invocation.arguments["content"].clone()).map_err(|error| {
                ConnectorError::permanent("invalid_arguments", format!("content: {error}"))
            })?;
        for artifact in &artifacts {
            self.content.read(&artifact.content).await?;
        }
        Ok(json!({"delivered": artifacts.len()}))
    }
}

fn spec(name: &str, arguments: Value, output: Value, effects: Effects) -> ActionSpec {
    ActionSpec {
        name: name.to_owned(),
        description: format!("the test's {name}"),
        arguments,
        output,
        effects,
    }
}

struct Fixture {
    engine: Engine,
    dam: Arc<Dam>,
    hub: Arc<Hub>,
    _content: tempfile::TempDir,
}

async fn fixture(url: &str) -> anyhow::Result<Fixture> {
    let folder = tempfile::tempdir()?;
    let content = ContentStore::new(folder.path(), 1024 * 1024);
    let dam = Arc::new(Dam {
        specs: vec![spec(
            "fetch",
            json!({"type": "object", "required": ["asset_id"],
                   "properties": {"asset_id": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"content": Artifact::schema()}}),
            Effects::default(),
        )],
        bytes: Mutex::new(b"approved bytes".to_vec()),
        content: content.clone(),
    });
    let hub = Arc::new(Hub {
        specs: vec![spec(
            "publish",
            json!({"type": "object", "required": ["content"], "additionalProperties": false,
                   "properties": {"content": {"type": "array", "items": Artifact::schema()}}}),
            json!({"type": "object"}),
            Effects {
                delivers: Some("/content".to_owned()),
                ..Effects::default()
            },
        )],
        calls: AtomicUsize::new(0),
        content,
    });
    let mut registry = Registry::with_builtin();
    registry.register(dam.clone());
    registry.register(hub.clone());
    let store = SqlStore::connect(url, SqlOptions::default()).await?;
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(registry),
        Arc::new(SystemClock),
        EngineOptions::default(),
    )
    .await?;
    engine.deploy(DELIVERY).await?;
    Ok(Fixture {
        engine,
        dam,
        hub,
        _content: folder,
    })
}

/// Fetch, approve what was fetched, fetch again just before delivering, deliver.
const DELIVERY: &str = r#"
id: bound-delivery
steps:
  - id: fetch
    action: dam.fetch
    with: {asset_id: "${input.asset}"}
  - id: review
    needs: [fetch]
    approval: {title: "Send ${input.asset}?", users: [ann], bind: "${steps.fetch.output.content}"}
  - id: refetch
    needs: [review]
    action: dam.fetch
    with: {asset_id: "${input.asset}"}
  - id: deliver
    needs: [refetch]
    action: hub.publish
    with: {content: ["${steps.refetch.output.content}"]}
    retry: {max_attempts: 3, initial_interval: 1s}
"#;

const ANN: Approver<'static> = Approver {
    user: "ann",
    groups: &[],
};

/// Starts an instance, waits for its approval and returns both.
async fn start(fixture: &Fixture) -> anyhow::Result<(InstanceId, gridflow_runtime::ApprovalView)> {
    let engine = &fixture.engine;
    let id = engine
        .start_instance(
            &DefinitionId::from("bound-delivery"),
            None,
            json!({"asset": "hero"}),
            "alice",
        )
        .await?;
    wait_for_status(engine, &id, InstanceStatus::Waiting).await?;
    let page = engine
        .list_approvals(&ANN, Some(ApprovalStatus::Pending), None, 50)
        .await?;
    let approval = page
        .items
        .into_iter()
        .find(|approval| approval.instance_id == id.as_str())
        .context("ann sees the approval")?;
    Ok((id, approval))
}

fn decide(verdict: Verdict) -> DecisionRequest {
    DecisionRequest::Decide {
        decision: verdict,
        comment: None,
        data: Value::Null,
    }
}

/// The `(type, data)` of every event of `id`'s history.
async fn events(engine: &Engine, id: &InstanceId) -> anyhow::Result<Vec<(String, Value)>> {
    Ok(engine
        .history(id)
        .await?
        .into_iter()
        .map(|event| (event.event_type, event.data))
        .collect())
}

async fn approved_artifact_is_delivered(url: &str) -> anyhow::Result<()> {
    let fixture = fixture(url).await?;
    let (id, approval) = start(&fixture).await?;
    let bound = approval
        .artifacts
        .clone()
        .context("the approval shows its artifacts")?;
    let fetched = fixture.engine.instance(&id).await?.steps["fetch"]
        .output
        .clone()
        .context("fetch output")?;
    ensure!(bound == json!([fetched["content"]]), "{bound} vs {fetched}");

    let view = fixture
        .engine
        .decide(&approval.id, &ANN, decide(Verdict::Approve))
        .await?;
    ensure!(view.status == "approved" && view.artifacts.as_ref() == Some(&bound));
    wait_for_status(&fixture.engine, &id, InstanceStatus::Completed).await?;
    ensure!(fixture.hub.calls.load(Ordering::SeqCst) == 1);
    let instance = fixture.engine.instance(&id).await?;
    let review = instance.steps["review"]
        .output
        .clone()
        .context("review output")?;
    ensure!(
        review["decision"] == "approved" && review["artifacts"] == bound,
        "{review}"
    );
    let decided = events(&fixture.engine, &id).await?;
    let decided = decided
        .iter()
        .find(|(kind, _)| kind == "approval_decided")
        .context("approval_decided")?;
    ensure!(decided.1["artifacts"] == bound, "{decided:?}");
    assert_replay_matches(&fixture.engine, &id).await
}

async fn changed_bytes_are_refused(url: &str) -> anyhow::Result<()> {
    let fixture = fixture(url).await?;
    let (id, approval) = start(&fixture).await?;
    let approved_digest = approval
        .artifacts
        .as_ref()
        .map(|bound| bound[0]["sha256"].clone());
    // The DAM's file changes after it was fetched for approval, under the same version.
    *fixture
        .dam
        .bytes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = b"edited bytes".to_vec();
    fixture
        .engine
        .decide(&approval.id, &ANN, decide(Verdict::Approve))
        .await?;
    wait_for_status(&fixture.engine, &id, InstanceStatus::Failed).await?;

    let instance = fixture.engine.instance(&id).await?;
    let error = instance.steps["deliver"]
        .error
        .clone()
        .context("deliver failed")?;
    let offered = instance.steps["refetch"]
        .output
        .clone()
        .context("refetch output")?;
    let offered_digest = offered["content"]["sha256"].as_str().unwrap_or_default();
    let approved_digest = approved_digest
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or("?");
    ensure!(
        error.code == "artifact_not_approved"
            && !error.retryable
            && error
                .message
                .contains(&format!("(sha256 {offered_digest})"))
            && error.message.contains(&format!(
                "approved artifacts: dam asset hero version 1 (sha256 {approved_digest})"
            )),
        "{error:?}"
    );
    ensure!(offered_digest != approved_digest);
    refused_in_history(&fixture, &id).await?;
    assert_replay_matches(&fixture.engine, &id).await
}

/// The delivery failed once, for good, with `artifact_not_approved`, and the publisher
/// was never called.
async fn refused_in_history(fixture: &Fixture, id: &InstanceId) -> anyhow::Result<()> {
    let history = events(&fixture.engine, id).await?;
    let about_deliver: Vec<&(String, Value)> = history
        .iter()
        .filter(|(_, data)| data["step"] == "deliver")
        .collect();
    let kinds: Vec<&str> = about_deliver
        .iter()
        .map(|(kind, _)| kind.as_str())
        .collect();
    ensure!(
        kinds == ["step_scheduled", "step_started", "step_failed"],
        "no retry: {kinds:?}"
    );
    let (_, failed) = about_deliver[2];
    ensure!(
        failed["error"]["code"] == "artifact_not_approved",
        "{failed}"
    );
    if fixture.hub.calls.load(Ordering::SeqCst) != 0 {
        bail!("the publisher was called");
    }
    Ok(())
}

async fn rejected_approval_binds_nothing(url: &str) -> anyhow::Result<()> {
    let fixture = fixture(url).await?;
    let (id, approval) = start(&fixture).await?;
    let view = fixture
        .engine
        .decide(&approval.id, &ANN, decide(Verdict::Reject))
        .await?;
    ensure!(view.status == "rejected" && view.artifacts.is_some());
    wait_for_status(&fixture.engine, &id, InstanceStatus::Failed).await?;
    let error = fixture.engine.instance(&id).await?.steps["deliver"]
        .error
        .clone()
        .context("deliver failed")?;
    ensure!(
        error.code == "artifact_not_approved" && error.message.contains("none (no approval"),
        "{error:?}"
    );
    refused_in_history(&fixture, &id).await?;
    assert_replay_matches(&fixture.engine, &id).await
}

#[tokio::test]
async fn an_approved_artifact_is_delivered_and_the_decision_records_it() -> anyhow::Result<()> {
    on_every_database(|url| async move { approved_artifact_is_delivered(&url).await }).await
}

#[tokio::test]
async fn bytes_changed_after_approval_are_refused_without_reaching_the_partner()
-> anyhow::Result<()> {
    on_every_database(|url| async move { changed_bytes_are_refused(&url).await }).await
}

#[tokio::test]
async fn a_rejected_approval_binds_nothing() -> anyhow::Result<()> {
    on_every_database(|url| async move { rejected_approval_binds_nothing(&url).await }).await
}
