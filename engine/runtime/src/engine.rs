//! The engine handle: commands and read queries, cheap to clone, hiding the store type.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use gridflow_connectors::Registry;
use gridflow_core::command::Dispatch;
use gridflow_core::machine::{Input, InputBody};
use gridflow_core::validate;
use gridflow_core::{Definition, DefinitionId, InstanceId, InstanceStatus, RecordedEvent, StepId};
use gridflow_store::{Deployed, InstanceFilter, Page, Store};

use crate::audit::{AuditKey, AuditState};
use crate::clock::Clock;
use crate::definitions::DefinitionCache;
use crate::driver::{Driver, Message};
use crate::error::{Error, Result};
use crate::stats::{Stats, StatsSnapshot};
use crate::view::{DefinitionView, InstanceView, decode_state};

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_concurrent_actions: 512,
            pipeline_commits: false,
            audit_key: None,
            checkpoint_interval: None,
        }
    }
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Definition id.
    pub id: String,
    /// The version now current.
    pub version: u32,
    /// Whether a new version was stored (false: identical content was deployed before).
    pub created: bool,
}

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

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) definitions: DefinitionCache,
    pub(crate) finished: broadcast::Sender<(InstanceId, InstanceStatus)>,
    pub(crate) action_permits: Arc<Semaphore>,
    pub(crate) stats: Stats,
    pub(crate) audit: AuditState,
    inbox: mpsc::UnboundedSender<Message>,
}

impl Shared {
    pub(crate) fn send(&self, message: Message) {
        // Fails only once the driver has stopped, at shutdown: nothing is left to tell.
        let _ = self.inbox.send(message);
    }
}

/// The engine: deploy, start, operate and read instances. Clones share one engine.
#[derive(Clone)]
pub struct Engine {
    /// Crate-visible so that other modules (`monitoring`) add methods in their own files.
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
        let shared = Arc::new(Shared {
            definitions: DefinitionCache::new(store.clone()),
            store,
            registry,
            clock,
            finished,
            action_permits: Arc::new(Semaphore::new(options.max_concurrent_actions.max(1))),
            stats: Stats::default(),
            audit: AuditState {
                key: options.audit_key.clone().unwrap_or_else(AuditKey::generate),
                interval: options.checkpoint_interval,
                checkpointing: tokio::sync::Mutex::new(()),
            },
            inbox,
        });
        let next_timer_at = shared.store.next_timer_at().await?;
        tokio::spawn(
            Driver::new(
                shared.clone(),
                receiver,
                next_timer_at,
                options.pipeline_commits,
            )
            .run(),
        );
        let queued = shared.store.queued_work().await?;
        let resumed = queued.len();
        for work in queued {
            match serde_json::from_value::<Dispatch>(work.payload) {
                Ok(dispatch) => crate::executor::spawn(shared.clone(), work.instance_id, dispatch),
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
            crate::audit::spawn_periodic(Arc::downgrade(&shared), poll);
        }
        Ok(Self { shared })
    }

    /// The shared parts, for the engine's own background tasks (the cron scheduler) and
    /// the audit functions.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The connectors the engine runs actions with.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Validates a definition without deploying it.
    pub fn validate(&self, source: &str) -> Result<Definition> {
        Ok(validate::load(source, self.shared.registry.as_ref())?)
    }

    /// Deploys a definition: a new version when its content changed.
    pub async fn deploy(&self, source: &str) -> Result<Deployment> {
        let definition = self.validate(source)?;
        let content_hash = validate::content_hash(&definition);
        let json = serde_json::to_value(&definition)
            .map_err(|error| Error::Internal(format!("definition does not serialize: {error}")))?;
        let deployed = self
            .shared
            .store
            .deploy(
                &definition.id,
                &content_hash,
                source,
                &json,
                self.shared.clock.now(),
            )
            .await?;
        let (version, created) = match deployed {
            Deployed::Created(version) => (version, true),
            Deployed::Unchanged(version) => (version, false),
        };
        tracing::info!(definition = %definition.id, version, created, "definition deployed");
        Ok(Deployment {
            id: definition.id.to_string(),
            version,
            created,
        })
    }

    /// One version of a definition, the latest when `version` is `None`.
    pub async fn definition(
        &self,
        id: &DefinitionId,
        version: Option<u32>,
    ) -> Result<DefinitionView> {
        Ok(DefinitionView::from(
            &self.shared.store.definition(id, version).await?,
        ))
    }

    /// The latest version of every definition.
    pub async fn list_definitions(&self) -> Result<Vec<DefinitionView>> {
        Ok(self
            .shared
            .store
            .list_definitions()
            .await?
            .iter()
            .map(DefinitionView::from)
            .collect())
    }

    /// Every version of a definition, oldest first.
    pub async fn definition_versions(&self, id: &DefinitionId) -> Result<Vec<DefinitionView>> {
        Ok(self
            .shared
            .store
            .definition_versions(id)
            .await?
            .iter()
            .map(DefinitionView::from)
            .collect())
    }

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
        wait(answer).await
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
        wait(answer).await
    }

    /// An instance's current state.
    pub async fn instance(&self, instance: &InstanceId) -> Result<InstanceView> {
        InstanceView::from_record(&self.shared.store.instance(instance).await?)
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
            .list_instances(filter, cursor, limit.clamp(1, 500))
            .await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(InstanceView::from_record)
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
        let loaded = self
            .shared
            .definitions
            .get(&record.definition_id, Some(record.definition_version))
            .await?;
        let state = gridflow_core::replay(instance, &history, &loaded.definition, at)
            .map_err(|error| Error::Internal(error.to_string()))?;
        let last_seq = history.last().map(|event| event.seq).unwrap_or(0);
        let folded_to = at.unwrap_or(last_seq).min(last_seq);
        let matches_stored = (folded_to == last_seq)
            .then(|| decode_state(&record).is_ok_and(|stored| stored == state));
        Ok(Replayed {
            at: folded_to,
            last_seq,
            state: InstanceView::from_state(&state),
            matches_stored,
        })
    }

    /// Succeeds when the database answers.
    pub async fn health(&self) -> Result<()> {
        Ok(self.shared.store.health().await?)
    }

    /// Announces `(instance, status)` when an instance reaches a terminal status.
    pub fn subscribe_finished(&self) -> broadcast::Receiver<(InstanceId, InstanceStatus)> {
        self.shared.finished.subscribe()
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
        wait(answer).await
    }

    /// The engine's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }
}

async fn wait(answer: oneshot::Receiver<Result<()>>) -> Result<()> {
    answer
        .await
        .map_err(|_| Error::Unavailable("the engine is shutting down".to_owned()))?
}
