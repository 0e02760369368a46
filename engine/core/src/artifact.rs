//! Artifacts bound to approvals: the asset versions (with the digest of their bytes) that
//! an approval step's `bind` names, what its decision records, and the instance's
//! approved set that every delivering action is checked against.
//!
//! [`Artifact`] has the JSON shape of `gridflow_connectors::content::Artifact` (`{system,
//! asset_id, version, sha256, size, content_type, file_name}`); the core keeps its own
//! copy because it depends on no workspace crate. Two artifacts are the same content when
//! system, asset, version and digest agree ([`Artifact::same_as`]); size, type and file
//! name are kept for people.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::approval::{ApprovalState, ApprovalStatus};
use crate::state::InstanceState;

/// A stored content object with the asset version it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Artifact {
    /// The system the asset lives in (`otmm`, `iconik`, `canto`, `smintio`).
    pub system: String,
    /// The asset's id in that system.
    pub asset_id: String,
    /// The version, as the system numbers or names it.
    pub version: String,
    /// The SHA-256 of the bytes, 64 lower-case hex digits.
    pub sha256: String,
    /// The length in bytes.
    pub size: u64,
    /// The MIME type.
    pub content_type: String,
    /// The file name.
    pub file_name: String,
}

impl Artifact {
    /// Whether `self` and `other` are the same bytes of the same asset version.
    pub fn same_as(&self, other: &Artifact) -> bool {
        self.system == other.system
            && self.asset_id == other.asset_id
            && self.version == other.version
            && self.sha256 == other.sha256
    }

    /// The artifacts a rendered `bind` names: one artifact object, or an array of them.
    /// `Err` names the first place that is not an artifact, as a path below the binding
    /// (`[1].sha256: expected 64 lower-case hex digits, found "abc"`); fields besides the
    /// artifact's own are ignored.
    pub fn read_binding(value: &Value) -> Result<Vec<Artifact>, String> {
        match value {
            Value::Object(fields) => Ok(vec![Self::read(fields, "")?]),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(fields) => Self::read(fields, &format!("[{index}]")),
                    other @ (Value::Null
                    | Value::Bool(_)
                    | Value::Number(_)
                    | Value::String(_)
                    | Value::Array(_)) => Err(format!(
                        "[{index}]: expected an artifact object, found {}",
                        kind_of(other)
                    )),
                })
                .collect(),
            other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) => {
                Err(format!(
                    ": expected an artifact {{system, asset_id, version, sha256, size, content_type, file_name}} or a list of them, found {}",
                    kind_of(other)
                ))
            }
        }
    }

    fn read(fields: &Map<String, Value>, at: &str) -> Result<Artifact, String> {
        let read = || -> Result<Artifact, String> {
            let text = |name: &str| -> Result<String, String> {
                match fields.get(name) {
                    Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                    Some(other) => Err(format!(
                        "{at}.{name}: expected a non-empty string, found {}",
                        kind_of(other)
                    )),
                    None => Err(format!("{at}.{name}: missing")),
                }
            };
            let (system, asset_id, version) =
                (text("system")?, text("asset_id")?, text("version")?);
            let sha256 = text("sha256")?;
            let is_digest = sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
            if !is_digest {
                return Err(format!(
                    "{at}.sha256: expected 64 lower-case hex digits, found {sha256:?}"
                ));
            }
            let size = match fields.get("size") {
                Some(Value::Number(number)) => number.as_u64(),
                Some(_) | None => None,
            }
            .ok_or_else(|| match fields.get("size") {
                Some(other) => format!(
                    "{at}.size: expected a whole number of bytes, found {}",
                    kind_of(other)
                ),
                None => format!("{at}.size: missing"),
            })?;
            Ok(Artifact {
                system,
                asset_id,
                version,
                sha256,
                size,
                content_type: text("content_type")?,
                file_name: text("file_name")?,
            })
        };
        read().map_err(|message| match fields.get("content") {
            // A fetch's whole output rather than its `content`.
            Some(Value::Object(_)) => {
                format!("{message} (this object holds the artifact in its \"content\" field)")
            }
            Some(_) | None => message,
        })
    }
}

/// What a JSON value is, for messages: `null`, `a string ("x")`, `a number (3)`, …
fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("a boolean ({flag})"),
        Value::Number(number) => format!("a number ({number})"),
        Value::String(text) => format!("a string ({text:?})"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The instance's approved artifacts: those bound by every approval (of a step, or of a
/// fan-out item) that was approved, each once, in a stable order. Derived from the
/// approvals in the state, so a replay folds the same set.
pub fn approved(state: &InstanceState) -> Vec<Artifact> {
    let items = state
        .item_approvals
        .values()
        .flat_map(|items| items.values());
    let approved: BTreeSet<&Artifact> = state
        .approvals
        .values()
        .chain(items)
        .filter(|approval| approval.status == ApprovalStatus::Approved)
        .flat_map(|approval: &ApprovalState| approval.artifacts.iter().flatten())
        .collect();
    approved.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn artifact(version: &str) -> Value {
        json!({"system": "otmm", "asset_id": "a-1", "version": version, "sha256": "ab".repeat(32),
               "size": 5, "content_type": "image/jpeg", "file_name": "a.jpg", "extra": true})
    }

    #[test]
    fn a_binding_is_one_artifact_or_a_list_and_errors_name_the_path() {
        let one = Artifact::read_binding(&artifact("2")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].version, "2");
        let two = Artifact::read_binding(&json!([artifact("1"), artifact("2")])).unwrap();
        assert!(!two[0].same_as(&one[0]) && two[1].same_as(&one[0]));

        let mut bad = artifact("3");
        bad["sha256"] = json!("abc");
        let error = Artifact::read_binding(&json!([artifact("1"), bad])).unwrap_err();
        assert_eq!(
            error,
            "[1].sha256: expected 64 lower-case hex digits, found \"abc\""
        );
        let mut bad = artifact("3");
        bad["version"] = json!(3);
        assert_eq!(
            Artifact::read_binding(&bad).unwrap_err(),
            ".version: expected a non-empty string, found a number (3)"
        );
        assert!(
            Artifact::read_binding(&json!("x"))
                .unwrap_err()
                .ends_with("found a string (\"x\")")
        );
        assert!(Artifact::read_binding(&json!([])).unwrap().is_empty());
    }

    #[test]
    fn dispatches_queued_before_bindings_decode_without_an_approved_set() {
        let queued = json!({"work": {"step": "deliver", "attempt": 1}, "action": "core.echo",
            "arguments": {}, "timeout": "30s", "idempotency_key": "i:deliver:1"});
        let dispatch: crate::command::Dispatch = serde_json::from_value(queued.clone()).unwrap();
        assert_eq!(dispatch.approved, None);
        assert_eq!(serde_json::to_value(&dispatch).unwrap(), queued);
        let bound = crate::command::Dispatch {
            approved: Some(Artifact::read_binding(&artifact("2")).unwrap()),
            ..dispatch
        };
        let stored = serde_json::to_value(&bound).unwrap();
        assert_eq!(stored["approved"][0]["version"], "2");
        assert_eq!(
            serde_json::from_value::<crate::command::Dispatch>(stored).unwrap(),
            bound
        );
    }
}
