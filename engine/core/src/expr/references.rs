//! What an expression refers to (names and steps), found without evaluating it.

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};

use super::compile;

/// What an expression refers to, found without evaluating it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Top-level names the expression reads (`input`, `steps`, ...), without the
    /// variables that its own macros bind (`x` in `list.map(x, x + 1)`).
    pub names: BTreeSet<String>,
    /// Step ids read as `steps.<id>` or `steps['<id>']`.
    pub steps: BTreeSet<String>,
    /// Whether `steps` is also read otherwise (as a whole, or by a computed key), so that
    /// [`References::steps`] does not bound what it reads.
    pub all_steps: bool,
    /// Fields read of a named step, `(step, field)`, as `steps.<id>.<field>` (or with
    /// `['...']` for either).
    pub step_fields: BTreeSet<(String, String)>,
}

/// The names and steps that a bare CEL expression refers to.
pub fn references(expression: &str) -> Result<References, String> {
    let parsed = compile(expression)?;
    let mut found = References::default();
    let mut bound = Vec::new();
    collect_references(&parsed, &mut bound, &mut found);
    Ok(found)
}

fn collect_references(expression: &IdedExpr, bound: &mut Vec<String>, found: &mut References) {
    match &expression.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if !name.starts_with('@') && !bound.iter().any(|variable| variable == name) {
                found.all_steps |= name == "steps";
                found.names.insert(name.clone());
            }
        }
        Expr::Select(select) => {
            if is_free_steps(&select.operand, bound) {
                found.steps.insert(select.field.clone());
                found.names.insert("steps".to_owned());
            } else {
                if let Some(step) = named_step(&select.operand, bound) {
                    found.step_fields.insert((step, select.field.clone()));
                }
                collect_references(&select.operand, bound, found);
            }
        }
        Expr::Call(call) => {
            if (call.func_name == operators::INDEX || call.func_name == operators::OPT_INDEX)
                && let [operand, index] = call.args.as_slice()
                && let Expr::Literal(LiteralValue::String(key)) = &index.expr
            {
                if is_free_steps(operand, bound) {
                    found.steps.insert(key.inner().to_owned());
                    found.names.insert("steps".to_owned());
                    return;
                }
                if let Some(step) = named_step(operand, bound) {
                    found.step_fields.insert((step, key.inner().to_owned()));
                }
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

/// The step that `expression` names, when it is `steps.<id>` or `steps['<id>']`.
fn named_step(expression: &IdedExpr, bound: &[String]) -> Option<String> {
    if let Expr::Select(select) = &expression.expr
        && is_free_steps(&select.operand, bound)
    {
        return Some(select.field.clone());
    }
    if let Expr::Call(call) = &expression.expr
        && (call.func_name == operators::INDEX || call.func_name == operators::OPT_INDEX)
        && let [operand, index] = call.args.as_slice()
        && is_free_steps(operand, bound)
        && let Expr::Literal(LiteralValue::String(step)) = &index.expr
    {
        return Some(step.inner().to_owned());
    }
    None
}

fn is_free_steps(expression: &IdedExpr, bound: &[String]) -> bool {
    matches!(&expression.expr, Expr::Ident(name) if name == "steps")
        && !bound.iter().any(|variable| variable == "steps")
}
