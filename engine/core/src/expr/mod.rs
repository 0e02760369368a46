//! `${...}` templates over CEL expressions (DESIGN.md §2).
//!
//! A template is any JSON value whose strings may hold `${...}` expressions. [`render`]
//! walks arrays and objects; a string that is exactly one `${...}` yields the expression's
//! typed value, any other string interpolates each result as text (strings raw, other
//! values as compact JSON). [`condition`] evaluates a step's `when`, [`evaluate`] a bare
//! CEL expression, and [`check`] parses every expression of a string without evaluating
//! it, which is what definition validation does.
//!
//! The names an expression may use live in a [`Scope`]: `input`, `steps` (a map from step
//! id to `{output, status, decision, comment}`), `item`, `event`, `output` and `instance`
//! (`{id, started_at}`). JSON values map to CEL values as null, bool, int (integers that fit
//! an `i64`), double (every other number), string, list and map.
//!
//! Evaluation is pure: CEL has no IO and no clock, so the same scope always yields the
//! same value, which is what replay needs. It is also bounded: before an expression runs,
//! its cost is estimated from its syntax tree and the sizes of the values in scope
//! ([`Budget`], module `cost`), and an expression that could exceed the scope's budget is
//! refused without running. The expressions of one [`render`] share one budget.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::value::Val;
use cel::objects::{Key, Map};
use cel::parser::PrattParser;
use cel::{Context, ExecutionError};
use serde_json::Value;

mod correlation;
mod cost;
mod references;
mod template;

pub use correlation::{EventEquality, at_path, correlation_key, event_equality};
pub use cost::Budget;
pub use references::{References, references};
use template::{Piece, split};
pub use template::{expressions, is_template, single_expression};

/// The names in scope of an expression, each bound to a JSON value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    variables: BTreeMap<String, Value>,
    budget: Budget,
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// This scope with `name` bound to `value` (replacing an earlier binding).
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.set(name, value);
        self
    }

    /// Binds `name` to `value`, replacing an earlier binding.
    pub fn set(&mut self, name: &str, value: Value) {
        self.variables.insert(name.to_owned(), value);
    }

    /// The value bound to `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.variables.get(name)
    }

    /// This scope with the work budget of its evaluations set to `budget`
    /// ([`Budget::DEFAULT`] unless set).
    pub fn within(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The work budget of one evaluation in this scope.
    pub fn budget(&self) -> Budget {
        self.budget
    }
}

/// The names of the scope that definitions may use (DESIGN.md §2).
pub const SCOPE_NAMES: [&str; 8] = [
    "input",
    "steps",
    "item",
    "event",
    "output",
    "instance",
    "iteration",
    "index",
];

/// The fields of `steps.<id>`, every one always present (null where it does not apply).
pub const STEP_FIELDS: [&str; 8] = [
    "status",
    "output",
    "error",
    "decision",
    "comment",
    "user",
    "data",
    "iterations",
];

/// Checks that every `${...}` of `text` parses as CEL.
pub fn check(text: &str) -> Result<(), String> {
    for piece in split(text)? {
        if let Piece::Expression(source) = piece {
            compile(source)?;
        }
    }
    Ok(())
}

/// Checks that `text`, a condition (`"${...}"` or bare CEL), parses.
pub fn check_condition(text: &str) -> Result<(), String> {
    if is_template(text) {
        check(text)
    } else {
        compile(text).map(|_| ())
    }
}

/// Renders a template: every string of `template`, at any depth, with its `${...}`
/// expressions evaluated in `scope`.
///
/// A string that is exactly one `${...}` yields the expression's typed value; any other
/// string with expressions yields text, strings inserted raw and other values as compact
/// JSON. Strings without `${` and object keys are left unchanged.
pub fn render(template: &Value, scope: &Scope) -> Result<Value, String> {
    Evaluator::new(scope).render(template)
}

/// Evaluates a bare CEL expression (without `${ }`) in `scope`.
pub fn evaluate(expression: &str, scope: &Scope) -> Result<Value, String> {
    Evaluator::new(scope).evaluate(expression)
}

/// The most that evaluating a bare CEL expression in `scope` may cost, in the units of
/// [`Budget`], without evaluating it.
pub fn cost(expression: &str, scope: &Scope) -> Result<u64, String> {
    Ok(cost::estimate(&compile(expression)?, scope))
}

/// Evaluates a condition such as a step's `when`: `"${...}"` or bare CEL, which must
/// yield a bool.
pub fn condition(text: &str, scope: &Scope) -> Result<bool, String> {
    let mut evaluator = Evaluator::new(scope);
    let value = if is_template(text) {
        evaluator.render_string(text)?
    } else {
        evaluator.evaluate(text)?
    };
    match value {
        Value::Bool(decision) => Ok(decision),
        other @ (Value::Null
        | Value::Number(_)
        | Value::String(_)
        | Value::Array(_)
        | Value::Object(_)) => Err(format!(
            "condition {text:?} must yield true or false, but yielded {} {}",
            kind_of(&other),
            compact(&other)
        )),
    }
}

