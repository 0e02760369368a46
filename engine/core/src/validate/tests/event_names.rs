//! Trigger events and wait signals of known sources, and trigger `when` filters.

use super::*;

/// The test catalog plus the events of two sources: `trading_grid` emits four, `vip`
/// none. Any other source is unknown.
struct WithEvents(BTreeMap<String, Value>);

impl ActionCatalog for WithEvents {
    fn argument_schema(&self, action: &str) -> Option<&Value> {
        self.0.get(action)
    }

    fn source_events(&self, source: &str) -> Option<Vec<String>> {
        let names: &[&str] = match source {
            "trading_grid" => &[
                "issue_created",
                "issue_updated",
                "issue_commented",
                "post_acknowledged",
            ],
            "vip" => &[],
            _ => return None,
        };
        Some(names.iter().map(|name| (*name).to_owned()).collect())
    }
}

fn errors_with_events(source: &str) -> Vec<String> {
    match load(source, &WithEvents(catalog())) {
        Ok(definition) => panic!("expected errors, got {definition:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn misspelt_events_and_signals_of_known_sources_are_refused_with_the_real_name() {
    let errors = errors_with_events(
        r#"
id: acknowledged
triggers:
  - event: trading_grid.issue_created
  - event: trading_grid.isue_created
  - event: trading_grid.invoice_paid
  - event: vip.package_published
steps:
  - {id: a, action: core.noop}
  - id: b
    needs: [a]
    wait: {signal: partner_acknowledged}
  - id: c
    needs: [b]
    wait: {signal: partner.replied}
  - id: d
    needs: [c]
    wait: {signal: trading_grid.post_acknowlegded, timeout: 7d, on_timeout: continue}
"#,
    );
    assert_has(
        &errors,
        "steps[3].wait.signal: unknown signal \"trading_grid.post_acknowlegded\": trading_grid does not emit it (did you mean \"trading_grid.post_acknowledged\"?)",
    );
    assert_has(
        &errors,
        "triggers[1].event: unknown event \"trading_grid.isue_created\": trading_grid does not emit it (did you mean \"trading_grid.issue_created\"?)",
    );
    assert_has(
        &errors,
        "triggers[2].event: unknown event \"trading_grid.invoice_paid\": trading_grid does not emit it (trading_grid emits trading_grid.issue_created, trading_grid.issue_updated, trading_grid.issue_commented, trading_grid.post_acknowledged)",
    );
    assert_has(
        &errors,
        "triggers[3].event: unknown event \"vip.package_published\": vip does not emit it (vip emits no events)",
    );
    // The real names, and names of sources the catalog does not know, are free.
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn real_event_and_signal_names_validate() {
    let source = r#"
id: acknowledged
triggers:
  - event: trading_grid.issue_created
    when: "${event.partner_company_id != 'GC00804444LX'}"
steps:
  - id: ack
    wait: {signal: trading_grid.post_acknowledged, correlate: "${event.post_id == 'post-1'}"}
"#;
    let definition = load(source, &WithEvents(catalog())).expect("valid");
    assert_eq!(
        definition.triggers[0].when.as_deref(),
        Some("${event.partner_company_id != 'GC00804444LX'}")
    );
    // A catalog without events (the default) knows no source: every name is free.
    load(
        &source.replace("post_acknowledged", "post_acknowlegded"),
        &catalog(),
    )
    .expect("no source is known");
}

#[test]
fn trigger_when_is_a_condition_over_event_on_event_triggers_only() {
    let errors = errors_of(
        r#"
id: filtered
triggers:
  - cron: "0 0 7 * * *"
    when: "${event.tick_at != ''}"
  - event: partner.issue_opened
    when: "${input.partner == 'x'}"
  - event: partner.issue_opened
    when: "created by ${event.created_by}"
  - event: partner.issue_opened
    when: "${event.created_by != 'gridflow' &&}"
  - event: partner.issue_opened
    when: "${event.created_by != 'gridflow'}"
  - event: partner.issue_opened
    when: "event.created_by != 'gridflow'"
steps:
  - {id: a, action: core.noop}
"#,
    );
    assert_has(
        &errors,
        "triggers[0].when: \"when\" is only allowed on event and rights triggers: it filters events, and a cron tick has none (put the condition on the first step's \"when\")",
    );
    assert_has_prefix(&errors, "triggers[1].when: ");
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("triggers[1].when: ") && error.contains("input")),
        "{errors:#?}"
    );
    assert_has(
        &errors,
        "triggers[2].when: when must be one \"${...}\" expression (or bare CEL) that yields true or false, without text around it",
    );
    assert_has_prefix(&errors, "triggers[3].when: ");
    assert!(
        !errors
            .iter()
            .any(|error| error.starts_with("triggers[4]") || error.starts_with("triggers[5]")),
        "{errors:#?}"
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}
