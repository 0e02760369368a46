//! What changed between two JSON values, for replay step by step (`--diff`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One change: the value at `path` (a JSON Pointer, RFC 6901) before and after.
/// `before` is absent for an added member, `after` for a removed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// JSON Pointer of the changed value (`/steps/charge/status`).
    pub path: String,
    /// The value before, absent when it was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after, absent when it was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The changes from `before` to `after`: objects are compared member by member (in key
/// order), anything else (arrays included) as a whole.
pub fn json_diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_at(String::new(), Some(before), Some(after), &mut changes);
    changes
}

fn diff_at(path: String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    match (before, after) {
        (Some(Value::Object(left)), Some(Value::Object(right))) => {
            let mut keys: Vec<&String> = left.keys().chain(right.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                diff_at(
                    format!("{path}/{escaped}"),
                    left.get(key),
                    right.get(key),
                    out,
                );
            }
        }
        (left, right) if left == right => {}
        (left, right) => out.push(Change {
            path,
            before: left.cloned(),
            after: right.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_members_are_reported_by_pointer() {
        let before = json!({"status": "running", "steps": {"a/b": {"status": "scheduled"}}});
        let after = json!({"status": "running", "steps": {"a/b": {"status": "succeeded", "output": 1}}, "x": [1]});
        assert_eq!(
            json_diff(&before, &after),
            vec![
                Change {
                    path: "/steps/a~1b/output".into(),
                    before: None,
                    after: Some(json!(1)),
                },
                Change {
                    path: "/steps/a~1b/status".into(),
                    before: Some(json!("scheduled")),
                    after: Some(json!("succeeded")),
                },
                Change {
                    path: "/x".into(),
                    before: None,
                    after: Some(json!([1])),
                },
            ]
        );
        assert!(json_diff(&after, &after).is_empty());
    }
}
