//! Deriving what follows from the state (steps that became ready, skipped or finished,
//! compensation, completion) while looking only at the steps that the events of the
//! current transition touched.
//!
//! A transition starts from a state from which nothing follows: every transition ends by
//! deriving until nothing does, and replay reaches the same states. So a step can only
//! yield an event once an event of this transition changed it or one of its needs: the
//! [`Frontier`] holds those steps (the step an event names and the steps that need it),
//! and [`next_event`] visits them in definition order, which is the order a scan of every
//! step would find them in. An event that names no step (the instance started, a signal,
//! an operator retry that reopens cancelled steps) makes every step a candidate again.
//!
//! A step's needs let it run by its `join`: `all` (the default) once every need succeeded,
//! was skipped or failed with `on_error: continue`; `all_done` once every need ended,
//! whatever its outcome (never skipped for its needs); `any` once one need succeeded.
//!
//! What follows, in this order: the first step (in definition order) that yields an
//! event, then the instance's completion; while compensating, the next compensation,
//! then the instance's failure. Rows of the other rooms' tables marked "derived" are
//! taken from here too (`child.schedule`, `approval.request`, `approval.settled`,
//! `wait.schedule`, `wait.consume`, `sleep.schedule`, `unit.schedule`, `compensation.start`,
//! and the fan-out items' `approval.item.request`, `approval.item.settled`,
//! `wait.item.schedule`, `wait.item.consume`, `item.unstartable`).
//!
//! | id | state | event or input | effect |
//! |---|---|---|---|
//! | `derive.skip.needs` | pending step with `join: all` (the default), every need skipped | derived | `step_skipped` ("all needs were skipped") |
//! | `derive.join.all_done` | pending step with `join: all_done`, every need ended (succeeded, failed, skipped or cancelled) | derived | its `when`, then as below |
//! | `derive.join.any` | pending step with `join: any`, one need succeeded (the others go on) | derived | its `when`, then as below |
//! | `derive.skip.any` | pending step with `join: any`, every need ended and none succeeded | derived | `step_skipped` ("no need succeeded") |
//! | `derive.skip.when` | pending step whose needs let it run, its `when` false | derived | `step_skipped` ("when was false") |
//! | `derive.fail` | pending step whose needs let it run; its `when`, `with`, `for_each`, sleep, approval, wait or child input cannot be evaluated, or it has no kind | derived | `step_failed` (code `expression` or `invalid_definition`) |
//! | `derive.schedule.action` | pending action step whose needs let it run | derived | `step_scheduled` with its rendered arguments |
//! | `derive.schedule.fan_out` | pending fan-out step (action, approval or wait) whose needs let it run | derived | `step_scheduled` with its resolved items |
//! | `derive.fan_out.failed` | active fan-out with a failed item | derived | `step_failed` (step) with that item's error |
//! | `derive.fan_out.succeeded` | active fan-out, every item succeeded | derived | `step_succeeded` (step), output the items' outputs in order (a wait fan-out's: their payloads) |
//! | `derive.compensation.done` | compensating, nothing in flight or left | derived | `instance_failed` with the failure |
//! | `derive.complete` | running, every step lets its dependents run | derived | `instance_completed` with the rendered `output` |
//! | `derive.complete.unrenderable` | the same, `output` does not render | derived | `instance_failed` (code `expression`) |

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::coverage::took;
use super::expressions::{Reads, resolve_items, scope_for};
use super::repeat::{self, BetweenRuns};
use super::{approval, child, compensation, items, timer, wait, work};
use crate::definition::{Definition, Join, StepDefinition, StepKind};
use crate::event::{ErrorInfo, EventBody};
use crate::expr::{self, Budget};
use crate::id::StepId;
use crate::state::{InstanceState, Phase, StepState, Unit, Work};

/// The steps that may yield an event, by position in the definition.
#[derive(Debug, Default)]
pub(super) struct Frontier {
    every_step: bool,
    candidates: BTreeSet<usize>,
}

impl Frontier {
    /// Notes what `event` touched.
    pub(super) fn note(&mut self, event: &EventBody, definition: &Definition) {
        if self.every_step {
            return;
        }
        match event_step(event).and_then(|step| definition.position(step)) {
            Some(position) => {
                self.candidates.insert(position);
                self.candidates
                    .extend(definition.dependents(position).iter().copied());
            }
            None => self.every_step = true,
        }
    }
}

