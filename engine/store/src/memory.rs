//! [`MemoryStore`]: the whole store in process memory, for fast tests of the crates above.
//!
//! It follows the same rules as [`crate::sql::SqlStore`] (see the conformance suite in
//! `tests/conformance.rs`): instants keep whole microseconds, text keys order by bytes,
//! a batch is validated and checked completely before anything of it is applied, and its
//! parts are applied in the order that `rules.rs` documents.

mod ledger;
mod rights;
mod signal_waits;
mod triggers;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use gridflow_core::audit::{AuditRecord, ChainHead, Checkpoint};
use gridflow_core::history::GENESIS_HASH;
use gridflow_core::{DefinitionId, InstanceId, RecordedEvent};

use crate::rules::{
    check_page_request, event_exists, instance_exists, last_timer_per_key, stale_instance,
    stored_instant, validate_batch,
};
use crate::{
    ApprovalFilter, ApprovalReader, ApprovalRecord, AuditFilter, AuditStore, Batch, BatchCommitter,
    DefinitionRecord, DefinitionStore, Deployed, Error, InstanceFilter, InstanceHead,
    InstanceReader, InstanceRecord, Page, Result, Store, StoreCounts, TimerRecord, TokenRecord,
    TokenStore, WorkItem, WorkReader,
};

/// A store that keeps everything in memory and forgets it on drop.
///
/// The state sits behind a `std::sync::Mutex` rather than a tokio one: every operation
/// takes the lock, works on plain maps without awaiting anything, and releases it, so the
/// lock is never held across an `.await` and a blocking mutex is both correct and cheaper.
/// Holding it for a whole commit is also what makes a batch atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

/// Maps keyed by `String` so that ranges can be taken with `&str` bounds; `String` orders
/// by bytes, as the SQL store's keys do.
#[derive(Debug, Default)]
struct Inner {
    definitions: BTreeMap<(String, u32), DefinitionRecord>,
    instances: BTreeMap<String, InstanceRecord>,
    history: BTreeMap<(String, u64), RecordedEvent>,
    work: BTreeMap<String, WorkItem>,
    timers: BTreeMap<(String, String), TimerRecord>,
    tokens: HashMap<String, TokenRecord>,
    approvals: BTreeMap<String, ApprovalRecord>,
    ticks: BTreeMap<triggers::TickKey, crate::triggers::TickRecord>,
    leases: BTreeMap<String, triggers::LeaseRow>,
    audit_log: Vec<AuditRecord>,
    checkpoints: Vec<Checkpoint>,
    checkpoint_heads: BTreeMap<u64, Vec<ChainHead>>,
    cursors: BTreeMap<String, String>,
    webhook_events: BTreeMap<(String, String), webhooks::SeenEvent>,
    /// Child links by child id.
    children: BTreeMap<String, crate::ChildLink>,
    signal_index: signal_waits::SignalIndex,
    rights: rights::RightsTables,
    ledger: ledger::Ledger,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave a half-applied batch behind: commit
        // checks everything before it mutates, and the mutations cannot panic. So the data
        // behind a poisoned lock is still consistent and is used as it is.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn definition_not_found(id: &DefinitionId, version: Option<u32>) -> Error {
    match version {
        Some(version) => Error::NotFound(format!("definition {id} version {version}")),
        None => Error::NotFound(format!("definition {id}")),
    }
}

fn instance_not_found(id: &InstanceId) -> Error {
    Error::NotFound(format!("instance {id}"))
}

impl Inner {
    fn latest_definition(&self, id: &DefinitionId) -> Option<&DefinitionRecord> {
        self.versions(id).next_back()
    }

    fn versions(&self, id: &DefinitionId) -> impl DoubleEndedIterator<Item = &DefinitionRecord> {
        let start = (id.0.clone(), 0);
        let end = (id.0.clone(), u32::MAX);
        self.definitions
            .range(start..=end)
            .map(|(_, record)| record)
    }

    fn events(&self, id: &InstanceId) -> impl Iterator<Item = &RecordedEvent> {
        let start = (id.0.clone(), 0);
        let end = (id.0.clone(), u64::MAX);
        self.history.range(start..=end).map(|(_, event)| event)
    }

