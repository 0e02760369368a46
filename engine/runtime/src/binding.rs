//! The delivery check of approvals bound to artifacts: before an action whose spec declares
//! `effects.delivers` runs, the artifacts at that JSON pointer of its arguments must each
//! be the same content (system, asset, version, digest) as one the instance's approvals
//! approved. The dispatch carries the approved set (the core derives it) whenever the
//! definition binds any approval; without bindings nothing is checked.
//!
//! A refusal is the attempt's permanent failure `artifact_not_approved`, naming the
//! artifact offered and the approved ones; the connector is not invoked, so nothing
//! reaches a partner.

use gridflow_connectors::Registry;
use gridflow_connectors::content::{Artifact, ContentRef};
use gridflow_core::ErrorInfo;
use gridflow_core::command::Dispatch;
use serde_json::Value;

/// How many approved artifacts a refusal lists before it says how many more there are.
const LISTED: usize = 10;

/// Whether `dispatch` may run: `Err` is the attempt's permanent failure.
pub(crate) fn check(registry: &Registry, dispatch: &Dispatch) -> Result<(), ErrorInfo> {
    let Some(approved) = &dispatch.approved else {
        return Ok(());
    };
    let Some(pointer) = registry
        .action(&dispatch.action)
        .and_then(|(_, spec)| spec.effects.delivers.as_deref())
    else {
        return Ok(());
    };
    let approved: Vec<Artifact> = approved.iter().map(from_core).collect();
    for (at, offered) in offered(&dispatch.action, &dispatch.arguments, pointer)? {
        if !approved.iter().any(|artifact| artifact.same_as(&offered)) {
            return Err(ErrorInfo::permanent(
                "artifact_not_approved",
                refusal(&dispatch.action, &at, &offered, &approved),
            ));
        }
    }
    Ok(())
}

/// The artifacts at `pointer` of `arguments`, each with its own pointer: none when the
/// pointer is absent (the action delivers nothing this time).
fn offered(
    action: &str,
    arguments: &Value,
    pointer: &str,
) -> Result<Vec<(String, Artifact)>, ErrorInfo> {
    let read = |at: String, value: &Value| {
        serde_json::from_value::<Artifact>(value.clone())
            .map(|artifact| (at.clone(), artifact))
            .map_err(|error| {
                ErrorInfo::permanent(
                    "artifact_not_approved",
                    format!(
                        "action \"{action}\" delivers {at} of its arguments, which is not an artifact ({error}): nothing unapproved is delivered"
                    ),
                )
            })
    };
    match arguments.pointer(pointer) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| read(format!("{pointer}/{index}"), item))
            .collect(),
        Some(one) => Ok(vec![read(pointer.to_owned(), one)?]),
    }
}

fn from_core(artifact: &gridflow_core::Artifact) -> Artifact {
    Artifact {
        system: artifact.system.clone(),
        asset_id: artifact.asset_id.clone(),
        version: artifact.version.clone(),
        content: ContentRef {
            sha256: artifact.sha256.clone(),
            size: artifact.size,
            content_type: artifact.content_type.clone(),
            file_name: artifact.file_name.clone(),
        },
    }
}

/// `otmm asset a-1 version 2 (sha256 …)`.
fn describe(artifact: &Artifact) -> String {
    format!(
        "{} asset {} version {} (sha256 {})",
        artifact.system, artifact.asset_id, artifact.version, artifact.content.sha256
    )
}

/// The message of a refusal: the artifact offered (actual) and the approved ones
/// (expected), those of the same asset first.
fn refusal(action: &str, at: &str, offered: &Artifact, approved: &[Artifact]) -> String {
    let mut expected: Vec<&Artifact> = approved.iter().collect();
    expected.sort_by_key(|artifact| {
        artifact.system != offered.system || artifact.asset_id != offered.asset_id
    });
    let mut listed: Vec<String> = expected.iter().take(LISTED).map(|a| describe(a)).collect();
    if expected.len() > LISTED {
        listed.push(format!("and {} more", expected.len() - LISTED));
    }
    let expected = if listed.is_empty() {
        "none (no approval of this instance approved any artifact)".to_owned()
    } else {
        listed.join(", ")
    };
    format!(
        "action \"{action}\" would deliver {} at {at} of its arguments, which no approval of this instance approved: expected one of the approved artifacts: {expected}",
        describe(offered)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use gridflow_connectors::effects::Effects;
    use gridflow_connectors::{ActionSpec, Connector, Invocation};
    use gridflow_core::WorkKey;
    use serde_json::json;

    use super::*;

    struct Publisher(Vec<ActionSpec>);

    #[async_trait]
    impl Connector for Publisher {
        fn name(&self) -> &str {
            "hub"
        }
        fn actions(&self) -> &[ActionSpec] {
            &self.0
        }
        async fn invoke(&self, _invocation: Invocation) -> gridflow_connectors::Result<Value> {
            Ok(json!({}))
        }
    }

    fn registry() -> Registry {
        let publish = ActionSpec {
            name: "publish".to_owned(),
            description: String::new(),
            arguments: json!({"type": "object"}),
            output: json!({}),
            effects: Effects {
                delivers: Some("/content".to_owned()),
                ..Effects::default()
            },
        };
        let mut registry = Registry::new();
        registry.register(Arc::new(Publisher(vec![publish])));
        registry
    }

    fn artifact(digest: &str) -> Value {
        json!({"system": "otmm", "asset_id": "a-1", "version": "2", "sha256": digest.repeat(64),
               "size": 5, "content_type": "image/jpeg", "file_name": "a.jpg"})
    }

    fn dispatch(content: Value, approved: Option<Value>) -> Dispatch {
        Dispatch {
            work: WorkKey {
                step: "deliver".into(),
                item: None,
                attempt: 1,
                compensation: false,
                iteration: None,
            },
            action: "hub.publish".to_owned(),
            arguments: json!({"content": content}),
            timeout: std::time::Duration::from_secs(1),
            idempotency_key: "i:deliver:1".to_owned(),
            approved: approved.map(|value| serde_json::from_value(value).unwrap()),
        }
    }

    #[test]
    fn approved_content_passes_and_other_bytes_are_refused_naming_both() {
        let registry = registry();
        let approved = Some(json!([artifact("a")]));
        assert_eq!(
            check(
                &registry,
                &dispatch(json!([artifact("a")]), approved.clone())
            ),
            Ok(())
        );
        let refused = check(
            &registry,
            &dispatch(json!([artifact("a"), artifact("b")]), approved),
        )
        .unwrap_err();
        assert_eq!(refused.code, "artifact_not_approved");
        assert!(!refused.retryable);
        let (actual, expected) = ("b".repeat(64), "a".repeat(64));
        assert!(
            refused.message.contains("at /content/1")
                && refused.message.contains(&format!(
                    "would deliver otmm asset a-1 version 2 (sha256 {actual})"
                ))
                && refused.message.contains(&format!(
                    "approved artifacts: otmm asset a-1 version 2 (sha256 {expected})"
                )),
            "{}",
            refused.message
        );
    }

    #[test]
    fn nothing_approved_refuses_and_no_binding_checks_nothing() {
        let registry = registry();
        let refused = check(&registry, &dispatch(artifact("a"), Some(json!([])))).unwrap_err();
        assert!(
            refused.message.contains("none (no approval"),
            "{}",
            refused.message
        );
        assert_eq!(check(&registry, &dispatch(artifact("a"), None)), Ok(()));
        let not_artifact = check(&registry, &dispatch(json!("x"), Some(json!([])))).unwrap_err();
        assert_eq!(not_artifact.code, "artifact_not_approved");
    }
}
