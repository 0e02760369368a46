//! What expressions see: `steps` holds the steps an expression names, or every step when
//! it reads `steps` as a whole, so that a step's cost does not grow with the instance.

use super::expressions::{Reads, scope_for};
use super::graph::CHAIN;
use super::*;

fn steps_seen(harness: &Harness, reads: Reads<'_>) -> Vec<String> {
    let scope = scope_for(&harness.state, reads, None, None);
    let steps = scope.get("steps").and_then(Value::as_object).unwrap();
    steps.keys().cloned().collect()
}

#[test]
fn a_scope_holds_only_the_steps_its_expressions_name() {
    let mut harness = Harness::start(CHAIN, json!({"name": "acme"}));
    let a = harness.only_dispatch();
    harness.succeed(&a.work, json!({"name": "acme"}));

    let template =
        json!({"greeting": "hello ${steps.a.output.name}", "n": ["${steps['b'].status}"]});
    assert_eq!(steps_seen(&harness, Reads::Template(&template)), ["a", "b"]);
    assert_eq!(
        steps_seen(&harness, Reads::Condition("steps.a.status == 'succeeded'")),
        ["a"]
    );
    assert!(steps_seen(&harness, Reads::Template(&json!("${input.name}"))).is_empty());
    // A step the instance does not have is left out, as before.
    assert_eq!(
        steps_seen(
            &harness,
            Reads::Condition("has(steps.zz.output) || steps.a.output != null")
        ),
        ["a"]
    );
    // Read as a whole or by a computed key: every step.
    for whole in ["size(steps) > 1", "steps[input.name].status == 'x'"] {
        assert_eq!(
            steps_seen(&harness, Reads::Condition(whole)),
            ["a", "b", "c"],
            "{whole}"
        );
    }
    // The values are those of the full scope.
    let full = scope(&harness.state, None, None);
    let cut = scope_for(&harness.state, Reads::Template(&template), None, None);
    assert_eq!(
        cut.get("steps").unwrap()["a"],
        full.get("steps").unwrap()["a"]
    );
    // `input` is bound when read (a fan-out item's arguments do not copy every item).
    assert_eq!(cut.get("input"), Some(&Value::Null));
    let reads_input = json!({"who": "${input.name}", "a": "${steps.a.status}"});
    let cut = scope_for(&harness.state, Reads::Template(&reads_input), None, None);
    assert_eq!(cut.get("input"), full.get("input"));
}
