//! `workflows/approval-demo.yaml` runs to completion whether or not approvers send form
//! data (the form's only field, `budget`, is optional).

mod support;

use serde_json::{Value, json};

use gridflow_core::{InstanceStatus, StepId};
use support::{Op, Sim};

const DEMO: &str = include_str!("../../../workflows/approval-demo.yaml");

/// Runs the demo with both approvers (ann, bob) sending `data` variant `data`; returns
/// the `release` step's arguments and the instance's output.
fn run(data: u8) -> (Value, Value) {
    let mut sim = Sim::start(DEMO, json!({"order": 7}));
    sim.run(Op::Succeed(0, 0)); // prepare
    sim.run(Op::Decide(0, true, data)); // ann
    sim.run(Op::Decide(1, true, data)); // bob
    let release = sim
        .dispatches
        .iter()
        .find(|dispatch| dispatch.work.step == StepId::from("release"))
        .unwrap_or_else(|| panic!("release was not dispatched: {:#?}", sim.state))
        .clone();
    sim.drain(); // release succeeds, the partner acknowledges
    sim.check();
    assert_eq!(
        sim.state.status(),
        InstanceStatus::Completed,
        "{:#?}",
        sim.state
    );
    let output = sim.state.output().cloned().unwrap_or_default();
    (release.arguments, output)
}

#[test]
fn approval_demo_completes_when_approvers_send_no_form_data() {
    let (arguments, output) = run(0);
    assert_eq!(
        arguments,
        json!({"order": 7, "approved_by": "bob", "budget": null})
    );
    assert_eq!(
        output,
        json!({"decision": "approved", "acknowledged": true})
    );
}

#[test]
fn approval_demo_passes_the_budget_on_when_given() {
    let (arguments, _) = run(1);
    assert_eq!(
        arguments,
        json!({"order": 7, "approved_by": "bob", "budget": 10})
    );
}
