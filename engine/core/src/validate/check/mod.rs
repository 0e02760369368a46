//! The semantic checker: what the schema cannot say about a definition, checked on the
//! typed [`Definition`]. Unique step ids, known `needs` and no cycles (here); each step's
//! expressions, actions, approval, wait, sleep and child workflow ([`step`]); its `join`
//! and `repeat` ([`flow`]); what each `${...}` expression may read ([`expression`]);
//! triggers ([`trigger`]); event and signal names of known sources ([`event_name`]); and the JSON
//! Schemas written inside a definition, and templates checked against schemas
//! ([`schemas`]).

use std::collections::{BTreeMap, BTreeSet};

use jsonschema::Validator;

use super::path::{Errors, Path};
use super::suggest::suggestion;
use super::{ActionCatalog, graph};
use crate::definition::Definition;
use expression::{STEP_NAMES, Scope, StepAccess};

mod child;
mod event_name;
mod expression;
mod flow;
mod schemas;
mod step;
mod trigger;

pub(super) use child::child_input_errors;
pub(super) use schemas::compile_embedded_schema;

/// The semantic checks of one definition, reporting into `errors`.
pub(super) struct Checker<'a> {
    definition: &'a Definition,
    catalog: &'a dyn ActionCatalog,
    errors: &'a mut Errors,
    /// The first step with each id.
    index_of: BTreeMap<&'a str, usize>,
    /// Each step's resolved needs, in the order written, without unknown ids or itself.
    needs: Vec<Vec<usize>>,
    /// Reads of steps that are not a direct need, each with the index of the error
    /// reported for it, withdrawn once the read is found to be upstream after all.
    reads: Vec<(graph::Read, usize)>,
    /// Compiled argument schemas by action (`None`: the schema itself is invalid).
    argument_validators: BTreeMap<String, Option<Validator>>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(
        definition: &'a Definition,
        catalog: &'a dyn ActionCatalog,
        errors: &'a mut Errors,
    ) -> Self {
        Self {
            definition,
            catalog,
            errors,
            index_of: BTreeMap::new(),
            needs: Vec::new(),
            reads: Vec::new(),
            argument_validators: BTreeMap::new(),
        }
    }

    /// Runs every check.
    pub(super) fn run(mut self) {
        self.check_graph();
        let input_validator = self.definition.input.as_ref().and_then(|schema| {
            compile_embedded_schema(schema, &Path::root().key("input"), self.errors)
        });
        for (index, step) in self.definition.steps.iter().enumerate() {
            self.check_step(index, step);
        }
        self.withdraw_upstream_reads();
        for (index, trigger) in self.definition.triggers.iter().enumerate() {
            self.check_trigger(index, trigger, input_validator.as_ref());
        }
        if let Some(output) = &self.definition.output {
            let scope = Scope {
                names: STEP_NAMES.to_vec(),
                steps: StepAccess::Any,
            };
            self.check_template(output, &Path::root().key("output"), &scope);
        }
    }

    fn step_path(index: usize) -> Path {
        Path::root().key("steps").index(index)
    }

    fn step_ids(&self) -> Vec<&'a str> {
        self.index_of.keys().copied().collect()
    }

    /// Ids, needs and cycles.
    fn check_graph(&mut self) {
        let steps = &self.definition.steps;
        for (index, step) in steps.iter().enumerate() {
            match self.index_of.get(step.id.as_str()) {
                Some(first) => self.errors.push(
                    &Self::step_path(index).key("id"),
                    format!(
                        "duplicate step id {:?}: steps[{first}] already uses it",
                        step.id.as_str()
                    ),
                ),
                None => {
                    self.index_of.insert(step.id.as_str(), index);
                }
            }
        }

        let ids = self.step_ids();
        for (index, step) in steps.iter().enumerate() {
            let mut resolved = Vec::new();
            for (position, need) in step.needs.iter().enumerate() {
                let at = Self::step_path(index).key("needs").index(position);
                if need == &step.id {
                    self.errors
                        .push(&at, format!("step {:?} cannot need itself", need.as_str()));
                } else if let Some(&target) = self.index_of.get(need.as_str()) {
                    if !resolved.contains(&target) {
                        resolved.push(target);
                    }
                } else {
                    self.errors.push(
                        &at,
                        format!(
                            "unknown step {:?}{}",
                            need.as_str(),
                            suggestion(need.as_str(), &ids)
                        ),
                    );
                }
            }
            self.needs.push(resolved);
        }

        let cycles = graph::cycles(&self.needs);
        for cycle in &cycles {
            let names: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .map(|index| steps[*index].id.as_str())
                .collect();
            self.errors.push(
                &Self::step_path(cycle[0]).key("needs"),
                format!(
                    "cycle: {} (each step needs the next one, so none of them can start; remove one of these needs)",
                    names.join(" -> ")
                ),
            );
        }
    }

    /// Withdraws the errors reported for reads whose step turns out to be upstream.
    fn withdraw_upstream_reads(&mut self) {
        let reads: Vec<graph::Read> = self.reads.iter().map(|(read, _)| *read).collect();
        let answers = graph::upstream(&self.needs, &reads);
        let withdrawn: BTreeSet<usize> = self
            .reads
            .iter()
            .zip(answers)
            .filter(|(_, is_upstream)| *is_upstream)
            .map(|((_, error), _)| *error)
            .collect();
        if withdrawn.is_empty() {
            return;
        }
        self.errors.withdraw(&withdrawn);
    }
}
