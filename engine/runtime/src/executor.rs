//! Runs dispatched actions through the connectors, outside any transaction, and reports
//! their outcomes to the driver as inputs.

use std::sync::Arc;

use gridflow_connectors::Invocation;
use gridflow_core::command::Dispatch;
use gridflow_core::machine::{Input, InputBody};
use gridflow_core::{ErrorInfo, InstanceId};
use tracing::Instrument;

use crate::message::Message;
use crate::shared::Shared;

/// Starts one attempt in its own task. At most `max_concurrent_actions` run at once; the
/// rest wait for a permit (their work stays queued in the database meanwhile).
pub(crate) fn spawn(shared: Arc<Shared>, instance: InstanceId, dispatch: Dispatch) {
    let span = tracing::info_span!(
        "step",
        instance_id = %instance,
        step_id = %dispatch.work.step,
        item = dispatch.work.item,
        attempt = dispatch.work.attempt,
        compensation = dispatch.work.compensation,
    );
    tokio::spawn(execute(shared, instance, dispatch).instrument(span));
}

async fn execute(shared: Arc<Shared>, instance: InstanceId, dispatch: Dispatch) {
    let Ok(_permit) = shared.action_permits.clone().acquire_owned().await else {
        return;
    };
    shared.stats.record_action_started();
    let system = gridflow_core::event::SYSTEM_ACTOR;
    shared.send(Message::Input {
        instance: instance.clone(),
        input: Input {
            at: shared.clock.now(),
            actor: system.to_owned(),
            body: InputBody::ActionStarted {
                work: dispatch.work.clone(),
            },
        },
        reply: None,
    });
    // Content an approval did not approve never reaches the connector.
    if let Err(error) = crate::binding::check(&shared.registry, &dispatch) {
        shared.stats.record_action(false);
        tracing::warn!(code = %error.code, "delivery refused: {}", error.message);
        let body = InputBody::ActionFailed {
            error,
            work: dispatch.work,
            retry_at: None,
        };
        shared.send(Message::Input {
            instance,
            input: Input {
                at: shared.clock.now(),
                actor: system.to_owned(),
                body,
            },
            reply: None,
        });
        return;
    }
    let invocation = Invocation {
        action: dispatch.action.clone(),
        arguments: dispatch.arguments,
        idempotency_key: dispatch.idempotency_key,
        attempt: dispatch.work.attempt,
        instance_id: instance.clone(),
        step_id: dispatch.work.step.clone(),
        item: dispatch.work.item,
    };
    let outcome = tokio::time::timeout(
        dispatch.timeout,
        shared.registry.invoke(&dispatch.action, invocation),
    )
    .await;
    let at = shared.clock.now();
    let body = match outcome {
        Ok(Ok(output)) => match shared.limits.check_output(&output) {
            Ok(()) => {
                match crate::ledger::check_output(&shared.registry, &dispatch.action, &output) {
                    Ok(()) => {
                        shared.stats.record_action(true);
                        InputBody::ActionSucceeded {
                            work: dispatch.work,
                            output,
                        }
                    }
                    // The step's ledger changes must be written with its success: an output
                    // that does not say them fails the step for good, and goes nowhere.
                    Err(message) => {
                        shared.stats.record_action(false);
                        tracing::warn!(%message, "action output has an invalid ledger");
                        InputBody::ActionFailed {
                            error: ErrorInfo::permanent(
                                "invalid_ledger",
                                format!("{}: {message}", dispatch.action),
                            ),
                            work: dispatch.work,
                            retry_at: None,
                        }
                    }
                }
            }
            // Retrying would return the same output: the attempt fails for good, and the
            // output itself goes nowhere (not in history, not in state).
            Err(exceeded) => {
                shared.stats.record_action(false);
                tracing::warn!(limit = %exceeded.key(), size = exceeded.size, "action output over the limit");
                InputBody::ActionFailed {
                    error: ErrorInfo::permanent("output_too_large", exceeded.to_string()),
                    work: dispatch.work,
                    retry_at: None,
                }
            }
        },
        Ok(Err(error)) => {
            shared.stats.record_action(false);
            tracing::debug!(
                code = error.code(),
                retryable = error.is_retryable(),
                "attempt failed"
            );
            InputBody::ActionFailed {
                retry_at: error
                    .retry_after()
                    .and_then(|after| chrono::Duration::from_std(after).ok())
                    .map(|after| at + after),
                error: ErrorInfo {
                    code: error.code().to_owned(),
                    message: error.message().to_owned(),
                    retryable: error.is_retryable(),
                },
                work: dispatch.work,
            }
        }
        Err(_elapsed) => {
            shared.stats.record_action(false);
            InputBody::ActionFailed {
                error: ErrorInfo {
                    code: "timeout".to_owned(),
                    message: format!(
                        "attempt timed out after {}",
                        gridflow_core::duration::format(dispatch.timeout)
                    ),
                    retryable: true,
                },
                work: dispatch.work,
                retry_at: None,
            }
        }
    };
    shared.send(Message::Input {
        instance,
        input: Input {
            at,
            actor: system.to_owned(),
            body,
        },
        reply: None,
    });
}
