//! Unit tests of the pure state machine: inputs in, events, commands and state out.
//! No IO, no clock: time is a value the harness advances.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::approval::{ApprovalState, ApprovalStatus};
use crate::command::Dispatch;
use crate::event::TimerPurpose;
use crate::replay::replay;
use crate::state::{Phase, StepState, Unit, Work};
use crate::status::{InstanceStatus, StepStatus};

mod approvals;
mod bindings;
mod children;
mod compensation;
mod coverage;
mod fan_out;
mod fan_out_kinds;
mod graph;
mod histories;
mod joins;
mod lifecycle;
mod recovery;
mod repeat;
mod retries;
mod scope;
mod signals;

struct Harness {
    definition: Definition,
    state: InstanceState,
    now: DateTime<Utc>,
    history: Vec<Event>,
    last: Vec<Command>,
}

fn definition(yaml: &str) -> Definition {
    serde_saphyr::from_str(yaml).expect("test definition parses")
}

impl Harness {
    fn start(yaml: &str, input: Value) -> Self {
        let definition = definition(yaml);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
        let state = InstanceState::new(InstanceId::from("i-1"), definition.id.clone(), now);
        let mut harness = Self {
            definition,
            state,
            now,
            history: Vec::new(),
            last: Vec::new(),
        };
        harness.input(InputBody::Start { version: 1, input });
        harness
    }

    fn try_input(&mut self, body: InputBody) -> Result<Vec<Event>, StepError> {
        self.try_input_as("alice", body)
    }

    fn try_input_as(&mut self, actor: &str, body: InputBody) -> Result<Vec<Event>, StepError> {
        let input = Input {
            at: self.now,
            actor: actor.to_owned(),
            body,
        };
        let result = transition(
            self.state.clone(),
            &input,
            &self.definition,
            crate::expr::Budget::DEFAULT,
        )?;
        self.state = result.state;
        self.history.extend(result.events.clone());
        self.last = result.commands;
        Ok(result.events)
    }

    fn input(&mut self, body: InputBody) -> Vec<Event> {
        self.try_input(body).expect("input is accepted")
    }

    fn advance(&mut self, duration: Duration) {
        self.now += chrono::Duration::from_std(duration).unwrap();
    }

    /// Work dispatched by the last input, in order.
    fn dispatched(&self) -> Vec<Dispatch> {
        self.last
            .iter()
            .filter_map(|command| match command {
                Command::Dispatch(dispatch) => Some(dispatch.clone()),
                Command::AbandonWork { .. }
                | Command::StartTimer { .. }
                | Command::CancelTimer { .. }
                | Command::Finish { .. }
                | Command::StartChild(_)
                | Command::CancelChild { .. } => None,
            })
            .collect()
    }

    fn only_dispatch(&self) -> Dispatch {
        let dispatched = self.dispatched();
        assert_eq!(
            dispatched.len(),
            1,
            "expected one dispatch, got {dispatched:?}"
        );
        dispatched.into_iter().next().unwrap()
    }

    fn succeed(&mut self, work: &WorkKey, output: Value) -> Vec<Event> {
        self.input(InputBody::ActionStarted { work: work.clone() });
        self.input(InputBody::ActionSucceeded {
            work: work.clone(),
            output,
        })
    }

    fn fail(&mut self, work: &WorkKey, code: &str, retryable: bool) -> Vec<Event> {
        self.input(InputBody::ActionStarted { work: work.clone() });
        self.input(InputBody::ActionFailed {
            work: work.clone(),
            error: ErrorInfo {
                code: code.to_owned(),
                message: format!("{code} happened"),
                retryable,
            },
            retry_at: None,
        })
    }

    fn timers(&self) -> Vec<(TimerKey, DateTime<Utc>)> {
        self.last
            .iter()
            .filter_map(|command| match command {
                Command::StartTimer { timer, fire_at } => Some((timer.clone(), *fire_at)),
                Command::Dispatch(_)
                | Command::AbandonWork { .. }
                | Command::CancelTimer { .. }
                | Command::Finish { .. }
                | Command::StartChild(_)
                | Command::CancelChild { .. } => None,
            })
            .collect()
    }

    fn types(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|event| event.body.type_and_data().0)
            .collect()
    }

    fn step_status(&self, step: &str) -> StepStatus {
        self.state.steps[&StepId::from(step)].status()
    }

    /// Folding the recorded history must give exactly the state the transitions built.
    fn assert_replays(&self) {
        let recorded = crate::history::record_chain(
            &self.state.id,
            0,
            crate::history::GENESIS_HASH,
            &self.history,
        );
        let replayed = replay(&self.state.id, &recorded, &self.definition, None).unwrap();
        assert_eq!(replayed, self.state);
    }
}

fn work(step: &str, item: Option<u32>, attempt: u32) -> WorkKey {
    WorkKey {
        step: StepId::from(step),
        item,
        attempt,
        compensation: false,
        iteration: None,
    }
}
