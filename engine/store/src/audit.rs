//! [`AuditStore`]: what audit needs from a store: chain heads, events in (instance, seq)
//! order a page at a time, the server's audit log and the signed checkpoints with the heads
//! they cover. The store hashes and signs nothing: it keeps what the runtime hands it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::audit::{AuditRecord, ChainHead, Checkpoint};
use gridflow_core::{DefinitionId, InstanceId, RecordedEvent};

use crate::Result;

/// Which instances an audit read covers; empty: all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this instance.
    pub instance: Option<InstanceId>,
    /// Only instances of this definition.
    pub definition: Option<DefinitionId>,
    /// Only instances created at or after this instant.
    pub created_from: Option<DateTime<Utc>>,
    /// Only instances created before this instant.
    pub created_to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// Whether the filter selects every instance.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Whether an instance row passes the filter.
    pub fn matches(
        &self,
        id: &InstanceId,
        definition: &DefinitionId,
        created_at: DateTime<Utc>,
    ) -> bool {
        self.instance.as_ref().is_none_or(|wanted| wanted == id)
            && self
                .definition
                .as_ref()
                .is_none_or(|wanted| wanted == definition)
            && self.created_from.is_none_or(|from| created_at >= from)
            && self.created_to.is_none_or(|to| created_at < to)
    }
}

/// An instance's chain head as its row records it, with its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHead {
    /// Instance id, last seq and last hash.
    pub head: ChainHead,
    /// The instance's definition.
    pub definition_id: DefinitionId,
    /// The definition version.
    pub definition_version: u32,
}

/// Reading chains and keeping checkpoints and the audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// The head of every instance that passes `filter`, ordered by instance id.
    async fn instance_heads(&self, filter: &AuditFilter) -> Result<Vec<InstanceHead>>;

    /// At most `limit` events ordered by (instance id, seq), after `after` (from the start
    /// when `None`). With an empty filter, events whose instance row is gone are included.
    async fn events_after(
        &self,
        filter: &AuditFilter,
        after: Option<(&InstanceId, u64)>,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>>;

    /// Appends a record to the audit log, chained to the last one, and returns it.
    async fn append_audit_record(
        &self,
        event_type: &str,
        at: DateTime<Utc>,
        actor: &str,
        data: Value,
    ) -> Result<AuditRecord>;

    /// The whole audit log in seq order.
    async fn audit_log(&self) -> Result<Vec<AuditRecord>>;

    /// Stores a checkpoint and the heads it covers, atomically. `Conflict` unless its seq
    /// is one more than the last stored checkpoint's (another checkpoint won the race).
    async fn add_checkpoint(&self, checkpoint: &Checkpoint, heads: &[ChainHead]) -> Result<()>;

    /// Every checkpoint in seq order.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>>;

    /// The heads that checkpoint `seq` covers, ordered by instance id.
    async fn checkpoint_heads(&self, seq: u64) -> Result<Vec<ChainHead>>;
}
