//! The community library's catalogue on the hub \[D\]: one entry per shared asset with the
//! metadata partners see beside it (status, language, market, region, expiry, the partner
//! companies it is assigned to), kept in step with the DAMs by the metadata sync:
//! `put_library_entry` (create or replace an entry; its `revision` moves only when
//! something changed) and `list_library_entries` (by id, or paged by cursor).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{NAME, TradingGridConnector};
use crate::connector::{ActionSpec, Result};
use crate::rest::{Request, parse_arguments, required, segment};
use crate::schema::{action, array_of, object, string};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutArgs {
    community_id: String,
    entry_id: String,
    source: Value,
    title: Option<String>,
    status: String,
    language: Option<String>,
    market: Option<String>,
    region: Option<String>,
    expires_at: Option<String>,
    partner_company_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    community_id: String,
    entry_ids: Option<Vec<String>>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn nullable() -> Value {
    json!({"type": ["string", "null"]})
}

fn entry_schema(changed: bool) -> Value {
    let mut required = vec![
        "entry_id",
        "community_id",
        "source",
        "status",
        "partner_company_ids",
        "revision",
    ];
    let mut properties = json!({
        "entry_id": string(), "community_id": string(),
        "source": object(&["system", "asset_id"], json!({"system": string(), "asset_id": string()})),
        "title": nullable(), "status": string(), "language": nullable(), "market": nullable(), "region": nullable(),
        "expires_at": nullable(), "partner_company_ids": array_of(string()),
        "revision": {"type": "integer"}, "updated_at": nullable(),
    });
    if changed {
        required.push("changed");
        properties["changed"] = json!({"type": "boolean"});
    }
    object(&required, properties)
}

/// The catalogue entries of the library actions.
pub(super) fn specs() -> Vec<ActionSpec> {
    let text = json!({"type": "string", "minLength": 1});
    vec![
        action(
            "put_library_entry",
            "Create or replace a library entry of a community: the metadata partners see beside a shared asset (status, language, market, region, expiry) and the partner companies it is assigned to; the revision moves only when something changed.",
            object(
                &[
                    "community_id",
                    "entry_id",
                    "source",
                    "status",
                    "partner_company_ids",
                ],
                json!({"community_id": string(), "entry_id": text.clone(),
                       "source": object(&["system", "asset_id"], json!({"system": text.clone(), "asset_id": text.clone()})),
                       "title": nullable(), "status": text, "language": nullable(), "market": nullable(),
                       "region": nullable(), "expires_at": nullable(), "partner_company_ids": array_of(string())}),
            ),
            entry_schema(true),
        ),
        action(
            "list_library_entries",
            "List a community's library entries, those named by entry_ids or one page after cursor.",
            object(
                &["community_id"],
                json!({"community_id": string(), "entry_ids": array_of(string()), "cursor": string(),
                       "limit": {"type": "integer", "minimum": 1, "maximum": 500}}),
            ),
            object(
                &["entries", "next_cursor"],
                json!({"entries": array_of(entry_schema(false)), "next_cursor": nullable()}),
            ),
        ),
    ]
}

impl TradingGridConnector {
    /// `trading_grid.put_library_entry`.
    pub(super) async fn put_library_entry(&self, arguments: &Value, key: &str) -> Result<Value> {
        let args: PutArgs = parse_arguments(NAME, "put_library_entry", arguments)?;
        let path = format!(
            "/hub/v1/communities/{}/library/{}",
            segment(&args.community_id),
            segment(&args.entry_id)
        );
        let body = json!({"source": args.source, "title": args.title, "status": args.status,
                          "language": args.language, "market": args.market, "region": args.region,
                          "expires_at": args.expires_at, "partner_company_ids": args.partner_company_ids});
        let entry = self
            .client
            .call_idempotent(Method::PUT, path, body, key)
            .await?;
        required(&entry, "/entry_id", "trading grid library entry")?;
        Ok(entry)
    }

    /// `trading_grid.list_library_entries`.
    pub(super) async fn list_library_entries(&self, arguments: &Value) -> Result<Value> {
        let args: ListArgs = parse_arguments(NAME, "list_library_entries", arguments)?;
        let path = format!(
            "/hub/v1/communities/{}/library",
            segment(&args.community_id)
        );
        let answer = self
            .client
            .call(
                &Request::get(path)
                    .query_opt("entry_ids", args.entry_ids.map(|ids| ids.join(",")))
                    .query_opt("cursor", args.cursor)
                    .query_opt("limit", args.limit),
            )
            .await?;
        let entries = required(&answer, "/entries", "trading grid library")?.clone();
        Ok(json!({"entries": entries, "next_cursor": answer["next_cursor"].clone()}))
    }
}
