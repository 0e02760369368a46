//! One async lock per instance id being started idempotently on this node, so that two
//! starts with one idempotency key run one after the other (see `idempotency`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use gridflow_core::InstanceId;

/// One async lock per instance id being started idempotently on this node.
#[derive(Default)]
pub(crate) struct StartLocks {
    locks: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds an id's lock; forgets the lock when its last holder or waiter is done.
pub(crate) struct StartGuard<'a> {
    locks: &'a StartLocks,
    instance: InstanceId,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .locks
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's own Arc and this guard's: nobody else waits for this id.
        if locks
            .get(&self.instance)
            .is_some_and(|lock| Arc::strong_count(lock) <= 2)
        {
            locks.remove(&self.instance);
        }
    }
}

impl StartLocks {
    pub(crate) async fn lock(&self, instance: &InstanceId) -> StartGuard<'_> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(instance.clone())
            .or_default()
            .clone();
        StartGuard {
            locks: self,
            instance: instance.clone(),
            _guard: lock.lock_owned().await,
        }
    }
}
