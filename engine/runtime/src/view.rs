//! Read models returned by the engine handle, in the shapes of DESIGN.md §5.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use gridflow_core::{ErrorInfo, InstanceState, InstanceStatus, StepStatus};
use gridflow_store::{ApprovalRecord, ChildRecord, DefinitionRecord, InstanceRecord};

use crate::error::{Error, Result};

/// An instance as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    /// Instance id.
    pub id: String,
    /// Definition id.
    pub definition: String,
    /// Definition version.
    pub version: u32,
    /// Lifecycle status.
    pub status: InstanceStatus,
    /// Start input.
    pub input: Value,
    /// Output once completed.
    pub output: Option<Value>,
    /// Error once failed.
    pub error: Option<ErrorInfo>,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who started it.
    pub started_by: String,
    /// Every step, by id.
    pub steps: BTreeMap<String, StepView>,
    /// The parent's unit, for a child instance of a workflow step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentView>,
}

/// The unit of a parent instance that a child instance runs for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParentView {
    /// The parent instance.
    pub instance_id: String,
    /// Its workflow step.
    pub step: String,
    /// The fan-out item, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The step's attempt that started the child.
    pub attempt: u32,
}

/// A child instance that a workflow step started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildView {
    /// The child instance.
    pub instance_id: String,
    /// The fan-out item, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The step's attempt that started it.
    pub attempt: u32,
    /// The child's status.
    pub status: InstanceStatus,
}

/// One step of an instance as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    /// Lifecycle status.
    pub status: StepStatus,
    /// Attempts used.
    pub attempts: u32,
    /// Output once succeeded.
    pub output: Option<Value>,
    /// Error once failed (or of the last attempt while retrying).
    pub error: Option<ErrorInfo>,
    /// Approval decision (approval steps).
    pub decision: Option<String>,
    /// Approval comment (approval steps).
    pub comment: Option<String>,
    /// The child instances of a workflow step, by item and attempt.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildView>,
}

impl InstanceView {
    /// Builds the view from a state.
    pub fn from_state(state: &InstanceState) -> Self {
        Self {
            id: state.id.to_string(),
            definition: state.definition.to_string(),
            version: state.version,
            status: state.status(),
            input: state.input.clone(),
            output: state.output().cloned(),
            error: state.error().cloned(),
            created_at: state.started_at,
            updated_at: state.updated_at,
            started_by: state.started_by.clone(),
            steps: state
                .steps
                .iter()
                .map(|(id, step)| {
                    (
                        id.to_string(),
                        StepView {
                            status: state.step_status(id).unwrap_or_else(|| step.status()),
                            attempts: step.attempts(),
                            output: step.output().cloned(),
                            error: step.error().cloned(),
                            decision: gridflow_core::approval::step_decision(state, id),
                            comment: state
                                .approvals
                                .get(id)
                                .and_then(|approval| approval.outcome.as_ref())
                                .and_then(|outcome| outcome.comment.clone()),
                            children: Vec::new(),
                        },
                    )
                })
                .collect(),
            parent: state.parent.as_ref().map(|parent| ParentView {
                instance_id: parent.instance_id.to_string(),
                step: parent.step.to_string(),
                item: parent.item,
                attempt: parent.attempt,
            }),
        }
    }

    /// Lists each stored child under its parent's step.
    pub fn with_children(mut self, children: &[ChildRecord]) -> Self {
        for child in children {
            if let Some(step) = self.steps.get_mut(child.link.step.as_str()) {
                step.children.push(ChildView {
                    instance_id: child.link.child_id.to_string(),
                    item: child.link.item,
                    attempt: child.link.attempt,
                    status: child.status,
                });
            }
        }
        self
    }

    /// Builds the view from a stored row whose snapshot is current (`snapshot_seq` is
    /// `last_seq`); any other row is read through `Engine::instance`, which folds the
    /// events after its snapshot.
    pub fn from_record(record: &InstanceRecord) -> Result<Self> {
        if record.snapshot_seq != record.last_seq {
            return Err(Error::Internal(format!(
                "instance {}: its snapshot reflects seq {}, not the last event {}",
                record.id, record.snapshot_seq, record.last_seq
            )));
        }
        let state = decode_state(record)?;
        Ok(Self::from_state(&state))
    }
}

