//! [`StepIndex`]: where each step is and which steps need it, built once per loaded
//! definition so that the state machine looks at the steps an event touches rather than
//! at every step.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::StepDefinition;
use crate::id::StepId;

/// Built on first use from the steps; never serialized, and equal to any other index (it
/// is derived data). A clone starts empty, so a cloned definition whose steps are then
/// changed never uses an index of the old steps.
#[derive(Default)]
pub(crate) struct StepIndex(OnceLock<Built>);

#[derive(Debug)]
pub(crate) struct Built {
    /// Step id → its position in definition order.
    pub(crate) position: BTreeMap<StepId, usize>,
    /// For each step (by position), the positions of the steps that need it, ascending.
    pub(crate) dependents: Vec<Vec<usize>>,
    /// Positions of the steps that no step needs, ascending.
    pub(crate) sinks: Vec<usize>,
}

impl StepIndex {
    pub(crate) fn get(&self, steps: &[StepDefinition]) -> &Built {
        self.0.get_or_init(|| Built::new(steps))
    }
}

impl Built {
    fn new(steps: &[StepDefinition]) -> Self {
        let mut position = BTreeMap::new();
        for (index, step) in steps.iter().enumerate() {
            // The first of duplicate ids wins, as a linear search would find it (validation
            // refuses duplicates anyway).
            position.entry(step.id.clone()).or_insert(index);
        }
        let mut dependents = vec![Vec::new(); steps.len()];
        for (index, step) in steps.iter().enumerate() {
            for need in &step.needs {
                if let Some(&needed) = position.get(need) {
                    dependents[needed].push(index);
                }
            }
        }
        for list in &mut dependents {
            list.sort_unstable();
            list.dedup();
        }
        let sinks = dependents
            .iter()
            .enumerate()
            .filter(|(_, list)| list.is_empty())
            .map(|(index, _)| index)
            .collect();
        Self {
            position,
            dependents,
            sinks,
        }
    }
}

impl Clone for StepIndex {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for StepIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for StepIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepIndex")
    }
}
