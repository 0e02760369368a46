//! A step's own work: its action, or its fan-out units (one per item), scheduled,
//! started, succeeded, retried or failed; a step skipped; and stopping a step's work.
//!
//! A unit is one attempt of an action or of one fan-out item. Outcomes of units that are
//! no longer awaited (abandoned, cancelled, already settled) are stale and ignored.
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `step.scheduled.action` | pending action step | `step_scheduled` (step) | action unit scheduled; `Dispatch` |
//! | `step.scheduled.fan_out` | pending fan-out step | `step_scheduled` (step) with items | fan-out, every item ready |
//! | `unit.start` | running instance, unit scheduled for this attempt | input `ActionStarted` | `step_started` |
//! | `unit.start.stale` | anything else (a compensation included) | input `ActionStarted` | nothing |
//! | `unit.started` | scheduled unit | `step_started` | running unit |
//! | `unit.outcome` | running instance, unit scheduled or running for this attempt | input `ActionSucceeded` or `ActionFailed` | `step_started` if not recorded, then `step_succeeded`, or `step_retry_scheduled` if the retry policy allows, else `step_failed` |
//! | `unit.outcome.stale` | anything else | input `ActionSucceeded` or `ActionFailed` | nothing |
//! | `item.succeeded` | in-flight item of this attempt | `step_succeeded` (item) | succeeded item; its completion noted (with its output if the step compensates) |
//! | `step.succeeded.action` | in-flight action of this attempt | `step_succeeded` (step) | succeeded; its completion noted |
//! | `step.succeeded.fan_out` | fan-out with every item succeeded | `step_succeeded` (step) | succeeded; attempts: the highest item attempt |
//! | `unit.retrying` | in-flight unit of this attempt | `step_retry_scheduled` | retrying with the next attempt; `StartTimer` (retry) |
//! | `item.failed` | ready or in-flight item of this attempt | `step_failed` (item) | failed item |
//! | `step.failed.continued` | pending or active step with `on_error: continue` | `step_failed` (step) | failed (continued): its work stopped, its approval closed |
//! | `step.failed` | pending or active step | `step_failed` (step) | failed: its work stopped, its approval closed, the other active steps cancelled; the instance compensates |
//! | `step.skipped` | pending step | `step_skipped` | skipped |

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::approval::ApprovalStatus;
use crate::command::{Command, WorkKey};
use crate::definition::{OnError, StepKind};
use crate::event::{ErrorInfo, EventBody, TimerKey};
use crate::id::StepId;
use crate::state::{Completion, InstanceState, Phase, StepState, Unit, Units, Work};

use super::coverage::took;
use super::lookups::{
    invalid, require_running, step_definition, step_state_mut, unit_mut, unit_of,
};
use super::work::dispatch;
use super::{Facts, Fold, StepError, approval, compensation, items, timer, wait};

/// `step_scheduled`: a pending step becomes active, or one unit is scheduled.
#[allow(clippy::too_many_arguments)] // One argument per field of the event.
pub(super) fn scheduled(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    arguments: &Option<Value>,
    items: &Option<Vec<Value>>,
    wake_at: Option<DateTime<Utc>>,
    timeout_at: Option<DateTime<Utc>>,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let step_definition = step_definition(fold.state, fold.definition, step)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    if matches!(step_state, StepState::Pending { .. }) && item.is_none() {
        if let Some(items) = items {
            took("step.scheduled.fan_out");
            *step_state = StepState::Active {
                work: Work::FanOut {
                    units: Units::ready(items.len(), attempt),
                    items: items.clone(),
                },
            };
            if let Some(StepKind::Approval(_)) = step_definition.kind() {
                // Kept even for an empty list: the step is read as a fan-out approval. An
                // operator retry starts its items' approvals afresh.
                fold.state
                    .item_approvals
                    .insert(step.clone(), Default::default());
            }
        } else if let Some(StepKind::Wait(wait)) = step_definition.kind() {
            let commands = &mut fold.commands;
            wait::scheduled(
                step_state,
                step,
                attempt,
                &wait.signal,
                timeout_at,
                commands,
            );
        } else if let Some(wake_at) = wake_at {
            timer::sleep_scheduled(step_state, step, attempt, wake_at, &mut fold.commands);
        } else {
            took("step.scheduled.action");
            *step_state = StepState::Active {
                work: Work::Action {
                    unit: Unit::Scheduled { attempt },
                },
            };
            let dispatch = dispatch(&instance, step_definition, None, attempt, arguments, false)?;
            fold.commands.push(dispatch);
        }
        return Ok(());
    }
    let unit = unit_mut(step_state, item)
        .ok_or_else(|| invalid(&instance, event, "the step has no such unit"))?;
    if let (Unit::Ready { attempt: current }, Some(StepKind::Wait(wait)), Some(index)) =
        (unit.get(), step_definition.kind(), item)
        && *current == attempt
    {
        let commands = &mut fold.commands;
        let waiting =
            items::wait_scheduled(step, index, attempt, &wait.signal, timeout_at, commands);
        unit.set(waiting);
        return Ok(());
    }
    match unit.get() {
        Unit::Ready { attempt: current }
        | Unit::Retrying {
            attempt: current, ..
        } if *current == attempt => {
            took("unit.scheduled");
            unit.set(Unit::Scheduled { attempt });
            let dispatch = dispatch(&instance, step_definition, item, attempt, arguments, false)?;
            fold.commands.push(dispatch);
            Ok(())
        }
        any_unit!() => Err(invalid(
            &instance,
            event,
            "the unit is not ready for this attempt",
        )),
    }
}

