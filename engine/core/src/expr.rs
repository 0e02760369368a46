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
//! same value, which is what replay needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use cel::common::value::Val;
use cel::objects::{Key, Map};
use cel::parser::PrattParser;
use cel::{Context, ExecutionError};
use serde_json::Value;

/// The names in scope of an expression, each bound to a JSON value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    variables: BTreeMap<String, Value>,
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
}

/// The names of the scope that definitions may use (DESIGN.md §2).
pub const SCOPE_NAMES: [&str; 6] = ["input", "steps", "item", "event", "output", "instance"];

/// A piece of a template string: literal text or the source of one `${...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Expression(&'a str),
}

/// Whether `text` holds a `${` and so is a template rather than plain text.
pub fn is_template(text: &str) -> bool {
    text.contains("${")
}

/// The sources inside each `${...}` of `text`, in order.
///
/// A `}` inside a CEL string literal or closing a CEL map literal does not end the
/// expression. An unclosed `${` or an empty `${}` is an error.
pub fn expressions(text: &str) -> Result<Vec<String>, String> {
    Ok(split(text)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Expression(source) => Some(source.to_owned()),
            Piece::Text(_) => None,
        })
        .collect())
}

/// The source inside the braces when `text` is exactly one `${...}` and nothing else:
/// the form that [`render`] turns into a typed value.
pub fn single_expression(text: &str) -> Option<&str> {
    match split(text).ok()?.as_slice() {
        [Piece::Expression(source)] => Some(source),
        _ => None,
    }
}

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

/// What an expression refers to, found without evaluating it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Top-level names the expression reads (`input`, `steps`, ...), without the
    /// variables that its own macros bind (`x` in `list.map(x, x + 1)`).
    pub names: BTreeSet<String>,
    /// Step ids read as `steps.<id>` or `steps['<id>']`.
    pub steps: BTreeSet<String>,
}

/// The names and steps that a bare CEL expression refers to.
pub fn references(expression: &str) -> Result<References, String> {
    let parsed = compile(expression)?;
    let mut found = References::default();
    let mut bound = Vec::new();
    collect_references(&parsed, &mut bound, &mut found);
    Ok(found)
}

/// Evaluates expressions against one scope, converting each scope variable to CEL at most
/// once and only when an expression reads it.
struct Evaluator<'s> {
    scope: &'s Scope,
    context: Context<'static, 'static>,
    bound: BTreeSet<String>,
}

