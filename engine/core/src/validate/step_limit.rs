//! `limits.max_steps`: a definition with more steps is refused before its checks run.

use std::num::NonZeroU32;

use serde_json::Value;

use super::{ActionCatalog, DefinitionError, parse_document, validate_owned};
use crate::definition::Definition;

/// [`load`](super::load), refusing a definition with more than `max_steps` steps
/// (`limits.max_steps`) before checking anything else.
pub fn load_within(
    source: &str,
    catalog: &dyn ActionCatalog,
    max_steps: NonZeroU32,
) -> Result<Definition, Vec<DefinitionError>> {
    let document = parse_document(source)?;
    check(&document, max_steps)?;
    validate_owned(document, catalog)
}

/// Refuses a document whose `steps` list is longer than `max_steps`.
fn check(document: &Value, max_steps: NonZeroU32) -> Result<(), Vec<DefinitionError>> {
    let count = document
        .get("steps")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if count <= max_steps.get() as usize {
        return Ok(());
    }
    Err(vec![DefinitionError {
        path: "steps".to_owned(),
        message: format!(
            "the definition has {count} steps, more than limits.max_steps ({max_steps}); split it into workflows that start each other, or raise limits.max_steps in gridflow.toml"
        ),
    }])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn chain(steps: usize) -> String {
        let mut source = String::from("id: chain\nsteps:\n");
        for index in 0..steps {
            source.push_str(&format!("  - id: s{index}\n    action: core.echo\n"));
        }
        source
    }

    #[test]
    fn more_steps_than_the_limit_are_refused_naming_it() {
        let catalog: BTreeMap<String, Value> =
            BTreeMap::from([("core.echo".to_owned(), serde_json::json!({}))]);
        let limit = NonZeroU32::new(3).unwrap();
        assert!(load_within(&chain(3), &catalog, limit).is_ok());
        let errors = load_within(&chain(4), &catalog, limit).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "steps");
        assert!(
            errors[0]
                .message
                .starts_with("the definition has 4 steps, more than limits.max_steps (3)"),
            "{}",
            errors[0].message
        );
    }
}
