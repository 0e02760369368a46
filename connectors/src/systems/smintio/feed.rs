//! The Smint.io change feed: CLAPI-C's sync of licence purchase transactions, read after
//! a `continuation_uuid` \[V\] (the path is our design \[D\]). Smint.io pushes only a
//! "sync now" hint through Pusher, so gridflow polls; the continuation is the poll
//! cursor, and a first read pages to the end of the feed and starts from there (now).
//!
//! Every LPT the sync returns is a change, delivered as `smintio.asset_changed`,
//! `smintio.licence_changed` or both: the simulator says what changed in `change_type`
//! (`content_updated`, `license_terms_updated`) \[D\]; without it (as Smint.io's own
//! answer has no such field) a change may have touched either, so both are delivered.
//! An LPT with `can_be_synced: false` is skipped \[V\]. A change's id is `<lpt
//! uuid>@<version>/<event>` (`last_updated_at` when there is no `version`), the same
//! however often it is read. The sync gives one continuation per page, so every change
//! of a page resumes from the page's start but the last, which resumes after the page:
//! a change read again after a crash is delivered once by its id.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{NAME, SCAN_PAGES, SmintioConnector, rights_window, summary};
use crate::connector::{Error, Result};
use crate::effects::ObservedRights;
use crate::feed::{ChangeFeed, FeedChange, FeedPage};

/// A change of a licensed asset: delivered as `smintio.asset_changed`.
pub const ASSET_CHANGED: &str = "asset_changed";

/// A change of an asset's licence terms: delivered as `smintio.licence_changed`.
pub const LICENCE_CHANGED: &str = "licence_changed";

/// The most LPTs one sync call returns (the simulator's maximum `limit`).
const FEED_PAGE: usize = 100;

/// The events one LPT of the sync is delivered as.
fn kinds(lpt: &Value) -> &'static [&'static str] {
    match lpt["change_type"].as_str() {
        Some("license_terms_updated") => &[LICENCE_CHANGED],
        Some("content_updated") => &[ASSET_CHANGED],
        _ => &[ASSET_CHANGED, LICENCE_CHANGED],
    }
}

/// The payload of one change: the asset's summary, its normalised licence window as
/// `observed_rights`, and the change's id, version and instant.
pub(super) fn payload(lpt: &Value, change_id: &str) -> Value {
    let mut data = summary(lpt);
    let rights = ObservedRights {
        system: NAME.to_owned(),
        asset_id: lpt["uuid"].as_str().unwrap_or_default().to_owned(),
        window: rights_window(lpt),
    };
    data["observed_rights"] = json!([rights]);
    data["change_id"] = json!(change_id);
    data["version"] = lpt.get("version").cloned().unwrap_or(Value::Null);
    data["last_updated_at"] = lpt.get("last_updated_at").cloned().unwrap_or(Value::Null);
    data["license_terms"] = lpt
        .get("license_terms")
        .cloned()
        .unwrap_or_else(|| json!([]));
    data
}

fn unexpected(message: String) -> Error {
    Error::permanent("unexpected_response", message)
}

fn continuation_of(page: &Value) -> Result<String> {
    page["continuation_uuid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| unexpected("smintio sync answer has no continuation_uuid".to_owned()))
}

fn transactions(page: &Value) -> &[Value] {
    page["license_purchase_transactions"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

#[async_trait]
impl ChangeFeed for SmintioConnector {
    fn source(&self) -> &str {
        NAME
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<FeedPage> {
        let Some(cursor) = cursor else {
            return self.baseline().await;
        };
        let rows = limit.clamp(1, FEED_PAGE);
        let page = self.feed(Some(cursor), rows as u32).await?;
        let next = continuation_of(&page)?;
        let lpts = transactions(&page);
        let mut changes = Vec::new();
        for lpt in lpts {
            if lpt["can_be_synced"] == false {
                continue;
            }
            let uuid = lpt["uuid"].as_str().filter(|uuid| !uuid.is_empty());
            let Some(uuid) = uuid else {
                return Err(unexpected(format!(
                    "smintio sync returned a transaction without uuid after {cursor}"
                )));
            };
            let stamp = match &lpt["version"] {
                Value::Number(version) => version.to_string(),
                _ => lpt["last_updated_at"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            for kind in kinds(lpt) {
                let id = format!("{uuid}@{stamp}/{kind}");
                changes.push(FeedChange {
                    data: payload(lpt, &id),
                    id,
                    kind: (*kind).to_owned(),
                    cursor: cursor.to_owned(),
                });
            }
        }
        if let Some(last) = changes.last_mut() {
            last.cursor.clone_from(&next);
        }
        let count = page["count"].as_u64().unwrap_or(lpts.len() as u64) as usize;
        Ok(FeedPage {
            changes,
            cursor: next,
            more: count >= rows,
        })
    }
}

impl SmintioConnector {
    /// The first read: pages to the end of the feed and returns its continuation.
    async fn baseline(&self) -> Result<FeedPage> {
        let mut continuation: Option<String> = None;
        for _ in 0..SCAN_PAGES {
            let page = self.feed(continuation.as_deref(), FEED_PAGE as u32).await?;
            let next = continuation_of(&page)?;
            let count = page["count"].as_u64().unwrap_or(0) as usize;
            continuation = Some(next);
            if count < FEED_PAGE {
                break;
            }
        }
        Ok(FeedPage {
            changes: Vec::new(),
            cursor: continuation.unwrap_or_default(),
            more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_without_its_kind_is_both_events() {
        assert_eq!(
            kinds(&json!({"change_type": "license_terms_updated"})),
            [LICENCE_CHANGED]
        );
        assert_eq!(
            kinds(&json!({"change_type": "content_updated"})),
            [ASSET_CHANGED]
        );
        assert_eq!(kinds(&json!({})), [ASSET_CHANGED, LICENCE_CHANGED]);
        let data = payload(
            &json!({"uuid": "lpt-1", "version": 3, "license_terms": [
                {"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2026-06-30T00:00:00Z"}]}),
            "lpt-1@3/licence_changed",
        );
        assert_eq!(
            data["observed_rights"],
            json!([{"system": "smintio", "asset_id": "lpt-1",
                    "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2026-06-30T00:00:00Z"}])
        );
        assert_eq!(data["change_id"], "lpt-1@3/licence_changed");
    }
}
