//! The catalogue of the `trading_grid` actions: their argument and output schemas and
//! their effects.

use serde_json::{Value, json};

use crate::connector::ActionSpec;
use crate::content::Artifact;
use crate::effects::{Effects, LedgerChange};
use crate::schema::{action, array_of, object, string};

pub(super) fn action_specs() -> Vec<ActionSpec> {
    let any_object = json!({"type": "object"});
    let severity = json!({"type": "string", "enum": ["low", "medium", "high"]});
    let issue_status = json!({"type": "string", "enum": ["open", "in_progress", "waiting_partner", "resolved", "closed"]});
    let issue_out = object(
        &["issue_id", "status"],
        json!({"issue_id": string(), "status": string(), "severity": {"type": ["string", "null"]}}),
    );
    let attachment = json!({"type": "object", "required": ["name"], "properties": {
        "name": string(), "content_type": string(), "url": string(), "asset_ref": string()
    }, "additionalProperties": false});
    let mut actions = vec![
        action(
            "list_partners",
            "List our trading partners from the Community Management partner directory, optionally filtered by name.",
            object(&[], json!({"name": string()})),
            object(
                &["partners"],
                json!({"partners": array_of(any_object.clone())}),
            ),
        ),
        action(
            "list_communities",
            "List the partner communities on the hub.",
            object(&[], json!({})),
            object(
                &["communities"],
                json!({"communities": array_of(any_object.clone())}),
            ),
        ),
        action(
            "list_groups",
            "List the partner groups of a community.",
            object(&["community_id"], json!({"community_id": string()})),
            object(&["groups"], json!({"groups": array_of(any_object.clone())})),
        ),
        action(
            "list_group_members",
            "List the partner companies in a group.",
            object(&["group_id"], json!({"group_id": string()})),
            object(
                &["members"],
                json!({"members": array_of(any_object.clone())}),
            ),
        ),
        action(
            "post_message",
            "Post a message with attachments or links to a community, its groups or chosen partners.",
            object(
                &["community_id", "title", "body"],
                json!({"community_id": string(), "group_ids": array_of(string()),
                "partner_company_ids": array_of(string()), "title": {"type": "string", "minLength": 1}, "body": string(),
                "attachments": array_of(attachment), "requires_ack": {"type": "boolean"}, "correlation_id": string()}),
            ),
            object(
                &["post_id", "status"],
                json!({"post_id": string(), "status": string()}),
            ),
        ),
        action(
            "notify_partners",
            "Notify partner companies, groups or users by e-mail or portal.",
            object(
                &["channel", "subject", "message"],
                json!({"company_ids": array_of(string()), "group_ids": array_of(string()),
                "login_ids": array_of(string()), "channel": {"type": "string", "enum": ["email", "portal"]}, "subject": string(),
                "message": string(), "post_id": string()}),
            ),
            object(
                &["notification_id", "queued"],
                json!({"notification_id": string(), "queued": {"type": "integer"}}),
            ),
        ),
        action(
            "open_issue",
            "Open an issue (case) with a partner company.",
            object(
                &["title", "description", "partner_company_id", "severity"],
                json!({"title": string(), "description": string(),
                "partner_company_id": string(), "severity": severity.clone(), "related": {"type": "object", "properties": {
                    "transactionid": string(), "post_id": string(), "asset_id": string()}, "additionalProperties": false}}),
            ),
            issue_out.clone(),
        ),
        action(
            "update_issue",
            "Change an issue's status, severity or description.",
            object(
                &["issue_id"],
                json!({"issue_id": string(), "status": issue_status, "severity": severity, "description": string()}),
            ),
            issue_out,
        ),
        action(
            "comment_on_issue",
            "Add a comment to an issue.",
            object(
                &["issue_id", "comment"],
                json!({"issue_id": string(), "comment": string(), "author": string()}),
            ),
            object(
                &["issue_id", "comment_id"],
                json!({"issue_id": string(), "comment_id": string()}),
            ),
        ),
        action(
            "record_acknowledgement",
            "Record a partner's acknowledgement of a post.",
            object(
                &["post_id", "company_id", "ack_type"],
                json!({"post_id": string(), "company_id": string(), "login_id": string(),
                "ack_type": {"type": "string", "enum": ["received", "accepted", "rejected"]}, "comment": string()}),
            ),
            object(
                &["acknowledgement_id", "post_id"],
                json!({"acknowledgement_id": string(), "post_id": string(), "ack_type": {"type": ["string", "null"]}}),
            ),
        ),
        action(
            "list_acknowledgements",
            "Read the acknowledgements partners gave for a post.",
            object(&["post_id"], json!({"post_id": string()})),
            object(
                &["post_id", "acknowledgements"],
                json!({"post_id": string(), "acknowledgements": array_of(any_object)}),
            ),
        ),
    ];
    actions.extend(content_specs());
    actions.extend(request_specs());
    actions.extend(super::library::specs());
    actions
}

