//! The OTMM change feed: OTMM has no webhooks \[V\], so changes are found by polling the
//! search for assets whose `date_last_updated` is on or after the cursor's instant,
//! sorted by it (`otmm.md`, "Connector strategy" \[D\]; the date operator and sort field
//! \[I\]).
//!
//! A change is an asset (latest version) with a new `date_last_updated`; its id is
//! `<asset id>@<date_last_updated>`, so one edit is one change however often it is read.
//! The cursor is `{"since": <instant>, "seen": [ids of the changes at that instant
//! already delivered]}`: the search is inclusive of `since` (two assets may share an
//! instant), and the `seen` list keeps a change at the boundary from being delivered
//! twice.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{NAME, OtmmConnector};
use crate::connector::{Error, Result};
use crate::feed::{ChangeFeed, FeedChange, FeedPage};
use crate::rest::{Request, required};

/// The system field of an asset's last change \[I\].
const DATE_LAST_UPDATED_FIELD: &str = "ARTESIA.FIELD.DATE LAST UPDATED";

/// Assets asked for per search request (the simulator's maximum `limit`).
const SEARCH_PAGE: usize = 1000;

/// The kind of every OTMM change: delivered as `otmm.asset_changed`.
pub const ASSET_CHANGED: &str = "asset_changed";

/// Where the poller stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The `date_last_updated` of the last change delivered.
    since: Option<DateTime<Utc>>,
    /// Ids of the changes at `since` already delivered.
    seen: BTreeSet<String>,
}

impl Cursor {
    fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|error| {
            Error::permanent(
                "invalid_cursor",
                format!("otmm poll cursor {text:?} is not {{since, seen}}: {error}"),
            )
        })
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The cursor once the change `id` at `at` has been delivered.
    fn after(&self, id: &str, at: DateTime<Utc>) -> Self {
        let mut seen = if self.since == Some(at) {
            self.seen.clone()
        } else {
            BTreeSet::new()
        };
        seen.insert(id.to_owned());
        Self {
            since: Some(at),
            seen,
        }
    }
}

/// One asset of a search answer, with the instant it last changed.
struct Hit<'a> {
    asset: &'a Value,
    id: String,
    at: DateTime<Utc>,
}

fn hit(asset: &Value) -> Result<Hit<'_>> {
    let asset_id = asset["asset_id"].as_str().unwrap_or_default();
    let text = asset["date_last_updated"].as_str().unwrap_or_default();
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            Error::permanent(
                "unexpected_response",
                format!("otmm asset {asset_id} has date_last_updated {text:?}, not an instant"),
            )
        })?
        .with_timezone(&Utc);
    Ok(Hit {
        asset,
        id: format!("{asset_id}@{text}"),
        at,
    })
}

impl OtmmConnector {
    /// One page of the search for assets changed on or after `since`, sorted by change.
    async fn changed_since(
        &self,
        since: Option<DateTime<Utc>>,
        descending: bool,
        after: usize,
        limit: usize,
    ) -> Result<(Value, u64)> {
        let mut form = vec![
            ("keyword_query".to_owned(), "*".to_owned()),
            ("load_type".to_owned(), "metadata".to_owned()),
            ("level_of_detail".to_owned(), "full".to_owned()),
            ("after".to_owned(), after.to_string()),
            ("limit".to_owned(), limit.to_string()),
            (
                "sort".to_owned(),
                format!(
                    "{}_{DATE_LAST_UPDATED_FIELD}",
                    if descending { "desc" } else { "asc" }
                ),
            ),
        ];
        if let Some(since) = since {
            let conditions = json!({"search_condition_list": {"search_condition": [{
                "type": "com.artesia.search.SearchScalarCondition",
                "metadata_field_id": DATE_LAST_UPDATED_FIELD,
                "relational_operator_id": "ARTESIA.OPERATOR.DATE.IS_ON_OR_AFTER",
                "value": since.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)}]}});
            form.push(("search_condition_list".to_owned(), conditions.to_string()));
        }
        let answer = self
            .client
            .call(&Request::new(Method::POST, "/search/text").form(form))
            .await?;
        let total = required(
            &answer,
            "/search_result_resource/search_result",
            "otmm search",
        )?["total_hit_count"]
            .as_u64()
            .unwrap_or(0);
        Ok((answer, total))
    }
}