impl<'s> Evaluator<'s> {
    fn new(scope: &'s Scope) -> Self {
        Self {
            scope,
            context: Context::default(),
            bound: BTreeSet::new(),
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

/// Splits a template string into text and the sources of its `${...}`.
fn split(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let body = &rest[start + 2..];
        let Some(length) = expression_length(body) else {
            return Err(format!(
                "unclosed \"${{\" at character {} of {text:?}: add the closing \"}}\" (and close any quote inside)",
                offset + start + 1
            ));
        };
        if body[..length].trim().is_empty() {
            return Err(format!(
                "empty expression \"${{}}\" in {text:?}: write a CEL expression inside"
            ));
        }
        pieces.push(Piece::Expression(&body[..length]));
        let consumed = start + 2 + length + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// The byte length of the CEL source at the start of `body`, up to (not including) the `}`
/// that closes the `${`; `None` when it is never closed.
///
/// Skips CEL string literals (`'...'`, `"..."`, triple-quoted and raw forms) and balances
/// braces, so that `${ {'a': '}'}['a'] }` ends at the last brace.
fn expression_length(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(index),
            b'}' => depth -= 1,
            quote @ (b'\'' | b'"') => {
                let raw = index > 0 && matches!(bytes[index - 1], b'r' | b'R')
                    || index > 1
                        && matches!(bytes[index - 1], b'b' | b'B')
                        && matches!(bytes[index - 2], b'r' | b'R');
                let triple =
                    bytes.get(index + 1) == Some(&quote) && bytes.get(index + 2) == Some(&quote);
                index = string_end(bytes, index, quote, triple, raw)?;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The index just past the string literal opening at `start`, or `None` if it never closes.
fn string_end(bytes: &[u8], start: usize, quote: u8, triple: bool, raw: bool) -> Option<usize> {
    let mut index = start + if triple { 3 } else { 1 };
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'\\' && !raw {
            index += 2;
            continue;
        }
        if byte == quote {
            if !triple {
                return Some(index + 1);
            }
            if bytes.get(index + 1) == Some(&quote) && bytes.get(index + 2) == Some(&quote) {
                return Some(index + 3);
            }
        }
        if byte == b'\n' && !triple {
            return None;
        }
        index += 1;
    }
    None
}

fn collect_references(expression: &IdedExpr, bound: &mut Vec<String>, found: &mut References) {
    match &expression.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if !name.starts_with('@') && !bound.iter().any(|variable| variable == name) {
                found.names.insert(name.clone());
            }
        }
        Expr::Select(select) => {
            if is_free_steps(&select.operand, bound) {
                found.steps.insert(select.field.clone());
            }
            collect_references(&select.operand, bound, found);
        }
        Expr::Call(call) => {
            if (call.func_name == operators::INDEX || call.func_name == operators::OPT_INDEX)
                && let [operand, index] = call.args.as_slice()
                && is_free_steps(operand, bound)
                && let Expr::Literal(LiteralValue::String(step)) = &index.expr
            {
                found.steps.insert(step.inner().to_owned());
            }
            if let Some(target) = &call.target {
                collect_references(target, bound, found);
            }
            for argument in &call.args {
                collect_references(argument, bound, found);
            }
        }
        Expr::List(list) => {
            for element in &list.elements {
                collect_references(element, bound, found);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                collect_entry(&entry.expr, bound, found);
            }
        }
        Expr::Struct(structure) => {
            for entry in &structure.entries {
                collect_entry(&entry.expr, bound, found);
            }
        }
        Expr::Comprehension(comprehension) => {
            collect_references(&comprehension.iter_range, bound, found);
            collect_references(&comprehension.accu_init, bound, found);
            let depth = bound.len();
            bound.push(comprehension.iter_var.clone());
            if let Some(second) = &comprehension.iter_var2 {
                bound.push(second.clone());
            }
            bound.push(comprehension.accu_var.clone());
            collect_references(&comprehension.loop_cond, bound, found);
            collect_references(&comprehension.loop_step, bound, found);
            collect_references(&comprehension.result, bound, found);
            bound.truncate(depth);
        }
    }
}

fn collect_entry(entry: &EntryExpr, bound: &mut Vec<String>, found: &mut References) {
    match entry {
        EntryExpr::StructField(field) => collect_references(&field.value, bound, found),
        EntryExpr::MapEntry(pair) => {
            collect_references(&pair.key, bound, found);
            collect_references(&pair.value, bound, found);
        }
    }
}

fn is_free_steps(expression: &IdedExpr, bound: &[String]) -> bool {
    matches!(&expression.expr, Expr::Ident(name) if name == "steps")
        && !bound.iter().any(|variable| variable == "steps")
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
mod tests {
    use serde_json::json;

    use super::*;

    fn scope() -> Scope {
        Scope::new()
            .with("input", json!({"partner_id": "acme", "query": "shoes", "limit": 3}))
            .with(
                "steps",
                json!({
                    "find": {"output": {"assets": [{"id": 1}, {"id": 2}], "total": 2}, "status": "succeeded"},
                    "review": {"output": null, "status": "succeeded", "decision": "approved", "comment": "ok"}
                }),
            )
            .with("instance", json!({"id": "i-1", "started_at": "2026-11-02T10:00:00Z"}))
    }

    #[test]
    fn whole_expression_yields_typed_value() {
        let scope = scope();
        assert_eq!(
            render(&json!("${steps.find.output.assets}"), &scope),
            Ok(json!([{"id": 1}, {"id": 2}]))
        );
        assert_eq!(render(&json!("${input.limit * 2}"), &scope), Ok(json!(6)));
        assert_eq!(
            render(&json!("${input.limit > 2}"), &scope),
            Ok(json!(true))
        );
        assert_eq!(render(&json!("${null}"), &scope), Ok(Value::Null));
        assert_eq!(render(&json!("${1.5}"), &scope), Ok(json!(1.5)));
    }

    #[test]
    fn mixed_text_interpolates() {
        let scope = scope();
        assert_eq!(
            render(
                &json!("Send ${size(steps.find.output.assets)} assets to ${input.partner_id}?"),
                &scope
            ),
            Ok(json!("Send 2 assets to acme?"))
        );
        assert_eq!(
            render(&json!("first: ${steps.find.output.assets[0]}"), &scope),
            Ok(json!("first: {\"id\":1}"))
        );
        assert_eq!(
            render(&json!("plain text"), &scope),
            Ok(json!("plain text"))
        );
        assert_eq!(render(&json!(" ${input.limit}"), &scope), Ok(json!(" 3")));
    }

    #[test]
    fn renders_nested_templates() {
        let template = json!({
            "partner_id": "${input.partner_id}",
            "query": {"text": "${input.query}", "tags": ["a", "${instance.id}", 7, null]},
            "count": "${size(steps.find.output.assets)}",
            "flag": true
        });
        assert_eq!(
            render(&template, &scope()),
            Ok(json!({
                "partner_id": "acme",
                "query": {"text": "shoes", "tags": ["a", "i-1", 7, null]},
                "count": 2,
                "flag": true
            }))
        );
    }

    #[test]
    fn braces_inside_literals_do_not_close() {
        let text = "${ {'a': '}', 'b': \"{x}\"}['a'] }-${'}}'}";
        assert_eq!(
            expressions(text),
            Ok(vec![
                " {'a': '}', 'b': \"{x}\"}['a'] ".to_owned(),
                "'}}'".to_owned()
            ])
        );
        assert_eq!(render(&json!(text), &Scope::new()), Ok(json!("}-}}")));
        assert_eq!(
            render(&json!("${{'k': {'n': 1}}}"), &Scope::new()),
            Ok(json!({"k": {"n": 1}}))
        );
        assert_eq!(
            expressions(r#"${'it\'s }'} and ${r'\'}"#),
            Ok(vec![r"'it\'s }'".to_owned(), r"r'\'".to_owned()])
        );
        assert_eq!(
            expressions("${'''a } b'''}"),
            Ok(vec!["'''a } b'''".to_owned()])
        );
    }

    #[test]
    fn unclosed_and_empty_expressions_are_errors() {
        let error = expressions("hello ${input.name").unwrap_err();
        assert!(error.contains("unclosed \"${\" at character 7"), "{error}");
        assert!(expressions("${'abc}").is_err());
        assert!(
            expressions("${ }")
                .unwrap_err()
                .contains("empty expression")
        );
        assert_eq!(expressions("no expression"), Ok(vec![]));
        assert_eq!(expressions("$ {x} and $x"), Ok(vec![]));
    }

    #[test]
    fn check_reports_syntax_errors_naming_the_expression() {
        assert_eq!(check("${steps.a.output.x > 1} and ${size(input)}"), Ok(()));
        let error = check("ok ${input.a +} there").unwrap_err();
        assert!(
            error.starts_with("expression \"input.a +\": syntax error"),
            "{error}"
        );
        assert!(check_condition("input.a == 1").is_ok());
        assert!(check_condition("input.a ==").is_err());
    }

    #[test]
    fn evaluation_errors_name_the_expression() {
        let error = evaluate("steps.find.output.x > 1", &scope()).unwrap_err();
        assert_eq!(
            error,
            "expression \"steps.find.output.x > 1\": no such key: x"
        );
        let error = render(&json!("${item.id}"), &scope()).unwrap_err();
        assert!(error.contains("unknown name \"item\""), "{error}");
        let error = evaluate("1 / 0", &scope()).unwrap_err();
        assert!(
            error.starts_with("expression \"1 / 0\": division by zero"),
            "{error}"
        );
    }

    #[test]
    fn conditions_must_yield_bools() {
        let scope = scope();
        assert_eq!(
            condition("${steps.review.decision == 'approved'}", &scope),
            Ok(true)
        );
        assert_eq!(
            condition("steps.review.decision == 'rejected'", &scope),
            Ok(false)
        );
        assert_eq!(condition("${input.limit > 5}", &scope), Ok(false));
        let error = condition("${input.partner_id}", &scope).unwrap_err();
        assert_eq!(
            error,
            "condition \"${input.partner_id}\" must yield true or false, but yielded a string \"acme\""
        );
        let error = condition("${true} and ${false}", &scope).unwrap_err();
        assert!(error.contains("a string"), "{error}");
    }

    #[test]
    fn size_and_macros_work_over_json() {
        let scope = scope();
        assert_eq!(
            evaluate("size(steps.find.output.assets)", &scope),
            Ok(json!(2))
        );
        assert_eq!(
            evaluate("steps.find.output.assets.map(a, a.id * 10)", &scope),
            Ok(json!([10, 20]))
        );
        assert_eq!(
            evaluate("steps.find.output.assets.exists(a, a.id == 2)", &scope),
            Ok(json!(true))
        );
        assert_eq!(evaluate("has(input.missing)", &scope), Ok(json!(false)));
        assert_eq!(evaluate("size(input.query)", &scope), Ok(json!(5)));
    }

    #[test]
    fn numbers_map_to_ints_and_doubles() {
        let scope = Scope::new().with("input", json!({"big": u64::MAX, "n": 2, "x": 0.5}));
        assert_eq!(evaluate("input.n + 1", &scope), Ok(json!(3)));
        assert_eq!(evaluate("input.x * 2.0", &scope), Ok(json!(1.0)));
        assert_eq!(evaluate("input.big > 1.0", &scope), Ok(json!(true)));
        assert_eq!(evaluate("input.n == 2", &scope), Ok(json!(true)));
    }

    #[test]
    fn scope_set_replaces_a_binding() {
        let mut scope = Scope::new().with("item", json!(1));
        scope.set("item", json!(2));
        assert_eq!(scope.get("item"), Some(&json!(2)));
        assert_eq!(evaluate("item", &scope), Ok(json!(2)));
    }

    #[test]
    fn references_find_names_and_steps() {
        let found = references(
            "steps.find.output.assets.map(a, a.id) + [steps['my-step'].status, item, has(steps.gone.output)]",
        )
        .unwrap();
        assert_eq!(
            found.names,
            BTreeSet::from(["item".to_owned(), "steps".to_owned()])
        );
        assert_eq!(
            found.steps,
            BTreeSet::from(["find".to_owned(), "gone".to_owned(), "my-step".to_owned()])
        );
    }

    #[test]
    fn deep_expressions_are_rejected_before_they_exhaust_the_stack() {
        let scope = Scope::new().with("input", json!({"a": 1}));
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(evaluate(&nested(40), &scope).is_ok());
        let error = evaluate(&nested(200), &scope).unwrap_err();
        assert!(error.contains("nested more than 48 levels"), "{error}");
        let chain = format!("1{}", " + 1".repeat(40));
        assert_eq!(evaluate(&chain, &scope), Ok(json!(41)));
        assert!(evaluate(&format!("1{}", " + 1".repeat(100)), &scope).is_err());
        let ternary = format!("{}1", "true ? 1 : ".repeat(100));
        assert!(check(&format!("${{{ternary}}}")).is_err());
        let parens = format!("{}1{}", "(".repeat(1500), ")".repeat(1500));
        let error = evaluate(&parens, &scope).unwrap_err();
        assert!(error.contains("longer than 2048 characters"), "{error}");
        let parens = format!("{}input.a{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(evaluate(&parens, &scope), Ok(json!(1)));
    }

    #[test]
    fn hostile_sources_do_not_panic() {
        for source in [
            "${",
            "${}}",
            "${'",
            "${\"\"\"}",
            "${((((((((}",
            "${a.b.c.d.e[0][1]}",
            "${{}",
            "${}",
            "${r'}",
            "${\u{1F600}}",
            "${1 +}",
        ] {
            let _ = check(source);
            let _ = render(&json!(source), &Scope::new());
        }
    }
}