/// `step_started`.
pub(super) fn started(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
) -> Result<(), StepError> {
    start_unit(
        fold,
        step,
        (attempt, item),
        "unit.started",
        "the unit is not scheduled for this attempt",
    )
}

/// A scheduled unit (`attempt`, `item`) of `step` starts running: row `row`, else
/// refused with `refusal`.
pub(super) fn start_unit(
    fold: &mut Fold,
    step: &StepId,
    (attempt, item): (u32, Option<u32>),
    row: &'static str,
    refusal: &'static str,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let unit = step_state_mut(fold.state, step)
        .ok()
        .and_then(|step_state| unit_mut(step_state, item));
    match unit {
        Some(unit) if *unit.get() == (Unit::Scheduled { attempt }) => {
            took(row);
            unit.set(Unit::Running {
                attempt,
                started_at: event.at,
            });
            Ok(())
        }
        _ => Err(invalid(&instance, event, refusal)),
    }
}

/// `step_succeeded` of one fan-out item.
pub(super) fn item_succeeded(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: u32,
    output: &Value,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    let was = match unit_mut(step_state, Some(item)) {
        Some(unit)
            if (unit.get().is_in_flight() || unit.get().is_waiting())
                && unit.get().attempt() == attempt =>
        {
            took("item.succeeded");
            let was = unit.get().clone();
            unit.set(Unit::Succeeded {
                attempt,
                output: output.clone(),
            });
            was
        }
        _ => {
            return Err(invalid(
                &instance,
                event,
                "the item is not in flight for this attempt",
            ));
        }
    };
    items::item_succeeded(fold.state, step, item, &was, output, &mut fold.commands);
    let keeps_output = step_definition(fold.state, fold.definition, step)?
        .compensate
        .is_some();
    fold.state.completions.push(Completion {
        step: step.clone(),
        item: Some(item),
        output: if keeps_output {
            output.clone()
        } else {
            Value::Null
        },
    });
    Ok(())
}

/// `step_succeeded` of a whole step, whatever its kind.
pub(super) fn succeeded(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    output: &Value,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    let (attempts, is_single_action) = match step_state {
        StepState::Active {
            work: Work::Action { unit },
        } if unit.is_in_flight() && unit.attempt() == attempt => {
            took("step.succeeded.action");
            (attempt, true)
        }
        StepState::Active {
            work: Work::FanOut { units, .. },
        } if units.all_succeeded() => {
            took("step.succeeded.fan_out");
            let attempts = match units.max_attempt() {
                0 => attempt,
                highest => highest,
            };
            (attempts, false)
        }
        StepState::Active {
            work: Work::Sleep { .. },
        } => {
            took("sleep.succeeded");
            (attempt, false)
        }
        StepState::Active {
            work: Work::Approval {
                attempt: current, ..
            },
        } if *current == attempt => {
            took("approval.succeeded");
            (attempt, false)
        }
        StepState::Active {
            work: Work::Wait {
                attempt: current, ..
            },
        } if *current == attempt => {
            took("wait.succeeded");
            (attempt, false)
        }
        any_step_state!() => {
            return Err(invalid(
                &instance,
                event,
                "the step cannot succeed in its current state",
            ));
        }
    };
    fold.commands.extend(abandon_step(step, step_state));
    if let StepState::Active {
        work: Work::Wait { signal, .. },
    } = step_state
    {
        let signal = signal.clone();
        wait::consume(fold.state, &signal);
    }
    let step_state = step_state_mut(fold.state, step)?;
    *step_state = StepState::Succeeded {
        output: output.clone(),
        attempts,
    };
    if is_single_action {
        fold.state.completions.push(Completion {
            step: step.clone(),
            item: None,
            output: Value::Null,
        });
    }
    approval::settle(fold.state, step, None, output);
    Ok(())
}

