//! A simulated runtime for property tests of the state machine: it keeps the work and
//! timers the machine asked for, turns random [`Op`]s into inputs that a real runtime,
//! operator, approver or sender could send, and checks the invariants.
// Each test file that includes this module uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use gridflow_core::approval::ApprovalStatus;
use gridflow_core::history::{GENESIS_HASH, record_chain, verify_chain};
use gridflow_core::validate::load;
use gridflow_core::{
    Command, Definition, Dispatch, ErrorInfo, Event, EventBody, Input, InputBody, InstanceId,
    InstanceState, StepError, StepId, StepState, TimerKey, Verdict, Work, WorkKey, replay,
    transition,
};

/// Users who may act, with their groups. `alice` starts every instance.
const USERS: [(&str, &[&str]); 6] = [
    ("ann", &["brand", "brand-managers"]),
    ("bob", &["brand", "brand-managers"]),
    ("cid", &["brand-managers"]),
    ("dan", &["marketing-directors"]),
    ("eve", &["marketing-directors"]),
    ("cmo", &[]),
];

/// Signal names that the test definitions wait for, and one that none does.
const SIGNALS: [&str; 4] = ["ack", "done", "partner_acknowledged", "other"];

/// One random thing that happens to an instance. `usize`s pick among what exists.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// The runtime starts a dispatched unit.
    Start(usize),
    /// A dispatched unit succeeds (started first if needed), with one of a few outputs.
    Succeed(usize, u8),
    /// A dispatched unit fails: retryable or not, `not_found` or `boom`.
    Fail(usize, bool, bool),
    /// A pending timer fires (time moves to it).
    Fire(usize),
    /// An operator cancels.
    Cancel,
    /// An operator retries a step.
    RetryStep(usize),
    /// A user decides a pending approval: approve or reject, with no, valid or invalid data.
    Decide(usize, bool, u8),
    /// A user delegates a pending approval.
    Delegate(usize, usize),
    /// A signal arrives: name, `order` in its payload, correlated (inbound event) or not.
    Signal(usize, i64, bool),
    /// The outcome of a unit that is no longer awaited arrives (late or twice).
    StaleOutcome(usize),
    /// A timer that was cancelled or has fired fires (again).
    StaleTimer(usize),
    /// Time passes.
    Advance(u32),
}

/// The machine under test, and what a runtime would hold for it.
pub(crate) struct Sim {
    pub(crate) definition: Definition,
    pub(crate) state: InstanceState,
    now: DateTime<Utc>,
    history: Vec<Event>,
    /// Dispatched units whose outcome is awaited, with whether they were started.
    outstanding: Vec<(WorkKey, bool)>,
    timers: BTreeMap<TimerKey, DateTime<Utc>>,
    every_work: Vec<WorkKey>,
    /// Every dispatch, in order.
    pub(crate) dispatches: Vec<Dispatch>,
    every_timer: Vec<TimerKey>,
    trace: Vec<String>,
}

fn catalog() -> BTreeMap<String, Value> {
    let open = json!({"type": "object"});
    BTreeMap::from([
        ("core.echo".to_owned(), open.clone()),
        ("core.noop".to_owned(), open.clone()),
        ("core.fail".to_owned(), open.clone()),
        ("core.fail_until".to_owned(), open),
    ])
}

fn groups_of(user: &str) -> Vec<String> {
    USERS
        .iter()
        .find(|(name, _)| *name == user)
        .map(|(_, groups)| groups.iter().map(|group| group.to_string()).collect())
        .unwrap_or_default()
}

impl Sim {
    /// Loads (and validates) `yaml` and starts an instance with `input` as `alice`.
    pub(crate) fn start(yaml: &str, input: Value) -> Self {
        let definition = load(yaml, &catalog()).expect("test definition validates");
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
        let state = InstanceState::new(InstanceId::from("i-1"), definition.id.clone(), now);
        let mut sim = Self {
            definition,
            state,
            now,
            history: Vec::new(),
            outstanding: Vec::new(),
            timers: BTreeMap::new(),
            every_work: Vec::new(),
            dispatches: Vec::new(),
            every_timer: Vec::new(),
            trace: Vec::new(),
        };
        let result = sim.send("alice", InputBody::Start { version: 1, input });
        result.expect("start is accepted");
        sim
    }

