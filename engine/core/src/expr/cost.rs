//! The work budget of expressions: a bound on what evaluating one may cost, computed from
//! its syntax tree and the actual sizes of the values in scope, before evaluating it.
//!
//! The bound is in cost units. One unit is one CEL value visited, copied or compared, or
//! 16 bytes of a string. The estimate follows cel-go's cost estimator: a comprehension
//! (`all`, `exists`, `exists_one`, `map`, `filter`) costs its range's length times the cost
//! of one iteration, so nested comprehensions multiply. Sizes are known exactly where an
//! expression reads a path of the scope (`input.items`, `steps.find.output`); everywhere
//! else a value is bounded by what it was computed from (a list built by `map` has at most
//! as many items as its range). The weight of every value an expression builds is part of
//! its cost, so the budget also caps the memory it may take and the size of its result.
//!
//! The estimate is an upper bound for the functions of CEL's standard library, which is all
//! that the evaluator registers: none of them yields a value larger than its arguments plus
//! a constant, and each runs in time linear in its arguments (`matches` uses the `regex`
//! crate, which is linear too).

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use serde_json::Value;

use super::Scope;

/// How much work the expressions of one template (one field of a step) may do, in cost
/// units (see the module documentation); `limits.cel_budget` in `gridflow.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Budget(u64);

impl Budget {
    /// The default budget: one million units, about a tenth of a second of evaluation in
    /// a release build (figures in `docs/design/limits.md`).
    pub const DEFAULT: Budget = Budget(1_000_000);

    /// A budget of `units` cost units.
    pub const fn new(units: u64) -> Self {
        Self(units)
    }

    /// The number of cost units.
    pub const fn units(self) -> u64 {
        self.0
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most an expression may cost in `scope`, with the weight of its result included.
pub(super) fn estimate(parsed: &IdedExpr, scope: &Scope) -> u64 {
    let mut estimator = Estimator {
        scope,
        bound: Vec::new(),
    };
    let estimate = estimator.estimate(parsed);
    estimate.cost.saturating_add(estimate.size.weight)
}

/// Bounds on the size of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    /// How many items (a list) or entries (a map) it has: what a comprehension over it
    /// iterates.
    count: u64,
    /// Its weight: one per value at any depth, plus one per 16 bytes of string.
    weight: u64,
    /// The weight of its heaviest item or entry.
    item: u64,
}

impl Size {
    const ZERO: Size = Size {
        count: 0,
        weight: 0,
        item: 0,
    };

    /// A scalar: a bool, a number, null.
    const UNIT: Size = Size {
        count: 1,
        weight: 1,
        item: 1,
    };

    /// Any value no heavier than `weight`.
    fn within(weight: u64) -> Self {
        Self {
            count: weight,
            weight,
            item: weight,
        }
    }

    /// The exact size of a JSON value.
    fn of(value: &Value) -> Self {
        match value {
            Value::Array(items) => Self {
                count: items.len() as u64,
                weight: weight(value),
                item: items.iter().map(weight).max().unwrap_or(0),
            },
            Value::Object(entries) => Self {
                count: entries.len() as u64,
                weight: weight(value),
                item: entries
                    .iter()
                    .map(|(key, item)| text_weight(key).max(weight(item)))
                    .max()
                    .unwrap_or(0),
            },
            Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {
                Self::within(weight(value))
            }
        }
    }

    /// The larger of two bounds, field by field.
    fn max(self, other: Self) -> Self {
        Self {
            count: self.count.max(other.count),
            weight: self.weight.max(other.weight),
            item: self.item.max(other.item),
        }
    }

    /// Both values joined (a list concatenation, a string concatenation).
    fn plus(self, other: Self) -> Self {
        Self {
            count: self.count.saturating_add(other.count),
            weight: self.weight.saturating_add(other.weight),
            item: self.item.max(other.item),
        }
    }

    /// `times` copies of this value joined (what a comprehension's accumulator grows by).
    fn times(self, times: u64) -> Self {
        Self {
            count: self.count.saturating_mul(times),
            weight: self.weight.saturating_mul(times),
            item: self.item,
        }
    }
}

/// The weight of a JSON value (see [`Size::weight`]).
fn weight(value: &Value) -> u64 {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 1,
        Value::String(text) => text_weight(text),
        Value::Array(items) => items
            .iter()
            .fold(1, |total, item| total.saturating_add(weight(item))),
        Value::Object(entries) => entries.iter().fold(1, |total, (key, item)| {
            total
                .saturating_add(text_weight(key))
                .saturating_add(weight(item))
        }),
    }
}

fn text_weight(text: &str) -> u64 {
    1 + (text.len() as u64).div_ceil(16)
}

