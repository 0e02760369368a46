//! `rights` triggers: `expiring_within` parsed with its path in the error, unknown fields
//! refused, never combined with cron or event on one trigger, `when` and `input` over
//! `event`.

use std::time::Duration;

use super::*;
use crate::definition::RightsTrigger;

#[test]
fn a_rights_trigger_loads_with_its_filter_and_input() {
    let definition = load(
        r#"
id: recall
input: {type: object, properties: {asset: {type: string}}}
triggers:
  - rights: {expiring_within: 7d}
  - rights: {expiring_within: 0s, system: otmm}
    when: "${size(event.recipients) > 0}"
    input: {asset: "${event.asset_id}"}
steps:
  - {id: a, action: core.noop}
"#,
        &catalog(),
    )
    .expect("a valid definition");
    assert_eq!(
        definition.triggers[0].rights,
        Some(RightsTrigger {
            expiring_within: Duration::from_secs(7 * 24 * 3600),
            system: None,
        })
    );
    assert_eq!(
        definition.triggers[1].rights,
        Some(RightsTrigger {
            expiring_within: Duration::ZERO,
            system: Some("otmm".to_owned()),
        })
    );
}

#[test]
fn rights_triggers_are_refused_with_their_paths() {
    let errors = errors_of(
        r#"
id: recall
triggers:
  - rights: {expiring_within: soon}
  - rights: {expiring_within: 7d, sytem: otmm}
  - rights: {system: otmm}
  - rights: {expiring_within: 7d}
    cron: "0 0 7 * * *"
  - rights: {expiring_within: 7d}
    event: otmm.asset_changed
  - rights: {expiring_within: -5}
  - rights: {expiring_within: 1d}
    overlap: allow
steps:
  - {id: a, action: core.noop}
"#,
    );
    assert_has_prefix(
        &errors,
        "triggers[0].rights.expiring_within: invalid duration \"soon\":",
    );
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("triggers[1].rights") && error.contains("sytem")),
        "{errors:#?}"
    );
    assert_has(
        &errors,
        "triggers[2].rights: a rights trigger needs expiring_within, e.g. {expiring_within: 7d}",
    );
    assert_has(
        &errors,
        "triggers[3]: a trigger needs exactly one of cron, event, rights (found cron and rights)",
    );
    assert_has(
        &errors,
        "triggers[4]: a trigger needs exactly one of cron, event, rights (found event and rights)",
    );
    assert_has_prefix(&errors, "triggers[5].rights.expiring_within: ");
    assert_has(
        &errors,
        "triggers[6]: \"overlap\" is only allowed on cron triggers",
    );

    // Its `when` and `input` see `event` only.
    let errors = errors_of(
        r#"
id: recall
triggers:
  - rights: {expiring_within: 1d}
    when: "${input.asset != ''}"
    input: {asset: "${steps.a.output}"}
steps:
  - {id: a, action: core.noop}
"#,
    );
    assert_has_prefix(&errors, "triggers[0].when: ");
    assert_has_prefix(&errors, "triggers[0].input.asset: ");
}
