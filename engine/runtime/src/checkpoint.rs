//! Audit checkpoints, signed over every instance's chain head: taken on demand through
//! the engine handle (`audit`), and periodically by a background task that holds only
//! the shared state.

use std::sync::{Arc, Weak};
use std::time::Duration;

use gridflow_core::audit::{ChainHead, Checkpoint, CheckpointBody, merkle_root};
use gridflow_core::history::GENESIS_HASH;
use gridflow_store::AuditFilter;

use crate::error::Result;
use crate::shared::Shared;

/// Signs and stores a checkpoint of every instance's chain head now.
pub(crate) async fn checkpoint(shared: &Shared) -> Result<Checkpoint> {
    let _one_at_a_time = shared.audit.checkpointing.lock().await;
    let store = &shared.store;
    let last = store.checkpoints().await?.pop();
    let heads: Vec<ChainHead> = store
        .instance_heads(&AuditFilter::default())
        .await?
        .into_iter()
        .map(|instance| instance.head)
        .collect();
    let audit_head = store.audit_log().await?.pop();
    let body = CheckpointBody {
        seq: last.as_ref().map(|last| last.body.seq + 1).unwrap_or(1),
        at: shared.clock.now(),
        merkle_root: merkle_root(&heads),
        instances: heads.len() as u64,
        prev_checkpoint_hash: last
            .map(|last| last.hash)
            .unwrap_or_else(|| GENESIS_HASH.to_owned()),
        audit_log_seq: audit_head.as_ref().map(|record| record.seq).unwrap_or(0),
        audit_log_hash: audit_head
            .map(|record| record.hash)
            .unwrap_or_else(|| GENESIS_HASH.to_owned()),
    };
    let checkpoint = shared.audit.key.sign(body);
    store.add_checkpoint(&checkpoint, &heads).await?;
    tracing::info!(
        seq = checkpoint.body.seq,
        instances = checkpoint.body.instances,
        "audit checkpoint signed"
    );
    Ok(checkpoint)
}

/// Takes a checkpoint when the configured interval has passed since the last one by the
/// engine's clock (or there is none yet); `None` when not due or not configured.
pub(crate) async fn checkpoint_if_due(shared: &Shared) -> Result<Option<Checkpoint>> {
    let Some(interval) = shared.audit.interval else {
        return Ok(None);
    };
    let last = shared.store.checkpoints().await?.pop();
    let due = match last {
        None => true,
        Some(last) => {
            let elapsed = shared.clock.now() - last.body.at;
            elapsed >= chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX)
        }
    };
    if due {
        checkpoint(shared).await.map(Some)
    } else {
        Ok(None)
    }
}

/// Runs [`checkpoint_if_due`] every `poll` (tokio time) until the engine is dropped
/// everywhere else; failures are logged and retried at the next poll.
pub(crate) fn spawn_periodic(engine: Weak<Shared>, poll: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(shared): Option<Arc<Shared>> = engine.upgrade() else {
                return;
            };
            if let Err(error) = checkpoint_if_due(&shared).await {
                tracing::error!(%error, "periodic audit checkpoint failed");
            }
        }
    });
}