    /// Checks the whole batch against the stored rows without changing anything.
    fn check(&self, batch: &Batch) -> Result<()> {
        let mut versions: HashMap<&str, u64> = HashMap::new();
        let inserts = batch
            .instances
            .iter()
            .filter(|write| write.expected_row_version.is_none());
        let updates = batch
            .instances
            .iter()
            .filter(|write| write.expected_row_version.is_some());
        for write in inserts.chain(updates) {
            let id = &write.record.id;
            let stored = versions
                .get(id.as_str())
                .copied()
                .or_else(|| self.instances.get(id.as_str()).map(|row| row.row_version));
            match write.expected_row_version {
                None if stored.is_some() => return Err(instance_exists(id)),
                Some(expected) if stored != Some(expected) => {
                    return Err(stale_instance(id, expected, stored));
                }
                None | Some(_) => {}
            }
            versions.insert(id.as_str(), write.record.row_version);
        }
        let mut new_events: HashSet<(&str, u64)> = HashSet::new();
        for write in &batch.instances {
            for event in &write.events {
                let key = (event.instance_id.as_str(), event.seq);
                if !new_events.insert(key)
                    || self
                        .history
                        .contains_key(&(event.instance_id.0.clone(), event.seq))
                {
                    return Err(event_exists(&event.instance_id, event.seq));
                }
            }
        }
        Ok(())
    }

    /// Applies a checked batch. Nothing here can fail or panic.
    fn apply(&mut self, batch: &Batch) {
        let inserts = batch
            .instances
            .iter()
            .filter(|write| write.expected_row_version.is_none());
        let updates = batch
            .instances
            .iter()
            .filter(|write| write.expected_row_version.is_some());
        for write in inserts.chain(updates) {
            let record = &write.record;
            match self.instances.get_mut(record.id.as_str()) {
                Some(row) if write.expected_row_version.is_some() => {
                    row.status = record.status;
                    if write.snapshot {
                        row.state = record.state.clone();
                        row.snapshot_seq = record.snapshot_seq;
                    }
                    row.output = record.output.clone();
                    row.error = record.error.clone();
                    row.updated_at = stored_instant(record.updated_at);
                    row.last_seq = record.last_seq;
                    row.last_hash = record.last_hash.clone();
                    row.row_version = record.row_version;
                    row.definition_version = record.definition_version;
                }
                Some(_) | None => {
                    let mut row = record.clone();
                    row.created_at = stored_instant(row.created_at);
                    row.updated_at = stored_instant(row.updated_at);
                    self.instances.insert(row.id.0.clone(), row);
                }
            }
        }
        for write in &batch.instances {
            for event in &write.events {
                let mut event = event.clone();
                event.at = stored_instant(event.at);
                self.history
                    .insert((event.instance_id.0.clone(), event.seq), event);
            }
        }
        for item in &batch.work_added {
            self.work.entry(item.id.clone()).or_insert_with(|| {
                let mut item = item.clone();
                item.created_at = stored_instant(item.created_at);
                item
            });
        }
        for id in &batch.work_done {
            self.work.remove(id);
        }
        for timer in last_timer_per_key(&batch.timers_added) {
            let mut timer = timer.clone();
            timer.fire_at = stored_instant(timer.fire_at);
            self.timers
                .insert((timer.instance_id.0.clone(), timer.key.clone()), timer);
        }
        for (instance_id, key) in &batch.timers_removed {
            self.timers.remove(&(instance_id.0.clone(), key.clone()));
        }
        for link in &batch.children {
            self.children
                .entry(link.child_id.0.clone())
                .or_insert_with(|| crate::ChildLink {
                    created_at: stored_instant(link.created_at),
                    ..link.clone()
                });
        }
        for approval in &batch.approvals {
            let mut approval = approval.clone();
            approval.created_at = stored_instant(approval.created_at);
            approval.updated_at = stored_instant(approval.updated_at);
            approval.due_at = approval.due_at.map(stored_instant);
            self.approvals.insert(approval.id.clone(), approval);
        }
        self.signal_index.apply(&batch.signal_waits);
        self.rights.apply(&batch.rights);
        self.ledger.write(&batch.ledger);
    }
}

