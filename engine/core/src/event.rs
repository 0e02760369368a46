//! History events: facts that already happened, in past tense (DESIGN.md §4).
//!
//! An [`Event`] is what the state machine folds; [`crate::history::RecordedEvent`] is how it
//! is stored, numbered and hashed. Every event about a step carries `step` and `attempt`,
//! and inside a fan-out also `item`, the item's index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::{DefinitionId, InstanceId, StepId};

/// Actor of events that no user caused.
pub const SYSTEM_ACTOR: &str = "system";

/// One fact in an instance's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When it happened: the runtime's clock reading, never read by the core.
    pub at: DateTime<Utc>,
    /// `system` or the acting user.
    pub actor: String,
    /// What happened.
    pub body: EventBody,
}

impl Event {
    /// An event caused by the system.
    pub fn system(at: DateTime<Utc>, body: EventBody) -> Self {
        Self {
            at,
            actor: SYSTEM_ACTOR.to_owned(),
            body,
        }
    }

    /// Rebuilds an event from its stored type and data.
    pub fn from_type_and_data(
        event_type: &str,
        data: &Value,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Result<Self, serde_json::Error> {
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        Ok(Self {
            at,
            actor: actor.to_owned(),
            body: serde_json::from_value(tagged)?,
        })
    }
}

/// A failure as recorded in history and shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Machine-readable class, such as `timeout`, `not_found`, `expression`.
    pub code: String,
    /// The system's or the engine's message.
    pub message: String,
    /// Whether another attempt could succeed.
    #[serde(default)]
    pub retryable: bool,
}

impl ErrorInfo {
    /// A failure that retrying cannot mend.
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            retryable: false,
        }
    }
}

/// Why a timer exists; part of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerPurpose {
    /// The next attempt of a retried action.
    Retry,
    /// The next attempt of a retried compensation.
    CompensationRetry,
    /// The end of a `sleep` step.
    Sleep,
    /// The `due` of an approval (at one escalation level).
    ApprovalDue,
    /// The `timeout` of a wait step.
    WaitTimeout,
    /// The end of a repeat step's `interval` before its next run (`attempt` holds the
    /// number of that run).
    RepeatInterval,
}

/// Identifies one timer of an instance: which step, item and attempt it wakes, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimerKey {
    /// The step the timer belongs to.
    pub step: StepId,
    /// The fan-out item, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The attempt the timer starts (retries) or belongs to.
    pub attempt: u32,
    /// Why the timer exists.
    pub purpose: TimerPurpose,
    /// The escalation level an approval's due timer belongs to (0: the first assignees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
}

impl TimerKey {
    /// The timer that starts attempt `attempt` of a retried action (or fan-out item).
    pub fn retry(step: &StepId, item: Option<u32>, attempt: u32) -> Self {
        Self::new(step, item, attempt, TimerPurpose::Retry, None)
    }

    /// The timer that starts attempt `attempt` of a retried compensation.
    pub fn compensation_retry(step: &StepId, item: Option<u32>, attempt: u32) -> Self {
        Self::new(step, item, attempt, TimerPurpose::CompensationRetry, None)
    }

    /// The end of a `sleep` step.
    pub fn sleep(step: &StepId, attempt: u32) -> Self {
        Self::new(step, None, attempt, TimerPurpose::Sleep, None)
    }

    /// The `due` of an approval at escalation level `level` (0: the first assignees).
    pub fn approval_due(step: &StepId, attempt: u32, level: u32) -> Self {
        Self::new(step, None, attempt, TimerPurpose::ApprovalDue, Some(level))
    }

    /// The `timeout` of a wait step.
    pub fn wait_timeout(step: &StepId, attempt: u32) -> Self {
        Self::new(step, None, attempt, TimerPurpose::WaitTimeout, None)
    }

    /// The end of a repeat step's `interval`, before run `iteration`.
    pub fn repeat_interval(step: &StepId, iteration: u32) -> Self {
        Self::new(step, None, iteration, TimerPurpose::RepeatInterval, None)
    }

    /// The `due` of fan-out item `item`'s approval at escalation level `level`.
    pub fn item_approval_due(step: &StepId, item: u32, attempt: u32, level: u32) -> Self {
        Self::new(
            step,
            Some(item),
            attempt,
            TimerPurpose::ApprovalDue,
            Some(level),
        )
    }

    /// The `timeout` of fan-out item `item`'s wait.
    pub fn item_wait_timeout(step: &StepId, item: u32, attempt: u32) -> Self {
        Self::new(step, Some(item), attempt, TimerPurpose::WaitTimeout, None)
    }

