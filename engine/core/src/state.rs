//! Where an instance stands: the state the machine folds events into.
//!
//! States are enums whose variants carry the data valid in that state; statuses shown to
//! users ([`InstanceStatus`], [`StepStatus`]) are derived from them, never stored beside.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approval::ApprovalState;
use crate::event::ErrorInfo;
use crate::id::{DefinitionId, InstanceId, StepId};
use crate::status::{InstanceStatus, StepStatus};

mod units;

pub use units::Units;

/// The state of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    /// Instance id.
    pub id: InstanceId,
    /// Definition id.
    pub definition: DefinitionId,
    /// Definition version.
    pub version: u32,
    /// The history format version the instance's history is recorded in (from its
    /// `instance_started`), so that the machine can fold older histories the older way.
    #[serde(default = "crate::history::first_history_version")]
    pub history_version: u32,
    /// Start input.
    pub input: Value,
    /// When `instance_started` happened.
    pub started_at: DateTime<Utc>,
    /// Who started it.
    pub started_by: String,
    /// `at` of the last event folded.
    pub updated_at: DateTime<Utc>,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Every step of the definition.
    pub steps: BTreeMap<StepId, StepState>,
    /// Succeeded steps (fan-out: items) in completion order; compensation runs it backwards.
    pub completions: Vec<Completion>,
    /// Every approval requested so far, by step (kept after it is decided, for
    /// `steps.<id>.decision` and the approvals read model).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub approvals: BTreeMap<StepId, ApprovalState>,
    /// Signals received and not consumed by a wait step yet, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<BufferedSignal>,
    /// The approvals of fan-out approval steps, by step and item (kept after they are
    /// decided, like [`InstanceState::approvals`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub item_approvals: BTreeMap<StepId, BTreeMap<u32, ApprovalState>>,
    /// The progress of steps with `repeat` that have finished a run, by step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repeats: BTreeMap<StepId, RepeatProgress>,
    /// The parent's unit, for a child instance of a workflow step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<crate::event::ParentRef>,
    /// What operator re-runs left behind (`instance_rerun`): edited arguments and the
    /// attempts of the steps they reset.
    #[serde(default, skip_serializing_if = "Reruns::is_empty")]
    pub reruns: Reruns,
}

/// Where a step with `repeat` stands once one of its runs succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatProgress {
    /// The number of the run under way or next (from 1).
    pub iteration: u32,
    /// The outputs of the runs that succeeded, in order (`steps.<id>.iterations`).
    pub outputs: Vec<Value>,
    /// While the step waits for its `interval` before the next run: when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<DateTime<Utc>>,
    /// The highest attempt number any succeeded run used (a re-run starts above it, so
    /// that no idempotency key or child id comes back).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_attempt: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// What re-runs of an instance left in its state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reruns {
    /// Arguments that replace the rendered `with` of these action steps (from the last
    /// re-run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<StepId, Value>,
    /// The attempt each reset step was last made pending with: the next re-run starts
    /// above it even if the step was then skipped, so no idempotency key comes back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attempts: BTreeMap<StepId, u32>,
}

impl Reruns {
    /// Nothing re-run yet.
    pub fn is_empty(&self) -> bool {
        self.arguments.is_empty() && self.attempts.is_empty()
    }
}

/// A signal kept until a wait step for its name consumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferedSignal {
    /// Signal name.
    pub name: String,
    /// Its payload.
    pub payload: Value,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// Who sent it.
    pub actor: String,
}

/// A succeeded step, or one item of a fan-out step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The step.
    pub step: StepId,
    /// The item, for fan-out steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// A fan-out item's output, kept when its step has a `compensate` action (the step
    /// itself may fail later and lose its items); null otherwise.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub output: Value,
}

impl Completion {
    /// Whether this is the completion of `step` (and `item`).
    pub fn is(&self, step: &StepId, item: Option<u32>) -> bool {
        &self.step == step && self.item == item
    }
}

