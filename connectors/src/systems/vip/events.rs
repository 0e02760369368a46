//! The events VIP emits through its signed webhooks \[D\] (`vip.md`): the body `{id, type,
//! occurred_at, data}` is read by `read_webhook` as the event `vip.<type with _ for .>`
//! (`delivery.downloaded` → `vip.delivery_downloaded`) whose payload is `data` with
//! `occurred_at`; the body's `id` makes a redelivery a duplicate. The signature
//! (`X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`) is checked before, by
//! gridflow's event route.
//!
//! `effects` maps the events that change a delivery to the distribution ledger, matched
//! by channel `vip`, reference the package id and receipt the delivery id: downloaded,
//! acknowledged, failed, superseded, revoked (as `withdrawn`: the recipient lost access),
//! and a withdrawn package (every delivery of the package). A published package and a
//! delivered delivery change nothing there: the action that published records the
//! deliveries, with the digests the events do not carry.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::{NAME, instant};
use crate::EventSpec;
use crate::connector::{Error, EventEffects, InboundEvent, Result};
use crate::effects::{DeliveryStatus, Effects, LedgerChange, StatusChange};
use crate::schema::{array_of, event, open_object, string};

fn instant_schema() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable() -> Value {
    json!({"type": ["string", "null"]})
}

/// A delivery event's payload: the delivery's ids and version, the instant it occurred,
/// and `extra` fields (`required` among them).
fn delivery_payload(required: &[&str], extra: Value) -> Value {
    let mut properties = json!({
        "delivery_id": string(), "package_id": string(), "recipient_id": string(),
        "version": {"type": "integer"}, "occurred_at": instant_schema(),
    });
    for (name, schema) in extra.as_object().into_iter().flatten() {
        properties[name] = schema.clone();
    }
    let mut names = vec![
        "delivery_id",
        "package_id",
        "recipient_id",
        "version",
        "occurred_at",
    ];
    names.extend_from_slice(required);
    open_object(&names, properties)
}

fn status_event(name: &str, description: &str, payload: Value) -> EventSpec {
    event(name, description, payload).with_effects(Effects {
        ledger: true,
        ..Effects::default()
    })
}

/// Every event of VIP, as the catalogue lists it.
pub(super) static EVENTS: LazyLock<Vec<EventSpec>> = LazyLock::new(|| {
    vec![
        event(
            "package_published",
            "A package was published: it went to its recipients (one delivery each, listed in delivery_ids).",
            open_object(
                &["package_id", "version", "occurred_at"],
                json!({"package_id": string(), "title": string(), "version": {"type": "integer"},
                       "delivery_ids": array_of(string()), "rights": {"type": "object"},
                       "occurred_at": instant_schema()}),
            ),
        ),
        event(
            "delivery_delivered",
            "A recipient received a package's version.",
            delivery_payload(&["delivered_at"], json!({"delivered_at": instant_schema()})),
        ),
        status_event(
            "delivery_downloaded",
            "A recipient downloaded a delivery for the first time (downloaded_at).",
            delivery_payload(
                &["downloaded_at"],
                json!({"downloaded_at": instant_schema()}),
            ),
        ),
        status_event(
            "delivery_acknowledged",
            "A recipient acknowledged a delivery (who, when, with an optional note).",
            delivery_payload(
                &["acknowledged_at"],
                json!({"acknowledged_at": instant_schema(), "acknowledged_by": nullable(), "note": nullable()}),
            ),
        ),
        status_event(
            "delivery_failed",
            "The platform could not deliver a package to a recipient (error says why).",
            delivery_payload(
                &["error", "failed_at"],
                json!({"error": string(), "failed_at": instant_schema()}),
            ),
        ),
        status_event(
            "delivery_superseded",
            "A new version of the package replaced a recipient's delivery (superseded_by_version).",
            delivery_payload(
                &["superseded_by_version", "superseded_at"],
                json!({"superseded_by_version": {"type": "integer"}, "superseded_at": instant_schema()}),
            ),
        ),
        status_event(
            "delivery_revoked",
            "One recipient lost access to a delivery (reason, when given).",
            delivery_payload(
                &["revoked_at"],
                json!({"reason": nullable(), "revoked_at": instant_schema()}),
            ),
        ),
        status_event(
            "package_withdrawn",
            "A package was withdrawn (rights expired, recall): every recipient lost access.",
            open_object(
                &["package_id", "withdrawn_at", "occurred_at"],
                json!({"package_id": string(), "reason": nullable(), "withdrawn_at": instant_schema(),
                       "revoked_delivery_ids": array_of(string()), "occurred_at": instant_schema()}),
            ),
        ),
    ]
});

/// Reads VIP's webhook body `{id, type, occurred_at, data}`.
pub(super) fn read_webhook(body: &Value) -> Result<InboundEvent> {
    let invalid =
        |message: String| Error::permanent("invalid_event", format!("vip webhook: {message}"));
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| invalid(format!("the body has no {field} string")))
    };
    let id = text("id")?;
    let kind = text("type")?;
    let occurred_at = text("occurred_at")?;
    if !kind
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    {
        return Err(invalid(format!(
            "type {kind:?} may only hold lower-case letters, digits, _ and ."
        )));
    }
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return Err(invalid(format!("event {id}: data must be an object")));
    };
    let mut payload = data.clone();
    payload.insert("occurred_at".to_owned(), json!(occurred_at));
    Ok(InboundEvent {
        id: id.to_owned(),
        name: kind.replace('.', "_"),
        payload: Value::Object(payload),
    })
}

