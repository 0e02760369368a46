//! Loading and validating workflow definitions (DESIGN.md §2).
//!
//! A definition is checked in two passes, and every error of both is listed, each at its
//! path (`steps[2].needs[0]`, `steps[0].with.query`, `input`, or the empty root path):
//!
//! 1. the JSON Schema `workflows/schema/workflow.schema.json` (draft 2020-12, embedded in
//!    this crate and compiled once), whose errors are rephrased for business analysts;
//! 2. semantic checks on the typed [`Definition`]: unique step ids, known `needs`, no
//!    cycles (each named step by step), known actions whose `with` fits the action's
//!    argument schema, `${...}` expressions that parse and only read names and steps that
//!    exist when they run, durations, cron expressions, time zones and embedded schemas.
//!
//! Actions are known through an [`ActionCatalog`], which the connectors crate implements;
//! this module never looks connectors up by itself. Nothing here does IO.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{ValidationError, Validator};
use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::definition::{Definition, Sleep, StepDefinition, Trigger};
use crate::{duration, expr, history};

/// The JSON Schema of workflow definitions, as shipped in `workflows/schema/`.
pub const SCHEMA_SOURCE: &str = include_str!("../../../workflows/schema/workflow.schema.json");

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
    serde_saphyr::from_str::<Value>(source).map_err(|error| {
        let detail = plain_yaml_message(&first_line(&error.to_string()));
        let message = match error.location() {
            Some(location) => format!(
                "line {}, column {}: {detail}",
                location.line(),
                location.column()
            ),
            None => detail,
        };
        vec![DefinitionError {
            path: String::new(),
            message: format!("invalid YAML: {message}"),
        }]
    })
}

/// Parses and validates a definition written in YAML or JSON.
pub fn load(source: &str, catalog: &dyn ActionCatalog) -> Result<Definition, Vec<DefinitionError>> {
    validate_value(&parse_document(source)?, catalog)
}

/// Validates a parsed definition document: the JSON Schema, then the semantic checks.
///
/// Every error found is returned, sorted by path.
pub fn validate_value(
    document: &Value,
    catalog: &dyn ActionCatalog,
) -> Result<Definition, Vec<DefinitionError>> {
    let mut errors = Errors::default();
    for error in SCHEMA_VALIDATOR.iter_errors(document) {
        let at = Path::from_location(error.instance_path());
        for message in schema_messages(&error, &SCHEMA, at.lookup(document), Noun::Field) {
            errors.push(&at, message);
        }
    }

    // Bad durations are reported here with their exact path, then removed, so that the
    // rest of the definition still deserializes and gets its semantic checks.
    let mut sanitized = document.clone();
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

// ---------------------------------------------------------------------------------------
// Paths and error collection

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Index(usize),
    Key(String),
}

/// A location inside the definition document.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Path(Vec<Segment>);

impl Path {
    fn root() -> Self {
        Self::default()
    }

    fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    fn join(&self, other: &Path) -> Self {
        let mut segments = self.0.clone();
        segments.extend(other.0.iter().cloned());
        Self(segments)
    }

    fn from_location(location: &Location) -> Self {
        Self(
            location
                .iter()
                .map(|segment| match segment {
                    LocationSegment::Property(key) => Segment::Key(key.into_owned()),
                    LocationSegment::Index(index) => Segment::Index(index),
                })
                .collect(),
        )
    }

    /// The value at this path inside `document`.
    fn lookup<'a>(&self, document: &'a Value) -> Option<&'a Value> {
        self.0
            .iter()
            .try_fold(document, |value, segment| match (segment, value) {
                (Segment::Key(key), Value::Object(entries)) => entries.get(key),
                (Segment::Index(index), Value::Array(items)) => items.get(*index),
                _ => None,
            })
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Index(index) => out.push_str(&format!("[{index}]")),
                Segment::Key(key) if is_plain_key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Key(key) => out.push_str(&format!("[{}]", Value::String(key.clone()))),
            }
        }
        out
    }
}

fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_' || rest == '-')
}

#[derive(Debug, Default)]
struct Errors(Vec<(Path, String)>);