    /// Sends one input; on success folds its effects into the simulated runtime.
    fn send(&mut self, actor: &str, body: InputBody) -> Result<Vec<Event>, StepError> {
        self.trace.push(format!("{actor}: {body:?}"));
        let input = Input {
            at: self.now,
            actor: actor.to_owned(),
            body,
        };
        let result = transition(
            self.state.clone(),
            &input,
            &self.definition,
            gridflow_core::expr::Budget::DEFAULT,
        )?;
        self.state = result.state;
        self.history.extend(result.events.iter().cloned());
        for command in result.commands {
            match command {
                Command::Dispatch(dispatch) => {
                    assert!(
                        !self.every_work.contains(&dispatch.work),
                        "{:?} dispatched twice\n{}",
                        dispatch.work,
                        self.trace.join("\n")
                    );
                    self.every_work.push(dispatch.work.clone());
                    self.dispatches.push(dispatch.clone());
                    self.outstanding.push((dispatch.work, false));
                }
                Command::AbandonWork { work } => self.outstanding.retain(|(key, _)| *key != work),
                Command::StartTimer { timer, fire_at } => {
                    if !self.every_timer.contains(&timer) {
                        self.every_timer.push(timer.clone());
                    }
                    self.timers.insert(timer, fire_at);
                }
                Command::CancelTimer { timer } => {
                    self.timers.remove(&timer);
                }
                Command::Finish { .. } | Command::StartChild(_) | Command::CancelChild { .. } => {}
            }
        }
        Ok(result.events)
    }

    /// An input the runtime is entitled to send: it must be accepted.
    fn must(&mut self, actor: &str, body: InputBody) -> Vec<Event> {
        match self.send(actor, body) {
            Ok(events) => events,
            Err(error) => panic!("refused: {error}\n{}", self.trace.join("\n")),
        }
    }

    /// An operator's or user's request: refusing it is fine, but only as a refusal.
    fn may(&mut self, actor: &str, body: InputBody) {
        match self.send(actor, body) {
            Ok(_)
            | Err(StepError::Rejected { .. })
            | Err(StepError::Forbidden { .. })
            | Err(StepError::InvalidDecision { .. }) => {}
            Err(error) => panic!("not a refusal: {error}\n{}", self.trace.join("\n")),
        }
    }

    /// A late or repeated input: accepted and ignored.
    fn ignored(&mut self, body: InputBody) {
        let events = self.must("system", body);
        assert!(
            events.is_empty(),
            "a stale input changed the instance: {events:?}\n{}",
            self.trace.join("\n")
        );
    }

    fn pick_outstanding(&self, pick: usize) -> Option<usize> {
        (!self.outstanding.is_empty()).then(|| pick % self.outstanding.len())
    }

    fn pending_approval(&self) -> Option<(StepId, u32)> {
        self.state
            .approvals
            .iter()
            .find(|(_, approval)| approval.status == ApprovalStatus::Pending)
            .map(|(step, approval)| (step.clone(), approval.attempt))
    }

    fn started(&mut self, index: usize) -> WorkKey {
        let (work, started) = self.outstanding[index].clone();
        if !started {
            self.outstanding[index].1 = true;
            self.must("system", InputBody::ActionStarted { work: work.clone() });
        }
        work
    }

    /// Finishes the outstanding unit at `index` (it is no longer awaited afterwards).
    fn finish(&mut self, index: usize, outcome: impl FnOnce(WorkKey) -> InputBody) {
        let work = self.started(index);
        self.outstanding.retain(|(key, _)| *key != work);
        self.must("system", outcome(work));
    }

