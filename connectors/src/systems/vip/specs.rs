//! The catalogue of the `vip` connector: every action with its argument and output
//! schemas and its effects.

use serde_json::json;

use crate::connector::{ActionSpec, Effects};
use crate::content::Artifact;
use crate::effects::{LedgerChange, ObservedRights};
use crate::schema::{action, array_of, object, string};

pub(super) fn action_specs() -> Vec<ActionSpec> {
    let package_out = object(
        &["package_id", "status", "package"],
        json!({
            "package_id": string(), "status": string(), "package": {"type": "object"}
        }),
    );
    let rights = json!({"type": "object", "properties": {
        "valid_from": {"type": ["string", "null"]}, "valid_until": {"type": ["string", "null"]},
        "territories": array_of(string()), "channels": array_of(string()), "restrictions": array_of(string())
    }, "additionalProperties": false});
    let recipients = json!({"type": "object", "properties": {
        "group_ids": array_of(string()), "recipient_ids": array_of(string())
    }, "additionalProperties": false});
    let asset_ref = json!({"type": "object", "required": ["source", "source_id"], "properties": {
        "source": {"type": "string", "enum": ["iconik", "canto", "otmm", "smintio"]},
        "source_id": string(), "version_id": string(), "rendition": string(), "file_name": string(),
        "content_type": string(), "size": {"type": "integer", "minimum": 0}, "sha256": string(), "download_url": string()
    }, "additionalProperties": false});
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 200});
    let artifacts = json!({"type": "array", "items": Artifact::schema(), "minItems": 1});
    let mut specs = vec![
        action(
            "list_recipients",
            "List distribution recipients (distributors, retailers, agencies), optionally of one group.",
            object(
                &[],
                json!({"group_id": string(), "cursor": string(), "limit": limit}),
            ),
            object(
                &["recipients", "next_cursor"],
                json!({"recipients": array_of(json!({"type": "object"})), "next_cursor": {"type": ["string", "null"]}}),
            ),
        ),
        action(
            "create_package",
            "Create a draft distribution package of assets with metadata, rights and recipients.",
            object(
                &["title"],
                json!({"title": {"type": "string", "minLength": 1}, "assets": array_of(asset_ref),
                "metadata": {"type": "object"}, "rights": rights.clone(), "recipients": recipients.clone()}),
            ),
            package_out.clone(),
        ),
        action(
            "get_package",
            "Read a package.",
            object(&["package_id"], json!({"package_id": string()})),
            package_out.clone(),
        ),
        action(
            "update_package",
            "Change a package's title, metadata, rights or recipients.",
            object(
                &["package_id"],
                json!({"package_id": string(), "title": string(), "metadata": {"type": "object"},
                "rights": rights.clone(), "recipients": recipients.clone()}),
            ),
            package_out,
        ),
        action(
            "publish_package",
            "Publish a draft package to its recipients; refused (conflict) when its rights have expired, or it was withdrawn or published already (new content goes out with replace_package_content).",
            object(&["package_id"], json!({"package_id": string()})),
            object(
                &["package_id", "deliveries"],
                json!({"package_id": string(), "deliveries": array_of(json!({"type": "object"}))}),
            ),
        ),
        action(
            "withdraw_package",
            "Withdraw a package (rights expired, recall): its deliveries are revoked, and the ledger records them as withdrawn.",
            object(
                &["package_id", "reason"],
                json!({"package_id": string(), "reason": string()}),
            ),
            object(
                &["package_id", "status", "ledger"],
                json!({"package_id": string(), "status": string(), "revoked_deliveries": {"type": "integer"},
                       "ledger": LedgerChange::array_schema()}),
            ),
        )
        .with_effects(ledger_only()),
        action(
            "revoke_delivery",
            "Revoke one delivery: its recipient loses access to the package, and the ledger records it as withdrawn.",
            object(
                &["delivery_id"],
                json!({"delivery_id": string(), "reason": string()}),
            ),
            object(
                &["delivery_id", "package_id", "recipient_id", "status", "ledger"],
                json!({"delivery_id": string(), "package_id": string(), "recipient_id": string(),
                       "status": string(), "revoked_at": nullable_string(), "ledger": LedgerChange::array_schema()}),
            ),
        )
        .with_effects(ledger_only()),
        action(
            "publish_content",
            "Give recipients stored content: create a package (title, recipients, rights) or fill a draft one (package_id), upload each artifact's bytes (the platform's SHA-256 is checked) and publish; the ledger records each delivery of each artifact.",
            object(
                &["content"],
                json!({"package_id": string(), "title": {"type": "string", "minLength": 1},
                       "metadata": {"type": "object"}, "rights": rights.clone(), "recipients": recipients.clone(),
                       "content": artifacts.clone()}),
            ),
            content_output(&["package_id", "version", "status", "files", "deliveries", "ledger", "observed_rights"]),
        )
        .with_effects(delivers()),
        action(
            "replace_package_content",
            "Replace a package's assets with a new version of stored content: the recipients' earlier deliveries become superseded and the new version is delivered to them.",
            object(
                &["package_id", "content"],
                json!({"package_id": string(), "content": artifacts, "note": string()}),
            ),
            content_output(&["package_id", "version", "files", "deliveries", "superseded", "ledger", "observed_rights"]),
        )
        .with_effects(delivers()),
        action(
            "list_deliveries",
            "List deliveries, optionally of one package or in one status.",
            object(
                &[],
                json!({"package_id": string(), "status": {"type": "string", "enum": ["queued", "delivered", "downloaded", "acknowledged", "failed", "revoked", "superseded"]},
                "cursor": string(), "limit": json!({"type": "integer", "minimum": 1, "maximum": 200})}),
            ),
            object(
                &["deliveries", "next_cursor"],
                json!({"deliveries": array_of(json!({"type": "object"})), "next_cursor": {"type": ["string", "null"]}}),
            ),
        ),
    ];
    specs.extend(recipient_specs());
    specs
}