/// What evaluating one node may cost, and how large its value may be.
struct Estimate<'s> {
    cost: u64,
    size: Size,
    /// The value itself, when the node reads a path of the scope.
    exact: Option<&'s Value>,
}

impl<'s> Estimate<'s> {
    fn sized(cost: u64, size: Size) -> Self {
        Self {
            cost,
            size,
            exact: None,
        }
    }

    fn exact(cost: u64, value: Option<&'s Value>) -> Self {
        match value {
            Some(value) => Self {
                cost,
                size: Size::of(value),
                exact: Some(value),
            },
            // A missing key fails the evaluation: what it would have read costs nothing.
            None => Self::sized(cost, Size::UNIT),
        }
    }
}

/// Functions of the standard library whose result is a bool or a number.
const SCALAR_FUNCTIONS: [&str; 33] = [
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::NOT_STRICTLY_FALSE,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
    operators::IN,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::NEGATE,
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "bool",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
];

struct Estimator<'a, 's> {
    scope: &'s Scope,
    /// Variables bound by the comprehensions around the node, innermost last.
    bound: Vec<(&'a str, Size)>,
}

impl<'a, 's> Estimator<'a, 's> {
    fn estimate(&mut self, node: &'a IdedExpr) -> Estimate<'s> {
        match &node.expr {
            Expr::Unspecified => Estimate::sized(1, Size::UNIT),
            Expr::Literal(literal) => Estimate::sized(1, literal_size(literal)),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.estimate(&select.operand);
                let cost = operand.cost.saturating_add(1);
                if select.test {
                    return Estimate::sized(cost, Size::UNIT);
                }
                match operand.exact {
                    Some(Value::Object(entries)) => {
                        Estimate::exact(cost, entries.get(select.field.as_str()))
                    }
                    _ => Estimate::sized(cost, Size::within(operand.size.item)),
                }
            }
            Expr::Call(call) => {
                let mut arguments = Vec::with_capacity(call.args.len() + 1);
                let mut accumulators = 0;
                for argument in call.target.iter().map(AsRef::as_ref).chain(&call.args) {
                    let estimate = self.estimate(argument);
                    if matches!(&argument.expr, Expr::Ident(name) if name.starts_with('@')) {
                        // The accumulator of `map` and `filter` is appended to in place.
                        accumulators += estimate.size.weight;
                    }
                    arguments.push(estimate);
                }
                self.call(&call.func_name, &call.args, arguments, accumulators)
            }
            Expr::List(list) => {
                let mut cost = 1u64;
                let mut size = Size {
                    count: list.elements.len() as u64,
                    weight: 1,
                    item: 0,
                };
                for element in &list.elements {
                    let element = self.estimate(element);
                    cost = cost
                        .saturating_add(element.cost)
                        .saturating_add(element.size.weight);
                    size.weight = size.weight.saturating_add(element.size.weight);
                    size.item = size.item.max(element.size.weight);
                }
                Estimate::sized(cost, size)
            }
            Expr::Map(map) => self.entries(map.entries.iter().map(|entry| &entry.expr)),
            Expr::Struct(structure) => {
                self.entries(structure.entries.iter().map(|entry| &entry.expr))
            }
            Expr::Comprehension(comprehension) => {
                let range = self.estimate(&comprehension.iter_range);
                let init = self.estimate(&comprehension.accu_init);
                let iterations = range.size.count;
                let element = Size::within(range.size.item.max(1));
                let depth = self.bound.len();
                self.bound.push((&comprehension.iter_var, element));
                if let Some(second) = &comprehension.iter_var2 {
                    self.bound.push((second, element));
                }
                // One iteration, estimated once with an empty accumulator: the loop steps
                // of the standard macros only test the accumulator or append to it, so
                // their cost does not depend on its size, and an appending step's size is
                // what one iteration adds.
                self.bound.push((&comprehension.accu_var, Size::ZERO));
                let condition = self.estimate(&comprehension.loop_cond);
                let step = self.estimate(&comprehension.loop_step);
                let accumulated = if appends(&comprehension.loop_step, &comprehension.accu_var) {
                    init.size.plus(step.size.times(iterations))
                } else {
                    init.size.max(step.size)
                };
                self.bound.pop();
                self.bound.push((&comprehension.accu_var, accumulated));
                let result = self.estimate(&comprehension.result);
                self.bound.truncate(depth);
                let per_iteration = condition
                    .cost
                    .saturating_add(step.cost)
                    .saturating_add(element.weight)
                    .saturating_add(1);
                let cost = range
                    .cost
                    .saturating_add(init.cost)
                    .saturating_add(iterations.saturating_mul(per_iteration))
                    .saturating_add(result.cost);
                Estimate::sized(cost, result.size)
            }
        }
    }

