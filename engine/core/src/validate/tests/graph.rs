//! Step ids, needs and cycles.

use super::*;

#[test]
fn cycle_names_every_step_in_order() {
    let errors = errors_of(
        r#"
id: cyclic
steps:
  - {id: start, action: core.noop}
  - {id: a, needs: [start, c], action: core.noop}
  - {id: b, needs: [a], action: core.noop}
  - {id: c, needs: [b], action: core.noop}
"#,
    );
    assert_eq!(
        errors,
        vec![
            "steps[1].needs: cycle: a -> c -> b -> a (each step needs the next one, so none of them can start; remove one of these needs)"
        ]
    );
}

#[test]
fn every_cycle_of_a_tangle_is_reported_once() {
    let errors = errors_of(
        r#"
id: tangle
steps:
  - {id: a, needs: [b, c], action: core.noop}
  - {id: b, needs: [a], action: core.noop}
  - {id: c, needs: [a], action: core.noop}
  - {id: d, needs: [d], action: core.noop}
"#,
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_has_prefix(&errors, "steps[0].needs: cycle: a -> b -> a ");
    assert_has_prefix(&errors, "steps[0].needs: cycle: a -> c -> a ");
    assert_has(&errors, "steps[3].needs[0]: step \"d\" cannot need itself");
}

#[test]
fn unknown_need_is_named() {
    let errors = errors_of(
        r#"
id: unknown-need
steps:
  - {id: fetch_assets, action: core.noop}
  - {id: send, needs: [fetch], action: core.noop}
  - {id: tell, needs: [fetch_asets], action: core.noop}
"#,
    );
    assert_eq!(
        errors,
        vec![
            "steps[1].needs[0]: unknown step \"fetch\" (did you mean \"fetch_assets\"?)",
            "steps[2].needs[0]: unknown step \"fetch_asets\" (did you mean \"fetch_assets\"?)"
        ]
    );
}
