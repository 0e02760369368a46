//! The history envelope and its hash chain (DESIGN.md §4).
//!
//! Every event of an instance is recorded as a [`RecordedEvent`] numbered `seq` = 1, 2, 3…
//! with `hash = sha256(prev_hash ‖ canonical JSON of {seq, type, at, actor, data})`.
//! The first event's `prev_hash` is [`GENESIS_HASH`]. The canonical JSON is specified in
//! ARCHITECTURE.md: object keys sorted by their UTF-8 bytes, no insignificant white space,
//! numbers and strings as serde_json writes them, `at` in RFC 3339 UTC with microseconds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::Event;
use crate::id::InstanceId;

/// `prev_hash` of an instance's first event: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event as stored and exported: the event, its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The instance this event belongs to.
    pub instance_id: InstanceId,
    /// Position in the instance's history, from 1.
    pub seq: u64,
    /// Event type, such as `step_succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (UTC).
    pub at: DateTime<Utc>,
    /// `system` or the acting user.
    pub actor: String,
    /// Event-specific data.
    pub data: Value,
    /// Hash of the previous event ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical JSON)`, lowercase hex.
    pub hash: String,
}

impl RecordedEvent {
    /// Records `event` as number `seq` after the event whose hash is `prev_hash`.
    pub fn record(instance_id: &InstanceId, seq: u64, prev_hash: &str, event: &Event) -> Self {
        let (event_type, data) = event.body.type_and_data();
        let hash = chain_hash(prev_hash, seq, &event_type, event.at, &event.actor, &data);
        Self {
            instance_id: instance_id.clone(),
            seq,
            event_type,
            at: event.at,
            actor: event.actor.clone(),
            data,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }

    /// Decodes the domain event back from the envelope.
    pub fn event(&self) -> Result<Event, serde_json::Error> {
        Event::from_type_and_data(&self.event_type, &self.data, self.at, &self.actor)
    }

    /// Recomputes the hash from the envelope's content.
    pub fn computed_hash(&self) -> String {
        chain_hash(
            &self.prev_hash,
            self.seq,
            &self.event_type,
            self.at,
            &self.actor,
            &self.data,
        )
    }
}

/// Records `events` as the continuation of a chain whose last event is number `after_seq`
/// with hash `prev_hash` (0 and [`GENESIS_HASH`] for a new history).
pub fn record_chain<'e>(
    instance_id: &InstanceId,
    after_seq: u64,
    prev_hash: &str,
    events: impl IntoIterator<Item = &'e Event>,
) -> Vec<RecordedEvent> {
    let mut prev_hash = prev_hash.to_owned();
    let mut seq = after_seq;
    events
        .into_iter()
        .map(|event| {
            seq += 1;
            let recorded = RecordedEvent::record(instance_id, seq, &prev_hash, event);
            prev_hash.clone_from(&recorded.hash);
            recorded
        })
        .collect()
}

/// `sha256(prev_hash ‖ canonical JSON of {actor, at, data, seq, type})` as lowercase hex.
pub fn chain_hash(
    prev_hash: &str,
    seq: u64,
    event_type: &str,
    at: DateTime<Utc>,
    actor: &str,
    data: &Value,
) -> String {
    let body = serde_json::json!({
        "seq": seq,
        "type": event_type,
        "at": format_instant(at),
        "actor": actor,
        "data": data,
    });
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical_json(&body).as_bytes());
    hex::encode(hasher.finalize())
}

/// RFC 3339 UTC with microseconds, as used inside the hash.
pub fn format_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Canonical JSON: keys sorted by UTF-8 bytes at every level, no white space.
///
/// Written by hand rather than relying on serde_json's map order, because a dependency
/// enabling serde_json's `preserve_order` feature would silently change every hash.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            out.push_str(&value.to_string())
        }
    }
}

/// What is wrong with one history, found by [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first seq at which the chain does not hold.
    pub seq: u64,
    /// What is wrong there.
    pub problem: String,
}

/// Checks seq numbering, `prev_hash` links and every hash of one instance's history.
pub fn verify_chain(events: &[RecordedEvent]) -> Result<(), ChainBreak> {
    let mut expected_prev = GENESIS_HASH.to_owned();
    for (index, event) in events.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        if event.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                problem: format!(
                    "expected seq {expected_seq}, found seq {} (event deleted, inserted or reordered)",
                    event.seq
                ),
            });
        }
        if event.prev_hash != expected_prev {
            return Err(ChainBreak {
                seq: event.seq,
                problem: "prev_hash does not match the previous event's hash".to_owned(),
            });
        }
        if event.computed_hash() != event.hash {
            return Err(ChainBreak {
                seq: event.seq,
                problem: "hash does not match the event's content (event edited)".to_owned(),
            });
        }
        expected_prev = event.hash.clone();
    }
    Ok(())
}
