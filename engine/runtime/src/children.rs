//! Child instances of workflow steps: starting them, telling their parents that they
//! ended, cancelling them, and checking a definition's workflow steps against the
//! definitions they start (see docs/design/child-workflows.md).
//!
//! The one durable record of a child unit is its parent's outbox row (the `StartChild`
//! command, keyed by the unit), queued with the unit's `step_scheduled` and removed only
//! by the commit that records the unit's outcome. Executing it ([`spawn_start`]) resolves
//! the child's definition version and checks its input, then asks the driver to start the
//! child (`Message::StartChild`): the driver creates the child (its id derived from the
//! unit, its `child_instance` link) and records `child_started` in the parent in ONE
//! commit, or, if the child exists already, tells the parent what it is (and how it
//! ended, if it did). A child's terminal commit is followed by its parent's outcome input
//! ([`notice`]); if the node dies in between, the outbox row is executed again at start-up
//! and finds the child ended. So every step of the chain survives a crash, and a unit
//! never gets two children.
//!
//! Cancelling a child (`CancelChild`) is an outbox row of the parent too, queued in the
//! commit that abandons the unit and removed once the child is cancelled or found ended
//! or absent (`Message::WorkDone`).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;

use gridflow_core::command::{ChildStart, Command, Dispatch, WorkKey};
use gridflow_core::event::SYSTEM_ACTOR;
use gridflow_core::limits::Limits;
use gridflow_core::machine::{Input, InputBody};
use gridflow_core::validate::{DefinitionError, child_input_errors};
use gridflow_core::{Definition, ErrorInfo, InstanceId, InstanceState, Phase};

use crate::error::{Error, Result};
use crate::message::{Message, wait};
use crate::shared::Shared;

/// How long a child start or cancel waits before it tries again after the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A child's definition version, resolved by the runner for the driver.
pub(crate) struct Resolved {
    pub(crate) definition: Arc<Definition>,
    pub(crate) version: u32,
}

/// Work queued in the outbox: an action to dispatch, or a child to start or cancel.
pub(crate) enum Queued {
    Dispatch(Dispatch),
    StartChild(ChildStart),
    CancelChild { work: WorkKey, child: InstanceId },
}

impl Queued {
    /// Decodes an outbox row's payload: a `Dispatch`, or a tagged child command.
    pub(crate) fn decode(payload: Value) -> std::result::Result<Self, serde_json::Error> {
        if payload.get("command").is_none() {
            return Dispatch::deserialize(payload).map(Queued::Dispatch);
        }
        match Command::deserialize(payload)? {
            Command::StartChild(start) => Ok(Queued::StartChild(start)),
            Command::CancelChild { work, child } => Ok(Queued::CancelChild { work, child }),
            Command::Dispatch(dispatch) => Ok(Queued::Dispatch(dispatch)),
            other @ (Command::AbandonWork { .. }
            | Command::StartTimer { .. }
            | Command::CancelTimer { .. }
            | Command::Finish { .. }) => Err(serde::de::Error::custom(format!(
                "{other:?} is not queued work"
            ))),
        }
    }

    /// Its outbox row's id.
    pub(crate) fn id(&self) -> String {
        match self {
            Queued::Dispatch(dispatch) => dispatch.idempotency_key.clone(),
            Queued::StartChild(start) => start.idempotency_key.clone(),
            Queued::CancelChild { child, .. } => cancel_work_id(child),
        }
    }

    /// Executes it, in its own task.
    pub(crate) fn spawn(self, shared: Arc<Shared>, instance: InstanceId) {
        match self {
            Queued::Dispatch(dispatch) => crate::executor::spawn(shared, instance, dispatch),
            Queued::StartChild(start) => spawn_start(shared, instance, start),
            Queued::CancelChild { work, child } => spawn_cancel(shared, instance, work, child),
        }
    }
}

/// The outbox row id of the cancel of `child`.
pub(crate) fn cancel_work_id(child: &InstanceId) -> String {
    format!("{child}:cancel")
}

/// Starts the child of `start`'s unit of `parent`, in its own task.
pub(crate) fn spawn_start(shared: Arc<Shared>, parent: InstanceId, start: ChildStart) {
    tokio::spawn(run_start(shared, parent, start));
}

