//! A step's control flow: `join` (only on a step with `needs`) and `repeat` (on action and
//! workflow steps, not with `for_each`; its `until` reads the step itself and
//! `iteration`).

use super::Checker;
use super::expression::Scope;
use crate::definition::{StepDefinition, StepKind};

impl<'a> Checker<'a> {
    /// The `join` and `repeat` of step `index`.
    pub(super) fn check_join_and_repeat(&mut self, index: usize, step: &'a StepDefinition) {
        let at = Self::step_path(index);
        if step.join.is_some() && step.needs.is_empty() {
            self.errors.push(
                &at.key("join"),
                "join says when a step with needs runs; this step has no needs: add the steps it waits for under needs, or remove join",
            );
        }
        let Some(repeat) = &step.repeat else {
            return;
        };
        let at_repeat = at.key("repeat");
        let kind = match step.kind() {
            Some(StepKind::Action { .. }) | Some(StepKind::Workflow(_)) | None => None,
            Some(StepKind::Approval(_)) => Some("an approval"),
            Some(StepKind::Wait(_)) => Some("a wait"),
            Some(StepKind::Sleep(_)) => Some("a sleep"),
        };
        if let Some(kind) = kind {
            self.errors.push(
                &at_repeat,
                format!("repeat runs action and workflow steps again; this is {kind} step"),
            );
        }
        if step.for_each.is_some() {
            self.errors.push(
                &at_repeat,
                "repeat cannot be combined with for_each: repeat the work of one item in a workflow step that the for_each runs per item",
            );
        }
        self.check_condition(
            &repeat.until,
            &at_repeat.key("until"),
            &Scope::step(index, &["iteration"], true),
            "until",
        );
    }
}
