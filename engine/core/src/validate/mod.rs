//! Loading and validating workflow definitions (DESIGN.md §2): the entry points.
//!
//! A definition is checked in two passes, and every error of both is listed, each at its
//! path (`steps[2].needs[0]`, `steps[0].with.query`, `input`, or the empty root path):
//!
//! 1. the JSON Schema `workflows/schema/workflow.schema.json` (draft 2020-12, embedded in
//!    this crate and compiled once), whose errors are rephrased for business analysts;
//! 2. semantic checks on the typed [`Definition`]: unique step ids, known `needs`, no
//!    cycles (each named step by step), known actions whose `with` fits the action's
//!    argument schema, trigger events and wait signals that a known source emits (with
//!    "did you mean"), trigger `when` filters on events only, `${...}` expressions that
//!    parse and only read names and steps that exist when they run, durations, cron
//!    expressions, time zones and embedded schemas.
//!
//! Actions are known through an [`ActionCatalog`], which the connectors crate implements;
//! this module never looks connectors up by itself. Nothing here does IO.
//!
//! The rooms: this file holds the public functions and types; `path` the paths into a
//! document and the error list; `wording` the analyst-facing rewording of schema errors
//! (with `suggest` for "did you mean"); `decode` the YAML and deserialization steps;
//! `check` the semantic checker; `graph` the algorithms on `needs` (cycles, upstream
//! reads); `step_limit` the `limits.max_steps` entry point.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use jsonschema::Validator;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::definition::Definition;
use crate::history;
use check::{Checker, compile_embedded_schema};

use decode::{check_durations, locate_deserialize_error};
use path::{Errors, Path};
use wording::{Noun, schema_messages};

mod check;
mod decode;
mod graph;
mod path;
mod step_limit;
mod suggest;
mod wording;

#[cfg(test)]
mod tests;

pub use step_limit::load_within;

/// The JSON Schema of workflow definitions, as shipped in `workflows/schema/`.
pub const SCHEMA_SOURCE: &str = include_str!("../../../../workflows/schema/workflow.schema.json");

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(SCHEMA_SOURCE).expect("the embedded workflow schema is valid JSON")
});

static SCHEMA_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    jsonschema::draft202012::new(&SCHEMA).expect("the embedded workflow schema compiles")
});

/// The JSON Schema of workflow definitions, parsed.
pub fn schema() -> &'static Value {
    &SCHEMA
}

/// One thing wrong with a definition (or with an input), at a path such as
/// `steps[2].needs[0]`; the empty path is the document itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// Where: `steps[2].needs[0]`, `steps[0].with.query`, `input`, or empty for the root.
    pub path: String,
    /// What is wrong, in words an analyst can act on.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DefinitionError {}

/// The connector actions that definitions may call, with their argument schemas.
pub trait ActionCatalog {
    /// The JSON Schema of the action's `with` arguments; `None` when the action is unknown.
    fn argument_schema(&self, action: &str) -> Option<&Value>;

    /// Every known action name, used only to suggest a correction for an unknown one.
    fn actions(&self) -> Vec<String> {
        Vec::new()
    }

    /// The events a known source emits, without the source prefix (`issue_created`), or
    /// `None` when `source` is not a known source. A trigger `event:` or a wait `signal:`
    /// named `<known source>.<name>` must be one of them; names of other sources are free.
    fn source_events(&self, _source: &str) -> Option<Vec<String>> {
        None
    }
}

/// A catalog written out as a map from action name to argument schema (tests, tools).
impl ActionCatalog for BTreeMap<String, Value> {
    fn argument_schema(&self, action: &str) -> Option<&Value> {
        self.get(action)
    }