/// An instance in a list: [`InstanceView`] without starter and steps, read without the
/// state snapshot, so that a page costs the same however far its instances ran (read it
/// whole with `GET /instances/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSummary {
    /// Instance id.
    pub id: String,
    /// Definition id.
    pub definition: String,
    /// Definition version.
    pub version: u32,
    /// Lifecycle status.
    pub status: InstanceStatus,
    /// The start input.
    pub input: Value,
    /// The output once completed.
    pub output: Option<Value>,
    /// Error once failed.
    pub error: Option<ErrorInfo>,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl InstanceSummary {
    /// The summary of a stored row; does not read its state.
    pub fn from_record(record: &InstanceRecord) -> Result<Self> {
        let error = record
            .error
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| {
                Error::Internal(format!(
                    "instance {}: stored error does not decode: {error}",
                    record.id
                ))
            })?;
        Ok(Self {
            id: record.id.to_string(),
            definition: record.definition_id.to_string(),
            version: record.definition_version,
            status: record.status,
            input: record.input.clone(),
            output: record.output.clone(),
            error,
            created_at: record.created_at,
            updated_at: record.updated_at,
        })
    }
}

/// Decodes the state snapshot of a stored row.
pub fn decode_state(record: &InstanceRecord) -> Result<InstanceState> {
    serde_json::from_value(record.state.clone()).map_err(|error| {
        Error::Internal(format!(
            "instance {}: stored state does not decode: {error}",
            record.id
        ))
    })
}

/// A definition version as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefinitionView {
    /// Definition id.
    pub id: String,
    /// Version.
    pub version: u32,
    /// Name, if any.
    pub name: Option<String>,
    /// Description, if any.
    pub description: Option<String>,
    /// Content hash.
    pub content_hash: String,
    /// When deployed.
    pub created_at: DateTime<Utc>,
    /// The parsed definition.
    pub definition: Value,
    /// The deployed text.
    pub source: String,
}

impl From<&DefinitionRecord> for DefinitionView {
    fn from(record: &DefinitionRecord) -> Self {
        let text = |key: &str| {
            record
                .definition
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: record.id.to_string(),
            version: record.version,
            name: text("name"),
            description: text("description"),
            content_hash: record.content_hash.clone(),
            created_at: record.created_at,
            definition: record.definition.clone(),
            source: record.source.clone(),
        }
    }
}

/// An approval as clients see it (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalView {
    /// `<instance>:<step>:<attempt>`.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The approval step.
    pub step: String,
    /// Rendered title.
    pub title: String,
    /// `pending`, `approved`, `rejected`, `failed` or `cancelled`.
    pub status: String,
    /// Who may decide now.
    pub assignees: Assignees,
    /// Approvals needed.
    pub quorum: u32,
    /// Escalation level in charge (0: the step's own assignees).
    pub level: u32,
    /// `[{user, decision, comment, data, at}]`, in order.
    pub decisions: Value,
    /// When `on_timeout` applies at the current level.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The fan-out item (its index) whose approval this is; absent for a whole step's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The artifacts being approved (`approval.bind`): `[{system, asset_id, version,
    /// sha256, size, content_type, file_name}]`; absent when the approval binds none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Value>,
}

/// The users and groups an approval is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignees {
    /// Users.
    pub users: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
}

impl From<&ApprovalRecord> for ApprovalView {
    fn from(record: &ApprovalRecord) -> Self {
        Self {
            id: record.id.clone(),
            instance_id: record.instance_id.to_string(),
            step: record.step.to_string(),
            title: record.title.clone(),
            status: record.status.as_str().to_owned(),
            assignees: Assignees {
                users: record.users.clone(),
                groups: record.groups.clone(),
            },
            quorum: record.quorum,
            level: record.level,
            decisions: record.decisions.clone(),
            due_at: record.due_at,
            created_at: record.created_at,
            updated_at: record.updated_at,
            item: record.item,
            artifacts: record.artifacts.clone(),
        }
    }
}
