//! Audit end to end on a real SQLite file (and PostgreSQL when `DATABASE_URL` is set for
//! the parts that do not need a file): tampering with the database through SQL is
//! reported, naming instance and seq; an export of 1,000 instances verifies offline with
//! the real binary and a flipped byte names its line; replay at every seq equals the
//! state the runtime committed at that seq.

// Helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use gridflow_connectors::Registry;
use gridflow_core::audit::{AuditRecord, Report};
use gridflow_core::audit::{ChainHead, Checkpoint, ProblemKind};
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent};
use gridflow_runtime::{AuditKey, Engine, EngineOptions, InstanceView, ManualClock, SystemClock};
use gridflow_store::sql::{SqlOptions, SqlStore};
use gridflow_store::{
    AuditFilter, AuditStore, Batch, BatchCommitter, DefinitionRecord, DefinitionStore, Deployed,
    InstanceFilter, InstanceHead, InstanceReader, InstanceRecord, Page, Store, TimerRecord,
    WorkItem, WorkReader,
};
use gridflow_tests::{engine_with_store, gridflow_binary, wait_until};

const WORKFLOW: &str = r#"
id: audit-suite
steps:
  - id: fetch
    action: core.echo
    with: {asset: "a-1"}
  - id: flaky
    needs: [fetch]
    action: core.fail_until
    with: {attempts: 2}
    retry: {max_attempts: 3, initial_interval: 10ms, jitter: false}
  - id: deliver
    needs: [flaky]
    action: core.noop
"#;

/// An engine on `store` that signs checkpoints with `key`.
async fn engine_with_key(store: Arc<dyn Store>, key: AuditKey) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        audit_key: Some(key),
        ..EngineOptions::default()
    };
    engine_with_store(store, Arc::new(SystemClock), options).await
}

