//! Property tests of the pure state machine: random but valid input sequences, as a
//! runtime, operators, approvers and senders of signals could produce them, over a few
//! definitions (a diamond, a fan-out with compensation, retries, approvals with
//! escalation, waits for signals, joins and repeats, cancellation), some inputs delivered
//! twice or late.
//!
//! After every input: the machine did not panic, the history replays to the same state
//! (through its stored, hash-chained form), and no step (or fan-out item attempt)
//! succeeded twice. After the sequence: the instance can still reach a terminal state.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};

use support::{Op, Sim};

/// A diamond `a → (b, c) → d`: `b` retries, `c` has a `when` and may fail and go on.
const DIAMOND: &str = r#"
id: diamond
steps:
  - id: a
    action: core.echo
    with: {n: "${input.n}"}
  - id: b
    needs: [a]
    action: core.echo
    with: {from: "${steps.a.output}"}
    retry: {max_attempts: 3, initial_interval: 1s, max_interval: 4s, non_retryable: [not_found]}
    timeout: 30s
  - id: c
    needs: [a]
    when: "${input.n > 0}"
    action: core.echo
    on_error: continue
  - id: d
    needs: [b, c]
    action: core.noop
output: {b: "${steps.b.output}", c: "${steps.c.status}"}
"#;

/// A saga: a fan-out with compensation between two compensated steps.
const FAN_OUT: &str = r#"
id: fan-out
steps:
  - id: reserve
    action: core.echo
    with: {id: r1}
    compensate: {action: core.echo, with: {undo: "${output}"}}
  - id: share
    needs: [reserve]
    for_each: "${input.items}"
    concurrency: 2
    action: core.echo
    with: {item: "${item}"}
    retry: {max_attempts: 2, initial_interval: 1s}
    compensate: {action: core.echo, with: {revoke: "${output}"}}
  - id: publish
    needs: [share]
    action: core.echo
    with: {shared: "${steps.share.output}"}
    retry: {max_attempts: 1}
"#;

/// A wait for a signal with a timeout, a sleep, and a wait without a timeout.
const WAIT: &str = r#"
id: wait
steps:
  - id: work
    action: core.noop
  - id: ack
    needs: [work]
    wait: {signal: ack, timeout: 1d, on_timeout: continue, correlate: "${event.order == input.order}"}
  - id: nap
    needs: [ack]
    sleep: 1h
  - id: done
    needs: [nap]
    wait: {signal: done}
  - id: after
    needs: [done]
    action: core.echo
    with: {ack: "${steps.ack.output}", done: "${steps.done.output}"}
"#;

/// An approval that fails the instance when nobody decides in time.
const APPROVAL: &str = r#"
id: approval
steps:
  - id: review
    approval:
      title: "Ship ${input.order}?"
      users: [ann, bob]
      groups: [brand]
      quorum: 2
      due: 1h
      on_timeout: fail
      form: {type: object, properties: {budget: {type: integer, minimum: 0}}}
  - id: ship
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
    with: {by: "${steps.review.user}"}
"#;

/// Joins and a repeat: an approval whose rejection skips `deliver`, a step repeated on an
/// interval, a `join: any` over both, and a `join: all_done` after everything.
const FLOW: &str = r#"
id: flow
steps:
  - id: review
    approval: {title: "Send?", users: [ann, bob], quorum: 1}
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    action: core.echo
    on_error: continue
  - id: page
    action: core.echo
    with: {page: "${iteration}"}
    retry: {max_attempts: 2, initial_interval: 1s}
    repeat: {until: "${iteration >= 3}", max: 3, interval: 1m}
  - id: first
    needs: [deliver, page]
    join: any
    action: core.echo
    with: {deliver: "${steps.deliver.status}", pages: "${steps.page.iterations}"}
  - id: tell
    needs: [deliver, first]
    join: all_done
    action: core.echo
    with: {decision: "${steps.review.decision}", first: "${steps.first.output}"}
output: {pages: "${steps.page.iterations}", decision: "${steps.review.decision}"}
"#;

/// A repeat whose `until` reads its output, continuing once exhausted.
const POLL: &str = r#"
id: poll
steps:
  - id: poll
    action: core.echo
    repeat: {until: "${steps.poll.output != null && has(steps.poll.output.id)}", max: 2, on_exhausted: continue}
  - id: after
    needs: [poll]
    action: core.echo
    with: {last: "${steps.poll.output}", runs: "${size(steps.poll.iterations)}"}
"#;

/// Every definition under test, with a start input that its schema accepts.
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        (DIAMOND, json!({"n": 1})),
        (DIAMOND, json!({"n": 0})),
        (FAN_OUT, json!({"items": ["x", "y", "z"]})),
        (FAN_OUT, json!({"items": []})),
        (WAIT, json!({"order": 7})),
        (APPROVAL, json!({"order": 7})),
        (FLOW, json!({})),
        (POLL, json!({})),
        (
            include_str!("../../../workflows/approval-demo.yaml"),
            json!({"order": 7}),
        ),
        (
            include_str!("../../../workflows/retry-demo.yaml"),
            json!({"attempts": 2}),
        ),
        (
            include_str!("../../../workflows/hello.yaml"),
            json!({"name": "Ada", "friends": ["Grace", "Linus", "Alan"]}),
        ),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>()).prop_map(Op::Start),
        6 => (any::<usize>(), 0u8..4).prop_map(|(pick, output)| Op::Succeed(pick, output)),
        3 => (any::<usize>(), any::<bool>(), any::<bool>())
            .prop_map(|(pick, retryable, not_found)| Op::Fail(pick, retryable, not_found)),
        3 => (any::<usize>()).prop_map(Op::Fire),
        1 => Just(Op::Cancel),
        1 => (any::<usize>()).prop_map(Op::RetryStep),
        4 => (any::<usize>(), any::<bool>(), 0u8..3)
            .prop_map(|(user, approve, data)| Op::Decide(user, approve, data)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(user, to)| Op::Delegate(user, to)),
        3 => (any::<usize>(), 6i64..9, any::<bool>())
            .prop_map(|(name, order, correlated)| Op::Signal(name, order, correlated)),
        2 => (any::<usize>()).prop_map(Op::StaleOutcome),
        1 => (any::<usize>()).prop_map(Op::StaleTimer),
        1 => (0u32..180).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random valid inputs: no panic, replay equals state after every input, no step
    /// succeeds twice, and the instance can always be driven to a terminal state.
    #[test]
    fn random_inputs_keep_the_machine_consistent(
        case in 0..cases().len(),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let (yaml, input) = cases().swap_remove(case);
        let mut sim = Sim::start(yaml, input);
        for op in ops {
            sim.run(op);
            sim.check();
        }
        sim.drain();
        sim.check();
        prop_assert!(sim.state.status().is_terminal(), "not terminal: {:#?}", sim.state);
    }

    /// Cancelling at any point ends the instance: cancelled, or failed if it was already
    /// failing, and never anything running afterwards.
    #[test]
    fn cancel_always_ends_the_instance(
        case in 0..cases().len(),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let (yaml, input) = cases().swap_remove(case);
        let mut sim = Sim::start(yaml, input);
        for op in ops {
            sim.run(op);
        }
        sim.run(Op::Cancel);
        sim.check();
        sim.drain();
        sim.check();
        prop_assert!(sim.state.status().is_terminal(), "not terminal: {:#?}", sim.state);
    }
}
