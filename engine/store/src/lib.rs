//! gridflow-store: the persistence port of the engine and its implementations.
//!
//! The port is a set of small capability traits ([`DefinitionStore`], [`InstanceReader`],
//! [`BatchCommitter`], [`WorkReader`], [`ApprovalReader`], [`TokenStore`], [`StoreCounts`],
//! [`TriggerStore`], [`AuditStore`], [`CursorStore`], [`WebhookStore`], [`SignalWaitStore`], [`RightsStore`]) combined into [`Store`]. They speak domain types
//! [`TriggerStore`], [`AuditStore`], [`CursorStore`], [`WebhookStore`], [`SignalWaitStore`], [`LedgerStore`]) combined into [`Store`]. They speak domain types
//! only: sea-orm entities, `DbErr` and SQL never cross this crate's boundary.
//!
//! Implementations: [`memory::MemoryStore`] (behind the `test-util` feature) for fast tests,
//! and [`sql::SqlStore`] on sea-orm for SQLite (WAL) and PostgreSQL.
//!
//! The one write path for instances is [`BatchCommitter::commit`]: a batch of
//! transitions of many instances (events, state snapshots, queued work, timers) is written
//! in one database transaction, so durable throughput is not one fsync per step (group
//! commit). This crate never interprets instance state: snapshots are opaque JSON.
#![warn(missing_docs)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::{
    ApprovalStatus, DefinitionId, InstanceId, InstanceStatus, RecordedEvent, StepId,
};

pub mod audit;
pub mod cursors;
pub mod ledger;
#[cfg(any(feature = "test-util", doc))]
pub mod memory;
pub mod rights;
mod rules;
pub mod signal_waits;
pub mod sql;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod triggers;
pub mod webhooks;

pub use audit::{AuditFilter, AuditStore, InstanceHead};
pub use cursors::CursorStore;
pub use ledger::{LedgerFilter, LedgerStore, LedgerWrite, StatusMatch};
#[cfg(any(feature = "test-util", doc))]
pub use memory::MemoryStore;
pub use rights::{FiringState, ObservedWindow, RightsFiring, RightsStore, RightsWindowRecord};
pub use signal_waits::{SignalKey, SignalWaitRecord, SignalWaitStore, SignalWaitsWrite};
pub use sql::{SqlOptions, SqlStore};
pub use triggers::{TickRecord, TickState, TriggerStore};
pub use webhooks::{EventClaim, WebhookStore};

/// Errors of the store, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A concurrent writer changed the row first (stale `row_version`, duplicate key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database is unreachable or busy; retrying may help.
    #[error("database unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Stored data cannot be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The request cannot be served as asked (bad cursor, bad URL).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One stored version of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionRecord {
    /// Definition id.
    pub id: DefinitionId,
    /// Version, from 1.
    pub version: u32,
    /// sha256 of the definition's canonical JSON; equal content means equal hash.
    pub content_hash: String,
    /// The text as deployed (YAML or JSON).
    pub source: String,
    /// The parsed definition as JSON.
    pub definition: Value,
    /// When this version was deployed.
    pub created_at: DateTime<Utc>,
}

/// What a deploy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployed {
    /// A new version was stored.
    Created(u32),
    /// The latest version already had this content.
    Unchanged(u32),
}

/// An instance's current state row.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// Instance id.
    pub id: InstanceId,
    /// Definition id.
    pub definition_id: DefinitionId,
    /// Definition version.
    pub definition_version: u32,
    /// Status, for filtering.
    pub status: InstanceStatus,
    /// The core's state snapshot, opaque to the store: the state after the event
    /// `snapshot_seq`. The events after it (up to `last_seq`) are folded in by the reader.
    pub state: Value,
    /// Start input.
    pub input: Value,
    /// Output once completed.
    pub output: Option<Value>,
    /// Error once failed.
    pub error: Option<Value>,
    /// When the instance was started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// seq of the last history event.
    pub last_seq: u64,
    /// seq of the last event `state` reflects; at most `last_seq`. Snapshots are written
    /// when due, not at every commit, so that a commit writes what changed, not the whole
    /// state (`InstanceWrite::snapshot`).
    pub snapshot_seq: u64,
    /// hash of the last history event.
    pub last_hash: String,
    /// Optimistic-concurrency version, incremented by every write; 1 after insert.
    pub row_version: u64,
}