/// What gridflow does on a recipient's behalf or tells one: acknowledgements, notices.
fn recipient_specs() -> Vec<ActionSpec> {
    vec![
        action(
            "notify_recipients",
            "Send recipients a message through the platform (its portal and e-mail): a notice, a recall, usage guidance.",
            object(
                &["recipient_ids", "subject", "message"],
                json!({"recipient_ids": {"type": "array", "items": string(), "minItems": 1},
                       "subject": {"type": "string", "minLength": 1}, "message": string()}),
            ),
            object(
                &["notification_id", "recipient_ids"],
                json!({"notification_id": string(), "recipient_ids": {"type": "array", "items": string()}}),
            ),
        ),
        action(
            "acknowledge_delivery",
            "Record a recipient's acknowledgement of a delivery.",
            object(
                &["delivery_id", "by"],
                json!({"delivery_id": string(), "by": string(), "note": string()}),
            ),
            object(
                &["delivery_id", "status"],
                json!({"delivery_id": string(), "status": string(), "acknowledged_at": {"type": ["string", "null"]}}),
            ),
        ),
    ]
}

fn nullable_string() -> serde_json::Value {
    json!({"type": ["string", "null"]})
}

/// Effects of an action whose output reports ledger changes only.
fn ledger_only() -> Effects {
    Effects {
        ledger: true,
        ..Effects::default()
    }
}

/// Effects of an action that delivers the artifacts of its `content` argument.
fn delivers() -> Effects {
    Effects {
        delivers: Some("/content".to_owned()),
        ledger: true,
        rights: true,
    }
}

/// The output of the content actions, with the fields `required`.
fn content_output(required: &[&str]) -> serde_json::Value {
    let file = object(
        &["file_id", "file_name", "sha256", "size"],
        json!({"file_id": string(), "file_name": string(), "sha256": string(), "size": {"type": "integer"},
               "asset_id": nullable_string(), "version": nullable_string()}),
    );
    object(
        required,
        json!({"package_id": string(), "version": {"type": "integer"}, "status": string(),
               "files": array_of(file), "deliveries": array_of(json!({"type": "object"})),
               "superseded": array_of(string()),
               "ledger": LedgerChange::array_schema(), "observed_rights": ObservedRights::array_schema()}),
    )
}