/// Evaluates expressions against one scope, converting each scope variable to CEL at most
/// once and only when an expression reads it.
struct Evaluator<'s> {
    scope: &'s Scope,
    context: Context<'static, 'static>,
    bound: BTreeSet<String>,
    /// The cost units that the expressions evaluated so far may have used.
    spent: u64,
}

impl<'s> Evaluator<'s> {
    fn new(scope: &'s Scope) -> Self {
        Self {
            scope,
            context: Context::default(),
            bound: BTreeSet::new(),
            spent: 0,
        }
    }

    fn render(&mut self, template: &Value) -> Result<Value, String> {
        match template {
            Value::String(text) => self.render_string(text),
            Value::Array(items) => items
                .iter()
                .map(|item| self.render(item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(entries) => {
                let mut rendered = serde_json::Map::new();
                for (key, item) in entries {
                    rendered.insert(key.clone(), self.render(item)?);
                }
                Ok(Value::Object(rendered))
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(template.clone()),
        }
    }

    fn render_string(&mut self, text: &str) -> Result<Value, String> {
        let pieces = split(text)?;
        match pieces.as_slice() {
            [Piece::Expression(source)] => self.evaluate(source),
            _ if !pieces
                .iter()
                .any(|piece| matches!(piece, Piece::Expression(_))) =>
            {
                Ok(Value::String(text.to_owned()))
            }
            _ => {
                let mut out = String::new();
                for piece in &pieces {
                    match piece {
                        Piece::Text(literal) => out.push_str(literal),
                        Piece::Expression(source) => match self.evaluate(source)? {
                            Value::String(value) => out.push_str(&value),
                            other @ (Value::Null
                            | Value::Bool(_)
                            | Value::Number(_)
                            | Value::Array(_)
                            | Value::Object(_)) => out.push_str(&compact(&other)),
                        },
                    }
                }
                Ok(Value::String(out))
            }
        }
    }

    fn evaluate(&mut self, source: &str) -> Result<Value, String> {
        let parsed = compile(source)?;
        self.charge(source, cost::estimate(&parsed, self.scope))?;
        let wanted: Vec<String> = parsed
            .references()
            .variables()
            .into_iter()
            .filter(|name| !self.bound.contains(*name))
            .map(str::to_owned)
            .collect();
        for name in wanted {
            if let Some(value) = self.scope.get(&name) {
                let converted: Box<dyn Val> =
                    to_cel(value).try_into().map_err(|error: ExecutionError| {
                        format!("variable {name:?} cannot be used in an expression: {error}")
                    })?;
                self.context.add_variable_as_val(name.clone(), converted);
            }
            self.bound.insert(name);
        }
        let result = cel::Value::resolve(&parsed, &self.context).map_err(|error| {
            format!("expression {:?}: {}", abbreviate(source), describe(&error))
        })?;
        result.json().map_err(|_| {
            format!(
                "expression {:?}: its result cannot be written as JSON",
                abbreviate(source)
            )
        })
    }
}

impl Evaluator<'_> {
    /// Counts an expression's estimated cost against the budget, or refuses it.
    fn charge(&mut self, source: &str, cost: u64) -> Result<(), String> {
        let budget = self.scope.budget.units();
        let spent = self.spent.saturating_add(cost);
        if spent <= budget {
            self.spent = spent;
            return Ok(());
        }
        let others = if self.spent > 0 {
            format!(" (with {} spent by the expressions before it)", self.spent)
        } else {
            String::new()
        };
        Err(format!(
            "expression {:?}: exceeds the work budget: it may cost up to {cost} units{others}, more than limits.cel_budget ({budget}); iterate over fewer items or nest fewer comprehensions",
            abbreviate(source)
        ))
    }
}

/// The longest expression source accepted, in bytes.
pub const MAX_EXPRESSION_LENGTH: usize = 2048;

/// The deepest nesting of an expression's syntax tree that is accepted.
///
/// Parsing and evaluating recurse once per level; the bound keeps both far from the end
/// of a 2 MiB thread stack (a tokio worker's, or a test's) even in a debug build, so a
/// hostile definition is rejected rather than aborting the process.
pub const MAX_EXPRESSION_DEPTH: usize = 48;

/// The most syntax-tree nodes an expression may have.
const MAX_EXPRESSION_NODES: usize = 2000;

/// Parses one expression source (macros expanded), with a message naming it.
///
/// Uses cel's Pratt parser, whose recursion is bounded and shallow, rather than the
/// generated ANTLR parser, which overflows a 2 MiB stack at about a dozen nested
/// parentheses in a debug build.
fn compile(source: &str) -> Result<IdedExpr, String> {
    let trimmed = source.trim();
    if trimmed.is_empty() {
        return Err("empty expression \"${}\": write a CEL expression inside".to_owned());
    }
    if trimmed.len() > MAX_EXPRESSION_LENGTH {
        return Err(format!(
            "expression {:?}: longer than {MAX_EXPRESSION_LENGTH} characters; split it or compute the value in a step",
            abbreviate(trimmed)
        ));
    }
    let parsed = PrattParser::new()
        .max_recursion_depth(MAX_EXPRESSION_DEPTH as u16)
        .max_expression_node_count(MAX_EXPRESSION_NODES)
        .parse(trimmed)
        .map_err(|errors| {
            let details: Vec<String> = errors
                .errors
                .iter()
                .map(|error| {
                    let message = plain_syntax_message(&error.msg);
                    // The parser counts columns from 1.
                    if error.pos.1 > 0 {
                        format!("{message} at column {}", error.pos.1)
                    } else {
                        message
                    }
                })
                .collect();
            format!(
                "expression {:?}: syntax error: {}",
                abbreviate(trimmed),
                details.join("; ")
            )
        })?;
    if depth_exceeds(&parsed, MAX_EXPRESSION_DEPTH) {
        return Err(format!(
            "expression {:?}: nested more than {MAX_EXPRESSION_DEPTH} levels deep; simplify it",
            abbreviate(trimmed)
        ));
    }
    Ok(parsed)
}

/// Whether the syntax tree is deeper than `limit`, found without recursion.
fn depth_exceeds(root: &IdedExpr, limit: usize) -> bool {
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        let next = depth + 1;
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => {}
            Expr::Select(select) => stack.push((&select.operand, next)),
            Expr::Call(call) => {
                stack.extend(call.target.iter().map(|target| (target.as_ref(), next)));
                stack.extend(call.args.iter().map(|argument| (argument, next)));
            }
            Expr::List(list) => stack.extend(list.elements.iter().map(|element| (element, next))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    push_entry(&mut stack, &entry.expr, next);
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    push_entry(&mut stack, &entry.expr, next);
                }
            }
            Expr::Comprehension(comprehension) => stack.extend([
                (&comprehension.iter_range, next),
                (&comprehension.accu_init, next),
                (&comprehension.loop_cond, next),
                (&comprehension.loop_step, next),
                (&comprehension.result, next),
            ]),
        }
    }
    false
}