/// `step_retry_scheduled` of a step's unit (not a compensation).
pub(super) fn retry_scheduled(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: Option<u32>,
    error: &ErrorInfo,
    fire_at: DateTime<Utc>,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let unit = step_state_mut(fold.state, step)
        .ok()
        .and_then(|step_state| unit_mut(step_state, item));
    match unit {
        Some(unit) if unit.get().is_in_flight() && unit.get().attempt() == attempt => {
            took("unit.retrying");
            unit.set(Unit::Retrying {
                attempt: attempt + 1,
                fire_at,
                error: error.clone(),
            });
        }
        _ => {
            return Err(invalid(
                &instance,
                event,
                "the unit is not in flight for this attempt",
            ));
        }
    }
    fold.commands.push(Command::StartTimer {
        timer: TimerKey::retry(step, item, attempt + 1),
        fire_at,
    });
    Ok(())
}

/// `step_failed` of one fan-out item.
pub(super) fn item_failed(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    item: u32,
    error: &ErrorInfo,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    match unit_mut(step_state, Some(item)) {
        Some(unit)
            if unit.get().attempt() == attempt
                && (unit.get().is_in_flight()
                    || unit.get().is_waiting()
                    || matches!(unit.get(), Unit::Ready { .. })) =>
        {
            took("item.failed");
            unit.set(Unit::Failed {
                attempt,
                error: error.clone(),
            });
            Ok(())
        }
        _ => Err(invalid(
            &instance,
            event,
            "the item is not in flight for this attempt",
        )),
    }
}

/// `step_failed` of a whole step.
pub(super) fn failed(
    fold: &mut Fold,
    step: &StepId,
    attempt: u32,
    error: &ErrorInfo,
) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let continued =
        step_definition(fold.state, fold.definition, step)?.on_error == OnError::Continue;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    let attempts = match step_state {
        StepState::Pending { .. } => attempt,
        StepState::Active { .. } => step_state.attempts().max(attempt),
        StepState::Succeeded { .. }
        | StepState::Failed { .. }
        | StepState::Skipped { .. }
        | StepState::Cancelled { .. } => {
            return Err(invalid(&instance, event, "the step has finished already"));
        }
    };
    fold.commands.extend(abandon_step(step, step_state));
    *step_state = StepState::Failed {
        error: error.clone(),
        attempts,
        continued,
    };
    approval::close(fold.state, step, ApprovalStatus::Failed);
    if continued {
        took("step.failed.continued");
    } else {
        took("step.failed");
        let cancelled = cancel_active_steps(fold.state);
        fold.commands.extend(cancelled);
        let remaining = compensation::queue(fold.state, fold.definition);
        fold.state.phase = Phase::Compensating {
            error: error.clone(),
            remaining,
            current: None,
        };
    }
    Ok(())
}

/// `step_skipped`.
pub(super) fn skipped(fold: &mut Fold, step: &StepId, reason: &str) -> Result<(), StepError> {
    require_running(fold.state, fold.event)?;
    let event = fold.event;
    let instance = fold.state.id.clone();
    let step_state = step_state_mut(fold.state, step)?;
    if !matches!(step_state, StepState::Pending { .. }) {
        return Err(invalid(&instance, event, "the step is not pending"));
    }
    took("step.skipped");
    *step_state = StepState::Skipped {
        reason: reason.to_owned(),
    };
    Ok(())
}

/// Input `ActionStarted`.
pub(super) fn action_started(facts: Facts, work: &WorkKey) -> Result<Vec<EventBody>, StepError> {
    let state = facts.state;
    if !work.compensation && state.phase == Phase::Running {
        match unit_of(state, &work.step, work.item) {
            Some(Unit::Scheduled { attempt }) if *attempt == work.attempt => {
                took("unit.start");
                return Ok(vec![EventBody::StepStarted {
                    step: work.step.clone(),
                    attempt: work.attempt,
                    item: work.item,
                }]);
            }
            _ => {}
        }
    }
    took("unit.start.stale");
    Ok(Vec::new())
}

/// Input `ActionSucceeded`.
pub(super) fn action_succeeded(
    facts: Facts,
    work: &WorkKey,
    output: &Value,
) -> Result<Vec<EventBody>, StepError> {
    if work.compensation {
        return Ok(compensation::succeeded_facts(facts.state, work, output));
    }
    let Some(mut events) = started_if_needed(facts.state, work) else {
        took("unit.outcome.stale");
        return Ok(Vec::new());
    };
    took("unit.outcome");
    events.push(EventBody::StepSucceeded {
        step: work.step.clone(),
        attempt: work.attempt,
        item: work.item,
        output: output.clone(),
    });
    Ok(events)
}