    fn fire(&mut self, timer: TimerKey) {
        if let Some(fire_at) = self.timers.remove(&timer) {
            self.now = self.now.max(fire_at);
        }
        self.must("system", InputBody::TimerFired { timer });
    }

    /// Runs one op.
    pub(crate) fn run(&mut self, op: Op) {
        match op {
            Op::Start(pick) => {
                let fresh: Vec<usize> = (0..self.outstanding.len())
                    .filter(|index| !self.outstanding[*index].1)
                    .collect();
                if !fresh.is_empty() {
                    self.started(fresh[pick % fresh.len()]);
                }
            }
            Op::Succeed(pick, output) => {
                if let Some(index) = self.pick_outstanding(pick) {
                    let output = match output {
                        0 => json!({}),
                        1 => json!({"id": "x1", "attempt": 2}),
                        2 => Value::Null,
                        _ => json!([1, "two", {"three": 3.5}]),
                    };
                    self.finish(index, |work| InputBody::ActionSucceeded { work, output });
                }
            }
            Op::Fail(pick, retryable, not_found) => {
                if let Some(index) = self.pick_outstanding(pick) {
                    let code = if not_found { "not_found" } else { "boom" };
                    let error = ErrorInfo {
                        code: code.to_owned(),
                        message: format!("{code} happened"),
                        retryable,
                    };
                    self.finish(index, |work| InputBody::ActionFailed {
                        work,
                        error,
                        retry_at: None,
                    });
                }
            }
            Op::Fire(pick) => {
                if !self.timers.is_empty() {
                    let timer = self.timers.keys().nth(pick % self.timers.len()).cloned();
                    self.fire(timer.expect("picked among the timers"));
                }
            }
            Op::Cancel => self.may(
                "alice",
                InputBody::Cancel {
                    reason: Some("property test".to_owned()),
                },
            ),
            Op::RetryStep(pick) => {
                let step = self.definition.steps[pick % self.definition.steps.len()]
                    .id
                    .clone();
                self.may("alice", InputBody::RetryStep { step });
            }
            Op::Decide(user, approve, data) => {
                if let Some((step, attempt)) = self.pending_approval() {
                    let user = USERS[user % USERS.len()].0;
                    let data = match data {
                        0 => Value::Null,
                        1 => json!({"budget": 10}),
                        _ => json!({"budget": -1}),
                    };
                    let decision = if approve {
                        Verdict::Approve
                    } else {
                        Verdict::Reject
                    };
                    let body = InputBody::Decide {
                        step,
                        attempt,
                        item: None,
                        user: user.to_owned(),
                        groups: groups_of(user),
                        decision,
                        comment: None,
                        data,
                    };
                    self.may(user, body);
                }
            }
            Op::Delegate(from, to) => {
                if let Some((step, attempt)) = self.pending_approval() {
                    let from = USERS[from % USERS.len()].0;
                    let body = InputBody::Delegate {
                        step,
                        attempt,
                        item: None,
                        from: from.to_owned(),
                        groups: groups_of(from),
                        to: USERS[to % USERS.len()].0.to_owned(),
                    };
                    self.may(from, body);
                }
            }
            Op::Signal(name, order, correlated) => {
                let body = InputBody::Signal {
                    name: SIGNALS[name % SIGNALS.len()].to_owned(),
                    payload: json!({"order": order}),
                    correlated,
                };
                // A correlated signal that no wait step takes is refused (404 at the API).
                self.may("partner", body);
            }
            Op::StaleOutcome(pick) => {
                let stale: Vec<WorkKey> = self
                    .every_work
                    .iter()
                    .filter(|work| !self.outstanding.iter().any(|(key, _)| key == *work))
                    .cloned()
                    .collect();
                if !stale.is_empty() {
                    let work = stale[pick % stale.len()].clone();
                    self.ignored(InputBody::ActionSucceeded {
                        work,
                        output: json!({"late": true}),
                    });
                }
            }
            Op::StaleTimer(pick) => {
                let stale: Vec<TimerKey> = self
                    .every_timer
                    .iter()
                    .filter(|timer| !self.timers.contains_key(*timer))
                    .cloned()
                    .collect();
                if !stale.is_empty() {
                    let timer = stale[pick % stale.len()].clone();
                    self.ignored(InputBody::TimerFired { timer });
                }
            }
            Op::Advance(minutes) => self.now += Duration::minutes(i64::from(minutes)),
        }
    }

