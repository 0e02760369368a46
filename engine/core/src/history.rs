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

/// The history format version that new instances record in `instance_started`.
///
/// A change that would make the machine emit different events or commands for an existing
/// history keeps the old behaviour for histories of the older versions and bumps this
/// number; versions are never reused. The machine refuses (as an invalid transition) a
/// history whose version it does not know. Version 1 is every history recorded before the
/// version was recorded, and every one since, until a change needs a second.
pub const HISTORY_VERSION: u32 = 1;

/// The version of a history whose `instance_started` does not say: 1.
pub fn first_history_version() -> u32 {
    1
}

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
///
/// The envelope is written straight into the hasher, keys already in canonical order, so
/// that hashing an event neither copies its data nor builds the JSON text: this runs for
/// every event of every commit, on the driver's one task.
pub fn chain_hash(
    prev_hash: &str,
    seq: u64,
    event_type: &str,
    at: DateTime<Utc>,
    actor: &str,
    data: &Value,
) -> String {
    let mut hasher = HashWriter(Sha256::new());
    hasher.0.update(prev_hash.as_bytes());
    // The keys in the byte order that `canonical_json` sorts them into.
    hasher.put(b"{\"actor\":");
    write_scalar(&mut hasher, actor);
    hasher.put(b",\"at\":");
    write_scalar(&mut hasher, &format_instant(at));
    hasher.put(b",\"data\":");
    write_canonical(data, &mut hasher);
    hasher.put(b",\"seq\":");
    hasher.put(seq.to_string().as_bytes());
    hasher.put(b",\"type\":");
    write_scalar(&mut hasher, event_type);
    hasher.put(b"}");
    hex::encode(hasher.0.finalize())
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
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8 and so does write_canonical")
}

/// Where canonical JSON goes: a buffer, or a hasher that never holds the text.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Feeds SHA-256 directly.
struct HashWriter(Sha256);

impl Sink for HashWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Lets serde_json write a scalar into any sink without an intermediate `String`.
struct SinkWriter<'s, S: Sink>(&'s mut S);

impl<S: Sink> std::io::Write for SinkWriter<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.put(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_scalar<S: Sink, T: Serialize + ?Sized>(out: &mut S, value: &T) {
    // Writing a string, number, bool or null into memory cannot fail.
    serde_json::to_writer(SinkWriter(out), value)
        .expect("serde_json writes scalars into memory without error");
}

fn write_canonical<S: Sink>(value: &Value, out: &mut S) {
    match value {
        Value::Object(map) => {
            out.put(b"{");
            let in_order = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(left, right)| left.as_bytes() < right.as_bytes());
            if in_order {
                // serde_json's default map is a BTreeMap: already in canonical order.
                write_entries(map.iter(), out);
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
                write_entries(entries.into_iter(), out);
            }
            out.put(b"}");
        }
        Value::Array(items) => {
            out.put(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.put(b",");
                }
                write_canonical(item, out);
            }
            out.put(b"]");
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            write_scalar(out, value);
        }
    }
}

fn write_entries<'v, S: Sink>(entries: impl Iterator<Item = (&'v String, &'v Value)>, out: &mut S) {
    for (index, (key, item)) in entries.enumerate() {
        if index > 0 {
            out.put(b",");
        }
        write_scalar(out, key);
        out.put(b":");
        write_canonical(item, out);
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn sample_data() -> Value {
        json!({"step": "b", "attempt": 1, "output": {"z": 1, "a": [true, null, "é\"\\\n"], "m": {"y": 2.5, "x": -3}}})
    }

    fn sample_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::microseconds(1)
    }

    #[test]
    fn chain_hash_matches_an_independent_implementation() {
        // Computed with Python: sha256(prev + json.dumps(body, sort_keys=True,
        // separators=(",", ":"), ensure_ascii=False)), the recipe ARCHITECTURE.md gives.
        let hash = chain_hash(
            GENESIS_HASH,
            3,
            "step_succeeded",
            sample_at(),
            "system",
            &sample_data(),
        );
        assert_eq!(
            hash,
            "3807563de7391bd727967ca6ec21017f101dee7909beea5a76425964cf0b28ef"
        );
    }

    #[test]
    fn chain_hash_equals_the_hash_of_the_canonical_envelope() {
        let envelope = json!({
            "seq": 3,
            "type": "step_succeeded",
            "at": format_instant(sample_at()),
            "actor": "system",
            "data": sample_data(),
        });
        let mut hasher = Sha256::new();
        hasher.update(GENESIS_HASH.as_bytes());
        hasher.update(canonical_json(&envelope).as_bytes());
        assert_eq!(
            chain_hash(
                GENESIS_HASH,
                3,
                "step_succeeded",
                sample_at(),
                "system",
                &sample_data()
            ),
            hex::encode(hasher.finalize())
        );
    }

    #[test]
    fn canonical_json_sorts_keys_by_bytes_and_drops_white_space() {
        let value = json!({"b": [1, {"d": null, "c": "x y"}], "a": "é", "B": false});
        assert_eq!(
            canonical_json(&value),
            r#"{"B":false,"a":"é","b":[1,{"c":"x y","d":null}]}"#
        );
    }
}