fn nullable() -> Value {
    json!({"type": ["string", "null"]})
}

fn instant() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

fn ledger_effects(delivers: Option<&str>) -> Effects {
    Effects {
        delivers: delivers.map(str::to_owned),
        ledger: true,
        ..Effects::default()
    }
}

/// `publish_content`, `withdraw_post`, `withdraw_document`, `get_post`, `get_issue`.
fn content_specs() -> Vec<ActionSpec> {
    let ids = array_of(string());
    let document = object(
        &["document_id", "sha256", "file_name"],
        json!({"document_id": string(), "sha256": string(), "file_name": string()}),
    );
    let post_document = object(
        &["document_id", "sha256", "file_name", "withdrawn"],
        json!({"document_id": string(), "sha256": string(), "file_name": string(),
               "content_type": nullable(), "size": {"type": ["integer", "null"]}, "withdrawn": {"type": "boolean"}}),
    );
    let comment = object(
        &["comment_id", "body", "created_at"],
        json!({"comment_id": string(), "company_id": nullable(), "login_id": nullable(), "author": nullable(),
               "body": nullable(), "created_at": instant()}),
    );
    let download = object(
        &["document_id", "company_id", "login_id", "downloaded_at"],
        json!({"document_id": string(), "company_id": string(), "login_id": string(), "downloaded_at": instant()}),
    );
    vec![
        action(
            "publish_content",
            "Publish stored content (artifacts by digest) to a community, its groups or chosen partners: the hub keeps the bytes, reports their digest, and answers the partner companies reached.",
            object(
                &["community_id", "title", "body", "content"],
                json!({"community_id": string(), "group_ids": ids.clone(), "partner_company_ids": ids.clone(),
                       "title": {"type": "string", "minLength": 1}, "body": string(),
                       "content": {"type": "array", "minItems": 1, "items": Artifact::schema()},
                       "requires_ack": {"type": "boolean"}, "correlation_id": string()}),
            ),
            object(
                &["post_id", "status", "documents", "recipients", "ledger"],
                json!({"post_id": string(), "status": string(), "documents": array_of(document),
                       "recipients": ids.clone(), "ledger": LedgerChange::array_schema()}),
            ),
        )
        .with_effects(ledger_effects(Some("/content"))),
        action(
            "withdraw_post",
            "Withdraw a post from every recipient, or from the partner companies named: they lose access to its documents.",
            object(
                &["post_id"],
                json!({"post_id": string(), "partner_company_ids": ids.clone(), "reason": string()}),
            ),
            object(
                &["post_id", "status", "withdrawn_partners", "ledger"],
                json!({"post_id": string(), "status": string(), "withdrawn_partners": ids.clone(),
                       "ledger": LedgerChange::array_schema()}),
            ),
        )
        .with_effects(ledger_effects(None)),
        action(
            "withdraw_document",
            "Withdraw one document of a post from every recipient.",
            object(
                &["post_id", "document_id"],
                json!({"post_id": string(), "document_id": string(), "reason": string()}),
            ),
            object(
                &["post_id", "document_id", "status", "ledger"],
                json!({"post_id": string(), "document_id": string(), "status": string(),
                       "ledger": LedgerChange::array_schema()}),
            ),
        )
        .with_effects(ledger_effects(None)),
        action(
            "get_post",
            "Read a post: its documents with their digests, recipients, withdrawals, comments and downloads.",
            object(&["post_id"], json!({"post_id": string()})),
            object(
                &["post_id", "status", "withdrawn", "recipients", "documents", "comments"],
                json!({"post_id": string(), "community_id": nullable(), "title": nullable(), "body": nullable(),
                       "status": string(), "requires_ack": {"type": "boolean"}, "withdrawn": {"type": "boolean"},
                       "withdrawn_partners": ids.clone(), "recipients": ids, "documents": array_of(post_document),
                       "comments": array_of(comment.clone()), "downloads": array_of(download), "created_at": instant()}),
            ),
        ),
        action(
            "get_issue",
            "Read an issue with its comments.",
            object(&["issue_id"], json!({"issue_id": string()})),
            object(
                &["issue_id", "status", "comments"],
                json!({"issue_id": string(), "title": nullable(), "description": nullable(),
                       "partner_company_id": nullable(), "severity": nullable(), "status": string(),
                       "related": {"type": "object"}, "comments": array_of(comment),
                       "created_at": instant(), "updated_at": instant()}),
            ),
        ),
    ]
}