/// The ledger changes of event `name` (without `vip.`) with `payload`.
pub(super) fn effects(name: &str, payload: &Value) -> EventEffects {
    let field = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(package_id) = field("package_id") else {
        return EventEffects::default();
    };
    let (status, at, detail) = match name {
        "package_withdrawn" => {
            let change = StatusChange {
                status: DeliveryStatus::Withdrawn,
                channel: NAME.to_owned(),
                reference: package_id,
                partner: None,
                receipt: None,
                at: instant(&payload["withdrawn_at"]),
                detail: Some(json!({"reason": payload["reason"]})),
            };
            return EventEffects {
                ledger: vec![LedgerChange::Status(change)],
                rights: Vec::new(),
            };
        }
        "delivery_downloaded" => (DeliveryStatus::Downloaded, "downloaded_at", None),
        "delivery_acknowledged" => (
            DeliveryStatus::Acknowledged,
            "acknowledged_at",
            Some(json!({"by": payload["acknowledged_by"], "note": payload["note"]})),
        ),
        "delivery_failed" => (
            DeliveryStatus::Failed,
            "failed_at",
            Some(json!({"error": payload["error"]})),
        ),
        "delivery_superseded" => (
            DeliveryStatus::Superseded,
            "superseded_at",
            Some(json!({"version": payload["superseded_by_version"]})),
        ),
        "delivery_revoked" => (
            DeliveryStatus::Withdrawn,
            "revoked_at",
            Some(json!({"reason": payload["reason"]})),
        ),
        _ => return EventEffects::default(),
    };
    let Some(delivery_id) = field("delivery_id") else {
        return EventEffects::default();
    };
    let change = StatusChange {
        status,
        channel: NAME.to_owned(),
        reference: package_id,
        partner: field("recipient_id"),
        receipt: Some(delivery_id),
        at: instant(&payload[at]).or_else(|| instant(&payload["occurred_at"])),
        detail,
    };
    EventEffects {
        ledger: vec![LedgerChange::Status(change)],
        rights: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_body_becomes_an_event_with_data_and_its_instant() {
        let body = json!({"id": "evt-00101", "type": "delivery.downloaded", "occurred_at": "2026-12-07T10:00:00Z",
                          "data": {"delivery_id": "dlv-00102", "package_id": "pkg-1", "recipient_id": "rcp-a",
                                   "version": 1, "downloaded_at": "2026-12-07T10:00:00Z"}});
        let event = read_webhook(&body).unwrap();
        assert_eq!(event.id, "evt-00101");
        assert_eq!(event.name, "delivery_downloaded");
        assert_eq!(event.payload["occurred_at"], "2026-12-07T10:00:00Z");
        assert_eq!(event.payload["delivery_id"], "dlv-00102");
        let spec = EVENTS.iter().find(|spec| spec.name == event.name).unwrap();
        let validator = jsonschema::validator_for(&spec.payload).unwrap();
        assert!(validator.is_valid(&event.payload));

        let effects = effects(&event.name, &event.payload);
        let [LedgerChange::Status(change)] = effects.ledger.as_slice() else {
            panic!("one status change: {effects:?}");
        };
        assert_eq!(change.status, DeliveryStatus::Downloaded);
        assert_eq!(
            (change.channel.as_str(), change.reference.as_str()),
            ("vip", "pkg-1")
        );
        assert_eq!(change.receipt.as_deref(), Some("dlv-00102"));
        assert_eq!(change.at.unwrap().to_rfc3339(), "2026-12-07T10:00:00+00:00");
    }

    #[test]
    fn bad_bodies_are_refused_naming_what_is_wrong() {
        for (body, expected) in [
            (
                json!({"type": "package.published", "occurred_at": "x", "data": {}}),
                "no id",
            ),
            (
                json!({"id": "e", "occurred_at": "x", "data": {}}),
                "no type",
            ),
            (
                json!({"id": "e", "type": "Package Published", "occurred_at": "x", "data": {}}),
                "may only hold",
            ),
            (
                json!({"id": "e", "type": "package.published", "occurred_at": "x", "data": []}),
                "data must be an object",
            ),
        ] {
            let error = read_webhook(&body).unwrap_err();
            assert_eq!(error.code(), "invalid_event");
            assert!(error.message().contains(expected), "{error}");
        }
    }

    #[test]
    fn status_events_declare_ledger_effects_and_others_do_not() {
        for spec in EVENTS.iter() {
            let changes_status = !matches!(
                spec.name.as_str(),
                "package_published" | "delivery_delivered"
            );
            assert_eq!(spec.effects.ledger, changes_status, "{}", spec.name);
        }
        let withdrawn = effects(
            "package_withdrawn",
            &json!({"package_id": "pkg-1", "reason": "licence ended", "withdrawn_at": "2026-12-07T10:00:00Z"}),
        );
        let [LedgerChange::Status(change)] = withdrawn.ledger.as_slice() else {
            panic!("{withdrawn:?}");
        };
        assert_eq!(
            (change.status, change.receipt.as_deref()),
            (DeliveryStatus::Withdrawn, None)
        );
        assert!(
            effects("package_published", &json!({"package_id": "pkg-1"}))
                .ledger
                .is_empty()
        );
        assert!(effects("delivery_revoked", &json!({})).ledger.is_empty());
    }
}