/// Filter of [`InstanceReader::list_instances`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFilter {
    /// Only instances with this status.
    pub status: Option<InstanceStatus>,
    /// Only instances of this definition.
    pub definition: Option<DefinitionId>,
}

/// One page of a list. `next_cursor` is opaque text; `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass back to get the next page.
    pub next_cursor: Option<String>,
}

/// Queued work: a command that must be executed after commit (transactional outbox).
/// It stays in the table until a later batch removes it, so a crash re-executes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// Unique and deterministic (`<instance>:<step>[:<item>]:<attempt>[:c]`), so
    /// re-enqueuing the same work is idempotent.
    pub id: String,
    /// The instance it belongs to.
    pub instance_id: InstanceId,
    /// The command, as JSON.
    pub payload: Value,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// A durable timer.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRecord {
    /// The instance it wakes.
    pub instance_id: InstanceId,
    /// Unique within the instance.
    pub key: String,
    /// When it fires.
    pub fire_at: DateTime<Utc>,
    /// The timer's data, as JSON.
    pub payload: Value,
}

/// The write of one instance inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceWrite {
    /// The new row. `row_version` is the version after this write.
    pub record: InstanceRecord,
    /// `None` inserts a new instance (fails with `Conflict` if the id exists); `Some(v)`
    /// updates the row only if its current `row_version` is `v`, else `Conflict`.
    pub expected_row_version: Option<u64>,
    /// New history events, in seq order, continuing the stored chain.
    pub events: Vec<RecordedEvent>,
    /// Whether `record.state` and `record.snapshot_seq` are written. When false, the
    /// stored snapshot and its `snapshot_seq` stay as they are and only the rest of the
    /// row changes. A new instance always carries its snapshot.
    pub snapshot: bool,
}

/// Everything one group commit writes, in one database transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Instance rows and their new events.
    pub instances: Vec<InstanceWrite>,
    /// Work to queue (ignored if an item with the same id is queued already).
    pub work_added: Vec<WorkItem>,
    /// Ids of work that is done (missing ids are ignored).
    pub work_done: Vec<String>,
    /// Timers to create or replace.
    pub timers_added: Vec<TimerRecord>,
    /// `(instance, key)` of timers to delete (missing ones are ignored).
    pub timers_removed: Vec<(InstanceId, String)>,
    /// Approval read-model rows to create or replace (by id; the last one of an id wins).
    pub approvals: Vec<ApprovalRecord>,
    /// Signal index rows: each replaces all the rows of its instance (the last one of an
    /// instance wins).
    pub signal_waits: Vec<SignalWaitsWrite>,
    /// Links of child instances to their parents' units, written with the children's
    /// rows (an existing link stays as it is).
    pub children: Vec<ChildLink>,
    /// Rights windows seen in action outputs, written with the steps' successes (an asset
    /// named twice keeps the last).
    pub rights: Vec<ObservedWindow>,
    /// Distribution ledger changes of the steps whose success the batch records, written
    /// last, in order (`ledger`).
    pub ledger: Vec<LedgerWrite>,
}

/// Which unit of which parent instance started a child instance (a workflow step's).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildLink {
    /// The child instance.
    pub child_id: InstanceId,
    /// The parent instance.
    pub parent_id: InstanceId,
    /// The parent's workflow step.
    pub step: StepId,
    /// The fan-out item, if any.
    pub item: Option<u32>,
    /// The parent step's attempt.
    pub attempt: u32,
    /// When the child was started.
    pub created_at: DateTime<Utc>,
}