/// The typed partner request.
fn request_schema() -> Value {
    object(
        &[
            "request_id",
            "type",
            "partner_company_id",
            "login_id",
            "asset",
            "market",
            "language",
            "description",
            "status",
            "answers",
            "created_at",
            "updated_at",
        ],
        json!({"request_id": string(), "type": {"enum": ["media", "access", "localisation", "enhancement"]},
               "partner_company_id": string(), "login_id": string(),
               "asset": {"oneOf": [{"type": "null"}, object(&["system", "asset_id"], json!({"system": string(), "asset_id": string()}))]},
               "market": nullable(), "language": nullable(), "description": string(),
               "status": {"enum": ["open", "answered", "closed"]},
               "answers": array_of(object(&["answer_id", "message", "created_at"], json!({
                   "answer_id": string(), "message": string(), "author_company_id": nullable(), "created_at": instant()}))),
               "resolution": nullable(), "created_at": instant(), "updated_at": instant()}),
    )
}

/// Partner requests and groups.
fn request_specs() -> Vec<ActionSpec> {
    let group = object(
        &["group_id", "community_id", "name", "member_company_ids"],
        json!({"group_id": string(), "community_id": string(), "name": string(), "member_company_ids": array_of(string())}),
    );
    let members = object(
        &["group_id", "company_ids"],
        json!({"group_id": string(), "company_ids": {"type": "array", "minItems": 1, "items": string()}}),
    );
    vec![
        action(
            "get_request",
            "Read a partner request (media, access, localisation or enhancement) with its answers.",
            object(&["request_id"], json!({"request_id": string()})),
            request_schema(),
        ),
        action(
            "list_requests",
            "List partner requests, optionally by status and type.",
            object(
                &[],
                json!({"status": {"enum": ["open", "answered", "closed"]},
                               "type": {"enum": ["media", "access", "localisation", "enhancement"]}}),
            ),
            object(
                &["requests"],
                json!({"requests": array_of(request_schema())}),
            ),
        ),
        action(
            "answer_request",
            "Answer a partner request; it becomes answered.",
            object(
                &["request_id", "message"],
                json!({"request_id": string(), "message": {"type": "string", "minLength": 1}}),
            ),
            request_schema(),
        ),
        action(
            "close_request",
            "Close a partner request with a resolution.",
            object(
                &["request_id", "resolution"],
                json!({"request_id": string(), "resolution": {"type": "string", "minLength": 1}}),
            ),
            request_schema(),
        ),
        action(
            "create_group",
            "Create a partner group in a community (a segment of its library).",
            object(
                &["community_id", "name"],
                json!({"community_id": string(), "name": {"type": "string", "minLength": 1}}),
            ),
            group.clone(),
        ),
        action(
            "add_group_members",
            "Add partner companies to a group.",
            members.clone(),
            group.clone(),
        ),
        action(
            "remove_group_members",
            "Remove partner companies from a group.",
            members,
            group,
        ),
    ]
}
