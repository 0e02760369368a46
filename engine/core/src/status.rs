//! Status names shown to users and stored for filtering (DESIGN.md §3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Lifecycle status of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Work is running or ready to run.
    Running,
    /// Everything left is blocked on approvals, signals or timers.
    Waiting,
    /// Every step finished; terminal.
    Completed,
    /// A step failed for good; terminal.
    Failed,
    /// Cancelled by an operator; terminal.
    Cancelled,
}

impl InstanceStatus {
    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            InstanceStatus::Completed | InstanceStatus::Failed | InstanceStatus::Cancelled
        )
    }

    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Running => "running",
            InstanceStatus::Waiting => "waiting",
            InstanceStatus::Completed => "completed",
            InstanceStatus::Failed => "failed",
            InstanceStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "running" => Ok(InstanceStatus::Running),
            "waiting" => Ok(InstanceStatus::Waiting),
            "completed" => Ok(InstanceStatus::Completed),
            "failed" => Ok(InstanceStatus::Failed),
            "cancelled" => Ok(InstanceStatus::Cancelled),
            other => Err(format!(
                "unknown instance status {other:?} (expected running, waiting, completed, failed or cancelled)"
            )),
        }
    }
}

/// Lifecycle status of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached yet.
    Pending,
    /// Dispatched, not yet started.
    Scheduled,
    /// An attempt is executing.
    Running,
    /// Between attempts.
    Retrying,
    /// Waiting for an approval, a signal or a sleep.
    Waiting,
    /// Finished well.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Its `when` was false, or all its needs were skipped.
    Skipped,
    /// The instance was cancelled while the step was not finished.
    Cancelled,
}