fn assets(answer: &Value) -> &[Value] {
    answer["search_result_resource"]["asset_list"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

#[async_trait]
impl ChangeFeed for OtmmConnector {
    fn source(&self) -> &str {
        NAME
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<FeedPage> {
        let limit = limit.max(1);
        let Some(text) = cursor else {
            return self.baseline().await;
        };
        let cursor = Cursor::parse(text)?;
        let mut position = cursor.clone();
        let mut changes = Vec::new();
        // The changes already seen at `since` (and, if the server compares more coarsely,
        // older ones) come first: page on past them, so that however many share an
        // instant, the feed moves.
        let page = (limit + cursor.seen.len()).min(SEARCH_PAGE);
        let mut offset = 0;
        let more = loop {
            let (answer, total) = self
                .changed_since(cursor.since, false, offset, page)
                .await?;
            let listed = assets(&answer);
            for (index, asset) in listed.iter().enumerate() {
                let hit = hit(asset)?;
                let delivered = cursor.since.is_some_and(|since| hit.at < since)
                    || (cursor.since == Some(hit.at) && cursor.seen.contains(&hit.id));
                if delivered {
                    continue;
                }
                position = position.after(&hit.id, hit.at);
                let mut data = self.summary(hit.asset);
                data["date_last_updated"] = hit.asset["date_last_updated"].clone();
                data["change_id"] = json!(hit.id);
                changes.push(FeedChange {
                    id: hit.id,
                    kind: ASSET_CHANGED.to_owned(),
                    data,
                    cursor: position.text(),
                });
                if changes.len() == limit {
                    offset += index + 1;
                    break;
                }
            }
            if changes.len() < limit {
                offset += listed.len();
            }
            if changes.len() == limit {
                break (offset as u64) < total;
            }
            if listed.is_empty() || (offset as u64) >= total {
                break false;
            }
        };
        Ok(FeedPage {
            changes,
            cursor: position.text(),
            more,
        })
    }
}

impl OtmmConnector {
    /// The first read: no change, and the position of the latest change so far.
    async fn baseline(&self) -> Result<FeedPage> {
        let (answer, _) = self.changed_since(None, true, 0, 1).await?;
        let Some(latest) = assets(&answer).first() else {
            return Ok(FeedPage {
                changes: Vec::new(),
                cursor: Cursor::default().text(),
                more: false,
            });
        };
        let since = hit(latest)?.at;
        // Every change at that instant counts as seen, not only the one listed first.
        let mut cursor = Cursor {
            since: Some(since),
            seen: BTreeSet::new(),
        };
        let mut offset = 0;
        loop {
            let (answer, total) = self
                .changed_since(Some(since), false, offset, SEARCH_PAGE)
                .await?;
            let listed = assets(&answer);
            for asset in listed {
                let hit = hit(asset)?;
                if hit.at == since {
                    cursor.seen.insert(hit.id);
                }
            }
            offset += listed.len();
            if listed.is_empty() || (offset as u64) >= total {
                break;
            }
        }
        Ok(FeedPage {
            changes: Vec::new(),
            cursor: cursor.text(),
            more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_keeps_the_changes_seen_at_its_instant_only() {
        let first = DateTime::parse_from_rfc3339("2026-11-22T09:00:00.001Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = DateTime::parse_from_rfc3339("2026-11-22T09:00:00.002Z")
            .unwrap()
            .with_timezone(&Utc);
        let cursor = Cursor::default().after("a@1", first).after("b@1", first);
        assert_eq!(cursor.seen.len(), 2);
        let moved = cursor.after("c@2", later);
        assert_eq!(moved.since, Some(later));
        assert_eq!(moved.seen, BTreeSet::from(["c@2".to_owned()]));
        assert_eq!(Cursor::parse(&moved.text()).unwrap(), moved);
        assert!(Cursor::parse("17").is_err());
    }
}