/// Lifecycle phase of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Before `instance_started` is folded.
    NotStarted,
    /// Steps run.
    Running,
    /// A step failed; compensations run in reverse completion order.
    Compensating {
        /// The failure that failed the instance.
        error: ErrorInfo,
        /// Completions still to compensate, next first.
        remaining: Vec<Completion>,
        /// The compensation under way.
        current: Option<CompensationRun>,
    },
    /// Terminal: every step finished.
    Completed {
        /// Evaluated output.
        output: Value,
    },
    /// Terminal: a step failed for good.
    Failed {
        /// Why.
        error: ErrorInfo,
        /// Whether any compensation was started (then an operator retry is refused).
        compensated: bool,
    },
    /// Terminal: cancelled by an operator.
    Cancelled {
        /// Free text from the operator.
        reason: Option<String>,
    },
}

/// One compensation under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationRun {
    /// The step (and item) being compensated.
    pub target: Completion,
    /// Progress of the compensating action.
    pub unit: Unit,
}

/// The state of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    /// Not reached; runs with `attempt` when it becomes ready (1, or more after an
    /// operator retry).
    Pending {
        /// First attempt number of the next run.
        attempt: u32,
    },
    /// Being worked on.
    Active {
        /// What is under way.
        work: Work,
    },
    /// Finished well.
    Succeeded {
        /// Output (a fan-out step's is the list of its items' outputs).
        output: Value,
        /// Attempts used (the highest attempt number of any item for a fan-out step).
        attempts: u32,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: ErrorInfo,
        /// Attempts used.
        attempts: u32,
        /// `on_error: continue`: the instance went on.
        continued: bool,
    },
    /// Not run: `when` was false, or all its needs were skipped.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Stopped because the instance was cancelled or another step failed.
    Cancelled {
        /// Attempts used.
        attempts: u32,
    },
}

/// What an active step is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "work", rename_all = "snake_case")]
pub enum Work {
    /// One action.
    Action {
        /// Its progress.
        unit: Unit,
    },
    /// One action per item, at most `concurrency` at once.
    FanOut {
        /// The resolved items.
        items: Vec<Value>,
        /// Progress per item, by index (stored as a list; see [`Units`]).
        units: Units,
    },
    /// A durable sleep.
    Sleep {
        /// When it ends.
        wake_at: DateTime<Utc>,
    },
    /// An open approval; its details are in [`InstanceState::approvals`].
    Approval {
        /// Attempt number.
        attempt: u32,
        /// Escalation level in charge (names the due timer).
        level: u32,
    },
    /// A wait for a signal.
    Wait {
        /// Attempt number.
        attempt: u32,
        /// The awaited signal's name.
        signal: String,
        /// When the wait times out, if it has a `timeout`.
        timeout_at: Option<DateTime<Utc>>,
    },
}

/// Progress of one action: a step's, a fan-out item's, or a compensation's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case")]
pub enum Unit {
    /// Ready to be dispatched as `attempt`.
    Ready {
        /// The attempt it will run as.
        attempt: u32,
    },
    /// Dispatched, not yet reported started.
    Scheduled {
        /// Attempt number.
        attempt: u32,
    },
    /// Executing.
    Running {
        /// Attempt number.
        attempt: u32,
        /// When the runtime started it.
        started_at: DateTime<Utc>,
    },
    /// Waiting for the retry timer.
    Retrying {
        /// The attempt that starts at `fire_at`.
        attempt: u32,
        /// When.
        fire_at: DateTime<Utc>,
        /// Why the previous attempt failed.
        error: ErrorInfo,
    },
    /// Finished well.
    Succeeded {
        /// Attempt that succeeded.
        attempt: u32,
        /// Its output.
        output: Value,
    },
    /// Failed for good.
    Failed {
        /// Last attempt.
        attempt: u32,
        /// Why.
        error: ErrorInfo,
    },
    /// A fan-out item of an approval step: its approval is open (details in
    /// [`InstanceState::item_approvals`]).
    Approval {
        /// Attempt number.
        attempt: u32,
        /// Escalation level in charge (names the due timer).
        level: u32,
    },
    /// A fan-out item of a wait step: waiting for its signal.
    Wait {
        /// Attempt number.
        attempt: u32,
        /// The awaited signal's name.
        signal: String,
        /// When the item's wait times out, if the step has a `timeout`.
        timeout_at: Option<DateTime<Utc>>,
    },
}