impl Errors {
    fn push(&mut self, at: &Path, message: impl Into<String>) {
        self.0.push((at.clone(), message.into()));
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorted by path (stable, so errors at one path keep the order they were found in),
    /// without duplicates.
    fn finish(mut self) -> Result<(), Vec<DefinitionError>> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by(|left, right| left.0.cmp(&right.0));
        let mut seen = BTreeSet::new();
        Err(self
            .0
            .into_iter()
            .filter(|entry| seen.insert(entry.clone()))
            .map(|(at, message)| DefinitionError {
                path: at.render(),
                message,
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// JSON Schema errors in plain words

/// What the properties of the validated object are called in messages.
#[derive(Debug, Clone, Copy)]
enum Noun<'a> {
    /// Fields of the definition itself.
    Field,
    /// Arguments of an action.
    Argument(&'a str),
}

impl Noun<'_> {
    fn word(&self) -> &'static str {
        match self {
            Noun::Field => "field",
            Noun::Argument(_) => "argument",
        }
    }

    fn suffix(&self) -> String {
        match self {
            Noun::Field => String::new(),
            Noun::Argument(action) => format!(" of action {action:?}"),
        }
    }
}

/// The messages for one schema error (several for several unknown properties).
///
/// `located` is the value at the error's instance path in the validated document.
fn schema_messages(
    error: &ValidationError<'_>,
    schema_root: &Value,
    located: Option<&Value>,
    noun: Noun<'_>,
) -> Vec<String> {
    let kind = error.kind();
    let schema_path: Vec<String> = error
        .schema_path()
        .iter()
        .map(|segment| segment.to_string())
        .collect();
    // The last segment is the keyword as written (`dependentRequired` reports a `required`
    // kind); the node before it holds the keyword and our `x-messages`.
    let (keyword, owner) = match schema_path.split_last() {
        Some((last, parents)) => (last.as_str(), schema_node(schema_root, parents)),
        None => (kind.keyword(), Some(schema_root)),
    };
    let instance = error.instance();

    if let Some(custom) = owner
        .and_then(|node| node.get("x-messages"))
        .and_then(|messages| messages.get(keyword))
        .and_then(Value::as_str)
    {
        let mut message = custom.to_owned();
        if matches!(
            kind,
            ValidationErrorKind::OneOfNotValid { .. }
                | ValidationErrorKind::OneOfMultipleValid { .. }
        ) && let Some(found) = owner.and_then(|node| found_alternatives(node, instance))
        {
            message.push_str(&found);
        }
        return vec![message];
    }

    let word = noun.word();
    let suffix = noun.suffix();
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            unknown_properties(unexpected, owner, noun)
        }
        // `additionalProperties: false` without `properties` reports a false schema at the
        // object without naming the property: name every one here.
        ValidationErrorKind::FalseSchema
            if keyword == "additionalProperties"
                && owner.is_some_and(|node| node.get("patternProperties").is_none())
                && located.is_some_and(Value::is_object) =>
        {
            let known = owner
                .and_then(|node| node.get("properties"))
                .and_then(Value::as_object);
            let unexpected: Vec<String> = located
                .and_then(Value::as_object)
                .map(|object| {
                    object
                        .keys()
                        .filter(|key| known.is_none_or(|known| !known.contains_key(*key)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            unknown_properties(&unexpected, owner, noun)
        }
        ValidationErrorKind::Required { property } => {
            let property = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            if schema_path.last().map(String::as_str) != Some("dependentRequired") {
                return vec![format!("missing required {word} {property:?}{suffix}")];
            }
            // The error does not say which present property demanded the missing one: find
            // every property present that lists it.
            let dependents: Vec<&str> = owner
                .and_then(|node| node.get("dependentRequired"))
                .and_then(Value::as_object)
                .map(|rules| {
                    rules
                        .iter()
                        .filter(|(dependent, required)| {
                            instance.get(dependent.as_str()).is_some()
                                && required.as_array().is_some_and(|names| {
                                    names
                                        .iter()
                                        .any(|name| name.as_str() == Some(property.as_str()))
                                })
                        })
                        .map(|(dependent, _)| dependent.as_str())
                        .collect()
                })
                .unwrap_or_default();
            if dependents.is_empty() {
                return vec![format!("missing required {word} {property:?}{suffix}")];
            }
            dependents
                .into_iter()
                .map(|dependent| match property.as_str() {
                    "action" => format!(
                        "{dependent:?} is only allowed on action steps (steps with \"action\")"
                    ),
                    "for_each" => {
                        format!("{dependent:?} is only allowed on steps with \"for_each\"")
                    }
                    "cron" => format!("{dependent:?} is only allowed on cron triggers"),
                    other => format!("{dependent:?} needs {other:?} as well"),
                })
                .collect()
        }
        ValidationErrorKind::Type { kind } => {
            let expected: Vec<String> = match kind {
                TypeKind::Single(single) => vec![with_article(&single.to_string())],
                TypeKind::Multiple(set) => set
                    .into_iter()
                    .map(|single| with_article(&single.to_string()))
                    .collect(),
            };
            vec![format!(
                "expected {}, found {}",
                expected.join(" or "),
                describe_value(instance)
            )]
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .map(|items| items.iter().map(plain).collect())
                .unwrap_or_default();
            vec![format!(
                "must be one of {} (found {})",
                allowed.join(", "),
                short(instance)
            )]
        }
        ValidationErrorKind::Constant { expected_value } => {
            vec![format!("must be {}", short(expected_value))]
        }
        ValidationErrorKind::Pattern { pattern } => {
            vec![format!(
                "{} does not match the pattern {pattern}",
                short(instance)
            )]
        }
        ValidationErrorKind::Minimum { limit } => vec![format!("must be at least {limit}")],
        ValidationErrorKind::Maximum { limit } => vec![format!("must be at most {limit}")],
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            vec![format!("must be greater than {limit}")]
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            vec![format!("must be less than {limit}")]
        }
        ValidationErrorKind::MinLength { limit: 1 } => vec!["must not be empty".to_owned()],
        ValidationErrorKind::MinLength { limit } => {
            vec![format!("must be at least {limit} characters long")]
        }
        ValidationErrorKind::MaxLength { limit } => {
            vec![format!("must be at most {limit} characters long")]
        }
        ValidationErrorKind::MinItems { limit: 1 } => vec!["needs at least one entry".to_owned()],
        ValidationErrorKind::MinItems { limit } => vec![format!("needs at least {limit} entries")],
        ValidationErrorKind::MaxItems { limit } => vec![format!("allows at most {limit} entries")],
        ValidationErrorKind::MinProperties { limit } => {
            vec![format!("needs at least {limit} {word}s")]
        }
        ValidationErrorKind::MaxProperties { limit } => {
            vec![format!("allows at most {limit} {word}s")]
        }
        ValidationErrorKind::UniqueItems => vec!["has duplicate entries".to_owned()],
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            vec![format!(
                "{} does not match any of the allowed forms",
                short(instance)
            )]
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            vec![format!(
                "{} matches more than one of the allowed forms",
                short(instance)
            )]
        }
        ValidationErrorKind::AdditionalItems { .. }
        | ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. }
        | ValidationErrorKind::Contains
        | ValidationErrorKind::ContentEncoding { .. }
        | ValidationErrorKind::ContentMediaType { .. }
        | ValidationErrorKind::Custom { .. }
        | ValidationErrorKind::FalseSchema
        | ValidationErrorKind::Format { .. }
        | ValidationErrorKind::FromUtf8 { .. }
        | ValidationErrorKind::MultipleOf { .. }
        | ValidationErrorKind::Not { .. }
        | ValidationErrorKind::PropertyNames { .. }
        | ValidationErrorKind::UnevaluatedItems { .. }
        | ValidationErrorKind::Referencing(_) => vec![error.to_string()],
    }
}

/// One message per unknown property, each with a likely correction or the known names.
fn unknown_properties(unexpected: &[String], owner: Option<&Value>, noun: Noun<'_>) -> Vec<String> {
    let known: Vec<&str> = owner
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().map(String::as_str).collect())
        .unwrap_or_default();
    unexpected
        .iter()
        .map(|name| {
            let hint = match noun {
                Noun::Argument(_) if known.is_empty() => {
                    " (the action takes no arguments)".to_owned()
                }
                Noun::Argument(_) | Noun::Field => suggestion_or_list(name, &known),
            };
            format!("unknown {} {name:?}{}{hint}", noun.word(), noun.suffix())
        })
        .collect()
}

/// The schema node at a keyword location, following `$ref`s to this document's `$defs`.
fn schema_node<'a>(root: &'a Value, schema_path: &[String]) -> Option<&'a Value> {
    let mut current = root;
    for segment in schema_path {
        current = if segment == "$ref" {
            let reference = current.get("$ref").and_then(Value::as_str)?;
            root.pointer(reference.strip_prefix('#')?)?
        } else {
            match current {
                Value::Object(entries) => entries.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => return None,
            }
        };
    }
    Some(current)
}

/// For a `oneOf` of `{required: [name]}` alternatives: which of the names the object has.
fn found_alternatives(owner: &Value, instance: &Value) -> Option<String> {
    let alternatives = owner.get("oneOf")?.as_array()?;
    let names: Vec<&str> = alternatives
        .iter()
        .filter_map(|alternative| alternative.get("required")?.as_array()?.first()?.as_str())
        .collect();
    if names.len() != alternatives.len() {
        return None;
    }
    let object = instance.as_object()?;
    let present: Vec<&str> = names
        .into_iter()
        .filter(|name| object.contains_key(*name))
        .collect();
    Some(if present.is_empty() {
        " (found none)".to_owned()
    } else {
        format!(" (found {})", present.join(" and "))
    })
}

