//! The events the Trading Grid hub emits: partners opening, updating or commenting on an
//! issue and acknowledging a post, read from the hub's event feed ([`super::feed`]) and
//! delivered as `trading_grid.<event with _ for .>` (`issue.created` →
//! `trading_grid.issue_created`). Each payload is the hub's `data` with the change's id
//! and the instant it occurred.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::EventSpec;
use crate::schema::{array_of, event, open_object, string};

/// The fields the feed adds to every payload.
fn with_change(mut properties: Value) -> Value {
    properties["change_id"] = string();
    properties["occurred_at"] = json!({"type": "string", "format": "date-time"});
    properties
}

/// An issue as the hub holds it.
fn issue() -> Value {
    let nullable = json!({"type": ["string", "null"]});
    open_object(
        &[
            "issue_id",
            "partner_company_id",
            "status",
            "created_at",
            "updated_at",
            "change_id",
            "occurred_at",
        ],
        with_change(json!({
            "issue_id": string(), "partner_company_id": string(), "title": nullable.clone(),
            "description": nullable, "severity": {"type": ["string", "null"]},
            "status": string(), "related": {"type": "object"}, "comments": array_of(json!({"type": "object"})),
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        })),
    )
}

/// Every event of the Trading Grid hub, as the catalogue lists it.
pub(super) static EVENTS: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    let nullable = json!({"type": ["string", "null"]});
    vec![
        event(
            "issue_created",
            "A partner (or a workflow) opened an issue on the hub; the payload is the issue.",
            issue(),
        ),
        event(
            "issue_updated",
            "An issue's status, severity, description or title changed; the payload is the issue as it is now.",
            issue(),
        ),
        event(
            "issue_commented",
            "Someone commented on an issue; the payload is the comment and its issue id.",
            open_object(
                &[
                    "comment_id",
                    "issue_id",
                    "created_at",
                    "change_id",
                    "occurred_at",
                ],
                with_change(json!({
                    "comment_id": string(), "issue_id": string(), "body": nullable.clone(),
                    "author": nullable.clone(), "created_at": {"type": "string", "format": "date-time"},
                })),
            ),
        ),
        event(
            "post_acknowledged",
            "A partner company acknowledged a hub post (received, accepted or rejected); the payload is the acknowledgement.",
            open_object(
                &[
                    "acknowledgement_id",
                    "post_id",
                    "company_id",
                    "created_at",
                    "change_id",
                    "occurred_at",
                ],
                with_change(json!({
                    "acknowledgement_id": string(), "post_id": string(), "company_id": string(),
                    "login_id": nullable.clone(), "ack_type": nullable.clone(), "comment": nullable,
                    "created_at": {"type": "string", "format": "date-time"},
                })),
            ),
        ),
    ]
});
