//! Audit on the engine handle: the public key, signed checkpoints, verification of every
//! chain, the streaming export, replay with a diff per event, and the audit log of
//! operator actions that are not instance events.
//!
//! The signing key lives in `audit_key`, and checkpoints are taken in `checkpoint` (on
//! demand here, periodically by a background task there). Verification reads the instance
//! rows' heads first and the events afterwards, a page at a time in (instance, seq) order,
//! and checks each instance's chain on a blocking thread while the next page is read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use gridflow_core::audit::checkpoint::PublicKey;
use gridflow_core::audit::export::{EXPORT_FORMAT, Header, InstanceLine};
use gridflow_core::audit::log::{DEFINITION_DEPLOYED, TOKEN_CREATED, TOKEN_REVOKED};
use gridflow_core::audit::{
    AuditRecord, ChainHead, Change, Checkpoint, ExportLine, LineWriter, Report, Verification,
    json_diff,
};
use gridflow_core::replay::{ReplayError, initial_state, replay_each};
use gridflow_core::{InstanceId, RecordedEvent};
use gridflow_store::{AuditFilter, InstanceHead};

use crate::checkpoint;
use crate::definitions::Deployment;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::view::InstanceView;

pub use crate::audit_key::AuditKey;

/// Events per read while verifying or exporting.
const PAGE: u32 = 10_000;

/// What changed in an instance at one event of its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventDiff {
    /// The event's seq.
    pub seq: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who caused it.
    pub actor: String,
    /// What changed in the instance (as `GET /instances/{id}` shows it).
    pub changes: Vec<Change>,
}

fn replay_error(error: ReplayError) -> Error {
    Error::Internal(error.to_string())
}

impl Engine {
    /// The public key that checkpoints are signed with.
    pub fn audit_public_key(&self) -> PublicKey {
        self.shared.audit.key.public_key()
    }