impl Unit {
    /// The attempt number this unit is at.
    pub fn attempt(&self) -> u32 {
        match self {
            Unit::Ready { attempt }
            | Unit::Scheduled { attempt }
            | Unit::Running { attempt, .. }
            | Unit::Retrying { attempt, .. }
            | Unit::Succeeded { attempt, .. }
            | Unit::Failed { attempt, .. }
            | Unit::Approval { attempt, .. }
            | Unit::Wait { attempt, .. } => *attempt,
        }
    }

    /// Waiting for a person or a signal (a fan-out item of an approval or wait step).
    pub fn is_waiting(&self) -> bool {
        matches!(self, Unit::Approval { .. } | Unit::Wait { .. })
    }

    /// Dispatched or executing: its outcome is awaited.
    pub fn is_in_flight(&self) -> bool {
        matches!(self, Unit::Scheduled { .. } | Unit::Running { .. })
    }

    /// Holds a concurrency slot of a fan-out (in flight, waiting to retry, or waiting for
    /// a person or a signal).
    pub fn holds_slot(&self) -> bool {
        matches!(
            self,
            Unit::Scheduled { .. }
                | Unit::Running { .. }
                | Unit::Retrying { .. }
                | Unit::Approval { .. }
                | Unit::Wait { .. }
        )
    }

    fn status(&self) -> StepStatus {
        match self {
            Unit::Ready { .. } | Unit::Scheduled { .. } => StepStatus::Scheduled,
            Unit::Running { .. } => StepStatus::Running,
            Unit::Retrying { .. } => StepStatus::Retrying,
            Unit::Succeeded { .. } => StepStatus::Succeeded,
            Unit::Failed { .. } => StepStatus::Failed,
            Unit::Approval { .. } | Unit::Wait { .. } => StepStatus::Waiting,
        }
    }
}

impl StepState {
    /// The status shown to users.
    pub fn status(&self) -> StepStatus {
        match self {
            StepState::Pending { .. } => StepStatus::Pending,
            StepState::Active { work } => match work {
                Work::Action { unit } => unit.status(),
                Work::FanOut { units, .. } => units.status(),
                Work::Sleep { .. } | Work::Approval { .. } | Work::Wait { .. } => {
                    StepStatus::Waiting
                }
            },
            StepState::Succeeded { .. } => StepStatus::Succeeded,
            StepState::Failed { .. } => StepStatus::Failed,
            StepState::Skipped { .. } => StepStatus::Skipped,
            StepState::Cancelled { .. } => StepStatus::Cancelled,
        }
    }

    /// Attempts used so far.
    pub fn attempts(&self) -> u32 {
        match self {
            StepState::Pending { .. } | StepState::Skipped { .. } => 0,
            StepState::Active { work } => match work {
                Work::Action { unit } => unit.attempt(),
                Work::FanOut { units, .. } => units.max_attempt(),
                Work::Sleep { .. } => 1,
                Work::Approval { attempt, .. } | Work::Wait { attempt, .. } => *attempt,
            },
            StepState::Succeeded { attempts, .. }
            | StepState::Failed { attempts, .. }
            | StepState::Cancelled { attempts } => *attempts,
        }
    }

    /// The output, when the step has one.
    pub fn output(&self) -> Option<&Value> {
        match self {
            StepState::Succeeded { output, .. } => Some(output),
            StepState::Pending { .. }
            | StepState::Active { .. }
            | StepState::Failed { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. } => None,
        }
    }

