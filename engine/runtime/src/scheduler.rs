//! The cron scheduler: fires the ticks of the cron triggers of the latest version of every
//! deployed definition by starting instances through [`Engine::start_instance`].
//!
//! One node at a time fires ticks: the one holding the lease [`CRON_LEASE`] in the
//! database. Each pass takes or renews the lease first; a node that dies stops renewing
//! and another takes over once the lease expires. Each tick is also claimed in the store
//! (a unique row per definition, trigger and tick instant) before it is fired, so even
//! when a lease changes hands in the middle of a pass a tick starts at most one instance.
//! A node that crashes between the claim and the start loses that tick (at most once).
//!
//! A pass plans each trigger's ticks since its last recorded tick (or since the version
//! was deployed) with [`gridflow_core::schedule::plan`]: ticks at most
//! [`SchedulerOptions::grace`] old are on time, older ones were missed and fire as the
//! trigger's `catch_up` says. Then the trigger's `overlap` policy decides, tick by tick,
//! whether to start, buffer or skip ([`gridflow_core::schedule::overlap_decision`]); a
//! buffered tick starts in a later pass once the running instance has finished.
//!
//! Time comes from the engine's [`crate::Clock`]: tests call [`Scheduler::tick`] after
//! moving a `ManualClock`; [`Scheduler::spawn`] runs passes every
//! [`SchedulerOptions::poll_interval`] of real time.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use gridflow_core::definition::Trigger;
use gridflow_core::expr::{self, Budget, Scope};
use gridflow_core::schedule::{self, CronSchedule, TickAction};
use gridflow_core::{DefinitionId, InstanceId};
use gridflow_store::{TickRecord, TickState};

use crate::definition_cache::Loaded;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// The name of the lease whose holder fires cron ticks.
pub const CRON_LEASE: &str = "cron";

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// This node's name as a lease holder; unique per running process.
    pub node: String,
    /// How long a taken or renewed lease lasts. A node that dies is replaced after at
    /// most this long.
    pub lease_duration: Duration,
    /// How often [`Scheduler::spawn`] runs a pass (and so renews the lease); keep it well
    /// below `lease_duration`.
    pub poll_interval: Duration,
    /// How late a tick may be fired and still count as on time rather than missed.
    pub grace: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            node: format!("node-{}", uuid::Uuid::now_v7()),
            lease_duration: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            grace: Duration::from_secs(60),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Whether this node held the lease (otherwise it fired nothing).
    pub leader: bool,
    /// Instances started, in the order they were started.
    pub started: Vec<InstanceId>,
    /// Ticks claimed and skipped (overlap `skip`, or a second tick to buffer).
    pub skipped: usize,
    /// Ticks claimed and buffered (overlap `buffer_one`).
    pub buffered: usize,
    /// Missed ticks that catch-up dropped.
    pub dropped: usize,
}

/// The cron scheduler of one node. Cheap to clone; clones share the engine.
#[derive(Debug, Clone)]
pub struct Scheduler {
    engine: Engine,
    options: SchedulerOptions,
}

impl Scheduler {
    /// A scheduler that starts instances on `engine`.
    pub fn new(engine: Engine, options: SchedulerOptions) -> Self {
        Self { engine, options }
    }

    /// This node's lease holder name.
    pub fn node(&self) -> &str {
        &self.options.node
    }