/// The step an event is about, if it is about one.
fn event_step(event: &EventBody) -> Option<&StepId> {
    match event {
        EventBody::StepScheduled { step, .. }
        | EventBody::StepStarted { step, .. }
        | EventBody::StepSucceeded { step, .. }
        | EventBody::StepFailed { step, .. }
        | EventBody::StepRetryScheduled { step, .. }
        | EventBody::StepSkipped { step, .. }
        | EventBody::CompensationStarted { step, .. }
        | EventBody::CompensationSucceeded { step, .. }
        | EventBody::CompensationFailed { step, .. }
        | EventBody::ApprovalRequested { step, .. }
        | EventBody::ApprovalDecided { step, .. }
        | EventBody::ApprovalEscalated { step, .. }
        | EventBody::ApprovalDelegated { step, .. }
        | EventBody::StepIterationSucceeded { step, .. }
        | EventBody::StepRepeatScheduled { step, .. }
        | EventBody::ChildStarted { step, .. } => Some(step),
        EventBody::TimerFired { timer } => Some(&timer.step),
        // A retry reopens the steps its failure cancelled, which it does not name.
        EventBody::StepRetryRequested { .. }
        | EventBody::InstanceStarted { .. }
        | EventBody::InstanceCompleted { .. }
        | EventBody::InstanceFailed { .. }
        | EventBody::SignalReceived { .. }
        | EventBody::InstanceCancelled { .. }
        | EventBody::InstanceRerun { .. }
        | EventBody::InstanceMigrated { .. } => None,
    }
}

/// The next event that follows from the state, if any, looking at the frontier's steps.
pub(super) fn next_event(
    state: &InstanceState,
    definition: &Definition,
    at: DateTime<Utc>,
    frontier: &Frontier,
    budget: Budget,
) -> Option<EventBody> {
    let found = match &state.phase {
        Phase::NotStarted
        | Phase::Completed { .. }
        | Phase::Failed { .. }
        | Phase::Cancelled { .. } => None,
        Phase::Compensating {
            error,
            remaining,
            current,
        } => match (current, remaining.first()) {
            (Some(_), _) => None,
            (None, Some(target)) => Some(compensation::start(state, definition, target, 1, budget)),
            (None, None) => {
                took("derive.compensation.done");
                Some(EventBody::InstanceFailed {
                    error: error.clone(),
                })
            }
        },
        Phase::Running => {
            let next = if frontier.every_step {
                definition
                    .steps
                    .iter()
                    .find_map(|step| step_event(state, definition, step, at, budget))
            } else {
                frontier.candidates.iter().find_map(|&position| {
                    let step = definition.steps.get(position)?;
                    step_event(state, definition, step, at, budget)
                })
            };
            next.or_else(|| completion(state, definition, frontier, budget))
        }
    };
    // The core's own tests check every derivation against a scan of every step.
    #[cfg(test)]
    if !frontier.every_step {
        let everything = Frontier {
            every_step: true,
            candidates: BTreeSet::new(),
        };
        assert_eq!(
            found,
            next_event(state, definition, at, &everything, budget),
            "the frontier missed a step that yields an event"
        );
    }
    found
}

fn step_event(
    state: &InstanceState,
    definition: &Definition,
    step: &StepDefinition,
    at: DateTime<Utc>,
    budget: Budget,
) -> Option<EventBody> {
    match state.steps.get(&step.id)? {
        StepState::Pending { attempt } => match repeat::between_runs(state, &step.id) {
            Some(BetweenRuns::Waiting) => None,
            Some(BetweenRuns::Ready) => {
                took("repeat.run");
                Some(run_event(state, step, *attempt, at, budget))
            }
            None => ready_step_event(state, step, *attempt, at, budget),
        },
        StepState::Active { work } => active_step_event(state, definition, step, work, at, budget),
        StepState::Succeeded { .. }
        | StepState::Failed { .. }
        | StepState::Skipped { .. }
        | StepState::Cancelled { .. } => None,
    }
}