#[async_trait]
impl DefinitionStore for MemoryStore {
    async fn deploy(
        &self,
        id: &DefinitionId,
        content_hash: &str,
        source: &str,
        definition: &Value,
        at: DateTime<Utc>,
    ) -> Result<Deployed> {
        let mut inner = self.lock();
        let latest = inner.latest_definition(id);
        if let Some(latest) = latest
            && latest.content_hash == content_hash
        {
            return Ok(Deployed::Unchanged(latest.version));
        }
        let version = match latest {
            Some(latest) => latest.version.checked_add(1).ok_or_else(|| {
                Error::Invalid(format!(
                    "definition {id}: no version after {}",
                    latest.version
                ))
            })?,
            None => 1,
        };
        let record = DefinitionRecord {
            id: id.clone(),
            version,
            content_hash: content_hash.to_owned(),
            source: source.to_owned(),
            definition: definition.clone(),
            created_at: stored_instant(at),
        };
        inner.definitions.insert((id.0.clone(), version), record);
        Ok(Deployed::Created(version))
    }

    async fn definition(
        &self,
        id: &DefinitionId,
        version: Option<u32>,
    ) -> Result<DefinitionRecord> {
        let inner = self.lock();
        let found = match version {
            Some(version) => inner.definitions.get(&(id.0.clone(), version)),
            None => inner.latest_definition(id),
        };
        found
            .cloned()
            .ok_or_else(|| definition_not_found(id, version))
    }

    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>> {
        let inner = self.lock();
        let mut latest: BTreeMap<&str, &DefinitionRecord> = BTreeMap::new();
        for ((id, _), record) in &inner.definitions {
            // Versions of one id come in ascending order, so the last one stays.
            latest.insert(id.as_str(), record);
        }
        Ok(latest.into_values().cloned().collect())
    }

    async fn definition_versions(&self, id: &DefinitionId) -> Result<Vec<DefinitionRecord>> {
        let inner = self.lock();
        let versions: Vec<DefinitionRecord> = inner.versions(id).cloned().collect();
        if versions.is_empty() {
            return Err(definition_not_found(id, None));
        }
        Ok(versions)
    }
}

