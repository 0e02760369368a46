//! What comes in from the hub besides answers: its signed callbacks
//! (`{event_id, event, occurred_at, data}`, [`read_callback`]), read into the same event
//! and payload as the change feed gives for the same event, and what events mean for the
//! distribution ledger ([`event_effects`]): a download, an acknowledgement and a
//! withdrawal change the status of the deliveries of their post.

use serde_json::{Value, json};

use super::publish::{CHANNEL, instant};
use crate::connector::{Error, EventEffects, InboundEvent, Result};
use crate::effects::{DeliveryStatus, LedgerChange, StatusChange};

/// The payload of a hub event as the poller and callbacks deliver it: the event's `data`
/// with the event's id as `change_id` and its `occurred_at`.
pub(super) fn payload(data: &Value, event_id: &str, occurred_at: &Value) -> Value {
    let mut payload = data.clone();
    if let Value::Object(fields) = &mut payload {
        fields.insert("change_id".to_owned(), Value::from(event_id));
        fields.insert("occurred_at".to_owned(), occurred_at.clone());
    }
    payload
}

/// Reads a callback body `{event_id, event, occurred_at, data}`; event `post.withdrawn`
/// is named `post_withdrawn`.
pub(super) fn read_callback(body: &Value) -> Result<InboundEvent> {
    let field = |name: &str| {
        body[name]
            .as_str()
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                Error::permanent(
                    "invalid_event",
                    format!("trading grid callback: {name} must be a non-empty string"),
                )
            })
    };
    let id = field("event_id")?;
    let name = field("event")?;
    if !body["data"].is_object() {
        return Err(Error::permanent(
            "invalid_event",
            format!("trading grid callback {id}: data must be an object"),
        ));
    }
    Ok(InboundEvent {
        id: id.to_owned(),
        name: name.replace('.', "_"),
        payload: payload(&body["data"], id, &body["occurred_at"]),
    })
}

fn text(payload: &Value, field: &str) -> Option<String> {
    payload[field]
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// The ledger changes of event `event` (without the connector prefix) with `payload`.
pub(super) fn event_effects(event: &str, payload: &Value) -> EventEffects {
    let Some(post_id) = text(payload, "post_id") else {
        return EventEffects::default();
    };
    let change = |status, partner, receipt, at, detail| {
        LedgerChange::Status(StatusChange {
            status,
            channel: CHANNEL.to_owned(),
            reference: post_id.clone(),
            partner,
            receipt,
            at,
            detail: Some(detail),
        })
    };
    let ledger = match event {
        "document_downloaded" => vec![change(
            DeliveryStatus::Downloaded,
            text(payload, "company_id"),
            text(payload, "document_id"),
            instant(&payload["downloaded_at"]),
            json!({"login_id": payload["login_id"]}),
        )],
        "post_acknowledged" => vec![change(
            DeliveryStatus::Acknowledged,
            text(payload, "company_id"),
            None,
            instant(&payload["created_at"]),
            json!({"login_id": payload["login_id"], "ack_type": payload["ack_type"]}),
        )],
        "post_withdrawn" => {
            let partners: Vec<Option<String>> = match payload["partner_company_ids"].as_array() {
                Some(ids) if !ids.is_empty() => ids
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|id| Some(id.to_owned()))
                    .collect(),
                _ => vec![None],
            };
            partners
                .into_iter()
                .map(|partner| {
                    change(
                        DeliveryStatus::Withdrawn,
                        partner,
                        text(payload, "document_id"),
                        instant(&payload["withdrawn_at"]),
                        json!({"reason": payload["reason"]}),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    };
    EventEffects {
        ledger,
        rights: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_reads_as_the_feed_gives_it() {
        let body = json!({"event_id": "evt-000009", "event": "document.downloaded",
            "occurred_at": "2026-12-07T09:00:00Z",
            "data": {"post_id": "post-1", "document_id": "doc-2", "company_id": "GC1", "login_id": "a@b",
                     "sha256": "ab", "downloaded_at": "2026-12-07T08:59:59Z"}});
        let event = read_callback(&body).unwrap();
        assert_eq!(event.id, "evt-000009");
        assert_eq!(event.name, "document_downloaded");
        assert_eq!(event.payload["change_id"], "evt-000009");
        assert_eq!(event.payload["occurred_at"], "2026-12-07T09:00:00Z");
        let effects = event_effects(&event.name, &event.payload);
        let [LedgerChange::Status(status)] = effects.ledger.as_slice() else {
            panic!("one status change: {effects:?}");
        };
        assert_eq!(status.status, DeliveryStatus::Downloaded);
        assert_eq!(
            (status.partner.as_deref(), status.receipt.as_deref()),
            (Some("GC1"), Some("doc-2"))
        );
        assert_eq!(status.detail, Some(json!({"login_id": "a@b"})));
        assert_eq!(status.at, instant(&json!("2026-12-07T08:59:59Z")));
        for bad in [
            json!({"event": "x", "data": {}}),
            json!({"event_id": "e", "event": "x", "data": 1}),
        ] {
            assert_eq!(read_callback(&bad).unwrap_err().code(), "invalid_event");
        }
    }

    #[test]
    fn withdrawals_reach_each_partner_named_or_all() {
        let all = event_effects(
            "post_withdrawn",
            &json!({"post_id": "p", "document_id": null, "partner_company_ids": [], "reason": "recall"}),
        );
        assert!(matches!(
            all.ledger.as_slice(),
            [LedgerChange::Status(StatusChange {
                partner: None,
                receipt: None,
                status: DeliveryStatus::Withdrawn,
                ..
            })]
        ));
        let some = event_effects(
            "post_withdrawn",
            &json!({"post_id": "p", "document_id": "d", "partner_company_ids": ["A", "B"]}),
        );
        assert_eq!(some.ledger.len(), 2);
        assert!(
            event_effects("request_created", &json!({"request_id": "r"}))
                .ledger
                .is_empty()
        );
        assert!(matches!(
            event_effects(
                "post_acknowledged",
                &json!({"post_id": "p", "company_id": "A"})
            )
            .ledger
            .as_slice(),
            [LedgerChange::Status(StatusChange {
                status: DeliveryStatus::Acknowledged,
                ..
            })]
        ));
    }
}