/// `instance_completed` (or `instance_failed` for an output that does not render) once
/// every step lets its dependents run.
fn completion(
    state: &InstanceState,
    definition: &Definition,
    frontier: &Frontier,
    budget: Budget,
) -> Option<EventBody> {
    let finished = |position: &usize| {
        definition
            .steps
            .get(*position)
            .and_then(|step| state.steps.get(&step.id))
            .is_some_and(StepState::lets_dependents_run)
    };
    // Every step must have finished, the steps that nothing needs among them: a cheap
    // test that rules out completion on most transitions before the full one.
    if !frontier.every_step && !definition.sinks().iter().all(finished) {
        return None;
    }
    if !state.steps.values().all(StepState::lets_dependents_run) {
        return None;
    }
    let rendered = match &definition.output {
        None => Ok(Value::Null),
        Some(template) => expr::render(
            template,
            &scope_for(state, Reads::Template(template), None, None).within(budget),
        ),
    };
    Some(match rendered {
        Ok(output) => {
            took("derive.complete");
            EventBody::InstanceCompleted { output }
        }
        Err(message) => {
            took("derive.complete.unrenderable");
            EventBody::InstanceFailed {
                error: ErrorInfo::permanent("expression", format!("output: {message}")),
            }
        }
    })
}

/// What a pending step's needs say, by its `join`.
enum Readiness {
    /// It may run (its `when` decides).
    Run,
    /// It is skipped: the row and the reason.
    Skip(&'static str, &'static str),
}

/// Whether the needs of a pending step let it run, by its `join`; `None` while they do
/// not tell yet.
fn readiness(state: &InstanceState, step: &StepDefinition) -> Option<Readiness> {
    let mut needs = Vec::with_capacity(step.needs.len());
    for need in &step.needs {
        needs.push(state.steps.get(need)?);
    }
    match step.join_rule() {
        Join::All => {
            if !needs.iter().all(|need| need.lets_dependents_run()) {
                return None;
            }
            let all_skipped = !needs.is_empty()
                && needs
                    .iter()
                    .all(|need| matches!(need, StepState::Skipped { .. }));
            Some(if all_skipped {
                Readiness::Skip("derive.skip.needs", "all needs were skipped")
            } else {
                Readiness::Run
            })
        }
        Join::AllDone => needs.iter().all(|need| has_ended(need)).then(|| {
            took("derive.join.all_done");
            Readiness::Run
        }),
        Join::Any => {
            if needs
                .iter()
                .any(|need| matches!(need, StepState::Succeeded { .. }))
            {
                took("derive.join.any");
                Some(Readiness::Run)
            } else if needs.iter().all(|need| has_ended(need)) {
                Some(Readiness::Skip("derive.skip.any", "no need succeeded"))
            } else {
                None
            }
        }
    }
}

/// Whether a step reached a terminal state, whatever its outcome.
fn has_ended(step_state: &StepState) -> bool {
    match step_state {
        StepState::Succeeded { .. }
        | StepState::Failed { .. }
        | StepState::Skipped { .. }
        | StepState::Cancelled { .. } => true,
        StepState::Pending { .. } | StepState::Active { .. } => false,
    }
}

/// For a pending step whose needs let it run: skip, fail or schedule it.
fn ready_step_event(
    state: &InstanceState,
    step: &StepDefinition,
    attempt: u32,
    at: DateTime<Utc>,
    budget: Budget,
) -> Option<EventBody> {
    let skipped = |row, reason: &str| {
        took(row);
        Some(EventBody::StepSkipped {
            step: step.id.clone(),
            attempt,
            reason: reason.to_owned(),
        })
    };
    if let Readiness::Skip(row, reason) = readiness(state, step)? {
        return skipped(row, reason);
    }
    if let Some(when) = &step.when {
        let scope = scope_for(state, Reads::Condition(when), None, None).within(budget);
        match expr::condition(when, &scope) {
            Ok(true) => {}
            Ok(false) => return skipped("derive.skip.when", "when was false"),
            Err(message) => {
                return Some(failed(
                    step,
                    attempt,
                    "expression",
                    format!("when: {message}"),
                ));
            }
        }
    }
    Some(run_event(state, step, attempt, at, budget))
}

