//! Re-running a finished instance on the engine handle: the request is checked first
//! (the start input against the input schema, step names against the definition, edited
//! arguments against their action's argument schema), every problem named with its path
//! (422); the core then decides against the instance's state (409 when it refuses) and
//! records `instance_rerun` with the actor and the edits.

use std::collections::BTreeMap;

use serde_json::Value;

use gridflow_core::machine::{InputBody, RerunRefusal, rerun_plan};
use gridflow_core::{InstanceId, StepId};

use crate::engine::Engine;
use crate::error::{Detail, Error, Result};

/// What a re-run changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RerunRequest {
    /// The step to re-run from, with everything downstream of it; `None`: only the
    /// instance output is evaluated again.
    pub from_step: Option<StepId>,
    /// A start input that replaces the old one.
    pub input: Option<Value>,
    /// Arguments that replace the rendered `with` of these action steps.
    pub arguments: BTreeMap<StepId, Value>,
}

impl Engine {
    /// Re-runs a completed or failed instance; returns once `instance_rerun` (and what
    /// follows it at once) is durable.
    pub async fn rerun(
        &self,
        instance: &InstanceId,
        request: RerunRequest,
        actor: &str,
    ) -> Result<()> {
        let record = self.shared.store.instance(instance).await?;
        let state = self.current_state(&record).await?;
        let loaded = self
            .shared
            .definitions
            .get(&record.definition_id, Some(record.definition_version))
            .await?;
        let mut details = Vec::new();
        if let Some(input) = &request.input
            && let Err(errors) = loaded.input_validator.validate(input)
        {
            details.extend(errors.into_iter().map(|error| Detail {
                path: error.path,
                message: error.message,
            }));
        }
        let plan = rerun_plan(
            &state,
            &loaded.definition,
            request.from_step.as_ref(),
            &request.arguments,
        );
        let conflict = match plan {
            Ok(_) => None,
            Err(RerunRefusal::Invalid(problems)) => {
                details.extend(
                    problems
                        .into_iter()
                        .map(|(path, message)| Detail { path, message }),
                );
                None
            }
            Err(RerunRefusal::Conflict(message)) => Some(message),
        };
        for (step, arguments) in &request.arguments {
            let action = loaded
                .definition
                .step(step)
                .and_then(|step| step.action.as_deref());
            if let Some(action) = action
                && self.shared.registry.action(action).is_some()
                && let Err(error) = self.shared.registry.validate_arguments(action, arguments)
            {
                details.push(Detail {
                    path: format!("arguments.{step}"),
                    message: error.to_string(),
                });
            }
        }
        if !details.is_empty() {
            let count = details.len();
            return Err(Error::Invalid {
                message: format!(
                    "instance {instance}: the re-run has {count} problem{}",
                    if count == 1 { "" } else { "s" }
                ),
                details,
            });
        }
        if let Some(message) = conflict {
            return Err(Error::Conflict(format!("instance {instance}: {message}")));
        }
        self.operate(
            instance,
            actor,
            InputBody::Rerun {
                from_step: request.from_step,
                input: request.input,
                arguments: request.arguments,
            },
        )
        .await
    }
}
