//! Commands: what the runtime must do because of an event. Imperative names.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::TimerKey;
use crate::id::{DefinitionId, InstanceId, StepId};
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
    /// The instance's approved artifacts when its definition binds any approval to
    /// artifacts (`bind`): an action that delivers content may deliver only these. `None`
    /// when no approval of the definition binds, so deliveries are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<Vec<crate::artifact::Artifact>>,
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
    /// Start a child instance for a workflow unit (at most once: its id is derived from
    /// the unit) and report its end as the unit's outcome.
    StartChild(ChildStart),
    /// Cancel the child instance of a workflow unit whose outcome no longer matters.
    CancelChild {
        /// The unit the child ran for.
        work: WorkKey,
        /// The child instance.
        child: InstanceId,
    },
}

/// A child instance to start, at least once, outside the transaction that recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildStart {
    /// The workflow unit the child runs for.
    pub work: WorkKey,
    /// The child's id, derived from the parent and the unit
    /// ([`crate::machine::child_id`]), so a start repeated after a crash finds it.
    pub child: InstanceId,
    /// The child's definition.
    pub definition: DefinitionId,
    /// The pinned version; the latest deployed when the child starts if `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The rendered start input of the child.
    pub input: Value,
    /// The unit's key, `<instance>:<step>[:<item>]:<attempt>`: the outbox row's id.
    pub idempotency_key: String,
}