/// A child instance as its parent's view lists it: its link and its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildRecord {
    /// The link.
    pub link: ChildLink,
    /// The child's status.
    pub status: InstanceStatus,
}

/// One approval as the read model keeps it (DESIGN.md §5), derived by the runtime from the
/// instance state it commits in the same batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRecord {
    /// `<instance>:<step>:<attempt>`, or `<instance>:<step>:<attempt>:<item>` for a fan-out
    /// item's approval.
    pub id: String,
    /// The instance.
    pub instance_id: InstanceId,
    /// The approval step.
    pub step: StepId,
    /// The step's attempt.
    pub attempt: u32,
    /// Rendered title.
    pub title: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Users who may decide now.
    pub users: Vec<String>,
    /// Groups whose members may decide now.
    pub groups: Vec<String>,
    /// Approvals needed.
    pub quorum: u32,
    /// Escalation level in charge (0: the step's own assignees).
    pub level: u32,
    /// The decisions so far, as a JSON array (opaque to the store).
    pub decisions: Value,
    /// When `on_timeout` applies at the current level.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The fan-out item whose approval this is (`None`: the whole step's).
    pub item: Option<u32>,
    /// The artifacts the approval binds (`approval.bind`), as a JSON array (opaque to the
    /// store); `None` when it binds none.
    pub artifacts: Option<Value>,
}

/// Filter of [`ApprovalReader::list_approvals`]: the approvals a user may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApprovalFilter {
    /// Only approvals with this status (all when `None`).
    pub status: Option<ApprovalStatus>,
    /// Approvals assigned to this user...
    pub user: String,
    /// ...or to any of these groups.
    pub groups: Vec<String>,
}

impl Batch {
    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.work_added.is_empty()
            && self.work_done.is_empty()
            && self.timers_added.is_empty()
            && self.timers_removed.is_empty()
            && self.approvals.is_empty()
            && self.children.is_empty()
            && self.signal_waits.is_empty()
            && self.rights.is_empty()
            && self.ledger.is_empty()
    }
}

/// Deploying and reading definitions.
#[async_trait]
pub trait DefinitionStore: Send + Sync {
    /// Stores a new version unless the latest version has the same `content_hash`.
    /// Atomic: two concurrent deploys of new content get distinct versions.
    async fn deploy(
        &self,
        id: &DefinitionId,
        content_hash: &str,
        source: &str,
        definition: &Value,
        at: DateTime<Utc>,
    ) -> Result<Deployed>;
    /// One version, or the latest when `version` is `None`.
    async fn definition(&self, id: &DefinitionId, version: Option<u32>)
    -> Result<DefinitionRecord>;
    /// The latest version of every definition, ordered by id.
    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>>;
    /// Every version of one definition, oldest first; `NotFound` if there is none.
    async fn definition_versions(&self, id: &DefinitionId) -> Result<Vec<DefinitionRecord>>;
}