fn push_entry<'a>(stack: &mut Vec<(&'a IdedExpr, usize)>, entry: &'a EntryExpr, depth: usize) {
    match entry {
        EntryExpr::StructField(field) => stack.push((&field.value, depth)),
        EntryExpr::MapEntry(pair) => stack.extend([(&pair.key, depth), (&pair.value, depth)]),
    }
}

/// An expression's source as messages show it: trimmed, and cut after 80 characters.
pub fn abbreviate(source: &str) -> String {
    let trimmed = source.trim();
    if trimmed.chars().count() > 80 {
        format!("{}...", trimmed.chars().take(77).collect::<String>())
    } else {
        trimmed.to_owned()
    }
}

/// A parser message in plain words: the grammar's list of expected tokens says little to
/// an analyst, the unexpected token says where to look.
fn plain_syntax_message(message: &str) -> String {
    if message.contains("recursion limit exceeded") {
        return format!("nested more than {MAX_EXPRESSION_DEPTH} levels deep; simplify it");
    }
    let message = message.strip_prefix("Syntax error: ").unwrap_or(message);
    let message = message.strip_prefix("syntax error: ").unwrap_or(message);
    for prefix in [
        "mismatched input '",
        "extraneous input '",
        "no viable alternative at input '",
    ] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((token, _)) = rest.split_once('\'')
        {
            return if token == "<EOF>" {
                "the expression ends too early".to_owned()
            } else {
                format!("unexpected {token:?}")
            };
        }
    }
    lowercase_first(message)
}

/// Converts a JSON value to CEL: integers that fit an `i64` become ints, other numbers
/// doubles.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(flag) => cel::Value::Bool(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => cel::Value::Int(integer),
            None => cel::Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => cel::Value::String(Arc::new(text.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(entries) => {
            let map: HashMap<Key, cel::Value> = entries
                .iter()
                .map(|(key, item)| (Key::from(key.as_str()), to_cel(item)))
                .collect();
            cel::Value::Map(Map::from(map))
        }
    }
}

/// A lowercase message for an evaluation error.
// `ExecutionError` is `#[non_exhaustive]`: a catch-all arm is required.
#[allow(clippy::wildcard_enum_match_arm)]
fn describe(error: &ExecutionError) -> String {
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::UndeclaredReference(name) => {
            format!("unknown name {name:?} (not in scope here)")
        }
        other => lowercase_first(&other.to_string()),
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Compact JSON text of a value.
fn compact(value: &Value) -> String {
    value.to_string()
}

/// A word for the JSON type of a value, for messages.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests;
