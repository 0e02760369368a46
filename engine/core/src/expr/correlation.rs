//! The shape of a wait step's `correlate` that an index can serve: `event.<path> ==
//! <expression without event>`, either side first. The signal side is a path into the
//! signal's payload; the other side is evaluated in the instance alone, so its value can
//! be stored as a key and a signal can find its instance by the value at the path.

use cel::common::ast::{Expr, IdedExpr, operators};
use serde_json::Value;

use super::{compile, references, single_expression};

/// A `correlate` of the form `event.<path> == <other>`: the payload path and the source of
/// the side that does not read `event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEquality {
    /// The payload path the event side reads, `partner_id` or `partner.id`.
    pub path: String,
    /// The source of the other side (a bare CEL expression that does not read `event`).
    pub other: String,
}

/// The [`EventEquality`] of `correlate` (a `${…}` template or bare CEL), if it has that
/// shape; `None` for any other condition (it is then evaluated per candidate).
pub fn event_equality(correlate: &str) -> Option<EventEquality> {
    let source = if super::is_template(correlate) {
        single_expression(correlate)?
    } else {
        correlate
    }
    .trim();
    let Expr::Call(call) = &compile(source).ok()?.expr else {
        return None;
    };
    if call.func_name != operators::EQUALS || call.target.is_some() {
        return None;
    }
    let [left, right] = call.args.as_slice() else {
        return None;
    };
    // `==` associates to the left, so the top-level `==` is the first one in the text
    // when its left operand is a plain path (which holds no `==`), and the last one when
    // its right operand is.
    let (path, other) = if let Some(path) = event_path(left) {
        (path, source.split_once("==")?.1)
    } else if let Some(path) = event_path(right) {
        (path, source.rsplit_once("==")?.0)
    } else {
        return None;
    };
    let other = other.trim();
    let read = references(other).ok()?;
    if read.names.contains("event") {
        return None;
    }
    Some(EventEquality {
        path,
        other: other.to_owned(),
    })
}

/// `a.b` for the expression `event.a.b` (at least one field), `None` for anything else.
fn event_path(expression: &IdedExpr) -> Option<String> {
    let mut fields = Vec::new();
    let mut at = expression;
    loop {
        match &at.expr {
            Expr::Select(select) if !select.test => {
                fields.push(select.field.as_str());
                at = &select.operand;
            }
            Expr::Ident(name) if name == "event" && !fields.is_empty() => break,
            Expr::Select(_)
            | Expr::Ident(_)
            | Expr::Unspecified
            | Expr::Call(_)
            | Expr::Comprehension(_)
            | Expr::List(_)
            | Expr::Literal(_)
            | Expr::Map(_)
            | Expr::Struct(_) => return None,
        }
    }
    fields.reverse();
    Some(fields.join("."))
}

/// The index key of a correlation value: the same for two values exactly when CEL's `==`
/// holds between them, for the values an index serves (strings, booleans and integral
/// numbers); `None` for the others (null, lists, maps, fractions), which are then matched
/// by evaluating the condition.
pub fn correlation_key(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if text.len() <= MAX_KEY_TEXT => Some(value.to_string()),
        Value::String(_) => None,
        Value::Bool(_) => Some(value.to_string()),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Some(integer.to_string())
            } else if let Some(integer) = number.as_u64() {
                Some(integer.to_string())
            } else {
                let float = number.as_f64()?;
                // Integral and exactly representable: equal to the integer in CEL.
                (float.fract() == 0.0 && float.abs() < 9_007_199_254_740_992.0)
                    .then(|| format!("{}", float as i64))
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The longest string an index keys (longer ones are matched by evaluating the condition;
/// database indexes bound the size of a key).
const MAX_KEY_TEXT: usize = 256;

/// The value at `path` (`a.b`) in `payload`, if there is one.
pub fn at_path<'v>(payload: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(payload, |value, field| value.as_object()?.get(field))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shape(correlate: &str) -> Option<(String, String)> {
        event_equality(correlate).map(|found| (found.path, found.other))
    }

    #[test]
    fn finds_the_event_path_and_the_other_side_in_either_order() {
        let expected = Some(("partner_id".to_owned(), "input.partner_id".to_owned()));
        assert_eq!(shape("${event.partner_id == input.partner_id}"), expected);
        assert_eq!(shape("input.partner_id == event.partner_id"), expected);
        assert_eq!(
            shape("${event.a.b == steps.x.output['k==v']}"),
            Some(("a.b".to_owned(), "steps.x.output['k==v']".to_owned()))
        );
        assert_eq!(
            shape("'a==b' == event.id"),
            Some(("id".to_owned(), "'a==b'".to_owned()))
        );
        assert_eq!(
            shape("input.a == input.b == event.flag"),
            Some(("flag".to_owned(), "input.a == input.b".to_owned()))
        );
    }

    #[test]
    fn other_shapes_are_not_indexed() {
        for correlate in [
            "${event.a == input.a && event.b == input.b}",
            "event.a != input.a",
            "event.a == event.b",
            "event == input",
            "event.a == input.a == true",
            "size(event.a) == 1",
            "${event.a == input.a} and more",
            "event.a == input.items.filter(x, x == event.a)[0]",
        ] {
            assert_eq!(shape(correlate), None, "{correlate}");
        }
    }

    #[test]
    fn keys_agree_with_cel_equality_on_what_they_serve() {
        assert_eq!(correlation_key(&json!("p-1")), Some("\"p-1\"".to_owned()));
        assert_eq!(correlation_key(&json!(7)), correlation_key(&json!(7.0)));
        assert_ne!(correlation_key(&json!("7")), correlation_key(&json!(7)));
        assert_eq!(correlation_key(&json!(true)), Some("true".to_owned()));
        assert_eq!(correlation_key(&json!(0.5)), None);
        assert_eq!(correlation_key(&json!(null)), None);
        assert_eq!(correlation_key(&json!("x".repeat(MAX_KEY_TEXT + 1))), None);
        assert_eq!(correlation_key(&json!({"a": 1})), None);
        let payload = json!({"partner": {"id": "p-9"}});
        assert_eq!(at_path(&payload, "partner.id"), Some(&json!("p-9")));
        assert_eq!(at_path(&payload, "partner.name"), None);
    }
}