/// Reading instances and their history.
#[async_trait]
pub trait InstanceReader: Send + Sync {
    /// One instance's current row.
    async fn instance(&self, id: &InstanceId) -> Result<InstanceRecord>;
    /// Instances matching `filter`, newest first (by id; ids are UUIDv7, so time-ordered).
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceRecord>>;
    /// [`InstanceReader::list_instances`] without the state snapshot (`state` null and
    /// `snapshot_seq` 0 in the
    /// records), whose size grows with what an instance accumulates, so that a page costs
    /// the same however far its instances ran. The SQL store does not read that column.
    async fn list_instance_heads(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceRecord>> {
        let mut page = self.list_instances(filter, cursor, limit).await?;
        for record in &mut page.items {
            record.state = Value::Null;
            record.snapshot_seq = 0;
        }
        Ok(page)
    }
    /// The instance's whole history in seq order; `NotFound` if the instance does not exist.
    async fn history(&self, id: &InstanceId) -> Result<Vec<RecordedEvent>>;
    /// The events after `after_seq`, in seq order: the tail a reader folds into a snapshot.
    /// Empty when there are none (also for an unknown instance).
    async fn history_after(&self, id: &InstanceId, after_seq: u64) -> Result<Vec<RecordedEvent>>;
    /// Ids of every instance that is not terminal (for start-up recovery).
    async fn unfinished_instances(&self) -> Result<Vec<InstanceId>>;
    /// The child instances that `parent`'s workflow steps started, by step, item and
    /// attempt, with their statuses.
    async fn children(&self, parent: &InstanceId) -> Result<Vec<ChildRecord>>;
}

/// The group-commit write path.
#[async_trait]
pub trait BatchCommitter: Send + Sync {
    /// Writes the whole batch in one transaction, or nothing. A stale `row_version` or a
    /// duplicate instance id fails the batch with `Conflict` naming the instance.
    async fn commit(&self, batch: &Batch) -> Result<()>;
}

/// Reading queued work and timers.
#[async_trait]
pub trait WorkReader: Send + Sync {
    /// Every queued work item, oldest first (start-up recovery re-executes them).
    async fn queued_work(&self) -> Result<Vec<WorkItem>>;
    /// Timers with `fire_at <= now`, earliest first, at most `limit`.
    async fn due_timers(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TimerRecord>>;
    /// The earliest `fire_at` of any timer.
    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>>;
}

/// An API token as stored: the SHA-256 of its text, never the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's public handle (listing, revocation); unique. Not derived from the token.
    pub id: String,
    /// Lowercase hex SHA-256 of the token's text; unique. Never shown.
    pub hash: String,
    /// The user the token names.
    pub user: String,
    /// The role the token grants, as the API spells it (`analyst`, `admin`, …); the store
    /// does not interpret it.
    pub role: String,
    /// The groups the token names, for approval assignment.
    pub groups: Vec<String>,
    /// When the token was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (a user, or `system` for tokens made at start-up).
    pub created_by: String,
    /// When it stops being accepted; `None` for tokens made before tokens expired.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; `None` while it is not.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The server run that made it (the sandbox's demo tokens): only that run accepts it.
    pub server_run: Option<String>,
}

/// Creating, finding, listing and revoking API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token; `Conflict` if a token with the same hash or id exists.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token whose text hashes to `hash`, if any (revoked and expired ones included).
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Every token, oldest first (by `created_at`, then `id`).
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Marks the token `id` revoked at `at` unless it is already; returns it as stored
    /// afterwards (an earlier revocation keeps its instant) and whether this call revoked
    /// it. `NotFound` if there is none.
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<(TokenRecord, bool)>;
}

/// Counts for monitoring (`/metrics`).
#[async_trait]
pub trait StoreCounts: Send + Sync {
    /// How many instances have each status; statuses without instances are left out.
    async fn instance_counts(&self) -> Result<Vec<(InstanceStatus, u64)>>;
    /// How many work items are queued (the outbox's depth).
    async fn queued_work_count(&self) -> Result<u64>;
}

/// Reading the approvals read model.
#[async_trait]
pub trait ApprovalReader: Send + Sync {
    /// One approval; `NotFound` naming it if there is none.
    async fn approval(&self, id: &str) -> Result<ApprovalRecord>;
    /// Approvals assigned to the filter's user or one of its groups, newest first (by id),
    /// one page at a time.
    async fn list_approvals(
        &self,
        filter: &ApprovalFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApprovalRecord>>;
}

/// Everything the engine needs from a store.
#[async_trait]
pub trait Store:
    DefinitionStore
    + InstanceReader
    + BatchCommitter
    + WorkReader
    + ApprovalReader
    + TokenStore
    + StoreCounts
    + TriggerStore
    + AuditStore
    + CursorStore
    + WebhookStore
    + SignalWaitStore
    + RightsStore
    + LedgerStore
{
    /// Succeeds when the database answers.
    async fn health(&self) -> Result<()>;
}