/// Starts `count` instances and waits until all have completed.
async fn run_instances(engine: &Engine, count: usize) -> anyhow::Result<Vec<InstanceId>> {
    engine.deploy_as(WORKFLOW, "alice").await?;
    let mut finished = engine.subscribe_finished();
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(
            engine
                .start_instance(&DefinitionId::from("audit-suite"), None, json!({}), "alice")
                .await?,
        );
    }
    let mut done = 0;
    tokio::time::timeout(Duration::from_secs(120), async {
        while done < count {
            let (_, status) = finished.recv().await?;
            ensure!(
                status == InstanceStatus::Completed,
                "an instance ended {status}"
            );
            done += 1;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .context("instances did not complete in time")??;
    ids.sort();
    Ok(ids)
}

fn problem_of(report: &Report, instance: &InstanceId) -> Option<(ProblemKind, u64)> {
    report
        .problems
        .iter()
        .find(|problem| problem.instance_id.as_ref() == Some(instance))
        .map(|problem| (problem.kind, problem.seq.unwrap_or(0)))
}

#[tokio::test]
async fn tampering_with_a_real_sqlite_file_is_reported_by_instance_and_seq() -> anyhow::Result<()> {
    let (_folder, url) = gridflow_store::test_util::sqlite_file();
    let store = SqlStore::connect(&url, SqlOptions::default()).await?;
    let engine = engine_with_key(Arc::new(store.clone()), AuditKey::generate()).await?;
    let ids = run_instances(&engine, 7).await?;

    let clean = engine.verify().await?;
    ensure!(
        clean.ok,
        "an untouched database must verify: {:?}",
        clean.problems
    );
    ensure!(clean.instances == 7 && clean.events > 7 * 8, "{clean:?}");
    ensure!(
        clean.audit_records == 1,
        "the deploy is in the audit log: {clean:?}"
    );
    engine.checkpoint().await?;
    let checked = engine.verify().await?;
    ensure!(checked.ok && checked.checkpoints == 1, "{checked:?}");

    // Tamper through a separate connection, as someone with the file would.
    let db = Database::connect(url.as_str()).await?;
    let sql = |statement: String| {
        let db = db.clone();
        async move { db.execute_unprepared(&statement).await.map(|_| ()) }
    };
    let [
        edited,
        deleted,
        swapped,
        gone,
        truncated,
        rewritten,
        untouched,
    ] = &ids[..]
    else {
        unreachable!("seven instances were started");
    };
    sql(format!(
        "UPDATE history_event SET data = '{{\"step\":\"fetch\",\"attempt\":9}}' WHERE instance_id = '{edited}' AND seq = 3"
    ))
    .await?;
    sql(format!(
        "DELETE FROM history_event WHERE instance_id = '{deleted}' AND seq = 4"
    ))
    .await?;
    for statement in [
        format!("UPDATE history_event SET seq = -1 WHERE instance_id = '{swapped}' AND seq = 5"),
        format!("UPDATE history_event SET seq = 5 WHERE instance_id = '{swapped}' AND seq = 6"),
        format!("UPDATE history_event SET seq = 6 WHERE instance_id = '{swapped}' AND seq = -1"),
    ] {
        sql(statement).await?;
    }
    sql(format!(
        "DELETE FROM history_event WHERE instance_id = '{gone}'"
    ))
    .await?;
    sql(format!("DELETE FROM instance WHERE id = '{gone}'")).await?;
    sql(format!(
        "DELETE FROM history_event WHERE instance_id = '{truncated}' AND seq > 4"
    ))
    .await?;
    // Truncated, and the instance row "fixed" to match: only the checkpoint can tell.
    sql(format!(
        "DELETE FROM history_event WHERE instance_id = '{rewritten}' AND seq > 5"
    ))
    .await?;
    sql(format!(
        "UPDATE instance SET last_seq = 5, last_hash = (SELECT hash FROM history_event WHERE instance_id = '{rewritten}' AND seq = 5) WHERE id = '{rewritten}'"
    ))
    .await?;

    let report = engine.verify().await?;
    ensure!(!report.ok);
    assert_eq!(
        problem_of(&report, edited),
        Some((ProblemKind::Edited, 3)),
        "{report:#?}"
    );
    assert_eq!(
        problem_of(&report, deleted),
        Some((ProblemKind::Deleted, 4)),
        "{report:#?}"
    );
    assert_eq!(
        problem_of(&report, swapped),
        Some((ProblemKind::Reordered, 5)),
        "{report:#?}"
    );
    assert_eq!(
        problem_of(&report, gone),
        Some((ProblemKind::MissingInstance, 1)),
        "{report:#?}"
    );
    assert_eq!(
        problem_of(&report, truncated),
        Some((ProblemKind::Truncated, 5)),
        "{report:#?}"
    );
    assert_eq!(
        problem_of(&report, rewritten),
        Some((ProblemKind::Truncated, 6)),
        "{report:#?}"
    );
    assert_eq!(problem_of(&report, untouched), None, "{report:#?}");
    assert_eq!(report.problems.len(), 6, "{report:#?}");

    // An edited audit log record and an edited checkpoint are reported too.
    sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1".to_owned()).await?;
    sql("UPDATE checkpoint SET instances = 6 WHERE seq = 1".to_owned()).await?;
    let report = engine.verify().await?;
    ensure!(
        report
            .problems
            .iter()
            .any(|problem| problem.message.starts_with("audit log")),
        "{report:#?}"
    );
    ensure!(
        report
            .problems
            .iter()
            .any(|problem| problem.kind == ProblemKind::Checkpoint),
        "{report:#?}"
    );
    db.close().await?;
    Ok(())
}

#[tokio::test]
async fn an_export_of_1000_instances_verifies_offline_and_a_flipped_byte_names_its_line()
-> anyhow::Result<()> {
    let (folder, url) = gridflow_store::test_util::sqlite_file();
    let store = SqlStore::connect(&url, SqlOptions::default()).await?;
    let key = AuditKey::generate();
    let engine = engine_with_key(Arc::new(store), key.clone()).await?;
    run_instances(&engine, 1000).await?;
    engine.checkpoint().await?;

    let (lines, mut receiver) = mpsc::channel(64);
    let exporting = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.export(&AuditFilter::default(), lines).await })
    };
    let mut text = String::new();
    while let Some(line) = receiver.recv().await {
        text.push_str(&line);
    }
    exporting.await??;
    let export = folder.path().join("export.jsonl");
    std::fs::write(&export, &text)?;
    let public_key = key.public_key().to_string();

    let binary = gridflow_binary()?;
    let verify = |file: &std::path::Path| {
        std::process::Command::new(&binary)
            .args(["audit", "verify", "--file"])
            .arg(file)
            .args(["--key", &public_key])
            .output()
    };
    let output = verify(&export)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "clean export failed: {stdout}");
    ensure!(stdout.contains("in 1000 instances"), "{stdout}");

    // Flip one byte in the middle of the file.
    let mut bytes = text.into_bytes();
    let position = bytes.len() / 2;
    let position = position
        + bytes[position..]
            .iter()
            .position(|b| b.is_ascii_alphanumeric())
            .unwrap();
    bytes[position] ^= 0x01;
    let line = bytes[..position]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count()
        + 1;
    let flipped = folder.path().join("flipped.jsonl");
    std::fs::write(&flipped, &bytes)?;
    let output = verify(&flipped)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.code() == Some(1),
        "a flipped byte must fail: {stdout}"
    );
    ensure!(
        stdout.contains(&format!("first failing line: {line}")),
        "expected line {line}: {stdout}"
    );
    Ok(())
}