/// Input `ActionFailed`: a retry if the step's policy allows one, else a failure.
pub(super) fn action_failed(
    facts: Facts,
    work: &WorkKey,
    error: &ErrorInfo,
    retry_at: Option<DateTime<Utc>>,
) -> Result<Vec<EventBody>, StepError> {
    let Some(step) = facts.definition.step(&work.step) else {
        took("unit.outcome.stale");
        return Ok(Vec::new());
    };
    let policy = step.retry_policy();
    let fire_at = retry_at.unwrap_or_else(|| {
        facts.input.at
            + chrono::Duration::from_std(policy.base_delay(work.attempt))
                .unwrap_or(chrono::Duration::MAX)
    });
    let retries = policy.allows_retry(work.attempt, error);
    if work.compensation {
        return Ok(compensation::failed_facts(
            facts.state,
            work,
            error,
            retries,
            fire_at,
        ));
    }
    let Some(mut events) = started_if_needed(facts.state, work) else {
        took("unit.outcome.stale");
        return Ok(Vec::new());
    };
    took("unit.outcome");
    events.push(if retries {
        EventBody::StepRetryScheduled {
            step: work.step.clone(),
            attempt: work.attempt,
            item: work.item,
            error: error.clone(),
            fire_at,
            compensation: false,
        }
    } else {
        EventBody::StepFailed {
            step: work.step.clone(),
            attempt: work.attempt,
            item: work.item,
            error: error.clone(),
        }
    });
    Ok(events)
}

/// `Some(vec![step_started])` when the unit was dispatched but its start is not recorded,
/// `Some(vec![])` when it is running, `None` when the outcome is stale.
fn started_if_needed(state: &InstanceState, work: &WorkKey) -> Option<Vec<EventBody>> {
    if state.phase != Phase::Running {
        return None;
    }
    match unit_of(state, &work.step, work.item)? {
        Unit::Scheduled { attempt } if *attempt == work.attempt => {
            Some(vec![EventBody::StepStarted {
                step: work.step.clone(),
                attempt: work.attempt,
                item: work.item,
            }])
        }
        Unit::Running { attempt, .. } if *attempt == work.attempt => Some(Vec::new()),
        any_unit!() => None,
    }
}

/// Commands that stop the outstanding work of one step.
pub(super) fn abandon_step(step: &StepId, step_state: &StepState) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut abandon_unit = |item: Option<u32>, unit: &Unit| match unit {
        Unit::Scheduled { attempt } | Unit::Running { attempt, .. } => {
            commands.push(Command::AbandonWork {
                work: WorkKey {
                    step: step.clone(),
                    item,
                    attempt: *attempt,
                    compensation: false,
                    iteration: None,
                },
            })
        }
        Unit::Retrying { attempt, .. } => commands.push(Command::CancelTimer {
            timer: TimerKey::retry(step, item, *attempt),
        }),
        Unit::Approval { attempt, level } => commands.push(Command::CancelTimer {
            timer: approval::due_timer_key(step, item, *attempt, *level),
        }),
        Unit::Wait {
            attempt,
            timeout_at: Some(_),
            ..
        } => {
            if let Some(index) = item {
                commands.push(Command::CancelTimer {
                    timer: TimerKey::item_wait_timeout(step, index, *attempt),
                });
            }
        }
        Unit::Ready { .. }
        | Unit::Succeeded { .. }
        | Unit::Failed { .. }
        | Unit::Wait {
            timeout_at: None, ..
        } => {}
    };
    if let StepState::Active { work } = step_state {
        match work {
            Work::Action { unit } => abandon_unit(None, unit),
            Work::FanOut { units, .. } => {
                for (index, unit) in units.iter().enumerate() {
                    abandon_unit(Some(index as u32), unit);
                }
            }
            Work::Sleep { .. } => commands.push(Command::CancelTimer {
                timer: TimerKey::sleep(step, 1),
            }),
            Work::Approval { attempt, level } => commands.push(Command::CancelTimer {
                timer: TimerKey::approval_due(step, *attempt, *level),
            }),
            Work::Wait {
                attempt,
                timeout_at: Some(_),
                ..
            } => commands.push(Command::CancelTimer {
                timer: TimerKey::wait_timeout(step, *attempt),
            }),
            Work::Wait {
                timeout_at: None, ..
            } => {}
        }
    }
    commands
}

/// Marks every active step cancelled and returns the commands that stop their work.
pub(super) fn cancel_active_steps(state: &mut InstanceState) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut cancelled = Vec::new();
    for (step, step_state) in state.steps.iter_mut() {
        if matches!(step_state, StepState::Active { .. }) {
            commands.extend(abandon_step(step, step_state));
            let attempts = step_state.attempts();
            *step_state = StepState::Cancelled { attempts };
            cancelled.push(step.clone());
        }
    }
    for step in &cancelled {
        approval::close(state, step, ApprovalStatus::Cancelled);
    }
    commands
}