#[async_trait]
impl InstanceReader for MemoryStore {
    async fn instance(&self, id: &InstanceId) -> Result<InstanceRecord> {
        self.lock()
            .instances
            .get(id.as_str())
            .cloned()
            .ok_or_else(|| instance_not_found(id))
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceRecord>> {
        check_page_request(cursor, limit)?;
        let inner = self.lock();
        let upper = match cursor {
            Some(cursor) => Bound::Excluded(cursor),
            None => Bound::Unbounded,
        };
        let mut matching = inner
            .instances
            .range::<str, _>((Bound::Unbounded, upper))
            .rev()
            .map(|(_, record)| record)
            .filter(|record| filter.status.is_none_or(|status| record.status == status))
            .filter(|record| {
                filter
                    .definition
                    .as_ref()
                    .is_none_or(|definition| &record.definition_id == definition)
            });
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let items: Vec<InstanceRecord> = matching.by_ref().take(limit).cloned().collect();
        let next_cursor = match (matching.next(), items.last()) {
            (Some(_), Some(last)) => Some(last.id.0.clone()),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    async fn history(&self, id: &InstanceId) -> Result<Vec<RecordedEvent>> {
        let inner = self.lock();
        if !inner.instances.contains_key(id.as_str()) {
            return Err(instance_not_found(id));
        }
        Ok(inner.events(id).cloned().collect())
    }

    async fn history_after(&self, id: &InstanceId, after_seq: u64) -> Result<Vec<RecordedEvent>> {
        Ok(self
            .lock()
            .events(id)
            .filter(|event| event.seq > after_seq)
            .cloned()
            .collect())
    }

    async fn children(&self, parent: &InstanceId) -> Result<Vec<crate::ChildRecord>> {
        let inner = self.lock();
        let mut found: Vec<crate::ChildRecord> = inner
            .children
            .values()
            .filter(|link| &link.parent_id == parent)
            .filter_map(|link| {
                let status = inner.instances.get(&link.child_id.0)?.status;
                Some(crate::ChildRecord {
                    link: link.clone(),
                    status,
                })
            })
            .collect();
        found.sort_by(|a, b| {
            (a.link.step.as_str(), a.link.item, a.link.attempt).cmp(&(
                b.link.step.as_str(),
                b.link.item,
                b.link.attempt,
            ))
        });
        Ok(found)
    }

    async fn unfinished_instances(&self) -> Result<Vec<InstanceId>> {
        Ok(self
            .lock()
            .instances
            .values()
            .filter(|record| !record.status.is_terminal())
            .map(|record| record.id.clone())
            .collect())
    }
}

#[async_trait]
impl BatchCommitter for MemoryStore {
    async fn commit(&self, batch: &Batch) -> Result<()> {
        validate_batch(batch)?;
        let mut inner = self.lock();
        inner.check(batch)?;
        inner.apply(batch);
        Ok(())
    }
}

#[async_trait]
impl WorkReader for MemoryStore {
    async fn queued_work(&self) -> Result<Vec<WorkItem>> {
        let inner = self.lock();
        let mut work: Vec<WorkItem> = inner.work.values().cloned().collect();
        // The map is in id order; a stable sort by time keeps ids ascending within a tie.
        work.sort_by_key(|item| item.created_at);
        Ok(work)
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TimerRecord>> {
        let now = stored_instant(now);
        let inner = self.lock();
        let mut due: Vec<&TimerRecord> = inner
            .timers
            .values()
            .filter(|timer| timer.fire_at <= now)
            .collect();
        // The map is in (instance, key) order; a stable sort keeps it within a tie.
        due.sort_by_key(|timer| timer.fire_at);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(due.into_iter().take(limit).cloned().collect())
    }

    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.lock().timers.values().map(|timer| timer.fire_at).min())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let mut inner = self.lock();
        let id_taken = inner.tokens.values().any(|stored| stored.id == token.id);
        if inner.tokens.contains_key(&token.hash) || id_taken {
            return Err(crate::rules::token_exists(&token.user));
        }
        let stored = TokenRecord {
            created_at: stored_instant(token.created_at),
            expires_at: token.expires_at.map(stored_instant),
            revoked_at: token.revoked_at.map(stored_instant),
            ..token.clone()
        };
        inner.tokens.insert(token.hash.clone(), stored);
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Ok(self.lock().tokens.get(hash).cloned())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut tokens: Vec<TokenRecord> = self.lock().tokens.values().cloned().collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<(TokenRecord, bool)> {
        let mut inner = self.lock();
        let token = inner
            .tokens
            .values_mut()
            .find(|stored| stored.id == id)
            .ok_or_else(|| crate::rules::token_not_found(id))?;
        let newly = token.revoked_at.is_none();
        token.revoked_at.get_or_insert(stored_instant(at));
        Ok((token.clone(), newly))
    }
}

#[async_trait]
impl StoreCounts for MemoryStore {
    async fn instance_counts(&self) -> Result<Vec<(gridflow_core::InstanceStatus, u64)>> {
        let inner = self.lock();
        let mut counts: BTreeMap<&'static str, (gridflow_core::InstanceStatus, u64)> =
            BTreeMap::new();
        for record in inner.instances.values() {
            counts
                .entry(record.status.as_str())
                .or_insert((record.status, 0))
                .1 += 1;
        }
        Ok(counts.into_values().collect())
    }

    async fn queued_work_count(&self) -> Result<u64> {
        Ok(self.lock().work.len() as u64)
    }
}

#[async_trait]
impl crate::LedgerStore for MemoryStore {
    async fn apply_ledger(&self, writes: &[crate::LedgerWrite]) -> Result<u64> {
        Ok(self.lock().ledger.write(writes))
    }

    async fn list_deliveries(
        &self,
        filter: &crate::LedgerFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<crate::ledger::Delivery>> {
        self.lock().ledger.list(filter, cursor, limit)
    }

    async fn delivery(
        &self,
        delivery_id: &str,
    ) -> Result<(crate::ledger::Delivery, Vec<crate::ledger::Entry>)> {
        self.lock().ledger.delivery(delivery_id)
    }

    async fn deliveries_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::ledger::Delivery>> {
        Ok(self.lock().ledger.deliveries_after(after, limit))
    }

    async fn entries_after(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> Result<Vec<crate::ledger::Entry>> {
        Ok(self.lock().ledger.entries_after(after, limit))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl ApprovalReader for MemoryStore {
    async fn approval(&self, id: &str) -> Result<ApprovalRecord> {
        self.lock()
            .approvals
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))
    }

    async fn list_approvals(
        &self,
        filter: &ApprovalFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApprovalRecord>> {
        check_page_request(cursor, limit)?;
        let inner = self.lock();
        let upper = match cursor {
            Some(cursor) => Bound::Excluded(cursor),
            None => Bound::Unbounded,
        };
        let mut matching = inner
            .approvals
            .range::<str, _>((Bound::Unbounded, upper))
            .rev()
            .map(|(_, record)| record)
            .filter(|record| {
                filter.status.is_none_or(|status| record.status == status)
                    && (record.users.contains(&filter.user)
                        || filter
                            .groups
                            .iter()
                            .any(|group| record.groups.contains(group)))
            });
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let items: Vec<ApprovalRecord> = matching.by_ref().take(limit).cloned().collect();
        let next_cursor = match (matching.next(), items.last()) {
            (Some(_), Some(last)) => Some(last.id.clone()),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn instance_heads(&self, filter: &AuditFilter) -> Result<Vec<InstanceHead>> {
        let inner = self.lock();
        Ok(inner
            .instances
            .values()
            .filter(|record| filter.matches(&record.id, &record.definition_id, record.created_at))
            .map(|record| InstanceHead {
                head: ChainHead {
                    instance_id: record.id.clone(),
                    seq: record.last_seq,
                    hash: record.last_hash.clone(),
                },
                definition_id: record.definition_id.clone(),
                definition_version: record.definition_version,
            })
            .collect())
    }

    async fn events_after(
        &self,
        filter: &AuditFilter,
        after: Option<(&InstanceId, u64)>,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>> {
        let inner = self.lock();
        let start = match after {
            Some((instance, seq)) => Bound::Excluded((instance.0.clone(), seq)),
            None => Bound::Unbounded,
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(inner
            .history
            .range((start, Bound::Unbounded))
            .map(|(_, event)| event)
            .filter(|event| {
                filter.is_empty()
                    || match inner.instances.get(event.instance_id.as_str()) {
                        Some(record) => {
                            filter.matches(&record.id, &record.definition_id, record.created_at)
                        }
                        None => {
                            filter.instance.as_ref() == Some(&event.instance_id)
                                && filter.definition.is_none()
                                && filter.created_from.is_none()
                                && filter.created_to.is_none()
                        }
                    }
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn append_audit_record(
        &self,
        event_type: &str,
        at: DateTime<Utc>,
        actor: &str,
        data: Value,
    ) -> Result<AuditRecord> {
        let mut inner = self.lock();
        let (seq, prev_hash) = match inner.audit_log.last() {
            Some(last) => (last.seq + 1, last.hash.clone()),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let record =
            AuditRecord::record(seq, &prev_hash, event_type, stored_instant(at), actor, data);
        inner.audit_log.push(record.clone());
        Ok(record)
    }

    async fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        Ok(self.lock().audit_log.clone())
    }

    async fn add_checkpoint(&self, checkpoint: &Checkpoint, heads: &[ChainHead]) -> Result<()> {
        let mut inner = self.lock();
        let last = inner
            .checkpoints
            .last()
            .map(|last| last.body.seq)
            .unwrap_or(0);
        let seq = checkpoint.body.seq;
        if seq != last + 1 {
            return Err(Error::Conflict(format!(
                "checkpoint {seq}: the last checkpoint is {last}"
            )));
        }
        let mut sorted = heads.to_vec();
        sorted.sort_by(|left, right| left.instance_id.cmp(&right.instance_id));
        inner.checkpoints.push(checkpoint.clone());
        inner.checkpoint_heads.insert(seq, sorted);
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        Ok(self.lock().checkpoints.clone())
    }

    async fn checkpoint_heads(&self, seq: u64) -> Result<Vec<ChainHead>> {
        Ok(self
            .lock()
            .checkpoint_heads
            .get(&seq)
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl crate::cursors::CursorStore for MemoryStore {
    async fn load_cursor(&self, source: &str) -> Result<Option<String>> {
        Ok(self.lock().cursors.get(source).cloned())
    }

    async fn save_cursor(&self, source: &str, cursor: &str, _at: DateTime<Utc>) -> Result<()> {
        self.lock()
            .cursors
            .insert(source.to_owned(), cursor.to_owned());
        Ok(())
    }
}