/// The event that starts a run of a step that may run: scheduled as its kind is, or
/// failed when it cannot be.
fn run_event(
    state: &InstanceState,
    step: &StepDefinition,
    attempt: u32,
    at: DateTime<Utc>,
    budget: Budget,
) -> EventBody {
    let scheduled = |arguments, items| EventBody::StepScheduled {
        step: step.id.clone(),
        attempt,
        item: None,
        arguments,
        items,
        wake_at: None,
        timeout_at: None,
    };
    let event = match step.kind() {
        Some(StepKind::Action { with, .. }) => match &step.for_each {
            Some(for_each) => match resolve_items(state, for_each, budget) {
                Ok(items) => {
                    took("derive.schedule.fan_out");
                    Ok(scheduled(None, Some(items)))
                }
                Err(message) => Err(("expression", format!("for_each: {message}"))),
            },
            None => match super::recovery::arguments(state, &step.id, with, budget) {
                Ok(arguments) => {
                    took("derive.schedule.action");
                    Ok(scheduled(Some(arguments), None))
                }
                Err(message) => Err(("expression", format!("with: {message}"))),
            },
        },
        Some(StepKind::Sleep(sleep)) => {
            timer::schedule_sleep(state, step, sleep, attempt, at, budget)
                .map_err(|message| ("expression", format!("sleep: {message}")))
        }
        Some(StepKind::Approval(_) | StepKind::Wait(_)) if step.for_each.is_some() => {
            let for_each = step.for_each.as_ref().unwrap_or(&Value::Null);
            match resolve_items(state, for_each, budget) {
                Ok(items) => {
                    took("derive.schedule.fan_out");
                    Ok(scheduled(None, Some(items)))
                }
                Err(message) => Err(("expression", format!("for_each: {message}"))),
            }
        }
        Some(StepKind::Approval(approval)) => {
            approval::request(state, step, approval, attempt, None, at, budget)
        }
        Some(StepKind::Wait(wait)) => wait::schedule(step, wait, attempt, at),
        Some(StepKind::Workflow(_)) => child::schedule(state, step, attempt, budget),
        None => Err((
            "invalid_definition",
            "the step has no action, approval, wait, sleep or workflow".to_owned(),
        )),
    };
    event.unwrap_or_else(|(code, message)| failed(step, attempt, code, message))
}

/// `step_failed` of a pending step that cannot run.
fn failed(step: &StepDefinition, attempt: u32, code: &str, message: String) -> EventBody {
    took("derive.fail");
    EventBody::StepFailed {
        step: step.id.clone(),
        attempt,
        item: None,
        error: ErrorInfo::permanent(code, message),
    }
}

/// For an active step: a fan-out finishes, settles a waiting item, or starts its next
/// items within its limit; an approval settles, a wait step consumes a kept signal.
fn active_step_event(
    state: &InstanceState,
    definition: &Definition,
    step: &StepDefinition,
    work: &Work,
    at: DateTime<Utc>,
    budget: Budget,
) -> Option<EventBody> {
    let (items, units) = match work {
        Work::FanOut { items, units } => (items, units),
        Work::Approval { attempt, .. } => return approval::settled(state, &step.id, *attempt),
        Work::Wait {
            attempt, signal, ..
        } => return wait::kept_signal(state, &step.id, *attempt, signal),
        Work::Action { .. } | Work::Sleep { .. } => return None,
    };
    if let Some((_, Unit::Failed { attempt, error })) = units.first_failed() {
        took("derive.fan_out.failed");
        return Some(EventBody::StepFailed {
            step: step.id.clone(),
            attempt: *attempt,
            item: None,
            error: error.clone(),
        });
    }
    if units.all_succeeded() {
        took("derive.fan_out.succeeded");
        let outputs = units
            .iter()
            .map(|unit| match unit {
                Unit::Succeeded { output, .. } => output.clone(),
                Unit::Ready { .. }
                | Unit::Scheduled { .. }
                | Unit::Running { .. }
                | Unit::Retrying { .. }
                | Unit::Failed { .. }
                | Unit::Approval { .. }
                | Unit::Wait { .. } => Value::Null,
            })
            .collect();
        return Some(EventBody::StepSucceeded {
            step: step.id.clone(),
            attempt: units.max_attempt().max(1),
            item: None,
            output: items::step_output(step, outputs),
        });
    }
    if units.any_waiting()
        && let Some(settled) = items::settled_item(state, step, items, units, budget)
    {
        return Some(settled);
    }
    let limit = step.concurrency.unwrap_or(u32::MAX).max(1) as usize;
    if units.slots_held() >= limit {
        return None;
    }
    let (index, unit) = units.first_ready()?;
    if let Some(StepKind::Approval(_) | StepKind::Wait(_)) = step.kind() {
        let attempt = unit.attempt();
        return items::start_item(state, step, items, index, attempt, at, budget);
    }
    Some(work::schedule_unit(
        state,
        definition,
        &step.id,
        Some(index),
        unit.attempt(),
        budget,
    ))
}