    fn ident(&self, name: &str) -> Estimate<'s> {
        if let Some((_, size)) = self.bound.iter().rev().find(|(bound, _)| *bound == name) {
            return Estimate::sized(1, *size);
        }
        // An unknown name fails the evaluation.
        Estimate::exact(1, self.scope.get(name))
    }

    fn call(
        &self,
        function: &str,
        written: &[IdedExpr],
        arguments: Vec<Estimate<'s>>,
        accumulators: u64,
    ) -> Estimate<'s> {
        let costs = arguments
            .iter()
            .fold(1u64, |total, argument| total.saturating_add(argument.cost));
        let weights = arguments.iter().fold(0u64, |total, argument| {
            total.saturating_add(argument.size.weight)
        });
        match (function, arguments.as_slice()) {
            (operators::CONDITIONAL, [condition, then, otherwise]) => Estimate::sized(
                condition
                    .cost
                    .saturating_add(then.cost.max(otherwise.cost))
                    .saturating_add(1),
                then.size.max(otherwise.size),
            ),
            (operators::INDEX | operators::OPT_INDEX, [operand, index]) => {
                let cost = costs.saturating_add(index.size.weight);
                let found = match (operand.exact, written.get(1).map(|index| &index.expr)) {
                    (
                        Some(Value::Object(entries)),
                        Some(Expr::Literal(LiteralValue::String(key))),
                    ) => Some(entries.get(key.inner())),
                    (
                        Some(Value::Array(items)),
                        Some(Expr::Literal(LiteralValue::Int(position))),
                    ) => Some(
                        usize::try_from(*position.inner())
                            .ok()
                            .and_then(|position| items.get(position)),
                    ),
                    _ => None,
                };
                match found {
                    Some(value) => Estimate::exact(cost, value),
                    None => Estimate::sized(cost, Size::within(operand.size.item)),
                }
            }
            (operators::LOGICAL_AND | operators::LOGICAL_OR | operators::LOGICAL_NOT, _)
            | (operators::NOT_STRICTLY_FALSE | "size", _) => Estimate::sized(costs, Size::UNIT),
            (operators::ADD, _) => Estimate::sized(
                costs.saturating_add(weights.saturating_sub(accumulators)),
                arguments
                    .iter()
                    .fold(Size::ZERO, |total, argument| total.plus(argument.size)),
            ),
            _ if SCALAR_FUNCTIONS.contains(&function) => {
                Estimate::sized(costs.saturating_add(weights), Size::UNIT)
            }
            // Conversions (`string`, `timestamp`, ...), `optional` and the rest yield at
            // most what they were given and a few units more.
            _ => Estimate::sized(
                costs.saturating_add(weights),
                Size::within(weights.saturating_add(8)),
            ),
        }
    }

    fn entries(&mut self, entries: impl Iterator<Item = &'a EntryExpr>) -> Estimate<'s> {
        let mut cost = 1u64;
        let mut size = Size {
            count: 0,
            weight: 1,
            item: 0,
        };
        for entry in entries {
            let parts: Vec<&'a IdedExpr> = match entry {
                EntryExpr::StructField(field) => vec![&field.value],
                EntryExpr::MapEntry(pair) => vec![&pair.key, &pair.value],
            };
            size.count = size.count.saturating_add(1);
            for part in parts {
                let part = self.estimate(part);
                cost = cost
                    .saturating_add(part.cost)
                    .saturating_add(part.size.weight);
                size.weight = size.weight.saturating_add(part.size.weight);
                size.item = size.item.max(part.size.weight);
            }
        }
        Estimate::sized(cost, size)
    }
}

fn literal_size(literal: &LiteralValue) -> Size {
    match literal {
        LiteralValue::String(text) => Size::within(text_weight(text.inner())),
        LiteralValue::Bytes(bytes) => Size::within(1 + (bytes.inner().len() as u64).div_ceil(16)),
        LiteralValue::Boolean(_)
        | LiteralValue::Double(_)
        | LiteralValue::Int(_)
        | LiteralValue::Null
        | LiteralValue::UInt(_) => Size::UNIT,
    }
}

/// Whether a comprehension's loop step appends to its accumulator (`map`, `filter` and
/// the count of `exists_one`), possibly under a condition, rather than replacing it.
fn appends(step: &IdedExpr, accumulator: &str) -> bool {
    let Expr::Call(call) = &step.expr else {
        return false;
    };
    match (call.func_name.as_str(), call.args.as_slice()) {
        (operators::ADD, [first, _]) => {
            matches!(&first.expr, Expr::Ident(name) if name == accumulator)
        }
        (operators::CONDITIONAL, [_, then, otherwise]) => {
            appends(then, accumulator) || appends(otherwise, accumulator)
        }
        _ => false,
    }
}
