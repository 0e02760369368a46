//! Workflow steps checked against the definitions they start, once those are known: the
//! catalogue of definitions lives in the store, so the runtime calls this when it
//! validates or deploys a definition ([`crate::validate::child_input_errors`]).

use jsonschema::Validator;
use serde_json::Value;

use super::super::DefinitionError;
use super::super::path::Path;
use super::super::wording::Noun;
use super::schemas::template_schema_errors;
use crate::definition::Definition;

/// The errors of step `index`'s `workflow.input` against the input schema of `child`:
/// what can be told before it runs (required keys, unknown keys, literal values of the
/// wrong type); parts written as `${...}` are checked when the step runs.
pub(in crate::validate) fn child_input_errors(
    definition: &Definition,
    index: usize,
    child: &Definition,
) -> Vec<DefinitionError> {
    let Some(step) = definition.steps.get(index) else {
        return Vec::new();
    };
    let Some(workflow) = &step.workflow else {
        return Vec::new();
    };
    let Some(schema) = &child.input else {
        return Vec::new();
    };
    let at = Path::root()
        .key("steps")
        .index(index)
        .key("workflow")
        .key("input");
    let Ok(validator): Result<Validator, _> = jsonschema::validator_for(schema) else {
        return Vec::new();
    };
    let empty = Value::Object(serde_json::Map::new());
    let input = workflow.input.as_ref().unwrap_or(&empty);
    template_schema_errors(&validator, schema, input, Noun::Field)
        .into_iter()
        .map(|(within, message)| DefinitionError {
            path: at.join(&within).render(),
            message: format!("{message} (input of workflow {:?})", child.id.as_str()),
        })
        .collect()
}