/// A store that remembers every instance row that each commit wrote: the states the
/// runtime had, at the seq each commit ended with.
struct RecordingStore {
    inner: SqlStore,
    written: Mutex<Vec<InstanceRecord>>,
}

#[async_trait]
impl DefinitionStore for RecordingStore {
    async fn deploy(
        &self,
        id: &DefinitionId,
        content_hash: &str,
        source: &str,
        definition: &Value,
        at: DateTime<Utc>,
    ) -> gridflow_store::Result<Deployed> {
        self.inner
            .deploy(id, content_hash, source, definition, at)
            .await
    }
    async fn definition(
        &self,
        id: &DefinitionId,
        version: Option<u32>,
    ) -> gridflow_store::Result<DefinitionRecord> {
        self.inner.definition(id, version).await
    }
    async fn list_definitions(&self) -> gridflow_store::Result<Vec<DefinitionRecord>> {
        self.inner.list_definitions().await
    }
    async fn definition_versions(
        &self,
        id: &DefinitionId,
    ) -> gridflow_store::Result<Vec<DefinitionRecord>> {
        self.inner.definition_versions(id).await
    }
}

#[async_trait]
impl InstanceReader for RecordingStore {
    async fn instance(&self, id: &InstanceId) -> gridflow_store::Result<InstanceRecord> {
        self.inner.instance(id).await
    }
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> gridflow_store::Result<Page<InstanceRecord>> {
        self.inner.list_instances(filter, cursor, limit).await
    }
    async fn history(&self, id: &InstanceId) -> gridflow_store::Result<Vec<RecordedEvent>> {
        self.inner.history(id).await
    }
    async fn history_after(
        &self,
        id: &InstanceId,
        after_seq: u64,
    ) -> gridflow_store::Result<Vec<RecordedEvent>> {
        self.inner.history_after(id, after_seq).await
    }
    async fn unfinished_instances(&self) -> gridflow_store::Result<Vec<InstanceId>> {
        self.inner.unfinished_instances().await
    }
    async fn children(
        &self,
        parent: &InstanceId,
    ) -> gridflow_store::Result<Vec<gridflow_store::ChildRecord>> {
        self.inner.children(parent).await
    }
}

#[async_trait]
impl BatchCommitter for RecordingStore {
    async fn commit(&self, batch: &Batch) -> gridflow_store::Result<()> {
        self.inner.commit(batch).await?;
        let mut written = self.written.lock().unwrap();
        written.extend(batch.instances.iter().map(|write| write.record.clone()));
        Ok(())
    }
}

#[async_trait]
impl WorkReader for RecordingStore {
    async fn queued_work(&self) -> gridflow_store::Result<Vec<WorkItem>> {
        self.inner.queued_work().await
    }
    async fn due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> gridflow_store::Result<Vec<TimerRecord>> {
        self.inner.due_timers(now, limit).await
    }
    async fn next_timer_at(&self) -> gridflow_store::Result<Option<DateTime<Utc>>> {
        self.inner.next_timer_at().await
    }
}