    fn new(
        step: &StepId,
        item: Option<u32>,
        attempt: u32,
        purpose: TimerPurpose,
        level: Option<u32>,
    ) -> Self {
        Self {
            step: step.clone(),
            item,
            attempt,
            purpose,
            level,
        }
    }

    /// A stable text form, unique within an instance, used as the stored timer key.
    pub fn to_key_string(&self) -> String {
        let purpose = match self.purpose {
            TimerPurpose::Retry => "retry",
            TimerPurpose::CompensationRetry => "compensation_retry",
            TimerPurpose::Sleep => "sleep",
            TimerPurpose::ApprovalDue => "approval_due",
            TimerPurpose::WaitTimeout => "wait_timeout",
            TimerPurpose::RepeatInterval => "repeat_interval",
        };
        if let Some(level) = self.level {
            return match self.item {
                Some(item) => format!(
                    "{}:{}:{}:{}:{}",
                    purpose, self.step, item, self.attempt, level
                ),
                None => format!("{}:{}:{}:{}", purpose, self.step, self.attempt, level),
            };
        }
        match self.item {
            Some(item) => format!("{}:{}:{}:{}", purpose, self.step, item, self.attempt),
            None => format!("{}:{}:{}", purpose, self.step, self.attempt),
        }
    }
}