async fn run_start(shared: Arc<Shared>, parent: InstanceId, start: ChildStart) {
    let exists = match shared.store.instance(&start.child).await {
        Ok(_) => true,
        Err(gridflow_store::Error::NotFound(_)) => false,
        Err(error) => return start_later(shared, parent, start, &error.to_string()),
    };
    let resolved = if exists {
        None
    } else {
        match resolve(&shared, &start).await {
            Ok(resolved) => Some(resolved),
            Err(Error::Unavailable(message)) => {
                return start_later(shared, parent, start, &message);
            }
            Err(error) => {
                let error = match error {
                    Error::NotFound(what) => ErrorInfo::permanent(
                        "child_not_found",
                        format!("child workflow {what} not found"),
                    ),
                    Error::Invalid { details, .. } => ErrorInfo::permanent(
                        "invalid_input",
                        format!(
                            "the input of child workflow {} does not fit its input schema: {}",
                            start.definition,
                            details
                                .iter()
                                .map(|detail| if detail.path.is_empty() {
                                    detail.message.clone()
                                } else {
                                    format!("{}: {}", detail.path, detail.message)
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ),
                    other => ErrorInfo::permanent("child_not_started", other.to_string()),
                };
                tracing::warn!(instance_id = %parent, child = %start.child, code = %error.code, "child workflow not started");
                shared.send(Message::Input {
                    instance: parent,
                    input: Input {
                        at: shared.clock.now(),
                        actor: SYSTEM_ACTOR.to_owned(),
                        body: InputBody::ActionFailed {
                            work: start.work,
                            error,
                            retry_at: None,
                        },
                    },
                    reply: None,
                });
                return;
            }
        }
    };
    shared.send(Message::StartChild {
        parent,
        start,
        resolved,
    });
}

/// The child's definition at its pinned version, or the latest one now, with its input
/// checked against the definition's input schema.
async fn resolve(shared: &Shared, start: &ChildStart) -> Result<Resolved> {
    let loaded = shared
        .definitions
        .get(&start.definition, start.version)
        .await?;
    loaded.input_validator.validate(&start.input)?;
    Ok(Resolved {
        definition: loaded.definition.clone(),
        version: loaded.version,
    })
}

fn start_later(shared: Arc<Shared>, parent: InstanceId, start: ChildStart, why: &str) {
    tracing::debug!(instance_id = %parent, child = %start.child, why, "child start deferred");
    tokio::spawn(async move {
        tokio::time::sleep(RETRY_AFTER).await;
        spawn_start(shared, parent, start);
    });
}

/// Cancels the child of `work`'s unit of `parent`, in its own task; its outbox row goes
/// once the child is cancelled, or found ended or never started.
pub(crate) fn spawn_cancel(
    shared: Arc<Shared>,
    parent: InstanceId,
    work: WorkKey,
    child: InstanceId,
) {
    tokio::spawn(async move {
        loop {
            let (reply, answer) = oneshot::channel();
            shared.send(Message::Input {
                instance: child.clone(),
                input: Input {
                    at: shared.clock.now(),
                    actor: SYSTEM_ACTOR.to_owned(),
                    body: InputBody::Cancel {
                        reason: Some(format!(
                            "parent instance {parent} no longer awaits it (step {})",
                            work.step
                        )),
                    },
                },
                reply: Some(reply),
            });
            match wait(&shared.availability, answer).await {
                Ok(()) | Err(Error::Conflict(_) | Error::NotFound(_)) => {
                    shared.send(Message::WorkDone(cancel_work_id(&child)));
                    return;
                }
                Err(error) => {
                    tracing::debug!(child = %child, %error, "child cancel deferred");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    });
}

/// The input that tells a finished child's parent how the child ended, as its unit's
/// outcome; `None` for an instance without a parent or not finished. An output over
/// `limits.max_output_bytes` fails the unit for good, as an action's would.
pub(crate) fn notice(state: &InstanceState, limits: &Limits) -> Option<(InstanceId, Input)> {
    let parent = state.parent.as_ref()?;
    let work = WorkKey {
        step: parent.step.clone(),
        item: parent.item,
        attempt: parent.attempt,
        compensation: false,
        iteration: parent.iteration,
    };
    let body = match &state.phase {
        Phase::Completed { output } => match limits.check_output(output) {
            Ok(()) => InputBody::ActionSucceeded {
                work,
                output: output.clone(),
            },
            Err(exceeded) => InputBody::ActionFailed {
                work,
                error: ErrorInfo::permanent(
                    "output_too_large",
                    format!("child instance {}: {exceeded}", state.id),
                ),
                retry_at: None,
            },
        },
        Phase::Failed { error, .. } => InputBody::ActionFailed {
            work,
            error: ErrorInfo {
                code: "child_failed".to_owned(),
                message: format!(
                    "child workflow {} (instance {}) failed: {}: {}",
                    state.definition, state.id, error.code, error.message
                ),
                retryable: true,
            },
            retry_at: None,
        },
        Phase::Cancelled { reason } => InputBody::ActionFailed {
            work,
            error: ErrorInfo {
                code: "child_cancelled".to_owned(),
                message: format!(
                    "child workflow {} (instance {}) was cancelled{}",
                    state.definition,
                    state.id,
                    reason
                        .as_ref()
                        .map(|reason| format!(": {reason}"))
                        .unwrap_or_default()
                ),
                retryable: true,
            },
            retry_at: None,
        },
        Phase::NotStarted | Phase::Running | Phase::Compensating { .. } => return None,
    };
    Some((
        parent.instance_id.clone(),
        Input {
            at: state.updated_at,
            actor: SYSTEM_ACTOR.to_owned(),
            body,
        },
    ))
}

/// The errors of `definition`'s workflow steps against the definitions they start: each
/// child definition (and pinned version) exists, and each input fits its input schema
/// where it is written out.
pub(crate) async fn check_definition(
    shared: &Shared,
    definition: &Definition,
) -> Result<Vec<DefinitionError>> {
    let mut errors = Vec::new();
    for (index, step) in definition.steps.iter().enumerate() {
        let Some(child) = &step.workflow else {
            continue;
        };
        let at = format!("steps[{index}].workflow");
        match shared.definitions.get(&child.id, child.version).await {
            Ok(loaded) => errors.extend(child_input_errors(definition, index, &loaded.definition)),
            Err(Error::NotFound(_)) => {
                let exists = child.version.is_some()
                    && shared.store.definition(&child.id, None).await.is_ok();
                errors.push(if exists {
                    DefinitionError {
                        path: format!("{at}.version"),
                        message: format!(
                            "workflow {:?} has no version {}",
                            child.id.as_str(),
                            child.version.unwrap_or_default()
                        ),
                    }
                } else {
                    DefinitionError {
                        path: format!("{at}.id"),
                        message: format!(
                            "unknown workflow {:?}: deploy it before the workflows that start it",
                            child.id.as_str()
                        ),
                    }
                });
            }
            Err(error) => return Err(error),
        }
    }
    Ok(errors)
}