#[async_trait]
impl AuditStore for RecordingStore {
    async fn instance_heads(
        &self,
        filter: &AuditFilter,
    ) -> gridflow_store::Result<Vec<InstanceHead>> {
        self.inner.instance_heads(filter).await
    }
    async fn events_after(
        &self,
        filter: &AuditFilter,
        after: Option<(&InstanceId, u64)>,
        limit: u32,
    ) -> gridflow_store::Result<Vec<RecordedEvent>> {
        self.inner.events_after(filter, after, limit).await
    }
    async fn append_audit_record(
        &self,
        event_type: &str,
        at: DateTime<Utc>,
        actor: &str,
        data: Value,
    ) -> gridflow_store::Result<AuditRecord> {
        self.inner
            .append_audit_record(event_type, at, actor, data)
            .await
    }
    async fn audit_log(&self) -> gridflow_store::Result<Vec<AuditRecord>> {
        self.inner.audit_log().await
    }
    async fn add_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        heads: &[ChainHead],
    ) -> gridflow_store::Result<()> {
        self.inner.add_checkpoint(checkpoint, heads).await
    }
    async fn checkpoints(&self) -> gridflow_store::Result<Vec<Checkpoint>> {
        self.inner.checkpoints().await
    }
    async fn checkpoint_heads(&self, seq: u64) -> gridflow_store::Result<Vec<ChainHead>> {
        self.inner.checkpoint_heads(seq).await
    }
}

// The capabilities the audit test does not watch: passed straight through.
#[async_trait]
impl gridflow_store::CursorStore for RecordingStore {
    async fn load_cursor(&self, source: &str) -> gridflow_store::Result<Option<String>> {
        self.inner.load_cursor(source).await
    }
    async fn save_cursor(
        &self,
        source: &str,
        cursor: &str,
        at: DateTime<Utc>,
    ) -> gridflow_store::Result<()> {
        self.inner.save_cursor(source, cursor, at).await
    }
}

