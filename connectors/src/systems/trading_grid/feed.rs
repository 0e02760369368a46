//! The Trading Grid change feed. The partner hub offers no webhook we can rely on, so the
//! poller reads the hub's event feed `GET /hub/v1/events?after=<seq>&limit=<n>` \[D\]:
//! events in the envelope of the hub's event callbacks (`{event, occurred_at, data}`),
//! numbered by `seq`, with `latest` (the highest `seq`) and `has_more`.
//!
//! The cursor is the `seq` of the last event delivered; a change's id is the event's
//! `event_id`. Event `issue.created` is delivered as `trading_grid.issue_created`.

use std::time::Duration;

use async_trait::async_trait;

use super::{NAME, TradingGridConnector};
use crate::connector::{Error, Result};
use crate::feed::{ChangeFeed, FeedChange, FeedPage};
use crate::rest::{Request, required};

fn parse_cursor(text: &str) -> Result<u64> {
    text.parse().map_err(|_| {
        Error::permanent(
            "invalid_cursor",
            format!("trading_grid poll cursor {text:?} is not an event sequence number"),
        )
    })
}

fn unexpected(message: String) -> Error {
    Error::permanent("unexpected_response", message)
}

#[async_trait]
impl ChangeFeed for TradingGridConnector {
    fn source(&self) -> &str {
        NAME
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<FeedPage> {
        let after = cursor.map(parse_cursor).transpose()?;
        let request = Request::get("/hub/v1/events")
            .query("after", after.unwrap_or(0))
            .query("limit", if after.is_some() { limit.max(1) } else { 0 });
        let answer = self.client.call(&request).await?;
        let latest = answer["latest"]
            .as_u64()
            .ok_or_else(|| unexpected("hub events answer has no latest".to_owned()))?;
        let Some(after) = after else {
            // The first read: start after the latest event.
            return Ok(FeedPage {
                changes: Vec::new(),
                cursor: latest.to_string(),
                more: false,
            });
        };
        if after > latest {
            // The hub's feed was reset (it numbers from 1 again): waiting for it to pass
            // the old cursor would skip every new event until then.
            tracing::warn!(
                cursor = after,
                latest,
                "hub event feed is behind the cursor; it was reset, starting from its latest event"
            );
            return Ok(FeedPage {
                changes: Vec::new(),
                cursor: latest.to_string(),
                more: false,
            });
        }
        let events = required(&answer, "/events", "hub events")?
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let mut position = after;
        let mut changes = Vec::with_capacity(events.len());
        for event in events {
            let seq = event["seq"]
                .as_u64()
                .filter(|seq| *seq > position)
                .ok_or_else(|| {
                    unexpected(format!("hub event out of order after {position}: {event}"))
                })?;
            let name = event["event"].as_str().unwrap_or_default();
            let id = event["event_id"].as_str().unwrap_or_default();
            if name.is_empty() || id.is_empty() {
                return Err(unexpected(format!(
                    "hub event {seq} has no event name or id"
                )));
            }
            position = seq;
            let data = super::inbound::payload(&event["data"], id, &event["occurred_at"]);
            changes.push(FeedChange {
                id: id.to_owned(),
                kind: name.replace('.', "_"),
                data,
                cursor: seq.to_string(),
            });
        }
        Ok(FeedPage {
            changes,
            cursor: position.to_string(),
            more: answer["has_more"].as_bool().unwrap_or(false),
        })
    }
}