fn with_article(type_name: &str) -> String {
    match type_name {
        "object" => "an object".to_owned(),
        "array" => "a list".to_owned(),
        "integer" => "an integer".to_owned(),
        "null" => "null".to_owned(),
        other => format!("a {other}"),
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => format!("a bool ({value})"),
        Value::Number(_) => format!("a number ({value})"),
        Value::String(_) => format!("a string ({})", short(value)),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A value as compact JSON, cut short for messages.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// A value for a list in a message: strings without quotes.
fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

// ---------------------------------------------------------------------------------------
// Suggestions

fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current[column + 1] = substitution
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

/// The candidate closest to `word`, if one is close enough to be a likely typo.
fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if let Some(exact) = candidates
        .iter()
        .find(|candidate| candidate.eq_ignore_ascii_case(word))
    {
        return Some(exact);
    }
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| {
            let whole = edit_distance(word, candidate);
            // A typo in the beginning of a longer name (`iconik.serch` for
            // `iconik.search_assets`) counts as close too.
            let prefix: String = candidate.chars().take(word.chars().count()).collect();
            let start = edit_distance(word, &prefix) + 1;
            (whole.min(start), *candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn suggestion(word: &str, candidates: &[&str]) -> String {
    suggest(word, candidates)
        .map(|close| format!(" (did you mean {close:?}?)"))
        .unwrap_or_default()
}

fn suggestion_or_list(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(close) => format!(" (did you mean {close:?}?)"),
        None if !candidates.is_empty() && candidates.len() <= 16 => {
            format!(" (allowed: {})", candidates.join(", "))
        }
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Durations

/// Reports every duration that does not parse, and removes it from `document`.
fn check_durations(document: &mut Value, errors: &mut Errors) {
    let Some(steps) = document.get_mut("steps").and_then(Value::as_array_mut) else {
        return;
    };
    for (index, step) in steps.iter_mut().enumerate() {
        let at = Path::root().key("steps").index(index);
        let Some(step) = step.as_object_mut() else {
            continue;
        };
        check_duration_field(step, "timeout", &at, errors);
        if let Some(sleep) = step.get("sleep")
            && !sleep.is_object()
        {
            check_duration_field(step, "sleep", &at, errors);
        }
        for (parent, fields) in [
            ("retry", &["initial_interval", "max_interval"][..]),
            ("approval", &["due"][..]),
            ("wait", &["timeout"][..]),
        ] {
            if let Some(object) = step.get_mut(parent).and_then(Value::as_object_mut) {
                for field in fields {
                    check_duration_field(object, field, &at.key(parent), errors);
                }
            }
        }
        match step
            .get_mut("approval")
            .and_then(|approval| approval.get_mut("escalate_to"))
        {
            Some(Value::Object(escalation)) => check_duration_field(
                escalation,
                "due",
                &at.key("approval").key("escalate_to"),
                errors,
            ),
            Some(Value::Array(levels)) => {
                for (level_index, level) in levels.iter_mut().enumerate() {
                    if let Some(level) = level.as_object_mut() {
                        check_duration_field(
                            level,
                            "due",
                            &at.key("approval").key("escalate_to").index(level_index),
                            errors,
                        );
                    }
                }
            }
            Some(_) | None => {}
        }
    }
}

fn check_duration_field(
    object: &mut serde_json::Map<String, Value>,
    field: &str,
    at: &Path,
    errors: &mut Errors,
) {
    let valid = match object.get(field) {
        None => return,
        Some(Value::String(text)) => match duration::parse(text) {
            Ok(_) => true,
            Err(message) => {
                errors.push(&at.key(field), message);
                false
            }
        },
        // Other shapes (negative numbers, bools, ...) are reported by the schema.
        Some(Value::Number(number)) => number.as_f64().is_some_and(|seconds| seconds >= 0.0),
        Some(_) => false,
    };
    if !valid {
        object.remove(field);
    }
}

/// Places a deserialization error: the first step or trigger that fails on its own, or
/// the root.
fn locate_deserialize_error(document: &Value, error: serde_json::Error) -> (Path, String) {
    first_failing::<StepDefinition>(document, "steps")
        .or_else(|| first_failing::<Trigger>(document, "triggers"))
        .unwrap_or_else(|| (Path::root(), plain_serde_message(&error)))
}

/// The first item of the list `field` that does not deserialize as a `T` on its own.
fn first_failing<T: serde::de::DeserializeOwned>(
    document: &Value,
    field: &str,
) -> Option<(Path, String)> {
    document
        .get(field)?
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(index, item)| {
            T::deserialize(item).err().map(|error| {
                (
                    Path::root().key(field).index(index),
                    plain_serde_message(&error),
                )
            })
        })
}

fn plain_serde_message(error: &serde_json::Error) -> String {
    error.to_string().replace('`', "\"")
}

// ---------------------------------------------------------------------------------------
// Semantic checks

/// Names of CEL types, which expressions may use as values (`type(x) == string`).
const CEL_TYPE_NAMES: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// Names every step-level expression may read. `event` is only bound where an inbound
/// event is at hand: a trigger's input and a wait's `correlate`.
const STEP_NAMES: [&str; 3] = ["input", "steps", "instance"];

/// Which steps an expression may read.
#[derive(Debug, Clone, Copy)]
enum StepAccess {
    /// Any step of the definition (the instance output).
    Any,
    /// The steps that this step needs, directly or not; with `own` also itself.
    Upstream { step: usize, own: bool },
    /// None (trigger input).
    Nothing,
}

/// Where an expression sits: what it may read.
#[derive(Debug, Clone)]
struct Scope {
    names: Vec<&'static str>,
    steps: StepAccess,
}

impl Scope {
    fn step(step: usize, extra: &[&'static str], own: bool) -> Self {
        let mut names = STEP_NAMES.to_vec();
        names.extend_from_slice(extra);
        Self {
            names,
            steps: StepAccess::Upstream { step, own },
        }
    }
}

struct Checker<'a> {
    definition: &'a Definition,
    catalog: &'a dyn ActionCatalog,
    errors: &'a mut Errors,
    /// The first step with each id.
    index_of: BTreeMap<&'a str, usize>,
    /// Each step's resolved needs, in the order written, without unknown ids or itself.
    needs: Vec<Vec<usize>>,
    /// Each step's transitive needs.
    upstream: Vec<BTreeSet<usize>>,
    /// Compiled argument schemas by action (`None`: the schema itself is invalid).
    argument_validators: BTreeMap<String, Option<Validator>>,
}

impl<'a> Checker<'a> {
    fn new(
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
            upstream: Vec::new(),
            argument_validators: BTreeMap::new(),
        }
    }

    fn run(mut self) {
        self.check_graph();
        let input_validator = self.definition.input.as_ref().and_then(|schema| {
            compile_embedded_schema(schema, &Path::root().key("input"), self.errors)
        });
        for (index, step) in self.definition.steps.iter().enumerate() {
            self.check_step(index, step);
        }
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
        let mut graph = DiGraph::<usize, ()>::new();
        let nodes: Vec<_> = (0..steps.len())
            .map(|index| graph.add_node(index))
            .collect();
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
                        graph.add_edge(nodes[index], nodes[target], ());
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

        let mut cycles = Vec::new();
        for component in tarjan_scc(&graph) {
            if component.len() > 1 {
                let mut members: Vec<usize> = component.iter().map(|node| graph[*node]).collect();
                members.sort_unstable();
                cycles.extend(elementary_cycles(&self.needs, &members));
            }
        }
        cycles.sort();
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

        self.upstream = (0..steps.len())
            .map(|index| transitive_needs(&self.needs, index))
            .collect();
    }

    fn check_step(&mut self, index: usize, step: &'a StepDefinition) {
        let at = Self::step_path(index);
        let base = Scope::step(index, &[], false);

        if let Some(when) = &step.when {
            self.check_condition(when, &at.key("when"), &base, "when");
        }
        if let Some(for_each) = &step.for_each {
            let at_for_each = at.key("for_each");
            match for_each {
                Value::String(text) => match (
                    expr::single_expression(text),
                    expr::expressions(text),
                ) {
                    (Some(source), _) => self.check_expression(source, &at_for_each, &base),
                    (None, Err(message)) => self.errors.push(&at_for_each, message),
                    (None, Ok(_)) => self.errors.push(
                        &at_for_each,
                        "for_each must be a list, or one \"${...}\" expression that yields a list",
                    ),
                },
                other @ (Value::Null
                | Value::Bool(_)
                | Value::Number(_)
                | Value::Array(_)
                | Value::Object(_)) => self.check_template(other, &at_for_each, &base),
            }
        }
        let item = if step.for_each.is_some() {
            &["item"][..]
        } else {
            &[][..]
        };

        if let Some(action) = &step.action {
            let with_scope = Scope::step(index, item, false);
            self.check_action(
                action,
                step.with.as_ref(),
                &at.key("action"),
                &at.key("with"),
                &with_scope,
            );
        }
        if let Some(compensation) = &step.compensate {
            let mut extra = vec!["output"];
            extra.extend_from_slice(item);
            let scope = Scope::step(index, &extra, true);
            let at_compensate = at.key("compensate");
            self.check_action(
                &compensation.action,
                compensation.with.as_ref(),
                &at_compensate.key("action"),
                &at_compensate.key("with"),
                &scope,
            );
        }
        if let Some(approval) = &step.approval {
            let at_approval = at.key("approval");
            self.check_template(
                &Value::String(approval.title.clone()),
                &at_approval.key("title"),
                &base,
            );
            if let Some(form) = &approval.form {
                compile_embedded_schema(form, &at_approval.key("form"), self.errors);
            }
        }
        if let Some(wait) = &step.wait
            && let Some(correlate) = &wait.correlate
        {
            self.check_condition(
                correlate,
                &at.key("wait").key("correlate"),
                &Scope::step(index, &["event"], false),
                "correlate",
            );
        }
        if let Some(Sleep::Until { until }) = &step.sleep {
            let at_until = at.key("sleep").key("until");
            if expr::is_template(until) {
                self.check_template(&Value::String(until.clone()), &at_until, &base);
            } else if chrono::DateTime::parse_from_rfc3339(until.trim()).is_err() {
                self.errors.push(
                    &at_until,
                    format!(
                        "{until:?} is not an RFC 3339 instant: write e.g. 2026-12-01T09:00:00Z, or a \"${{...}}\" expression"
                    ),
                );
            }
        }
        if let Some(child) = &step.workflow
            && let Some(input) = &child.input
        {
            self.check_template(input, &at.key("workflow").key("input"), &base);
        }
    }

    /// A condition: one `${...}` or bare CEL.
    fn check_condition(&mut self, text: &str, at: &Path, scope: &Scope, field: &str) {
        if expr::is_template(text) {
            match (expr::single_expression(text), expr::expressions(text)) {
                (Some(source), _) => self.check_expression(source, at, scope),
                (None, Err(message)) => self.errors.push(at, message),
                (None, Ok(_)) => self.errors.push(
                    at,
                    format!(
                        "{field} must be one \"${{...}}\" expression (or bare CEL) that yields true or false, without text around it"
                    ),
                ),
            }
        } else {
            self.check_expression(text, at, scope);
        }
    }

    /// Every `${...}` in every string of `template`, each reported at its own path.
    fn check_template(&mut self, template: &Value, at: &Path, scope: &Scope) {
        match template {
            Value::String(text) if expr::is_template(text) => match expr::expressions(text) {
                Ok(sources) => {
                    for source in sources {
                        self.check_expression(&source, at, scope);
                    }
                }
                Err(message) => self.errors.push(at, message),
            },
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_template(item, &at.index(index), scope);
                }
            }
            Value::Object(entries) => {
                for (key, item) in entries {
                    self.check_template(item, &at.key(key), scope);
                }
            }
            Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// One CEL expression: it parses, and reads only names and steps that it can.
    fn check_expression(&mut self, source: &str, at: &Path, scope: &Scope) {
        let references = match expr::references(source) {
            Ok(references) => references,
            Err(message) => {
                self.errors.push(at, message);
                return;
            }
        };
        let shown = expr::abbreviate(source);
        for name in &references.names {
            if scope.names.contains(&name.as_str()) || CEL_TYPE_NAMES.contains(&name.as_str()) {
                continue;
            }
            let available = scope.names.join(", ");
            let message = match name.as_str() {
                "item" => format!(
                    "expression {shown:?}: \"item\" is only set in the with and compensate of a step with for_each"
                ),
                "output" => format!(
                    "expression {shown:?}: \"output\" is only set in compensate, where it is the compensated step's output"
                ),
                other if expr::SCOPE_NAMES.contains(&other) => format!(
                    "expression {shown:?}: {other:?} is not available here (available: {available})"
                ),
                other => format!(
                    "expression {shown:?}: unknown name {other:?} (available: {available}){}",
                    suggestion(other, &scope.names)
                ),
            };
            self.errors.push(at, message);
        }
        if !references.names.contains("steps") {
            return;
        }
        let ids = self.step_ids();
        for step_name in &references.steps {
            let Some(&target) = self.index_of.get(step_name.as_str()) else {
                let dashed = ids
                    .iter()
                    .find(|id| id.starts_with(&format!("{step_name}-")));
                let hint = match dashed {
                    Some(id) => {
                        format!(" (an id with dashes is written steps['{id}'] in an expression)")
                    }
                    None => suggestion(step_name, &ids),
                };
                self.errors.push(
                    at,
                    format!("expression {shown:?}: unknown step {step_name:?}{hint}"),
                );
                continue;
            };
            match scope.steps {
                StepAccess::Any => {}
                StepAccess::Nothing => {}
                StepAccess::Upstream { step, own } => {
                    if target == step && !own {
                        self.errors.push(
                            at,
                            format!(
                                "expression {shown:?}: a step cannot read its own result here (compensate can, as \"output\")"
                            ),
                        );
                    } else if target != step && !self.upstream[step].contains(&target) {
                        self.errors.push(
                            at,
                            format!(
                                "expression {shown:?}: reads step {step_name:?}, which step {:?} does not need; add {step_name:?} to its needs (directly or through another step)",
                                self.definition.steps[step].id.as_str()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// An action name and its arguments.
    fn check_action(
        &mut self,
        action: &str,
        with: Option<&Value>,
        at_action: &Path,
        at_with: &Path,
        scope: &Scope,
    ) {
        if let Some(arguments) = with {
            self.check_template(arguments, at_with, scope);
        }
        let Some(argument_schema) = self.catalog.argument_schema(action) else {
            let known = self.catalog.actions();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = match suggest(action, &known) {
                Some(close) => format!(" (did you mean {close:?}?)"),
                None => match action.split_once('.') {
                    Some((connector, _)) => {
                        let siblings: Vec<&str> = known
                            .iter()
                            .copied()
                            .filter(|name| {
                                name.split_once('.')
                                    .is_some_and(|(prefix, _)| prefix == connector)
                            })
                            .collect();
                        if siblings.is_empty() {
                            String::new()
                        } else {
                            format!(" (actions of {connector}: {})", siblings.join(", "))
                        }
                    }
                    None => " (actions are written connector.action, e.g. core.echo)".to_owned(),
                },
            };
            self.errors
                .push(at_action, format!("unknown action {action:?}{hint}"));
            return;
        };
        if !self.argument_validators.contains_key(action) {
            let compiled = jsonschema::validator_for(argument_schema).ok();
            self.argument_validators.insert(action.to_owned(), compiled);
        }
        let Some(Some(validator)) = self.argument_validators.get(action) else {
            self.errors.push(
                at_action,
                format!("action {action:?} has an argument schema that does not compile; report this to the connector's maintainers"),
            );
            return;
        };
        let empty = Value::Object(serde_json::Map::new());
        let arguments = with.unwrap_or(&empty);
        for (at, message) in template_schema_errors(
            validator,
            argument_schema,
            arguments,
            Noun::Argument(action),
        ) {
            self.errors.push(&at_with.join(&at), message);
        }
    }

    fn check_trigger(
        &mut self,
        index: usize,
        trigger: &Trigger,
        input_validator: Option<&Validator>,
    ) {
        let at = Path::root().key("triggers").index(index);
        if let Some(cron) = &trigger.cron
            && let Err(error) = cron::Schedule::from_str(cron)
        {
            self.errors.push(
                &at.key("cron"),
                format!(
                    "invalid cron expression {cron:?}: {} (write seconds minutes hours day-of-month month day-of-week [year], e.g. \"0 0 7 * * Mon-Fri\")",
                    cron_problem(cron, &error)
                ),
            );
        }
        if let Some(zone) = &trigger.timezone
            && chrono_tz::Tz::from_str(zone).is_err()
        {
            let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
            self.errors.push(
                &at.key("timezone"),
                format!(
                    "unknown time zone {zone:?}{} (use an IANA name such as Europe/Berlin or UTC)",
                    suggestion(zone, &names)
                ),
            );
        }
        if let Some(input) = &trigger.input {
            let scope = Scope {
                names: vec!["event"],
                steps: StepAccess::Nothing,
            };
            let at_input = at.key("input");
            self.check_template(input, &at_input, &scope);
            if let (Some(validator), Some(schema)) = (input_validator, &self.definition.input) {
                for (path, message) in template_schema_errors(validator, schema, input, Noun::Field)
                {
                    self.errors.push(&at_input.join(&path), message);
                }
            }
        }
    }
}

/// The schema errors of a template whose strings may hold `${...}`: errors located at a
/// templated value are dropped, since its type is only known when it runs, but unknown
/// and missing properties of the objects around it are kept.
fn template_schema_errors(
    validator: &Validator,
    schema: &Value,
    template: &Value,
    noun: Noun<'_>,
) -> Vec<(Path, String)> {
    let mut found = Vec::new();
    for error in validator.iter_errors(template) {
        let at = Path::from_location(error.instance_path());
        let located = at.lookup(template).unwrap_or(template);
        if holds_template(located) {
            let structural = matches!(
                error.kind(),
                ValidationErrorKind::Required { .. }
                    | ValidationErrorKind::AdditionalProperties { .. }
                    | ValidationErrorKind::PropertyNames { .. }
                    | ValidationErrorKind::MinProperties { .. }
                    | ValidationErrorKind::MaxProperties { .. }
                    | ValidationErrorKind::MinItems { .. }
                    | ValidationErrorKind::MaxItems { .. }
                    | ValidationErrorKind::Type { .. }
            );
            if located.is_string() || !structural {
                continue;
            }
        }
        for message in schema_messages(&error, schema, Some(located), noun) {
            found.push((at.clone(), message));
        }
    }
    found
}

/// Whether a value is, or contains, a string with `${`.
fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(text) => expr::is_template(text),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(entries) => entries.values().any(holds_template),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The type names of JSON Schema.
const JSON_TYPES: [&str; 7] = [
    "string", "number", "integer", "boolean", "object", "array", "null",
];

/// Compiles a JSON Schema written inside a definition (`input`, an approval's `form`),
/// reporting every way it is not a valid schema.
fn compile_embedded_schema(schema: &Value, at: &Path, errors: &mut Errors) -> Option<Validator> {
    match jsonschema::meta::validator_for(schema) {
        Ok(meta) => {
            let mut valid = true;
            for error in meta.iter_errors(schema) {
                valid = false;
                let location = Path::from_location(error.instance_path());
                let message = match (location.0.last(), error.instance().as_ref()) {
                    (Some(Segment::Key(key)), Value::String(name)) if key == "type" => {
                        let hint = suggestion(name, &JSON_TYPES);
                        format!(
                            "not a valid JSON Schema: unknown type {name:?}{hint} (types are {})",
                            JSON_TYPES.join(", ")
                        )
                    }
                    _ => format!("not a valid JSON Schema: {error}"),
                };
                errors.push(&at.join(&location), message);
            }
            if !valid {
                return None;
            }
        }
        Err(error) => {
            errors.push(at, format!("not a valid JSON Schema: {error}"));
            return None;
        }
    }
    match jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(validator) => Some(validator),
        Err(error) => {
            errors.push(at, format!("not a valid JSON Schema: {error}"));
            None
        }
    }
}

/// Every elementary cycle through the `members` of one strongly connected component, each
/// listed once, starting at its first step in definition order and following `needs`.
///
/// The search is bounded: a pathological graph reports its first cycles, not all of them.
fn elementary_cycles(needs: &[Vec<usize>], members: &[usize]) -> Vec<Vec<usize>> {
    const MAX_CYCLES: usize = 20;
    const MAX_STEPS: usize = 100_000;
    let member_set: BTreeSet<usize> = members.iter().copied().collect();
    let mut cycles = Vec::new();
    let mut budget = MAX_STEPS;
    for &start in members {
        let mut path = vec![start];
        let mut on_path = BTreeSet::from([start]);
        search(
            needs,
            &member_set,
            start,
            start,
            &mut path,
            &mut on_path,
            &mut cycles,
            &mut budget,
        );
        if cycles.len() >= MAX_CYCLES || budget == 0 {
            break;
        }
    }
    cycles.truncate(MAX_CYCLES);
    return cycles;

    #[allow(clippy::too_many_arguments)]
    fn search(
        needs: &[Vec<usize>],
        members: &BTreeSet<usize>,
        start: usize,
        current: usize,
        path: &mut Vec<usize>,
        on_path: &mut BTreeSet<usize>,
        cycles: &mut Vec<Vec<usize>>,
        budget: &mut usize,
    ) {
        for &next in &needs[current] {
            if *budget == 0 || cycles.len() >= MAX_CYCLES {
                return;
            }
            *budget -= 1;
            if next == start {
                cycles.push(path.clone());
            } else if next > start && members.contains(&next) && !on_path.contains(&next) {
                path.push(next);
                on_path.insert(next);
                search(needs, members, start, next, path, on_path, cycles, budget);
                on_path.remove(&next);
                path.pop();
            }
        }
    }
}

/// The steps that `index` needs, directly or through others.
fn transitive_needs(needs: &[Vec<usize>], index: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = needs[index].clone();
    while let Some(next) = stack.pop() {
        if seen.insert(next) {
            stack.extend(needs[next].iter().copied());
        }
    }
    seen
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// A YAML parser message without the location it repeats (the caller puts it first) and
/// without advice aimed at programmers.
fn plain_yaml_message(message: &str) -> String {
    let mut text = message.trim();
    text = text.strip_prefix("error: ").unwrap_or(text);
    if text.starts_with("line ")
        && let Some((_, rest)) = text.split_once(": ")
    {
        text = rest;
    }
    if let Some(position) = text.find(" at line ") {
        text = &text[..position];
    }
    if let Some(position) = text.find(", set DuplicateKeyPolicy") {
        text = &text[..position];
    }
    text.to_owned()
}

/// The reason a cron expression does not parse, in one line.
fn cron_problem(expression: &str, error: &cron::error::Error) -> String {
    let fields = expression.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return format!("it has {fields} fields, a cron expression has 6 or 7");
    }
    let text = error.to_string();
    let detail: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty() && *line != expression.trim() && !line.chars().all(|c| c == '^')
        })
        .map(|line| line.trim_end_matches('.'))
        .collect::<Vec<_>>();
    if detail.is_empty() {
        "it does not parse".to_owned()
    } else {
        lowercase_first(&detail.join("; "))
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn catalog() -> BTreeMap<String, Value> {
        BTreeMap::from([
            (
                "core.noop".to_owned(),
                json!({"type": "object", "additionalProperties": false}),
            ),
            ("core.echo".to_owned(), json!({"type": "object"})),
            (
                "core.fail_until".to_owned(),
                json!({
                    "type": "object",
                    "required": ["attempts"],
                    "properties": {"attempts": {"type": "integer", "minimum": 1}, "key": {"type": "string"}},
                    "additionalProperties": false
                }),
            ),
            (
                "core.fail".to_owned(),
                json!({
                    "type": "object",
                    "required": ["message"],
                    "properties": {"message": {"type": "string"}, "retryable": {"type": "boolean"}},
                    "additionalProperties": false
                }),
            ),
            (
                "core.delay".to_owned(),
                json!({
                    "type": "object",
                    "required": ["ms"],
                    "properties": {"ms": {"type": "integer", "minimum": 0}},
                    "additionalProperties": false
                }),
            ),
            (
                "iconik.search_assets".to_owned(),
                json!({
                    "type": "object",
                    "required": ["query"],
                    "properties": {"query": {"type": "string"}, "status": {"type": "string"}},
                    "additionalProperties": false
                }),
            ),
        ])
    }

    fn errors_of(source: &str) -> Vec<String> {
        match load(source, &catalog()) {
            Ok(definition) => panic!("expected errors, got {definition:?}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_has(errors: &[String], expected: &str) {
        assert!(
            errors.iter().any(|error| error == expected),
            "missing {expected:?} in {errors:#?}"
        );
    }

    fn assert_has_prefix(errors: &[String], expected: &str) {
        assert!(
            errors.iter().any(|error| error.starts_with(expected)),
            "missing {expected:?}... in {errors:#?}"
        );
    }

    const VALID: &str = r#"
id: sample
input:
  type: object
  required: [query]
  properties:
    query: {type: string}
steps:
  - id: find
    action: iconik.search_assets
    with: {query: "${input.query}", status: approved}
    retry: {max_attempts: 3, initial_interval: 2s}
    timeout: 30s
  - id: review
    needs: [find]
    approval:
      title: "Send ${size(steps.find.output.assets)} assets?"
      groups: [brand-managers]
      due: 48h
      on_timeout: reject
  - id: deliver
    needs: [review]
    when: "${steps.review.decision == 'approved'}"
    for_each: "${steps.find.output.assets}"
    concurrency: 2
    action: core.echo
    with: {asset: "${item}"}
    compensate: {action: core.echo, with: {undo: "${output}"}}
  - id: rest
    needs: [deliver]
    sleep: 1h
output: {delivered: "${steps.deliver.output}"}
"#;

    #[test]
    fn embedded_schema_compiles_and_is_2020_12() {
        assert_eq!(
            schema()["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema")
        );
        assert!(
            SCHEMA_VALIDATOR
                .is_valid(&json!({"id": "x", "steps": [{"id": "a", "action": "core.noop"}]}))
        );
    }

    #[test]
    fn valid_definition_loads() {
        let definition = load(VALID, &catalog()).unwrap();
        assert_eq!(definition.id.as_str(), "sample");
        assert_eq!(definition.steps.len(), 4);
        assert_eq!(
            definition.steps[0].timeout,
            Some(std::time::Duration::from_secs(30))
        );
    }

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

    #[test]
    fn every_error_is_listed_at_once() {
        let errors = errors_of(
            r#"
id: Bad_Id
steps:
  - id: one
    action: iconik.serch
    timeout: soon
  - id: one
    needs: [zero]
    when: "${input.x >}"
    action: core.noop
  - id: three
    action: core.echo
    approval: {title: hi, groups: [a]}
"#,
        );
        assert_has(
            &errors,
            "id: a definition id uses only lowercase letters, digits and dashes, and starts with a letter or digit (e.g. partner-media-request)",
        );
        assert_has(
            &errors,
            "steps[0].action: unknown action \"iconik.serch\" (did you mean \"iconik.search_assets\"?)",
        );
        assert_has_prefix(&errors, "steps[0].timeout: invalid duration \"soon\"");
        assert_has(
            &errors,
            "steps[1].id: duplicate step id \"one\": steps[0] already uses it",
        );
        assert_has(&errors, "steps[1].needs[0]: unknown step \"zero\"");
        assert_has_prefix(
            &errors,
            "steps[1].when: expression \"input.x >\": syntax error",
        );
        assert_has(
            &errors,
            "steps[2]: a step needs exactly one of action, approval, wait, sleep, workflow (found action and approval)",
        );
        assert!(errors.len() >= 7, "{errors:#?}");
    }

    #[test]
    fn bad_cel_is_reported_at_its_value() {
        let errors = errors_of(
            r#"
id: bad-cel
steps:
  - id: a
    action: core.echo
    with:
      nested: {list: [ok, "${size(input.q}"]}
      open: "${input.q"
  - id: b
    needs: [a]
    approval: {title: "Hi ${input.name +}", users: [alice]}
output: {x: "${steps.a.output..x}"}
"#,
        );
        assert_has_prefix(
            &errors,
            "steps[0].with.nested.list[1]: expression \"size(input.q\": syntax error",
        );
        assert_has_prefix(&errors, "steps[0].with.open: unclosed \"${\"");
        assert_has_prefix(
            &errors,
            "steps[1].approval.title: expression \"input.name +\": syntax error",
        );
        assert_has_prefix(
            &errors,
            "output.x: expression \"steps.a.output..x\": syntax error",
        );
    }

    #[test]
    fn with_argument_typos_are_caught() {
        let errors = errors_of(
            r#"
id: typo
steps:
  - id: find
    action: iconik.search_assets
    with: {qurey: "${input.q}", status: 5}
  - id: find_again
    action: iconik.search_assets
    with: {query: "${input.q}", status: "${input.status}"}
  - id: nothing
    action: iconik.search_assets
"#,
        );
        assert_eq!(
            errors,
            vec![
                "steps[0].with: unknown argument \"qurey\" of action \"iconik.search_assets\" (did you mean \"query\"?)",
                "steps[0].with: missing required argument \"query\" of action \"iconik.search_assets\"",
                "steps[0].with.status: expected a string, found a number (5)",
                "steps[2].with: missing required argument \"query\" of action \"iconik.search_assets\"",
            ]
        );
    }

    #[test]
    fn bad_input_schema_is_reported() {
        let errors = errors_of(
            r#"
id: bad-input
input:
  type: object
  properties:
    partner_id: {type: strng}
    count: {minimum: "one"}
steps:
  - {id: a, action: core.noop}
"#,
        );
        assert!(errors.len() >= 2, "{errors:#?}");
        assert_has(
            &errors,
            "input.properties.partner_id.type: not a valid JSON Schema: unknown type \"strng\" (did you mean \"string\"?) (types are string, number, integer, boolean, object, array, null)",
        );
        assert_has_prefix(
            &errors,
            "input.properties.count.minimum: not a valid JSON Schema",
        );
    }

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let errors =
            parse_document("id: x\nsteps:\n  - id: a\n    action: [core.noop\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "");
        assert!(
            errors[0].message.starts_with("invalid YAML: line "),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains(", column "),
            "{}",
            errors[0].message
        );

        let errors = parse_document("id: a\nid: b\n").unwrap_err();
        assert!(
            errors[0].message.contains("line 2"),
            "{}",
            errors[0].message
        );
        assert_eq!(
            parse_document("  \n").unwrap_err()[0].message,
            "the document is empty"
        );
    }

    #[test]
    fn content_hash_follows_content() {
        let first = load(VALID, &catalog()).unwrap();
        let again = load(&format!("# a comment changes nothing\n{VALID}"), &catalog()).unwrap();
        assert_eq!(content_hash(&first), content_hash(&again));
        assert_eq!(content_hash(&first).len(), 64);
        let changed = load(&VALID.replace("due: 48h", "due: 24h"), &catalog()).unwrap();
        assert_ne!(content_hash(&first), content_hash(&changed));
    }

    #[test]
    fn json_and_yaml_give_equal_definitions() {
        let from_yaml = load(VALID, &catalog()).unwrap();
        let as_json = serde_json::to_string_pretty(&parse_document(VALID).unwrap()).unwrap();
        let from_json = load(&as_json, &catalog()).unwrap();
        assert_eq!(from_yaml, from_json);
        assert_eq!(content_hash(&from_yaml), content_hash(&from_json));
    }

    #[test]
    fn input_validator_lists_violations() {
        let definition = load(
            r#"
id: inputs
input:
  type: object
  required: [partner_id, query]
  properties:
    partner_id: {type: string}
    query: {type: string}
    limit: {type: integer, minimum: 1}
steps:
  - {id: a, action: core.noop}
"#,
            &catalog(),
        )
        .unwrap();
        let validator = InputValidator::new(&definition).unwrap();
        assert_eq!(
            validator.validate(&json!({"partner_id": "acme", "query": "shoes"})),
            Ok(())
        );
        let errors = validator
            .validate(&json!({"partner_id": 42, "limit": 0}))
            .unwrap_err();
        let paths: BTreeSet<&str> = errors.iter().map(|error| error.path.as_str()).collect();
        assert_eq!(
            paths,
            BTreeSet::from(["input", "input.limit", "input.partner_id"]),
            "{errors:#?}"
        );
        assert!(
            errors
                .iter()
                .any(|error| error.message.contains("\"query\" is a required property"))
        );

        let open = load("id: open\nsteps: [{id: a, action: core.noop}]", &catalog()).unwrap();
        assert_eq!(
            InputValidator::new(&open)
                .unwrap()
                .validate(&json!([1, "anything"])),
            Ok(())
        );
    }

    #[test]
    fn schema_errors_are_phrased_for_analysts() {
        let errors = errors_of(
            r#"
id: phrasing
steps:
  - id: a
    acton: core.noop
  - id: b
    approval: {title: ok, groups: [x], on_timeout: later, due: 1h}
    with: {x: 1}
  - id: c
    wait: {signal: go, on_timeout: fail}
  - id: d
    sleep: {until: 5}
  - id: e
    action: core.noop
    retry: {max_attempts: 0}
    on_error: ignore
"#,
        );
        assert_has(
            &errors,
            "steps[0]: unknown field \"acton\" (did you mean \"action\"?)",
        );
        assert_has(
            &errors,
            "steps[0]: a step needs exactly one of action, approval, wait, sleep, workflow (found none)",
        );
        assert_has(
            &errors,
            "steps[1]: \"with\" is only allowed on action steps (steps with \"action\")",
        );
        assert_has(
            &errors,
            "steps[1].approval.on_timeout: must be one of approve, reject, fail, escalate (found \"later\")",
        );
        assert_has(
            &errors,
            "steps[2].wait: \"on_timeout\" needs \"timeout\" as well",
        );
        assert_has(
            &errors,
            "steps[3].sleep: sleep is a duration such as 1h, or {until: <RFC 3339 instant or ${...} expression>}",
        );
        assert_has(&errors, "steps[4].retry.max_attempts: must be at least 1");
        assert_has(
            &errors,
            "steps[4].on_error: must be one of fail, continue (found \"ignore\")",
        );
    }

    #[test]
    fn expressions_read_only_what_exists_upstream() {
        let errors = errors_of(
            r#"
id: scope
steps:
  - id: first
    action: core.echo
    with: {a: "${inptu.x}", b: "${item}", c: "${steps.second.output}", d: "${steps.frist.output}"}
  - id: second
    needs: [first]
    action: core.echo
    with: {own: "${steps.second.output}", up: "${steps.first.output}", out: "${output}"}
  - id: my-step
    action: core.noop
  - id: fourth
    needs: [my-step]
    when: "steps.my-step.status == 'succeeded'"
    action: core.noop
  - id: fifth
    wait: {signal: go, correlate: "${event.order == input.order}"}
  - id: sixth
    action: core.echo
    with: {e: "${event.order}"}
triggers:
  - event: source.happened
    input: {x: "${steps.first.output}", y: "${event.y}"}
"#,
        );
        assert_has(
            &errors,
            "steps[0].with.a: expression \"inptu.x\": unknown name \"inptu\" (available: input, steps, instance) (did you mean \"input\"?)",
        );
        assert_has(
            &errors,
            "steps[0].with.b: expression \"item\": \"item\" is only set in the with and compensate of a step with for_each",
        );
        assert_has(
            &errors,
            "steps[0].with.c: expression \"steps.second.output\": reads step \"second\", which step \"first\" does not need; add \"second\" to its needs (directly or through another step)",
        );
        assert_has(
            &errors,
            "steps[0].with.d: expression \"steps.frist.output\": unknown step \"frist\" (did you mean \"first\"?)",
        );
        assert_has(
            &errors,
            "steps[1].with.own: expression \"steps.second.output\": a step cannot read its own result here (compensate can, as \"output\")",
        );
        assert_has(
            &errors,
            "steps[1].with.out: expression \"output\": \"output\" is only set in compensate, where it is the compensated step's output",
        );
        assert_has_prefix(
            &errors,
            "steps[3].when: expression \"steps.my-step.status == 'succeeded'\": unknown step \"my\" (an id with dashes is written steps['my-step']",
        );
        assert_has(
            &errors,
            "triggers[0].input.x: expression \"steps.first.output\": \"steps\" is not available here (available: event)",
        );
        assert_has(
            &errors,
            "steps[5].with.e: expression \"event.order\": \"event\" is not available here (available: input, steps, instance)",
        );
        assert!(
            !errors
                .iter()
                .any(|error| error.starts_with("steps[1].with.up") || error.starts_with("steps[4]")),
            "{errors:#?}"
        );
    }

    #[test]
    fn triggers_are_checked() {
        let errors = errors_of(
            r#"
id: triggered
input:
  type: object
  required: [partner_id]
  properties: {partner_id: {type: string}}
triggers:
  - cron: "0 0 7 * * Mon-Fri"
    timezone: Europe/Berln
    input: {partner_id: 7}
  - cron: "every morning"
  - event: trading_grid.request_created
    cron: "0 * * * * *"
  - event: trading_grid.request_created
    input: {partner_id: "${event.partner_id}", extra: 1}
steps:
  - {id: a, action: core.noop}
"#,
        );
        assert_has(
            &errors,
            "triggers[0].timezone: unknown time zone \"Europe/Berln\" (did you mean \"Europe/Berlin\"?) (use an IANA name such as Europe/Berlin or UTC)",
        );
        assert_has(
            &errors,
            "triggers[0].input.partner_id: expected a string, found a number (7)",
        );
        assert_has_prefix(
            &errors,
            "triggers[1].cron: invalid cron expression \"every morning\"",
        );
        assert_has(
            &errors,
            "triggers[2]: a trigger needs exactly one of cron, event (found cron and event)",
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
    }

    #[test]
    fn conditions_and_fan_outs_have_one_shape() {
        let errors = errors_of(
            r#"
id: shapes
steps:
  - id: a
    when: "${true} and ${false}"
    for_each: "items: ${input.list}"
    action: core.echo
  - id: b
    sleep: {until: "tomorrow"}
  - id: c
    sleep: {until: "2026-12-01T09:00:00Z"}
  - id: d
    for_each: [1, 2, "${input.x}"]
    action: core.echo
    with: {n: "${item}"}
"#,
        );
        assert_eq!(
            errors,
            vec![
                "steps[0].for_each: for_each must be a list, or one \"${...}\" expression that yields a list",
                "steps[0].when: when must be one \"${...}\" expression (or bare CEL) that yields true or false, without text around it",
                "steps[1].sleep.until: \"tomorrow\" is not an RFC 3339 instant: write e.g. 2026-12-01T09:00:00Z, or a \"${...}\" expression",
            ]
        );
    }

    #[test]
    fn bad_durations_do_not_hide_other_errors() {
        let errors = errors_of(
            r#"
id: durations
steps:
  - id: a
    action: core.noop
    retry: {initial_interval: fast, max_interval: 2m}
  - id: b
    needs: [a, ghost]
    approval: {title: t, users: [u], due: "2 fortnights", escalate_to: {users: [v], due: later}}
  - id: c
    sleep: soon
"#,
        );
        assert_has_prefix(
            &errors,
            "steps[0].retry.initial_interval: invalid duration \"fast\"",
        );
        assert_has_prefix(
            &errors,
            "steps[1].approval.due: invalid duration \"2 fortnights\"",
        );
        assert_has_prefix(
            &errors,
            "steps[1].approval.escalate_to.due: invalid duration \"later\"",
        );
        assert_has_prefix(&errors, "steps[2].sleep: invalid duration \"soon\"");
        assert_has(
            &errors,
            "steps[1].needs[0]: unknown step \"ghost\""
                .replace("[0]", "[1]")
                .as_str(),
        );
    }

    #[test]
    fn deserialization_errors_are_placed_at_their_step() {
        let errors = errors_of(
            "id: x\nsteps: [{id: a, action: core.noop}, {id: b, workflow: {id: child, version: 2.0}}]\n",
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("steps[1]: invalid type"),
            "{errors:#?}"
        );
    }

    #[test]
    fn document_that_is_not_a_definition() {
        let errors = errors_of("[1, 2]");
        assert_eq!(errors, vec!["expected an object, found a list"]);
        let errors = errors_of("name: no id");
        assert_has(&errors, "missing required field \"id\"");
        assert_has(&errors, "missing required field \"steps\"");
    }

    fn with_actions(mut base: BTreeMap<String, Value>, names: &[&str]) -> BTreeMap<String, Value> {
        for name in names {
            base.insert((*name).to_owned(), json!({"type": "object"}));
        }
        base
    }

    fn definition_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml" || extension == "yml")
            })
            .collect();
        files.sort();
        files
    }

    fn workflows_folder() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
    }

    #[test]
    fn every_workflow_file_validates() {
        let catalog = catalog();
        let files = definition_files(&workflows_folder());
        assert!(files.len() >= 3, "{files:?}");
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let definition = load(&source, &catalog)
                .unwrap_or_else(|errors| panic!("{}: {errors:#?}", file.display()));
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(definition.id.as_str(), stem, "{}", file.display());
        }
    }

    #[test]
    fn design_example_validates_with_its_connectors() {
        let connectors = with_actions(
            catalog(),
            &[
                "iconik.search_assets",
                "trading_grid.share_asset",
                "trading_grid.revoke_share",
            ],
        );
        let files = definition_files(&workflows_folder().join("examples"));
        assert!(!files.is_empty());
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let definition = load(&source, &connectors)
                .unwrap_or_else(|errors| panic!("{}: {errors:#?}", file.display()));
            InputValidator::new(&definition).unwrap();
        }
        let source =
            std::fs::read_to_string(workflows_folder().join("examples/partner-media-request.yaml"))
                .unwrap();
        let errors = load(&source, &catalog()).unwrap_err();
        assert_has(
            &errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "steps[2].action: unknown action \"trading_grid.share_asset\"",
        );
    }

    #[test]
    fn error_display_joins_path_and_message() {
        let error = DefinitionError {
            path: "steps[2].needs[0]".to_owned(),
            message: "unknown step \"fetch\"".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "steps[2].needs[0]: unknown step \"fetch\""
        );
        let root = DefinitionError {
            path: String::new(),
            message: "the document is empty".to_owned(),
        };
        assert_eq!(root.to_string(), "the document is empty");
        assert_eq!(
            Path::root().key("with").key("odd key").index(0).render(),
            "with[\"odd key\"][0]"
        );
    }
}
