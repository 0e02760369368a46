//! Instances on the engine handle: started, cancelled, a failed step retried, and read
//! back (state, pages of instances, history, and a replay of the history).
//!
//! Every operation goes through the driver as a message and returns once what it caused
//! is durable.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use gridflow_core::machine::{Input, InputBody};
use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent, StepId};
use gridflow_store::{InstanceFilter, Page};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::message::{Message, wait};
use crate::view::{InstanceSummary, InstanceView, decode_state};

/// The replayed state of an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replayed {
    /// The seq the history was folded up to.
    pub at: u64,
    /// The history's last seq.
    pub last_seq: u64,
    /// The state reached.
    pub state: InstanceView,
    /// For a full replay: whether the replayed state equals the stored one.
    pub matches_stored: Option<bool>,
}

impl Engine {
    /// Starts an instance once its input satisfies the definition's input schema.
    /// Returns when the start is durable.
    pub async fn start_instance(
        &self,
        definition: &DefinitionId,
        version: Option<u32>,
        input: Value,
        actor: &str,
    ) -> Result<InstanceId> {
        let instance = InstanceId::from(uuid::Uuid::now_v7().to_string());
        self.start_instance_as(instance.clone(), definition, version, input, actor)
            .await?;
        Ok(instance)
    }

    /// [`Engine::start_instance`] with the instance id chosen by the caller (a change
    /// delivered once names its instance, see [`Engine::deliver_change`]).
    pub(crate) async fn start_instance_as(
        &self,
        instance: InstanceId,
        definition: &DefinitionId,
        version: Option<u32>,
        input: Value,
        actor: &str,
    ) -> Result<()> {
        let loaded = self.shared.definitions.get(definition, version).await?;
        loaded.input_validator.validate(&input)?;
        let (reply, answer) = oneshot::channel();
        self.shared.send(Message::Start {
            instance: instance.clone(),
            definition: loaded.definition.clone(),
            version: loaded.version,
            input,
            actor: actor.to_owned(),
            reply,
        });
        wait(&self.shared.availability, answer).await
    }

    /// Cancels a running instance.
    pub async fn cancel(
        &self,
        instance: &InstanceId,
        reason: Option<String>,
        actor: &str,
    ) -> Result<()> {
        self.operate(instance, actor, InputBody::Cancel { reason })
            .await
    }

    /// Re-runs a failed step of a failed instance.
    pub async fn retry_step(
        &self,
        instance: &InstanceId,
        step: &StepId,
        actor: &str,
    ) -> Result<()> {
        self.operate(instance, actor, InputBody::RetryStep { step: step.clone() })
            .await
    }

    pub(crate) async fn operate(
        &self,
        instance: &InstanceId,
        actor: &str,
        body: InputBody,
    ) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.shared.send(Message::Input {
            instance: instance.clone(),
            input: Input {
                at: self.shared.clock.now(),
                actor: actor.to_owned(),
                body,
            },
            reply: Some(reply),
        });
        wait(&self.shared.availability, answer).await
    }

    /// An instance's current state.
    /// Its workflow steps list their child instances.
    pub async fn instance(&self, instance: &InstanceId) -> Result<InstanceView> {
        let record = self.shared.store.instance(instance).await?;
        let view = InstanceView::from_state(&self.current_state(&record).await?);
        let children = self.shared.store.children(instance).await?;
        Ok(view.with_children(&children))
    }

    /// The current state of a stored row: its snapshot with the later events folded in.
    pub(crate) async fn current_state(
        &self,
        record: &gridflow_store::InstanceRecord,
    ) -> Result<gridflow_core::InstanceState> {
        let (state, _) = crate::snapshot::current_state(
            self.shared.store.as_ref(),
            &self.shared.definitions,
            record,
        )
        .await?;
        Ok(state)
    }

    /// Instances, newest first, one page at a time.
    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceView>> {
        let page = self
            .shared
            .store
            .list_instances(
                filter,
                cursor,
                limit.clamp(1, self.shared.limits.max_page_size.get()),
            )
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for record in &page.items {
            items.push(InstanceView::from_state(&self.current_state(record).await?));
        }
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// Instances, newest first, one page at a time, as summaries: the page reads no state,
    /// input or output, so its cost does not grow with what the instances hold.
    pub async fn list_instance_summaries(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceSummary>> {
        let limit = limit.clamp(1, self.shared.limits.max_page_size.get());
        let page = self
            .shared
            .store
            .list_instance_heads(filter, cursor, limit)
            .await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(InstanceSummary::from_record)
                .collect::<Result<_>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// An instance's whole history.
    pub async fn history(&self, instance: &InstanceId) -> Result<Vec<RecordedEvent>> {
        Ok(self.shared.store.history(instance).await?)
    }

    /// Folds an instance's history up to `at` (all of it when `None`) through the state
    /// machine; a full replay is compared with the stored state.
    pub async fn replay(&self, instance: &InstanceId, at: Option<u64>) -> Result<Replayed> {
        let record = self.shared.store.instance(instance).await?;
        let history = self.shared.store.history(instance).await?;
        let versions = crate::versions::for_events(
            &self.shared.definitions,
            &record.definition_id,
            &history,
            record.definition_version,
            None,
        )
        .await?;
        let state = gridflow_core::replay(instance, &history, &versions, at)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let last_seq = history.last().map(|event| event.seq).unwrap_or(0);
        let folded_to = at.unwrap_or(last_seq).min(last_seq);
        // The stored snapshot must equal the replay up to its seq, and the snapshot with
        // the later events folded in must equal the whole replay.
        // Both from the history already read: no second read of the store.
        let matches_stored = (folded_to == last_seq).then(|| {
            let Ok(snapshot) = decode_state(&record) else {
                return false;
            };
            let tail = history.partition_point(|event| event.seq <= record.snapshot_seq);
            let at_snapshot = gridflow_core::replay(instance, &history[..tail], &versions, None);
            at_snapshot.is_ok_and(|at_snapshot| at_snapshot == snapshot)
                && gridflow_core::replay_tail(snapshot, &history[tail..], &versions)
                    .is_ok_and(|current| current == state)
        });
        Ok(Replayed {
            at: folded_to,
            last_seq,
            state: InstanceView::from_state(&state),
            matches_stored,
        })
    }

    /// Announces `(instance, status)` when an instance reaches a terminal status.
    pub fn subscribe_finished(&self) -> broadcast::Receiver<(InstanceId, InstanceStatus)> {
        self.shared.finished.subscribe()
    }
}
