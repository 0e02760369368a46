//! The state every part of the engine shares: the store, the connectors, the clock, the
//! caches and counters, and the driver's inbox.
//!
//! The engine handle wraps it, and the background tasks (the driver, the executor, the
//! database watch, the periodic checkpoint) hold it directly, so no task needs the handle
//! and the handle's methods can sit in the files of their concerns.

use std::sync::Arc;

use tokio::sync::{Semaphore, broadcast, mpsc};

use gridflow_connectors::Registry;
use gridflow_core::limits::Limits;
use gridflow_core::{InstanceId, InstanceStatus};
use gridflow_store::Store;

use crate::audit_key::AuditState;
use crate::availability::Availability;
use crate::clock::Clock;
use crate::definition_cache::DefinitionCache;
use crate::message::Message;
use crate::start_locks::StartLocks;
use crate::stats::Stats;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) definitions: DefinitionCache,
    pub(crate) finished: broadcast::Sender<(InstanceId, InstanceStatus)>,
    pub(crate) action_permits: Arc<Semaphore>,
    pub(crate) stats: Stats,
    pub(crate) audit: AuditState,
    pub(crate) limits: Limits,
    /// Idempotent starts of one instance id run one at a time (`idempotency`).
    pub(crate) start_locks: StartLocks,
    pub(crate) availability: Availability,
    /// Wakes the rights timer when this node observes a window (`rights`).
    pub(crate) rights: crate::rights::RightsWake,
    /// The driver's inbox; written through [`Shared::send`].
    pub(crate) inbox: mpsc::UnboundedSender<Message>,
}

impl Shared {
    pub(crate) fn send(&self, message: Message) {
        // Fails only once the driver has stopped, at shutdown: nothing is left to tell.
        let _ = self.inbox.send(message);
    }
}