    fn actions(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Parses a YAML (or JSON, which is YAML) document into a JSON value.
///
/// A syntax error names its line and column.
pub fn parse_document(source: &str) -> Result<Value, Vec<DefinitionError>> {
    if source.trim().is_empty() {
        return Err(vec![DefinitionError {
            path: String::new(),
            message: "the document is empty".to_owned(),
        }]);
    }
    serde_saphyr::from_str::<Value>(source).map_err(|error| vec![decode::yaml_error(&error)])
}

/// Parses and validates a definition written in YAML or JSON.
pub fn load(source: &str, catalog: &dyn ActionCatalog) -> Result<Definition, Vec<DefinitionError>> {
    validate_owned(parse_document(source)?, catalog)
}

/// Validates a parsed definition document: the JSON Schema, then the semantic checks;
/// every error found is returned, sorted by path.
pub fn validate_value(
    document: &Value,
    catalog: &dyn ActionCatalog,
) -> Result<Definition, Vec<DefinitionError>> {
    validate_owned(document.clone(), catalog)
}

/// [`validate_value`] on a document it may change, so that it needs no copy.
fn validate_owned(
    mut sanitized: Value,
    catalog: &dyn ActionCatalog,
) -> Result<Definition, Vec<DefinitionError>> {
    let mut errors = Errors::default();
    for error in SCHEMA_VALIDATOR.iter_errors(&sanitized) {
        let at = Path::from_location(error.instance_path());
        for message in schema_messages(&error, &SCHEMA, at.lookup(&sanitized), Noun::Field) {
            errors.push(&at, message);
        }
    }

    // Bad durations are reported here with their exact path, then removed, so that the
    // rest of the definition still deserializes and gets its semantic checks.
    check_durations(&mut sanitized, &mut errors);

    match Definition::deserialize(&sanitized) {
        Ok(definition) => {
            Checker::new(&definition, catalog, &mut errors).run();
            errors.finish().map(|()| definition)
        }
        Err(error) => {
            if errors.is_empty() {
                let (at, message) = locate_deserialize_error(&sanitized, error);
                errors.push(&at, message);
            }
            match errors.finish() {
                Err(list) => Err(list),
                Ok(()) => Err(Vec::new()),
            }
        }
    }
}

/// The errors of step `index`'s `workflow.input` of `definition` against the input
/// schema of `child`, the definition it starts, each at its path
/// (`steps[2].workflow.input.partner_id`). Parts written as `${...}` are checked when the
/// step runs; the rest (required keys, unknown keys, literal values) here. The runtime
/// calls it when it validates or deploys a definition, since definitions are in its store.
pub fn child_input_errors(
    definition: &Definition,
    index: usize,
    child: &Definition,
) -> Vec<DefinitionError> {
    check::child_input_errors(definition, index, child)
}

/// The content hash of a definition: sha256 (hex) of its canonical JSON.
///
/// Deploying identical content again is a no-op; different content is a new version.
pub fn content_hash(definition: &Definition) -> String {
    let value = serde_json::to_value(definition)
        .expect("a definition serializes to JSON: its maps have string keys");
    hex::encode(Sha256::digest(history::canonical_json(&value).as_bytes()))
}

/// Checks start inputs against a definition's `input` schema, compiled once.
pub struct InputValidator {
    validator: Option<Validator>,
}

impl fmt::Debug for InputValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputValidator")
            .field("has_schema", &self.validator.is_some())
            .finish()
    }
}

impl InputValidator {
    /// Compiles the definition's input schema; a definition without one accepts any input.
    pub fn new(definition: &Definition) -> Result<Self, Vec<DefinitionError>> {
        let Some(schema) = &definition.input else {
            return Ok(Self { validator: None });
        };
        let mut errors = Errors::default();
        let validator = compile_embedded_schema(schema, &Path::root().key("input"), &mut errors);
        errors.finish()?;
        Ok(Self { validator })
    }

    /// Lists every way `input` violates the schema, at paths like `input.partner_id`.
    pub fn validate(&self, input: &Value) -> Result<(), Vec<DefinitionError>> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let mut errors = Errors::default();
        for error in validator.iter_errors(input) {
            let at = Path::root()
                .key("input")
                .join(&Path::from_location(error.instance_path()));
            errors.push(&at, error.to_string());
        }
        errors.finish()
    }
}
