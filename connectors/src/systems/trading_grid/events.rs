//! The events the Trading Grid hub emits: issues opened, updated or commented on, posts
//! acknowledged, commented on and withdrawn, documents downloaded, partner requests
//! created and updated, partners joining a community. They are read from the hub's event
//! feed ([`super::feed`]) or received as its signed callbacks, and delivered as
//! `trading_grid.<event with _ for .>` (`issue.created` → `trading_grid.issue_created`).
//! Each payload is the hub's `data` with the event's id (`change_id`) and the instant it
//! occurred. Downloads, acknowledgements and withdrawals declare `effects.ledger`: they
//! change the status of the post's deliveries ([`super::inbound::event_effects`]).

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::EventSpec;
use crate::effects::Effects;
use crate::schema::{array_of, event, open_object, string};

fn instant() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// A partner request as the hub holds it.
fn request() -> Value {
    let nullable = json!({"type": ["string", "null"]});
    open_object(
        &[
            "request_id",
            "type",
            "partner_company_id",
            "login_id",
            "description",
            "status",
            "answers",
            "created_at",
            "updated_at",
            "change_id",
            "occurred_at",
        ],
        with_change(json!({
            "request_id": string(), "type": {"enum": ["media", "access", "localisation", "enhancement"]},
            "partner_company_id": string(), "login_id": string(),
            "asset": {"type": ["object", "null"], "properties": {"system": string(), "asset_id": string()}},
            "market": nullable.clone(), "language": nullable.clone(), "description": string(),
            "status": {"enum": ["open", "answered", "closed"]}, "answers": array_of(json!({"type": "object"})),
            "resolution": nullable, "created_at": instant(), "updated_at": instant(),
        })),
    )
}

fn ledger() -> Effects {
    Effects {
        ledger: true,
        ..Effects::default()
    }
}

/// The events of partners' activity on posts, requests and communities.
fn partner_events() -> Vec<EventSpec> {
    let nullable = json!({"type": ["string", "null"]});
    vec![
        event(
            "request_created",
            "A partner asked for media, access, a localisation or an enhancement; the payload is the request.",
            request(),
        ),
        event(
            "request_updated",
            "A partner request was answered or closed; the payload is the request as it is now.",
            request(),
        ),
        event(
            "post_commented",
            "A partner commented on a post; the payload is the comment.",
            open_object(
                &["comment_id", "post_id", "company_id", "login_id", "body", "created_at", "change_id", "occurred_at"],
                with_change(json!({"comment_id": string(), "post_id": string(), "company_id": string(),
                    "login_id": string(), "body": string(), "created_at": instant()})),
            ),
        ),
        event(
            "document_downloaded",
            "A partner user downloaded a document of a post: who (company, login), when, which document and its SHA-256.",
            open_object(
                &["download_id", "post_id", "document_id", "sha256", "company_id", "login_id", "downloaded_at", "change_id", "occurred_at"],
                with_change(json!({"download_id": string(), "post_id": string(), "document_id": string(),
                    "sha256": string(), "file_name": nullable.clone(), "company_id": string(), "login_id": string(),
                    "downloaded_at": instant()})),
            ),
        )
        .with_effects(ledger()),
        event(
            "partner_joined",
            "A partner company joined a community.",
            open_object(
                &["community_id", "company_id", "login_id", "joined_at", "change_id", "occurred_at"],
                with_change(json!({"community_id": string(), "company_id": string(), "login_id": string(),
                    "joined_at": instant()})),
            ),
        ),
        event(
            "post_withdrawn",
            "A post (or one document of it) was withdrawn, for every recipient or the partners named; partners lost access.",
            open_object(
                &["post_id", "partner_company_ids", "withdrawn_at", "change_id", "occurred_at"],
                with_change(json!({"post_id": string(), "document_id": nullable.clone(),
                    "partner_company_ids": array_of(string()), "reason": nullable, "withdrawn_at": instant()})),
            ),
        )
        .with_effects(ledger()),
    ]
}

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
        )
        .with_effects(ledger()),
    ]
    .into_iter()
    .chain(partner_events())
    .collect()
});