    /// Signs and stores a checkpoint of every instance's chain head now.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        checkpoint::checkpoint(&self.shared).await
    }

    /// Takes a checkpoint when the configured interval has passed since the last one by
    /// the engine's clock (or there is none yet); `None` when not due or not configured.
    pub async fn checkpoint_if_due(&self) -> Result<Option<Checkpoint>> {
        checkpoint::checkpoint_if_due(&self.shared).await
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        Ok(self.shared.store.checkpoints().await?)
    }

    /// Records an operator action that is not an instance event in the audit log.
    pub async fn record_action(
        &self,
        event_type: &str,
        actor: &str,
        data: Value,
    ) -> Result<AuditRecord> {
        let shared = &self.shared;
        Ok(shared
            .store
            .append_audit_record(event_type, shared.clock.now(), actor, data)
            .await?)
    }

    /// Records that `by` created a token for `user` with `role` and `groups` (never the
    /// token itself). The token endpoint calls it after storing the token.
    pub async fn record_token_created(
        &self,
        token: &gridflow_store::TokenRecord,
        by: &str,
    ) -> Result<AuditRecord> {
        let mut data = json!({"id": token.id, "user": token.user, "role": token.role,
            "groups": token.groups, "expires_at": token.expires_at});
        if token.server_run.is_some() {
            data["sandbox"] = json!(true);
        }
        self.record_action(TOKEN_CREATED, by, data).await
    }

    /// Records that `by` revoked a token (its id, user and role; never the token).
    pub async fn record_token_revoked(
        &self,
        token: &gridflow_store::TokenRecord,
        by: &str,
    ) -> Result<AuditRecord> {
        self.record_action(
            TOKEN_REVOKED,
            by,
            json!({"id": token.id, "user": token.user, "role": token.role}),
        )
        .await
    }

    /// Deploys a definition as `actor`; a new version is recorded in the audit log.
    pub async fn deploy_as(&self, source: &str, actor: &str) -> Result<Deployment> {
        let deployment = self.deploy(source).await?;
        if deployment.created {
            self.record_action(
                DEFINITION_DEPLOYED,
                actor,
                json!({"definition": deployment.id, "version": deployment.version}),
            )
            .await?;
        }
        Ok(deployment)
    }

    /// The server's audit log.
    pub async fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        Ok(self.shared.store.audit_log().await?)
    }

    /// Verifies every instance's chain, the heads against the instance rows and the last
    /// checkpoint, the checkpoints' chain and signatures, and the audit log.
    pub async fn verify(&self) -> Result<Report> {
        let store = self.shared.store.clone();
        let trusted = self.audit_public_key();
        let checkpoints = store.checkpoints().await?;
        let last_heads = match checkpoints.last() {
            Some(last) => store.checkpoint_heads(last.body.seq).await?,
            None => Vec::new(),
        };
        let audit_log = store.audit_log().await?;
        // Heads before events: an instance that moves on meanwhile only gains events
        // beyond its head, which verify as long as they chain on.
        let current: Vec<ChainHead> = store
            .instance_heads(&AuditFilter::default())
            .await?
            .into_iter()
            .map(|instance| instance.head)
            .collect();
        let mut verification = Verification::new(current);
        verification.checkpoints(&checkpoints, &last_heads, &trusted);
        verification.audit_log(&audit_log, checkpoints.last());

        let (pages, mut receiver) = mpsc::channel::<Result<Vec<RecordedEvent>>>(2);
        let reader = tokio::spawn(async move {
            let filter = AuditFilter::default();
            let mut after: Option<(InstanceId, u64)> = None;
            loop {
                let page = store
                    .events_after(
                        &filter,
                        after.as_ref().map(|(instance, seq)| (instance, *seq)),
                        PAGE,
                    )
                    .await
                    .map_err(Error::from);
                let done = match &page {
                    Ok(events) => {
                        after = events
                            .last()
                            .map(|event| (event.instance_id.clone(), event.seq));
                        events.len() < PAGE as usize
                    }
                    Err(_) => true,
                };
                if pages.send(page).await.is_err() || done {
                    return;
                }
            }
        });
        let checked = tokio::task::spawn_blocking(move || {
            let mut group: Vec<RecordedEvent> = Vec::new();
            while let Some(page) = receiver.blocking_recv() {
                for event in page? {
                    if group
                        .last()
                        .is_some_and(|last| last.instance_id != event.instance_id)
                    {
                        let instance = group[0].instance_id.clone();
                        verification.instance(&instance, &group);
                        group.clear();
                    }
                    group.push(event);
                }
            }
            if let Some(first) = group.first() {
                let instance = first.instance_id.clone();
                verification.instance(&instance, &group);
            }
            Ok::<_, Error>(verification.finish())
        })
        .await
        .map_err(|error| Error::Internal(format!("verification stopped: {error}")))?;
        reader
            .await
            .map_err(|error| Error::Internal(format!("reading events stopped: {error}")))?;
        let report = self.verify_ledger(checked?).await?;
        if !report.ok {
            tracing::warn!(
                problems = report.problems.len(),
                "audit verification found problems"
            );
        }
        Ok(report)
    }

    /// Writes the export of the instances that `filter` selects to `lines`, one line (with
    /// its newline) at a time; stops early when the receiver is dropped.
    pub async fn export(&self, filter: &AuditFilter, lines: mpsc::Sender<String>) -> Result<()> {
        let shared = &self.shared;
        let store = &shared.store;
        let mut writer = LineWriter::new();
        let send = |text: String| {
            let lines = lines.clone();
            async move { lines.send(text + "\n").await.is_ok() }
        };
        let header = ExportLine::Header(Header {
            format: EXPORT_FORMAT.to_owned(),
            generated_at: shared.clock.now(),
            complete: filter.is_empty(),
            filter: json!({
                "instance": filter.instance,
                "definition": filter.definition,
                "from": filter.created_from,
                "to": filter.created_to,
            }),
        });
        if !send(writer.write(&header)).await {
            return Ok(());
        }
        let key = ExportLine::Key {
            algorithm: "ed25519".to_owned(),
            public_key: self.audit_public_key().to_string(),
        };
        if !send(writer.write(&key)).await {
            return Ok(());
        }
        let checkpoints = store.checkpoints().await?;
        let count = checkpoints.len();
        for (index, checkpoint) in checkpoints.into_iter().enumerate() {
            let heads = if index + 1 == count {
                Some(store.checkpoint_heads(checkpoint.body.seq).await?)
            } else {
                None
            };
            if !send(writer.write(&ExportLine::Checkpoint { checkpoint, heads })).await {
                return Ok(());
            }
        }
        for record in store.audit_log().await? {
            if !send(writer.write(&ExportLine::AuditRecord(record))).await {
                return Ok(());
            }
        }
        let heads = store.instance_heads(filter).await?;
        let exported: std::collections::HashSet<InstanceId> = heads
            .iter()
            .map(|head| head.head.instance_id.clone())
            .collect();
        let mut heads = heads.into_iter().peekable();
        let mut open: Option<InstanceId> = None;
        let mut after: Option<(InstanceId, u64)> = None;
        loop {
            let page = store
                .events_after(
                    filter,
                    after.as_ref().map(|(instance, seq)| (instance, *seq)),
                    PAGE,
                )
                .await?;
            let last_page = page.len() < PAGE as usize;
            after = page
                .last()
                .map(|event| (event.instance_id.clone(), event.seq));
            for event in page {
                // Instance lines for every head up to this event's instance.
                while let Some(head) = heads.peek() {
                    if head.head.instance_id > event.instance_id
                        || open.as_ref() == Some(&head.head.instance_id)
                    {
                        break;
                    }
                    let Some(head) = heads.next() else { break };
                    let line = instance_line(&head);
                    let id = head.head.instance_id;
                    if !send(writer.write(&line)).await {
                        return Ok(());
                    }
                    open = Some(id);
                }
                // Events whose instance row is gone (or appeared after the heads were
                // read) have no instance line and are left out.
                if open.as_ref() == Some(&event.instance_id)
                    && !send(writer.write(&ExportLine::Event(event))).await
                {
                    return Ok(());
                }
            }
            if last_page {
                break;
            }
        }
        for head in heads {
            if !send(writer.write(&instance_line(&head))).await {
                return Ok(());
            }
        }
        if !self
            .export_ledger(filter, &exported, &mut writer, &send)
            .await?
        {
            return Ok(());
        }
        send(writer.end()).await;
        Ok(())
    }

    /// What changed in the instance at each event of its history.
    pub async fn replay_diff(&self, instance: &InstanceId) -> Result<Vec<EventDiff>> {
        let (history, definition) = self.history_and_definition(instance).await?;
        let view_value = |state: &gridflow_core::InstanceState| {
            serde_json::to_value(InstanceView::from_state(state)).unwrap_or(Value::Null)
        };
        let mut before = view_value(&initial_state(instance, &history, &definition));
        let mut diffs = Vec::with_capacity(history.len());
        replay_each(instance, &history, &definition, |event, state| {
            let after = view_value(state);
            diffs.push(EventDiff {
                seq: event.seq,
                event_type: event.event_type.clone(),
                at: event.at,
                actor: event.actor.clone(),
                changes: json_diff(&before, &after),
            });
            before = after;
        })
        .map_err(replay_error)?;
        Ok(diffs)
    }

    /// Every state of the instance, one per event, as `GET /instances/{id}` shows it.
    pub async fn replay_states(&self, instance: &InstanceId) -> Result<Vec<(u64, InstanceView)>> {
        let (history, definition) = self.history_and_definition(instance).await?;
        let mut states = Vec::with_capacity(history.len());
        replay_each(instance, &history, &definition, |event, state| {
            states.push((event.seq, InstanceView::from_state(state)));
        })
        .map_err(replay_error)?;
        Ok(states)
    }

    async fn history_and_definition(
        &self,
        instance: &InstanceId,
    ) -> Result<(Vec<RecordedEvent>, crate::versions::Versions)> {
        let shared = &self.shared;
        let record = shared.store.instance(instance).await?;
        let history = shared.store.history(instance).await?;
        let versions = crate::versions::for_events(
            &shared.definitions,
            &record.definition_id,
            &history,
            record.definition_version,
            None,
        )
        .await?;
        Ok((history, versions))
    }
}

fn instance_line(head: &InstanceHead) -> ExportLine {
    ExportLine::Instance(InstanceLine {
        instance_id: head.head.instance_id.clone(),
        definition: head.definition_id.to_string(),
        version: head.definition_version,
        last_seq: head.head.seq,
        last_hash: head.head.hash.clone(),
    })
}