/// What happened. Serialized as `{"type": "<snake_case>", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    /// The instance was created with this input, on this definition version.
    InstanceStarted {
        /// Definition id.
        definition: DefinitionId,
        /// Definition version the instance runs on for its whole life.
        version: u32,
        /// Validated start input.
        input: Value,
        /// The history format version the instance records and replays with
        /// ([`crate::history::HISTORY_VERSION`] when it started). Histories recorded before
        /// versions existed have no such field and decode as version 1; their stored data is
        /// hashed as stored, so their chains still verify.
        #[serde(default = "crate::history::first_history_version")]
        history_version: u32,
        /// The unit of the parent instance that started this one as a child workflow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentRef>,
    },
    /// A step (no `item`), or one fan-out item, was scheduled for an attempt.
    StepScheduled {
        /// The step.
        step: StepId,
        /// Attempt number, from 1.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Resolved action arguments, for audit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arguments: Option<Value>,
        /// A fan-out step's resolved items (on the step-level event).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        items: Option<Vec<Value>>,
        /// A sleep step's wake-up instant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wake_at: Option<DateTime<Utc>>,
        /// A wait step's timeout instant, when it has a `timeout`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_at: Option<DateTime<Utc>>,
    },
    /// The runtime began executing an attempt.
    StepStarted {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
    },
    /// An attempt (with `item`: one item; without: the whole step) succeeded.
    StepSucceeded {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The output; a fan-out step's is the list of its items' outputs.
        output: Value,
    },
    /// A step or item failed for good.
    StepFailed {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Why.
        error: ErrorInfo,
    },
    /// An attempt failed and the next one will start at `fire_at`.
    StepRetryScheduled {
        /// The step.
        step: StepId,
        /// The attempt that failed.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Why it failed.
        error: ErrorInfo,
        /// When the next attempt starts; chosen (with jitter) by the runtime.
        fire_at: DateTime<Utc>,
        /// Whether this is the step's compensation being retried.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compensation: bool,
    },
    /// A step will not run: its `when` was false, or all its needs were skipped.
    StepSkipped {
        /// The step.
        step: StepId,
        /// Always 1: a skipped step has no attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// A durable timer fired.
    TimerFired {
        /// Which timer.
        #[serde(flatten)]
        timer: TimerKey,
    },
    /// A compensating action was dispatched for a succeeded step (or item).
    CompensationStarted {
        /// The compensated step.
        step: StepId,
        /// Attempt of the compensation.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Resolved arguments.
        arguments: Value,
    },
    /// A compensating action succeeded.
    CompensationSucceeded {
        /// The compensated step.
        step: StepId,
        /// Attempt of the compensation.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Its output.
        output: Value,
    },
    /// A compensating action failed for good; the remaining compensations still run.
    CompensationFailed {
        /// The compensated step.
        step: StepId,
        /// Attempt of the compensation.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Why.
        error: ErrorInfo,
    },
    /// An operator asked for a failed step to run again.
    StepRetryRequested {
        /// The step.
        step: StepId,
        /// The attempt the new run starts with.
        attempt: u32,
    },
    /// Every step finished; the instance's output.
    InstanceCompleted {
        /// Evaluated `output` template (null when the definition has none).
        output: Value,
    },
    /// The instance failed (after any compensation).
    InstanceFailed {
        /// The failure that failed it.
        error: ErrorInfo,
    },
    /// An approval step was reached: the approval is open for these assignees.
    ApprovalRequested {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// Rendered title.
        title: String,
        /// Assigned users.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        users: Vec<String>,
        /// Assigned groups.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<String>,
        /// Approvals needed.
        quorum: u32,
        /// When `on_timeout` applies, if the approval has a `due`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<DateTime<Utc>>,
        /// The artifacts its `bind` rendered to: what is being approved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifacts: Option<Vec<crate::artifact::Artifact>>,
    },
    /// A user approved or rejected an approval (the event's actor is that user).
    ApprovalDecided {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The deciding user.
        user: String,
        /// `approve` or `reject`.
        decision: crate::approval::Verdict,
        /// Free text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// Form data (checked against the approval's `form`).
        #[serde(default, skip_serializing_if = "Value::is_null")]
        data: Value,
        /// The artifacts the approval binds: what the user approved or rejected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifacts: Option<Vec<crate::artifact::Artifact>>,
    },
    /// An approval's due passed and it moved to the next escalation level.
    ApprovalEscalated {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The level now in charge, from 1 (the first entry of `escalate_to`).
        level: u32,
        /// The users now assigned.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        users: Vec<String>,
        /// The groups now assigned.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<String>,
        /// The new due instant, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<DateTime<Utc>>,
    },
    /// An assignee handed their decision to another user, who became an assignee.
    ApprovalDelegated {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The delegating user (who may no longer decide).
        from: String,
        /// The delegate.
        to: String,
    },
    /// An external signal was delivered to the instance. It is kept until a wait step for
    /// its name consumes it (at once when one is waiting).
    SignalReceived {
        /// Signal name.
        name: String,
        /// Its JSON payload.
        #[serde(default)]
        payload: Value,
    },
    /// The instance was cancelled.
    InstanceCancelled {
        /// Free text from the operator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// One run of a step with `repeat` succeeded (instead of the run's `step_succeeded`);
    /// the next event says what follows: `step_succeeded` (its `until` held, or
    /// `on_exhausted: continue`), `step_repeat_scheduled` or `step_failed`.
    StepIterationSucceeded {
        /// The step.
        step: StepId,
        /// The run's attempt.
        attempt: u32,
        /// The run's number, from 1.
        iteration: u32,
        /// The run's output.
        output: Value,
    },
    /// A step with `repeat` will run again as run `iteration`, at `fire_at` (after its
    /// `interval`) or at once.
    StepRepeatScheduled {
        /// The step.
        step: StepId,
        /// The number of the next run.
        iteration: u32,
        /// When the next run starts, when the step has an `interval`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fire_at: Option<DateTime<Utc>>,
    },
    /// A workflow step's unit started its child instance (or found it started): the
    /// attempt runs until the child ends.
    ChildStarted {
        /// The step.
        step: StepId,
        /// Attempt number.
        attempt: u32,
        /// Fan-out item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// The child instance.
        child: InstanceId,
        /// The child's definition.
        definition: DefinitionId,
        /// The child's definition version, resolved when the child started.
        version: u32,
    },
    /// An operator re-ran a completed or failed instance (the event's actor), from a step
    /// and everything downstream of it, or only its output; with the edits made.
    InstanceRerun {
        /// The step it re-runs from; none: only the output is evaluated again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_step: Option<StepId>,
        /// The start input that replaces the old one, when it was edited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Value>,
        /// Arguments that replace the rendered `with` of these action steps.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        arguments: BTreeMap<StepId, Value>,
        /// The steps made pending again, in definition order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps_reset: Vec<StepId>,
    },
    /// The instance moved to another version of its definition; it goes on with that one.
    InstanceMigrated {
        /// The version it ran on.
        from_version: u32,
        /// The version it runs on from now on.
        to_version: u32,
        /// Old step id to new step id, for steps that were renamed.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        mapping: BTreeMap<StepId, StepId>,
    },
}

/// The unit of a parent instance that a child instance runs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The parent instance.
    pub instance_id: InstanceId,
    /// The parent's workflow step.
    pub step: StepId,
    /// The fan-out item, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The parent step's attempt that started the child.
    pub attempt: u32,
    /// The run of the parent step, when it has `repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
}

impl EventBody {
    /// Splits into the stored `type` and `data`.
    pub fn type_and_data(&self) -> (String, Value) {
        let mut tagged = serde_json::to_value(self).expect("event bodies always serialize to JSON");
        let event_type = tagged
            .get("type")
            .and_then(Value::as_str)
            .expect("serde adjacently tags every event body with a string type")
            .to_owned();
        let data = tagged
            .get_mut("data")
            .map(Value::take)
            .unwrap_or_else(|| Value::Object(Default::default()));
        (event_type, data)
    }
}