    /// The signal an active wait step waits for, with a payload that its `correlate` accepts.
    fn awaited_signal(&self) -> Option<String> {
        self.state.steps.values().find_map(|step| match step {
            StepState::Active {
                work: Work::Wait { signal, .. },
            } => Some(signal.clone()),
            _ => None,
        })
    }

    /// Drives the instance as a willing runtime and willing people would, until it ends.
    pub(crate) fn drain(&mut self) {
        for _ in 0..1_000 {
            if self.state.status().is_terminal() {
                return;
            }
            if !self.outstanding.is_empty() {
                let output = json!({"id": "x1", "attempt": 1});
                self.finish(0, |work| InputBody::ActionSucceeded { work, output });
            } else if let Some(name) = self.awaited_signal() {
                let order = self.state.input.get("order").cloned().unwrap_or(json!(7));
                self.must(
                    "partner",
                    InputBody::Signal {
                        name,
                        payload: json!({"order": order}),
                        correlated: false,
                    },
                );
            } else if let Some((step, attempt)) = self.pending_approval() {
                let before = self.history.len();
                for (user, groups) in USERS {
                    let body = InputBody::Decide {
                        step: step.clone(),
                        attempt,
                        item: None,
                        user: user.to_owned(),
                        groups: groups.iter().map(|group| group.to_string()).collect(),
                        decision: Verdict::Approve,
                        comment: None,
                        data: Value::Null,
                    };
                    self.may(user, body);
                }
                if self.history.len() == before {
                    let (timer, _) = self
                        .timers
                        .iter()
                        .min_by_key(|(_, at)| **at)
                        .map(|(timer, at)| (timer.clone(), *at))
                        .unwrap_or_else(|| {
                            panic!(
                                "an approval nobody can decide and no timer\n{:#?}",
                                self.state
                            )
                        });
                    self.fire(timer);
                }
            } else if let Some((timer, _)) = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(timer, at)| (timer.clone(), *at))
            {
                self.fire(timer);
            } else {
                panic!(
                    "stuck: no work, no timer, nothing to decide or signal\n{:#?}\n{}",
                    self.state,
                    self.trace.join("\n")
                );
            }
        }
        panic!("not finished after 1,000 rounds\n{:#?}", self.state);
    }

    /// Replay of the stored (hash-chained) history equals the state; no step or fan-out
    /// item attempt succeeded twice; a finished instance leaves no work behind.
    pub(crate) fn check(&self) {
        let id = self.state.id.clone();
        let recorded = record_chain(&id, 0, GENESIS_HASH, &self.history);
        verify_chain(&recorded).expect("the chain verifies");
        let replayed = replay(&id, &recorded, &self.definition, None).expect("history replays");
        assert_eq!(
            replayed,
            self.state,
            "replay differs\n{}",
            self.trace.join("\n")
        );

        let mut steps = BTreeSet::new();
        let mut items = BTreeSet::new();
        for event in &self.history {
            if let EventBody::StepSucceeded {
                step,
                attempt,
                item,
                ..
            } = &event.body
            {
                let fresh = match item {
                    None => steps.insert(step.clone()),
                    Some(item) => items.insert((step.clone(), *item, *attempt)),
                };
                assert!(
                    fresh,
                    "{step} (item {item:?}, attempt {attempt}) succeeded twice\n{}",
                    self.trace.join("\n")
                );
            }
        }
        if self.state.status().is_terminal() {
            assert!(
                self.outstanding.is_empty(),
                "finished with work outstanding: {:?}\n{}",
                self.outstanding,
                self.trace.join("\n")
            );
        }
    }
}
