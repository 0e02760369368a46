//! Rights windows as durable timers (DESIGN.md §2, issue 13 item 6): a trigger
//! `rights: {expiring_within: 7d, system?: otmm}` starts its definition once per (asset,
//! window end) as soon as `now >= valid_until - expiring_within`, with `event = {system,
//! asset_id, window: {valid_from, valid_until}, recipients}`.
//!
//! The windows are observed elsewhere (`observe`): from action outputs, in the commit that
//! records the step's success, and from connectors' events. The store keeps the latest
//! window per asset, so a changed window moves its timer; a window whose end is unknown
//! never fires.
//!
//! [`RightsTimer`] is the background task, on the engine's clock. A pass reads, for each
//! `rights` trigger of the latest version of every definition, the windows due at
//! `now + expiring_within` that the trigger has not fired for at their current end, and
//! fires each (`fire`): the instance id is derived from the definition, trigger, asset and
//! end, and the firing is recorded, so a restart or a second attempt starts nothing twice.
//! Only when something is due does the pass take the lease [`RIGHTS_LEASE`], so one node
//! fires at a time. The task then sleeps until the next due window end (`next_due`), not
//! longer than [`RightsOptions::recheck`] (the windows and deployments other nodes
//! record), and wakes at once when this node observes a window or deploys a definition.
//! Tests with a `ManualClock` call [`RightsTimer::pass`] (or [`RightsTimer::wake`] on a
//! spawned task) after moving the clock.

mod fire;
mod observe;
mod recipients;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use gridflow_core::InstanceId;
use gridflow_store::FiringState;

use crate::definition_cache::Loaded;
use crate::engine::Engine;
use crate::error::Result;
use crate::scheduler::chrono_duration;
use fire::RightsTriggerRef;

pub(crate) use observe::{observe_event, observe_outcome};

/// The name of the lease whose holder fires rights windows.
pub const RIGHTS_LEASE: &str = "rights";

/// Due windows read per trigger and query.
const PAGE: u32 = 100;

/// Settings of the rights timer.
#[derive(Debug, Clone)]
pub struct RightsOptions {
    /// This node's name as a lease holder; unique per running process.
    pub node: String,
    /// How long a taken lease lasts; a node that died while holding it is replaced after
    /// at most this long.
    pub lease_duration: Duration,
    /// The longest the task sleeps between passes when nothing is due sooner: the safety
    /// net for windows and definitions recorded by other nodes, which do not wake it.
    pub recheck: Duration,
    /// How long the task waits after a failed pass (the database away) before it tries
    /// again.
    pub retry: Duration,
}

