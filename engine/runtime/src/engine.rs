//! The engine handle: built on a store, it spawns the background tasks, and clones share
//! one engine. It hides the store type.
//!
//! Only the handle, its options and start-up live here. Its methods sit in the files of
//! their concerns (`instances`, `definitions`, `signals`, `approvals`, `events`,
//! `webhooks`, `idempotency`, `audit`, `tokens`, `monitoring`), which import this file;
//! the background tasks (`driver`, `executor`, `database_watch`, `checkpoint`)
//! hold the [`Shared`] state instead, so none of them imports the handle.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use gridflow_connectors::Registry;
use gridflow_core::limits::Limits;
use gridflow_store::Store;

use crate::audit_key::{AuditKey, AuditState};
use crate::availability::Availability;
use crate::children::Queued;
use crate::clock::Clock;
use crate::definition_cache::DefinitionCache;
use crate::driver::Driver;
use crate::error::Result;
use crate::message::{Message, wait};
use crate::shared::Shared;
use crate::start_locks::StartLocks;
use crate::stats::Stats;

/// Tuning of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many action attempts run at once.
    pub max_concurrent_actions: usize,
    /// Gather the next cycle while the previous one commits. It raises throughput when
    /// many independent instances keep the inbox full, and lowers it for a few instances
    /// that each wait for their own commit (their next outcome lands one commit later),
    /// so it is off by default.
    pub pipeline_commits: bool,
    /// The key that signs audit checkpoints; `None`: a new key held in memory only, for
    /// tests (a server loads its key from a file, see [`AuditKey::load_or_create`]).
    pub audit_key: Option<AuditKey>,
    /// Sign a checkpoint whenever this much time (by the engine's clock) has passed since
    /// the last one; `None`: only on demand.
    pub checkpoint_interval: Option<Duration>,
    /// `[limits]` of `gridflow.toml`: the work budget of expressions, the steps of a
    /// definition.
    pub limits: Limits,
    /// Write each instance's whole state at every commit, as before snapshots were
    /// amortized; off by default. For tests that compare every commit's state with a
    /// replay; a server never needs it (readers fold the events after a snapshot).
    pub snapshot_every_commit: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_concurrent_actions: 512,
            pipeline_commits: false,
            audit_key: None,
            checkpoint_interval: None,
            limits: Limits::default(),
            snapshot_every_commit: false,
        }
    }
}

/// The engine: deploy, start, operate and read instances. Clones share one engine.
#[derive(Clone)]
pub struct Engine {
    /// Crate-visible so that the files of each concern add methods in their own files.
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the engine on `store`: spawns the driver and resumes all unfinished work
    /// (queued actions are executed again; timers fire when due).
    pub async fn start(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Result<Self> {
        let (inbox, receiver) = mpsc::unbounded_channel();
        let (finished, _) = broadcast::channel(65_536);
        // The built-in `ledger` connector reads this store.
        let registry = crate::ledger::recipients::with_ledger(registry, store.clone());
        let shared = Arc::new(Shared {
            definitions: DefinitionCache::new(store.clone()),
            store,
            registry,
            clock,
            finished,
            action_permits: Arc::new(Semaphore::new(options.max_concurrent_actions.max(1))),
            stats: Stats::default(),
            start_locks: StartLocks::default(),
            audit: AuditState {
                key: options.audit_key.clone().unwrap_or_else(AuditKey::generate),
                interval: options.checkpoint_interval,
                checkpointing: tokio::sync::Mutex::new(()),
            },
            limits: options.limits.clone(),
            availability: Availability::default(),
            rights: crate::rights::RightsWake::default(),
            inbox,
        });
        // Everything start-up reads is read before any task is spawned: when the database
        // fails here, nothing is left running and the caller may simply try again.
        let next_timer_at = shared.store.next_timer_at().await?;
        let queued = shared.store.queued_work().await?;
        tokio::spawn(
            Driver::new(
                shared.clone(),
                receiver,
                next_timer_at,
                options.pipeline_commits,
                options.snapshot_every_commit,
            )
            .run(),
        );
        crate::database_watch::spawn_monitor(Arc::downgrade(&shared));
        let resumed = queued.len();
        for work in queued {
            match Queued::decode(work.payload) {
                Ok(queued) => queued.spawn(shared.clone(), work.instance_id),
                Err(error) => {
                    tracing::error!(work_id = %work.id, %error, "undecodable queued work skipped")
                }
            }
        }
        if resumed > 0 {
            tracing::info!(resumed, "resumed queued work after start-up");
        }
        if let Some(interval) = options.checkpoint_interval {
            // Polled often enough to be on time within a tenth of the interval.
            let poll = (interval / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
            crate::checkpoint::spawn_periodic(Arc::downgrade(&shared), poll);
        }
        Ok(Self { shared })
    }

    /// The shared parts, for the engine's own background tasks (the cron scheduler and
    /// the pollers).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The limits the engine enforces (`[limits]` of `gridflow.toml`).
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The connectors the engine runs actions with.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The engine clock's current time (the server's clock, or a test's manual one).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// Makes the driver look at its timers now (after a manual clock moved), without
    /// waiting.
    pub fn wake(&self) {
        self.shared.send(Message::Wake(None));
    }

    /// Runs one driver cycle now: fires the timers due by the clock and returns once what
    /// they caused is committed. Tests with a manual clock call it after moving the clock.
    pub async fn tick(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.shared.send(Message::Wake(Some(reply)));
        wait(&self.shared.availability, answer).await
    }

    /// After the clock jumped forward (the sandbox clock): fires the timers now due, as
    /// [`Engine::tick`], and makes the rights timer look at its windows again.
    pub async fn clock_moved(&self) -> Result<()> {
        self.shared.rights.wake();
        self.tick().await
    }
}
