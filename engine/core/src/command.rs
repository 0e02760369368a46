//! Commands: what the runtime must do because of an event. Imperative names.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::TimerKey;
use crate::id::{InstanceId, StepId};
use crate::status::InstanceStatus;

/// Identifies one dispatched unit of work: an attempt of a step, an item or a compensation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkKey {
    /// The step.
    pub step: StepId,
    /// The fan-out item, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Whether this is the step's compensating action.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compensation: bool,
    /// The run of a step with `repeat` (from 1); `None` for any other step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
}

impl WorkKey {
    /// The idempotency key connectors pass on: `<instance>:<step>[:<item>]:<attempt>`,
    /// with `:compensate` appended for a compensation (DESIGN.md §3); a run of a step with
    /// `repeat` has `r<iteration>` before its attempt (`<instance>:<step>:r2:1`), since
    /// each run numbers its attempts from 1.
    pub fn idempotency_key(&self, instance: &InstanceId) -> String {
        let mut key = format!("{}:{}", instance, self.step);
        if let Some(item) = self.item {
            key.push_str(&format!(":{item}"));
        }
        if let Some(iteration) = self.iteration {
            key.push_str(&format!(":r{iteration}"));
        }
        key.push_str(&format!(":{}", self.attempt));
        if self.compensation {
            key.push_str(":compensate");
        }
        key
    }
}

/// An action to execute, at least once, outside the transaction that recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatch {
    /// Which unit of work.
    pub work: WorkKey,
    /// `connector.action`.
    pub action: String,
    /// Resolved arguments.
    pub arguments: Value,
    /// Time limit of this attempt.
    #[serde(with = "crate::duration::text")]
    pub timeout: Duration,
    /// Passed on to systems that honour one.
    pub idempotency_key: String,
}

/// What the runtime must do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Execute an action and report its outcome as an input.
    Dispatch(Dispatch),
    /// Forget queued or running work whose outcome no longer matters.
    AbandonWork {
        /// Which unit of work.
        work: WorkKey,
    },
    /// Fire `TimerFired { timer }` at `fire_at`.
    StartTimer {
        /// Which timer.
        timer: TimerKey,
        /// When.
        fire_at: DateTime<Utc>,
    },
    /// Delete a timer that no longer matters.
    CancelTimer {
        /// Which timer.
        timer: TimerKey,
    },
    /// The instance reached a terminal status.
    Finish {
        /// completed, failed or cancelled.
        status: InstanceStatus,
    },
}