#[async_trait]
impl gridflow_store::WebhookStore for RecordingStore {
    async fn claim_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> gridflow_store::Result<gridflow_store::EventClaim> {
        self.inner
            .claim_webhook_event(source, event_id, at, stale_before)
            .await
    }
    async fn complete_webhook_event(
        &self,
        source: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> gridflow_store::Result<()> {
        self.inner
            .complete_webhook_event(source, event_id, at)
            .await
    }
    async fn release_webhook_event(
        &self,
        source: &str,
        event_id: &str,
    ) -> gridflow_store::Result<()> {
        self.inner.release_webhook_event(source, event_id).await
    }
    async fn prune_webhook_events(&self, before: DateTime<Utc>) -> gridflow_store::Result<u64> {
        self.inner.prune_webhook_events(before).await
    }
}

#[async_trait]
impl gridflow_store::TriggerStore for RecordingStore {
    async fn claim_tick(&self, tick: &gridflow_store::TickRecord) -> gridflow_store::Result<bool> {
        self.inner.claim_tick(tick).await
    }
    async fn update_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        tick_at: DateTime<Utc>,
        from: gridflow_store::TickState,
        to: gridflow_store::TickState,
        instance_id: Option<&InstanceId>,
    ) -> gridflow_store::Result<bool> {
        self.inner
            .update_tick(definition_id, trigger_index, tick_at, from, to, instance_id)
            .await
    }
    async fn last_tick(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        state: Option<gridflow_store::TickState>,
    ) -> gridflow_store::Result<Option<gridflow_store::TickRecord>> {
        self.inner
            .last_tick(definition_id, trigger_index, state)
            .await
    }
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> gridflow_store::Result<bool> {
        self.inner
            .acquire_lease(name, holder, now, expires_at)
            .await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> gridflow_store::Result<()> {
        self.inner.release_lease(name, holder).await
    }
    async fn lease_holder(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> gridflow_store::Result<Option<String>> {
        self.inner.lease_holder(name, now).await
    }
}

#[async_trait]
impl gridflow_store::StoreCounts for RecordingStore {
    async fn instance_counts(&self) -> gridflow_store::Result<Vec<(InstanceStatus, u64)>> {
        self.inner.instance_counts().await
    }
    async fn queued_work_count(&self) -> gridflow_store::Result<u64> {
        self.inner.queued_work_count().await
    }
}

#[async_trait]
impl gridflow_store::TokenStore for RecordingStore {
    async fn create_token(
        &self,
        token: &gridflow_store::TokenRecord,
    ) -> gridflow_store::Result<()> {
        self.inner.create_token(token).await
    }
    async fn token_by_hash(
        &self,
        hash: &str,
    ) -> gridflow_store::Result<Option<gridflow_store::TokenRecord>> {
        self.inner.token_by_hash(hash).await
    }
    async fn list_tokens(&self) -> gridflow_store::Result<Vec<gridflow_store::TokenRecord>> {
        self.inner.list_tokens().await
    }
    async fn revoke_token(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> gridflow_store::Result<(gridflow_store::TokenRecord, bool)> {
        self.inner.revoke_token(id, at).await
    }
}

#[async_trait]
impl gridflow_store::ApprovalReader for RecordingStore {
    async fn approval(&self, id: &str) -> gridflow_store::Result<gridflow_store::ApprovalRecord> {
        self.inner.approval(id).await
    }
    async fn list_approvals(
        &self,
        filter: &gridflow_store::ApprovalFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> gridflow_store::Result<gridflow_store::Page<gridflow_store::ApprovalRecord>> {
        self.inner.list_approvals(filter, cursor, limit).await
    }
}

#[async_trait]
impl gridflow_store::SignalWaitStore for RecordingStore {
    async fn signal_key_paths(&self, signal: &str) -> gridflow_store::Result<Vec<String>> {
        self.inner.signal_key_paths(signal).await
    }
    async fn signal_waits(
        &self,
        signal: &str,
        keys: &[gridflow_store::SignalKey],
    ) -> gridflow_store::Result<Vec<gridflow_store::SignalWaitRecord>> {
        self.inner.signal_waits(signal, keys).await
    }
}

#[async_trait]
impl gridflow_store::RightsStore for RecordingStore {
    async fn observe_rights(
        &self,
        windows: &[gridflow_store::ObservedWindow],
    ) -> gridflow_store::Result<()> {
        self.inner.observe_rights(windows).await
    }
    async fn rights_window(
        &self,
        system: &str,
        asset_id: &str,
    ) -> gridflow_store::Result<Option<gridflow_store::RightsWindowRecord>> {
        self.inner.rights_window(system, asset_id).await
    }
    async fn due_rights_windows(
        &self,
        definition_id: &DefinitionId,
        trigger_index: u32,
        system: Option<&str>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> gridflow_store::Result<Vec<gridflow_store::RightsWindowRecord>> {
        self.inner
            .due_rights_windows(definition_id, trigger_index, system, until, limit)
            .await
    }
    async fn next_rights_end_after(
        &self,
        system: Option<&str>,
        after: DateTime<Utc>,
    ) -> gridflow_store::Result<Option<DateTime<Utc>>> {
        self.inner.next_rights_end_after(system, after).await
    }
    async fn record_rights_firing(
        &self,
        firing: &gridflow_store::RightsFiring,
    ) -> gridflow_store::Result<bool> {
        self.inner.record_rights_firing(firing).await
    }
    async fn rights_firings(
        &self,
        definition_id: &DefinitionId,
    ) -> gridflow_store::Result<Vec<gridflow_store::RightsFiring>> {
        self.inner.rights_firings(definition_id).await
    }
}

#[async_trait]
impl gridflow_store::LedgerStore for RecordingStore {
    async fn apply_ledger(
        &self,
        writes: &[gridflow_store::LedgerWrite],
    ) -> gridflow_store::Result<u64> {
        self.inner.apply_ledger(writes).await
    }
    async fn list_deliveries(
        &self,
        filter: &gridflow_store::LedgerFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> gridflow_store::Result<gridflow_store::Page<gridflow_store::ledger::Delivery>> {
        self.inner.list_deliveries(filter, cursor, limit).await
    }
    async fn delivery(
        &self,
        id: &str,
    ) -> gridflow_store::Result<(
        gridflow_store::ledger::Delivery,
        Vec<gridflow_store::ledger::Entry>,
    )> {
        self.inner.delivery(id).await
    }
    async fn deliveries_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> gridflow_store::Result<Vec<gridflow_store::ledger::Delivery>> {
        self.inner.deliveries_after(after, limit).await
    }
    async fn entries_after(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> gridflow_store::Result<Vec<gridflow_store::ledger::Entry>> {
        self.inner.entries_after(after, limit).await
    }
}

#[async_trait]
impl Store for RecordingStore {
    async fn health(&self) -> gridflow_store::Result<()> {
        self.inner.health().await
    }
}

#[tokio::test]
async fn replay_at_every_committed_seq_equals_the_state_the_runtime_had() -> anyhow::Result<()> {
    let (_folder, url) = gridflow_store::test_util::sqlite_file();
    let store = Arc::new(RecordingStore {
        inner: SqlStore::connect(&url, SqlOptions::default()).await?,
        written: Mutex::new(Vec::new()),
    });
    // Every commit writes its state here, so that each can be compared with a replay.
    let options = EngineOptions {
        audit_key: Some(AuditKey::generate()),
        snapshot_every_commit: true,
        ..EngineOptions::default()
    };
    let engine = engine_with_store(store.clone(), Arc::new(SystemClock), options).await?;
    let ids = run_instances(&engine, 3).await?;

    let written = store.written.lock().unwrap().clone();
    for id in &ids {
        let replayed: BTreeMap<u64, InstanceView> =
            engine.replay_states(id).await?.into_iter().collect();
        let history = engine.history(id).await?;
        ensure!(replayed.len() == history.len(), "one state per event");
        let commits: Vec<&InstanceRecord> =
            written.iter().filter(|record| &record.id == id).collect();
        ensure!(
            commits.len() >= 4,
            "instance {id}: only {} commits",
            commits.len()
        );
        for record in commits {
            let live = InstanceView::from_record(record)?;
            let at = replayed.get(&record.last_seq).with_context(|| {
                format!(
                    "instance {id}: no replayed state at seq {}",
                    record.last_seq
                )
            })?;
            assert_eq!(at, &live, "instance {id}: seq {}", record.last_seq);
            // The HTTP-facing replay at that seq says the same.
            let folded = engine.replay(id, Some(record.last_seq)).await?;
            assert_eq!(
                folded.state, live,
                "instance {id}: replay at {}",
                record.last_seq
            );
        }
        // The per-event diff accounts for every event.
        let diff = engine.replay_diff(id).await?;
        ensure!(diff.len() == history.len());
        ensure!(
            diff.iter()
                .all(|event| !event.changes.is_empty() || event.event_type == "step_started")
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_checkpoint_is_due_after_its_interval_by_the_injected_clock() -> anyhow::Result<()> {
    let (_folder, url) = gridflow_store::test_util::sqlite_file();
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp_micros(1_800_000_000_000_000).unwrap(),
    ));
    let engine = Engine::start(
        Arc::new(SqlStore::connect(&url, SqlOptions::default()).await?),
        Arc::new(Registry::with_builtin()),
        clock.clone(),
        EngineOptions {
            checkpoint_interval: Some(Duration::from_secs(3600)),
            ..EngineOptions::default()
        },
    )
    .await?;
    // The periodic task takes the first checkpoint at start-up; wait for it.
    wait_until(Duration::from_secs(10), "the first checkpoint", || async {
        Ok((!engine.checkpoints().await?.is_empty()).then_some(()))
    })
    .await?;
    ensure!(engine.checkpoint_if_due().await?.is_none(), "not due yet");
    clock.advance(Duration::from_secs(3600));
    let second = engine
        .checkpoint_if_due()
        .await?
        .context("due after the interval")?;
    ensure!(second.body.seq == 2);
    let chain = engine.checkpoints().await?;
    ensure!(
        second.body.prev_checkpoint_hash == chain[0].hash,
        "checkpoints are chained"
    );
    ensure!(engine.verify().await?.ok);
    Ok(())
}
