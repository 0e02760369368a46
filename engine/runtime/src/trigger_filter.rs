//! Trigger filters: an event trigger's `when` (DESIGN.md §2), a condition over the inbound
//! `event`, decides whether the event starts the trigger's definition. False starts
//! nothing; an expression that fails at run time (a field the event lacks, a result that
//! is not a bool, the work budget) starts nothing either and is logged with the
//! definition and the trigger's index. Both are counted per definition, for
//! `gridflow_trigger_events_filtered_total` and `gridflow_trigger_filter_errors_total`
//! of `/metrics`; the counts live in this process (as every counter of `/metrics`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use gridflow_core::DefinitionId;
use gridflow_core::definition::Trigger;
use gridflow_core::expr::{self, Budget, Scope};

/// What a trigger's filter says about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No filter, or it held: start.
    Start,
    /// The filter was false.
    Filtered,
    /// The filter failed; the message says why.
    Failed(String),
}

/// Evaluates `trigger`'s `when` with `event` in scope.
pub(crate) fn verdict(trigger: &Trigger, event: &Value, budget: Budget) -> Verdict {
    let Some(when) = &trigger.when else {
        return Verdict::Start;
    };
    let scope = Scope::new().with("event", event.clone()).within(budget);
    match expr::condition(when, &scope) {
        Ok(true) => Verdict::Start,
        Ok(false) => Verdict::Filtered,
        Err(message) => Verdict::Failed(message),
    }
}

/// How many events one definition's trigger filters kept from starting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TriggerFilterCounts {
    /// The definition.
    pub definition: String,
    /// Events its filters were false for.
    pub filtered: u64,
    /// Events its filters failed on.
    pub failed: u64,
}

/// The counts per definition; updated under a short lock (once per filtered event).
#[derive(Debug, Default)]
pub(crate) struct TriggerFilterStats {
    counts: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl TriggerFilterStats {
    /// Counts `verdict` for `definition` (a start counts nothing).
    pub(crate) fn record(&self, definition: &DefinitionId, verdict: &Verdict) {
        let (filtered, failed) = match verdict {
            Verdict::Start => return,
            Verdict::Filtered => (1, 0),
            Verdict::Failed(_) => (0, 1),
        };
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = counts.entry(definition.as_str().to_owned()).or_default();
        entry.0 += filtered;
        entry.1 += failed;
    }

    /// Every definition with a count, by id.
    pub(crate) fn snapshot(&self) -> Vec<TriggerFilterCounts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(definition, (filtered, failed))| TriggerFilterCounts {
                definition: definition.clone(),
                filtered: *filtered,
                failed: *failed,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn trigger(when: Option<&str>) -> Trigger {
        serde_json::from_value(json!({"event": "partner.issue_opened", "when": when}))
            .expect("a trigger")
    }

    #[test]
    fn verdicts_and_their_counts() {
        let budget = Budget::default();
        let event = json!({"created_by": "gridflow"});
        let own = "${event.created_by != 'gridflow'}";
        assert_eq!(verdict(&trigger(None), &event, budget), Verdict::Start);
        assert_eq!(
            verdict(&trigger(Some(own)), &event, budget),
            Verdict::Filtered
        );
        assert_eq!(
            verdict(
                &trigger(Some(own)),
                &json!({"created_by": "partner"}),
                budget
            ),
            Verdict::Start
        );
        let failed = verdict(&trigger(Some("${event.missing.field}")), &event, budget);
        assert!(matches!(failed, Verdict::Failed(_)), "{failed:?}");
        let not_bool = verdict(&trigger(Some("${event.created_by}")), &event, budget);
        assert!(matches!(not_bool, Verdict::Failed(_)), "{not_bool:?}");

        let stats = TriggerFilterStats::default();
        let definition = DefinitionId::from("partner-request");
        stats.record(&definition, &Verdict::Start);
        stats.record(&definition, &Verdict::Filtered);
        stats.record(&definition, &Verdict::Filtered);
        stats.record(&definition, &failed);
        assert_eq!(
            stats.snapshot(),
            [TriggerFilterCounts {
                definition: "partner-request".to_owned(),
                filtered: 2,
                failed: 1,
            }]
        );
    }
}