    /// Runs passes every `poll_interval` until the task is aborted. A failed pass is
    /// logged and the next one tries again.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(error) = self.tick().await {
                    tracing::warn!(node = %self.options.node, %error, "cron pass failed");
                }
                tokio::time::sleep(self.options.poll_interval).await;
            }
        })
    }

    /// Gives the lease up (at shutdown), so another node takes over without waiting for
    /// it to expire.
    pub async fn release(&self) -> Result<()> {
        Ok(self
            .engine
            .shared()
            .store
            .release_lease(CRON_LEASE, &self.options.node)
            .await?)
    }

    /// One pass: takes or renews the lease, and if this node holds it fires the due
    /// ticks of every cron trigger at the clock's now, and starts buffered ticks whose
    /// running instance has finished. A trigger that fails is logged and skipped; the
    /// others still fire.
    pub async fn tick(&self) -> Result<Pass> {
        let shared = self.engine.shared();
        let now = shared.clock.now();
        let mut pass = Pass::default();
        let expires_at = now + chrono_duration(self.options.lease_duration);
        pass.leader = shared
            .store
            .acquire_lease(CRON_LEASE, &self.options.node, now, expires_at)
            .await?;
        if !pass.leader {
            return Ok(pass);
        }
        for record in shared.store.list_definitions().await? {
            let loaded = match shared
                .definitions
                .get(&record.id, Some(record.version))
                .await
            {
                Ok(loaded) => loaded,
                Err(error) => {
                    tracing::error!(definition = %record.id, %error, "cron: definition not loaded");
                    continue;
                }
            };
            for (index, trigger) in loaded.definition.triggers.iter().enumerate() {
                if trigger.cron.is_none() {
                    continue;
                }
                let Ok(index) = u32::try_from(index) else {
                    continue;
                };
                let fired = self
                    .fire_trigger(&loaded, record.created_at, index, trigger, now, &mut pass)
                    .await;
                if let Err(error) = fired {
                    tracing::warn!(
                        definition = %record.id,
                        trigger = index,
                        %error,
                        "cron trigger not fired"
                    );
                }
            }
        }
        Ok(pass)
    }

    async fn fire_trigger(
        &self,
        loaded: &Loaded,
        deployed_at: DateTime<Utc>,
        index: u32,
        trigger: &Trigger,
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<()> {
        let store = &self.engine.shared().store;
        let definition_id = &loaded.definition.id;
        let Some(schedule) = CronSchedule::of_trigger(trigger).map_err(|error| {
            Error::Internal(format!(
                "definition {definition_id} trigger {index}: {error}"
            ))
        })?
        else {
            return Ok(());
        };
        let overlap = trigger.overlap.unwrap_or_default();
        let catch_up = trigger.catch_up.unwrap_or_default();
        let mut running = self.trigger_running(definition_id, index).await?;

        let mut buffered = match overlap {
            gridflow_core::Overlap::BufferOne => {
                store
                    .last_tick(definition_id, index, Some(TickState::Buffered))
                    .await?
            }
            gridflow_core::Overlap::Skip | gridflow_core::Overlap::Allow => None,
        };
        if let Some(tick) = &buffered
            && !running
        {
            let tick_at = tick.tick_at;
            buffered = None;
            // The update is the claim of the buffered tick: only one node gets to start it.
            if store
                .update_tick(
                    definition_id,
                    index,
                    tick_at,
                    TickState::Buffered,
                    TickState::Started,
                    None,
                )
                .await?
            {
                let instance = self.start(loaded, index, trigger, tick_at).await?;
                pass.started.push(instance);
                running = true;
            }
        }

        let baseline = store
            .last_tick(definition_id, index, None)
            .await?
            .map_or(deployed_at, |last| last.tick_at.max(deployed_at));
        let plan = schedule::plan(
            &schedule,
            catch_up,
            baseline,
            now,
            chrono_duration(self.options.grace),
        );
        pass.dropped += plan.dropped;
        if plan.dropped > 0 || plan.truncated {
            tracing::info!(
                definition = %definition_id,
                trigger = index,
                dropped = plan.dropped,
                truncated = plan.truncated,
                ?catch_up,
                "cron: missed ticks not fired"
            );
        }
        for &tick_at in &plan.fire {
            let action = schedule::overlap_decision(overlap, running, buffered.is_some());
            let state = match action {
                TickAction::Start => TickState::Started,
                TickAction::Buffer => TickState::Buffered,
                TickAction::Skip => TickState::Skipped,
            };
            if !self
                .claim(definition_id, index, tick_at, state, now)
                .await?
            {
                // Another node fired this tick.
                continue;
            }
            match action {
                TickAction::Start => {
                    let instance = self.start(loaded, index, trigger, tick_at).await?;
                    pass.started.push(instance);
                    running = true;
                }
                TickAction::Buffer => {
                    buffered = Some(TickRecord {
                        definition_id: definition_id.clone(),
                        trigger_index: index,
                        tick_at,
                        state,
                        instance_id: None,
                        claimed_by: self.options.node.clone(),
                        claimed_at: now,
                    });
                    pass.buffered += 1;
                }
                TickAction::Skip => pass.skipped += 1,
            }
        }
        // Record the latest tick even when catch-up dropped it, so that the next pass
        // starts after it instead of planning the same missed ticks again.
        if let Some(latest) = plan.latest
            && !plan.fire.contains(&latest)
        {
            self.claim(definition_id, index, latest, TickState::Skipped, now)
                .await?;
        }
        Ok(())
    }

    async fn claim(
        &self,
        definition_id: &DefinitionId,
        index: u32,
        tick_at: DateTime<Utc>,
        state: TickState,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(self
            .engine
            .shared()
            .store
            .claim_tick(&TickRecord {
                definition_id: definition_id.clone(),
                trigger_index: index,
                tick_at,
                state,
                instance_id: None,
                claimed_by: self.options.node.clone(),
                claimed_at: now,
            })
            .await?)
    }

    /// Whether the instance of the trigger's last started tick still runs.
    async fn trigger_running(&self, definition_id: &DefinitionId, index: u32) -> Result<bool> {
        let store = &self.engine.shared().store;
        let Some(last_started) = store
            .last_tick(definition_id, index, Some(TickState::Started))
            .await?
        else {
            return Ok(false);
        };
        let Some(instance) = last_started.instance_id else {
            // Claimed but its start was never recorded (the node crashed in between).
            return Ok(false);
        };
        match store.instance(&instance).await {
            Ok(record) => Ok(!record.status.is_terminal()),
            Err(gridflow_store::Error::NotFound(_)) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Starts the instance of a claimed tick (in state `started`) and records its id on
    /// the tick. If the start fails, the tick is marked skipped.
    async fn start(
        &self,
        loaded: &Loaded,
        index: u32,
        trigger: &Trigger,
        tick_at: DateTime<Utc>,
    ) -> Result<InstanceId> {
        let store = &self.engine.shared().store;
        let definition_id = &loaded.definition.id;
        let started = async {
            let budget = self.engine.shared().limits.budget();
            let input = cron_input(definition_id, index, trigger, tick_at, budget)?;
            let actor = cron_actor(definition_id, index, tick_at);
            self.engine
                .start_instance(definition_id, Some(loaded.version), input, &actor)
                .await
        }
        .await;
        match started {
            Ok(instance) => {
                store
                    .update_tick(
                        definition_id,
                        index,
                        tick_at,
                        TickState::Started,
                        TickState::Started,
                        Some(&instance),
                    )
                    .await?;
                tracing::info!(
                    definition = %definition_id,
                    trigger = index,
                    tick_at = %tick_at,
                    instance = %instance,
                    "cron tick started an instance"
                );
                Ok(instance)
            }
            Err(error) => {
                store
                    .update_tick(
                        definition_id,
                        index,
                        tick_at,
                        TickState::Started,
                        TickState::Skipped,
                        None,
                    )
                    .await?;
                Err(error)
            }
        }
    }
}

/// The actor recorded in `instance_started` for a cron tick:
/// `trigger:<definition>/<trigger index>@<tick instant, RFC 3339 UTC>`.
pub fn cron_actor(definition_id: &DefinitionId, index: u32, tick_at: DateTime<Utc>) -> String {
    format!(
        "trigger:{definition_id}/{index}@{}",
        tick_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

/// The start input of a cron tick: the trigger's `input` template (`{}` when absent)
/// rendered with `event` = `{type: "cron", definition, trigger, tick_at}`.
fn cron_input(
    definition_id: &DefinitionId,
    index: u32,
    trigger: &Trigger,
    tick_at: DateTime<Utc>,
    budget: Budget,
) -> Result<Value> {
    let event = json!({
        "type": "cron",
        "definition": definition_id.as_str(),
        "trigger": index,
        "tick_at": tick_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    });
    render_trigger_input(definition_id, index, trigger, event, budget)
}

/// A trigger's `input` template rendered with `event` in scope (`{}` without a template).
pub(crate) fn render_trigger_input(
    definition_id: &DefinitionId,
    index: u32,
    trigger: &Trigger,
    event: Value,
    budget: Budget,
) -> Result<Value> {
    let Some(template) = &trigger.input else {
        return Ok(json!({}));
    };
    expr::render(template, &Scope::new().with("event", event).within(budget)).map_err(|message| {
        let path = format!("triggers[{index}].input");
        Error::Invalid {
            message: format!("definition {definition_id} {path}: {message}"),
            details: vec![crate::error::Detail { path, message }],
        }
    })
}

pub(crate) fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