    /// The error, when the step failed.
    pub fn error(&self) -> Option<&ErrorInfo> {
        match self {
            StepState::Failed { error, .. } => Some(error),
            StepState::Active {
                work:
                    Work::Action {
                        unit: Unit::Retrying { error, .. },
                    },
            } => Some(error),
            StepState::Pending { .. }
            | StepState::Active { .. }
            | StepState::Succeeded { .. }
            | StepState::Skipped { .. }
            | StepState::Cancelled { .. } => None,
        }
    }

    /// Finished in a way that lets dependents run: succeeded, skipped, or failed with
    /// `on_error: continue`.
    pub fn lets_dependents_run(&self) -> bool {
        match self {
            StepState::Succeeded { .. } | StepState::Skipped { .. } => true,
            StepState::Failed { continued, .. } => *continued,
            StepState::Pending { .. } | StepState::Active { .. } | StepState::Cancelled { .. } => {
                false
            }
        }
    }
}

impl InstanceState {
    /// The state before `instance_started`.
    pub fn new(id: InstanceId, definition: DefinitionId, at: DateTime<Utc>) -> Self {
        Self {
            id,
            definition,
            version: 0,
            history_version: crate::history::HISTORY_VERSION,
            input: Value::Null,
            started_at: at,
            started_by: String::new(),
            updated_at: at,
            phase: Phase::NotStarted,
            steps: BTreeMap::new(),
            completions: Vec::new(),
            approvals: BTreeMap::new(),
            signals: Vec::new(),
            repeats: BTreeMap::new(),
            item_approvals: BTreeMap::new(),
            parent: None,
            reruns: Reruns::default(),
        }
    }

    /// The status shown to users and stored for filtering.
    pub fn status(&self) -> InstanceStatus {
        match &self.phase {
            Phase::NotStarted | Phase::Compensating { .. } => InstanceStatus::Running,
            Phase::Completed { .. } => InstanceStatus::Completed,
            Phase::Failed { .. } => InstanceStatus::Failed,
            Phase::Cancelled { .. } => InstanceStatus::Cancelled,
            Phase::Running => {
                let mut any_active = false;
                for step in self.steps.values() {
                    if let StepState::Active { work } = step {
                        any_active = true;
                        let blocked = match work {
                            Work::Action { unit } => matches!(unit, Unit::Retrying { .. }),
                            Work::FanOut { units, .. } => !units.any_ready_or_in_flight(),
                            Work::Sleep { .. } | Work::Approval { .. } | Work::Wait { .. } => true,
                        };
                        if !blocked {
                            return InstanceStatus::Running;
                        }
                    }
                }
                // A step with `repeat` waiting for its interval is pending, and blocked.
                any_active |= self.repeats.values().any(|repeat| repeat.wake_at.is_some());
                if any_active {
                    InstanceStatus::Waiting
                } else {
                    InstanceStatus::Running
                }
            }
        }
    }

    /// The output once completed.
    pub fn output(&self) -> Option<&Value> {
        match &self.phase {
            Phase::Completed { output } => Some(output),
            Phase::NotStarted
            | Phase::Running
            | Phase::Compensating { .. }
            | Phase::Failed { .. }
            | Phase::Cancelled { .. } => None,
        }
    }

    /// The error once failed (or while compensating).
    pub fn error(&self) -> Option<&ErrorInfo> {
        match &self.phase {
            Phase::Failed { error, .. } | Phase::Compensating { error, .. } => Some(error),
            Phase::NotStarted
            | Phase::Running
            | Phase::Completed { .. }
            | Phase::Cancelled { .. } => None,
        }
    }

    /// The state of one step.
    pub fn step(&self, step: &StepId) -> Option<&StepState> {
        self.steps.get(step)
    }

    /// The status of one step shown to users: [`StepState::status`], except that a step
    /// with `repeat` waiting for its interval before the next run is waiting.
    pub fn step_status(&self, step: &StepId) -> Option<StepStatus> {
        let status = self.steps.get(step)?.status();
        let between_runs = self
            .repeats
            .get(step)
            .is_some_and(|progress| progress.wake_at.is_some());
        Some(if status == StepStatus::Pending && between_runs {
            StepStatus::Waiting
        } else {
            status
        })
    }
}