impl Default for RightsOptions {
    fn default() -> Self {
        Self {
            node: format!("node-{}", uuid::Uuid::now_v7()),
            lease_duration: Duration::from_secs(30),
            recheck: Duration::from_secs(60),
            retry: Duration::from_secs(5),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RightsPass {
    /// Whether this node held the lease while windows were due (false also when nothing
    /// was due and the lease was not needed).
    pub leader: bool,
    /// Windows were due but another node held the lease: nothing was fired.
    pub waiting_for_lease: bool,
    /// Instances started (or found started by an earlier attempt), in firing order.
    pub started: Vec<InstanceId>,
    /// Windows the triggers' `when` kept from starting.
    pub filtered: usize,
    /// Windows whose input could not be made.
    pub failed: usize,
    /// When the next window becomes due for some trigger, by the clock.
    pub next_due: Option<DateTime<Utc>>,
}

/// The wake-up of the rights timer, shared with the paths that observe windows.
#[derive(Debug, Default)]
pub(crate) struct RightsWake {
    notify: Notify,
}

impl RightsWake {
    /// Wakes the timer task; a wake while it runs a pass makes it run one more.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }
}

/// The rights timer of one node. Cheap to clone; clones share the engine and run their
/// passes one at a time.
#[derive(Debug, Clone)]
pub struct RightsTimer {
    engine: Engine,
    options: RightsOptions,
    passes: Arc<tokio::sync::Mutex<()>>,
}

impl RightsTimer {
    /// A timer that starts instances on `engine`.
    pub fn new(engine: Engine, options: RightsOptions) -> Self {
        Self {
            engine,
            options,
            passes: Arc::default(),
        }
    }

    /// This node's lease holder name.
    pub fn node(&self) -> &str {
        &self.options.node
    }

    /// Makes the spawned task run a pass now (after a manual clock moved).
    pub fn wake(&self) {
        self.engine.shared().rights.wake();
    }

    /// Runs passes until the task is aborted: each sleeps until the next due window (at
    /// most `recheck`), or until woken. A failed pass is logged and tried again after
    /// `retry`.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let pause = match self.pass().await {
                    Ok(pass) if pass.waiting_for_lease => self.options.lease_duration,
                    Ok(pass) => pass.next_due.map_or(self.options.recheck, |due| {
                        (due - self.engine.now())
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                            .min(self.options.recheck)
                    }),
                    Err(error) => {
                        tracing::warn!(node = %self.options.node, %error, "rights pass failed");
                        self.options.retry
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.engine.shared().rights.notify.notified() => {}
                }
            }
        })
    }

    /// Gives the lease up (at shutdown).
    pub async fn release(&self) -> Result<()> {
        Ok(self
            .engine
            .shared()
            .store
            .release_lease(RIGHTS_LEASE, &self.options.node)
            .await?)
    }

    /// One pass at the clock's now: fires every window due for every `rights` trigger
    /// (taking the lease first, when any is due), and says when the next one is due.
    pub async fn pass(&self) -> Result<RightsPass> {
        let _one_at_a_time = self.passes.lock().await;
        let shared = self.engine.shared();
        let now = shared.clock.now();
        let mut pass = RightsPass::default();
        let loaded = self.definitions().await?;
        let targets: Vec<RightsTriggerRef<'_>> = loaded
            .iter()
            .flat_map(|loaded| {
                loaded
                    .definition
                    .triggers
                    .iter()
                    .enumerate()
                    .filter(|(_, trigger)| trigger.rights.is_some())
                    .filter_map(move |(index, trigger)| {
                        Some(RightsTriggerRef {
                            loaded,
                            index: u32::try_from(index).ok()?,
                            trigger,
                        })
                    })
            })
            .collect();
        for target in &targets {
            if !self.fire_due(target, now, &mut pass).await? {
                break;
            }
        }
        for target in &targets {
            let Some(rights) = &target.trigger.rights else {
                continue;
            };
            let within = chrono_duration(rights.expiring_within);
            let next = shared
                .store
                .next_rights_end_after(rights.system.as_deref(), now + within)
                .await?
                .map(|end| end - within);
            pass.next_due = match (pass.next_due, next) {
                (Some(earlier), Some(next)) => Some(earlier.min(next)),
                (earlier, next) => earlier.or(next),
            };
        }
        Ok(pass)
    }

    /// The latest version of every definition with a `rights` trigger.
    async fn definitions(&self) -> Result<Vec<Arc<Loaded>>> {
        let shared = self.engine.shared();
        let mut found = Vec::new();
        for record in shared.store.list_definitions().await? {
            let has_rights = record.definition["triggers"]
                .as_array()
                .is_some_and(|triggers| {
                    triggers
                        .iter()
                        .any(|trigger| trigger.get("rights").is_some())
                });
            if !has_rights {
                continue;
            }
            match shared
                .definitions
                .get(&record.id, Some(record.version))
                .await
            {
                Ok(loaded) => found.push(loaded),
                Err(error) => {
                    tracing::error!(definition = %record.id, %error, "rights: definition not loaded");
                }
            }
        }
        Ok(found)
    }

    /// Fires the windows due for one trigger. Returns false when windows were due and
    /// another node holds the lease (the pass stops there).
    async fn fire_due(
        &self,
        target: &RightsTriggerRef<'_>,
        now: DateTime<Utc>,
        pass: &mut RightsPass,
    ) -> Result<bool> {
        let Some(rights) = &target.trigger.rights else {
            return Ok(true);
        };
        let shared = self.engine.shared();
        let until = now + chrono_duration(rights.expiring_within);
        let definition_id = &target.loaded.definition.id;
        loop {
            let due = shared
                .store
                .due_rights_windows(
                    definition_id,
                    target.index,
                    rights.system.as_deref(),
                    until,
                    PAGE,
                )
                .await?;
            if due.is_empty() {
                return Ok(true);
            }
            // Taken before the first firing and renewed before each page, so a long
            // backlog does not outlive the lease.
            let clock_now = shared.clock.now();
            let expires_at = clock_now + chrono_duration(self.options.lease_duration);
            pass.leader = shared
                .store
                .acquire_lease(RIGHTS_LEASE, &self.options.node, clock_now, expires_at)
                .await?;
            if !pass.leader {
                pass.waiting_for_lease = true;
                return Ok(false);
            }
            let full_page = due.len() == PAGE as usize;
            for window in &due {
                let Some(valid_until) = window.valid_until else {
                    continue;
                };
                let (state, instance) = fire::fire(
                    &self.engine,
                    &self.options.node,
                    target,
                    window,
                    valid_until,
                )
                .await?;
                match state {
                    FiringState::Started => pass.started.extend(instance),
                    FiringState::Filtered => pass.filtered += 1,
                    FiringState::Failed => pass.failed += 1,
                }
            }
            if !full_page {
                return Ok(true);
            }
        }
    }
}
