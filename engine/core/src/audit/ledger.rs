//! The distribution ledger's pure half: who received which version of which asset, and
//! what became of each delivery, as a hash chain per delivery.
//!
//! A delivery is one row ([`Delivery`]) and its entries ([`Entry`]): the first entry
//! (`delivered`) records the delivery's facts in its `detail`, every later one a status
//! change. `hash = sha256(prev_hash ‖ canonical JSON of {at, delivery_id, detail, origin,
//! seq, status})`, the first `prev_hash` being 64 zeros, so the row can be rebuilt from its
//! entries ([`Delivery::fold`]) and anything else is tampering ([`check_delivery`]).
//!
//! Status precedence ([`Delivery::record`]): `withdrawn`, `superseded` and `failed` end a
//! delivery; among the others `acknowledged` outranks `downloaded`, which outranks
//! `delivered`. A lower status after a higher one, and anything after an end, is recorded
//! as an entry but does not change the row's status; the first download and the first
//! acknowledgement keep their instants.
//!
//! The stores write rows and entries through these functions, and the verifier checks
//! them with the same ones: one definition of the chain.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::verify::{Problem, ProblemKind};
use crate::history::{GENESIS_HASH, canonical_json, format_instant};
use crate::id::InstanceId;

/// Where a delivery stands (the same names as the connectors' `DeliveryStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Made available to the partner.
    Delivered,
    /// The partner downloaded it.
    Downloaded,
    /// The partner acknowledged it.
    Acknowledged,
    /// The channel could not deliver it.
    Failed,
    /// A newer version replaced it.
    Superseded,
    /// Withdrawn: the partner lost access.
    Withdrawn,
}

impl Status {
    /// Every status, in order.
    pub const ALL: [Self; 6] = [
        Self::Delivered,
        Self::Downloaded,
        Self::Acknowledged,
        Self::Failed,
        Self::Superseded,
        Self::Withdrawn,
    ];

    /// The statuses of deliveries the partner still holds.
    pub const HELD: [Self; 3] = [Self::Delivered, Self::Downloaded, Self::Acknowledged];

    /// The name used in JSON, the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Downloaded => "downloaded",
            Self::Acknowledged => "acknowledged",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the partner still holds the delivery.
    pub fn is_held(self) -> bool {
        Self::HELD.contains(&self)
    }

    /// Whether the status ends the delivery: nothing after it changes the row's status.
    pub fn is_final(self) -> bool {
        !self.is_held()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Delivered => 0,
            Self::Downloaded => 1,
            Self::Acknowledged => 2,
            Self::Failed | Self::Superseded | Self::Withdrawn => 3,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a delivery is: the asset's version and digest, who got it through which channel,
/// and which step attempt made it (`None` for a delivery an event reported).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Facts {
    /// The asset system.
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The version delivered.
    pub version: String,
    /// The SHA-256 of the bytes delivered.
    pub sha256: String,
    /// The partner company.
    pub partner: String,
    /// The channel (`trading_grid`, `vip`).
    pub channel: String,
    /// The channel's reference of the share.
    pub reference: String,
    /// The channel's id of this partner's copy.
    pub receipt: Option<String>,
    /// The delivering instance.
    pub instance_id: Option<InstanceId>,
    /// The delivering step.
    pub step: Option<String>,
    /// The fan-out item.
    pub item: Option<u32>,
    /// The step's attempt.
    pub attempt: Option<u32>,
}

/// One delivery as its row keeps it: its facts, its current status and its chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Deterministic id (from the step attempt or the event, and the change's index).
    pub delivery_id: String,
    /// What was delivered to whom.
    #[serde(flatten)]
    pub facts: Facts,
    /// When it was delivered (the first entry's instant).
    pub delivered_at: DateTime<Utc>,
    /// Its current status, by precedence.
    pub status: Status,
    /// When it took that status.
    pub status_at: DateTime<Utc>,
    /// The first download.
    pub downloaded_at: Option<DateTime<Utc>>,
    /// The first acknowledgement.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The seq of its last entry.
    pub head_seq: u64,
    /// The hash of its last entry.
    pub head_hash: String,
}

/// One entry of a delivery's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The delivery.
    pub delivery_id: String,
    /// From 1.
    pub seq: u64,
    /// The status it reports.
    pub status: Status,
    /// When, as the step or the channel says.
    pub at: DateTime<Utc>,
    /// The first entry's: the delivery's facts; a later one's: the change's detail (or
    /// null).
    pub detail: Value,
    /// What wrote it: `{instance, work, step, item, attempt, index}` or `{source,
    /// event_id, index}`. An origin is written once per delivery.
    pub origin: Value,
    /// The previous entry's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical JSON of the entry's other fields)`.
    pub hash: String,
}

impl Entry {
    /// An entry whose hash is computed from its content.
    pub fn new(
        delivery_id: &str,
        seq: u64,
        prev_hash: &str,
        status: Status,
        at: DateTime<Utc>,
        detail: Value,
        origin: Value,
    ) -> Self {
        let mut entry = Self {
            delivery_id: delivery_id.to_owned(),
            seq,
            status,
            at,
            detail,
            origin,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The hash its content gives.
    pub fn computed_hash(&self) -> String {
        let body = json!({
            "at": format_instant(self.at),
            "delivery_id": self.delivery_id,
            "detail": self.detail,
            "origin": self.origin,
            "seq": self.seq,
            "status": self.status.as_str(),
        });
        super::sha256_hex(&[self.prev_hash.as_bytes(), canonical_json(&body).as_bytes()])
    }
}

/// The origin of an entry written by the `index`th change of a step attempt's output:
/// `work` is the attempt's idempotency key, which also tells a repeat step's runs and a
/// compensation apart.
pub fn step_origin(
    instance: &InstanceId,
    work: &str,
    step: &str,
    item: Option<u32>,
    attempt: u32,
    index: usize,
) -> Value {
    json!({"instance": instance, "work": work, "step": step, "item": item,
           "attempt": attempt, "index": index})
}

/// The origin of an entry written by an event of `source`.
pub fn event_origin(source: &str, event_id: &str, index: usize) -> Value {
    json!({"source": source, "event_id": event_id, "index": index})
}

impl Delivery {
    /// A new delivery and its first entry.
    pub fn open(
        delivery_id: &str,
        facts: Facts,
        at: DateTime<Utc>,
        origin: Value,
    ) -> (Self, Entry) {
        let detail = serde_json::to_value(&facts).unwrap_or(Value::Null);
        let entry = Entry::new(
            delivery_id,
            1,
            GENESIS_HASH,
            Status::Delivered,
            at,
            detail,
            origin,
        );
        let delivery = Self {
            delivery_id: delivery_id.to_owned(),
            facts,
            delivered_at: at,
            status: Status::Delivered,
            status_at: at,
            downloaded_at: None,
            acknowledged_at: None,
            head_seq: 1,
            head_hash: entry.hash.clone(),
        };
        (delivery, entry)
    }

    /// Appends a status change: the new entry, with the row updated by precedence.
    pub fn record(
        &mut self,
        status: Status,
        at: DateTime<Utc>,
        detail: Value,
        origin: Value,
    ) -> Entry {
        let entry = Entry::new(
            &self.delivery_id,
            self.head_seq + 1,
            &self.head_hash,
            status,
            at,
            detail,
            origin,
        );
        self.apply(&entry);
        entry
    }

    fn apply(&mut self, entry: &Entry) {
        let status = entry.status;
        if status == Status::Downloaded && self.downloaded_at.is_none() {
            self.downloaded_at = Some(entry.at);
        }
        if status == Status::Acknowledged && self.acknowledged_at.is_none() {
            self.acknowledged_at = Some(entry.at);
        }
        if !self.status.is_final() && status.rank() > self.status.rank() {
            self.status = status;
            self.status_at = entry.at;
        }
        self.head_seq = entry.seq;
        self.head_hash.clone_from(&entry.hash);
    }

    /// The row its entries give (in seq order): `Err` says what does not add up.
    pub fn fold(entries: &[Entry]) -> Result<Self, String> {
        let Some(first) = entries.first() else {
            return Err("it has no entries".to_owned());
        };
        if first.status != Status::Delivered {
            return Err(format!(
                "its first entry is {}, not delivered",
                first.status
            ));
        }
        let facts: Facts = serde_json::from_value(first.detail.clone())
            .map_err(|error| format!("its first entry does not record the delivery: {error}"))?;
        let mut delivery = Self {
            delivery_id: first.delivery_id.clone(),
            facts,
            delivered_at: first.at,
            status: Status::Delivered,
            status_at: first.at,
            downloaded_at: None,
            acknowledged_at: None,
            head_seq: first.seq,
            head_hash: first.hash.clone(),
        };
        for entry in &entries[1..] {
            delivery.apply(entry);
        }
        Ok(delivery)
    }
}

/// Checks one delivery: its entries chain from genesis with their hashes recomputed, and
/// its row is what its entries give. The problem names the delivery and the first bad
/// entry's seq.
pub fn check_delivery(
    row: Option<&Delivery>,
    delivery_id: &str,
    entries: &[Entry],
) -> Option<Problem> {
    let problem = |seq: u64, message: String| {
        Some(
            Problem::new(
                ProblemKind::Ledger,
                format!("delivery {delivery_id}: {message}"),
            )
            .seq(seq),
        )
    };
    let mut prev_hash = GENESIS_HASH;
    for (index, entry) in entries.iter().enumerate() {
        let expected = index as u64 + 1;
        if entry.seq != expected {
            return problem(
                expected.min(entry.seq),
                format!(
                    "entry {expected} is missing or duplicated (found entry {} there; entries deleted or inserted)",
                    entry.seq
                ),
            );
        }
        if entry.prev_hash != prev_hash {
            return problem(
                entry.seq,
                format!(
                    "entry {} does not link to the entry before it (chain broken)",
                    entry.seq
                ),
            );
        }
        if entry.computed_hash() != entry.hash {
            return problem(
                entry.seq,
                format!(
                    "entry {}: its content does not match its hash (entry edited)",
                    entry.seq
                ),
            );
        }
        prev_hash = &entry.hash;
    }
    let Some(row) = row else {
        return problem(
            1,
            "its entries remain but its row is gone (row deleted)".to_owned(),
        );
    };
    // The row may have been read before entries written after it (verification runs
    // beside the engine): it is compared with the entries up to its head.
    let upto = usize::try_from(row.head_seq)
        .unwrap_or(usize::MAX)
        .clamp(1, entries.len().max(1));
    let folded = match Delivery::fold(&entries[..upto.min(entries.len())]) {
        Ok(folded) => folded,
        Err(message) => return problem(1, message),
    };
    if row.head_seq > folded.head_seq {
        return problem(
            folded.head_seq + 1,
            format!(
                "the row's head is entry {}, but the entries end at entry {} (entries removed from the end)",
                row.head_seq, folded.head_seq
            ),
        );
    }
    if row != &folded {
        let fields = differing_fields(row, &folded);
        return problem(
            folded.head_seq,
            format!("the row does not match its entries ({fields} differ: row edited)"),
        );
    }
    None
}

fn differing_fields(row: &Delivery, folded: &Delivery) -> String {
    let (Value::Object(row), Value::Object(folded)) = (
        serde_json::to_value(row).unwrap_or(Value::Null),
        serde_json::to_value(folded).unwrap_or(Value::Null),
    ) else {
        return "fields".to_owned();
    };
    let names: BTreeSet<&String> = row.keys().chain(folded.keys()).collect();
    let differing: Vec<&str> = names
        .into_iter()
        .filter(|name| row.get(*name) != folded.get(*name))
        .map(String::as_str)
        .collect();
    differing.join(", ")
}

/// The deliveries that an instance's hash-chained history says its steps made: the
/// `delivered` changes in the `ledger` of the outputs of `step_succeeded`,
/// `step_iteration_succeeded` and `compensation_succeeded` events of the steps for which
/// `declares_ledger` holds. A set: a repeat step's last run is in two events.
pub fn deliveries_in_history(
    instance: &InstanceId,
    events: &[crate::history::RecordedEvent],
    declares_ledger: impl Fn(&str) -> bool,
) -> BTreeSet<Facts> {
    let mut found = BTreeSet::new();
    for event in events {
        if !matches!(
            event.event_type.as_str(),
            "step_succeeded" | "step_iteration_succeeded" | "compensation_succeeded"
        ) {
            continue;
        }
        let data = &event.data;
        let (Some(step), Some(attempt)) = (
            data.get("step").and_then(Value::as_str),
            data.get("attempt").and_then(Value::as_u64),
        ) else {
            continue;
        };
        if !declares_ledger(step) {
            continue;
        }
        let item = data
            .get("item")
            .and_then(Value::as_u64)
            .and_then(|item| u32::try_from(item).ok());
        let Some(changes) = data
            .get("output")
            .and_then(|output| output.get("ledger"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for change in changes {
            if change.get("change").and_then(Value::as_str) != Some("delivered") {
                continue;
            }
            let text = |name: &str| {
                change
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            found.insert(Facts {
                system: text("system"),
                asset_id: text("asset_id"),
                version: text("version"),
                sha256: text("sha256"),
                partner: text("partner"),
                channel: text("channel"),
                reference: text("reference"),
                receipt: change
                    .get("receipt")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                instance_id: Some(instance.clone()),
                step: Some(step.to_owned()),
                item,
                attempt: u32::try_from(attempt).ok(),
            });
        }
    }
    found
}

/// Compares an instance's deliveries in history with its rows: a row that no step
/// output made, and a step output's delivery with no row, are problems.
pub fn check_instance_deliveries(
    instance: &InstanceId,
    in_history: &BTreeSet<Facts>,
    rows: &[&Delivery],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut recorded = BTreeSet::new();
    for row in rows {
        recorded.insert(&row.facts);
        if !in_history.contains(&row.facts) {
            problems.push(
                Problem::new(
                    ProblemKind::Ledger,
                    format!(
                        "delivery {}: no step_succeeded output of the instance delivered {} {} version {} to {} through {} (row forged or edited)",
                        row.delivery_id,
                        row.facts.system,
                        row.facts.asset_id,
                        row.facts.version,
                        row.facts.partner,
                        row.facts.channel
                    ),
                )
                .instance(instance),
            );
        }
    }
    for facts in in_history {
        if !recorded.contains(facts) {
            problems.push(
                Problem::new(
                    ProblemKind::Ledger,
                    format!(
                        "step {} attempt {} delivered {} {} version {} to {} through {} ({}), but the ledger has no such delivery (row deleted or edited)",
                        facts.step.as_deref().unwrap_or_default(),
                        facts.attempt.unwrap_or_default(),
                        facts.system,
                        facts.asset_id,
                        facts.version,
                        facts.partner,
                        facts.channel,
                        facts.reference
                    ),
                )
                .instance(instance),
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts() -> Facts {
        Facts {
            system: "otmm".into(),
            asset_id: "a-1".into(),
            version: "2".into(),
            sha256: "ab".into(),
            partner: "GC1".into(),
            channel: "vip".into(),
            reference: "pkg-1".into(),
            receipt: Some("d-1".into()),
            instance_id: None,
            step: Some("deliver".into()),
            item: None,
            attempt: Some(1),
        }
    }

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, second).unwrap()
    }

    #[test]
    fn precedence_keeps_the_highest_status_and_first_instants() {
        let (mut row, first) = Delivery::open("d", facts(), at(0), json!({"index": 0}));
        let mut entries = vec![first];
        for (status, second) in [
            (Status::Acknowledged, 2),
            (Status::Downloaded, 3),
            (Status::Acknowledged, 4),
        ] {
            entries.push(row.record(status, at(second), Value::Null, json!({"i": second})));
        }
        assert_eq!(row.status, Status::Acknowledged);
        assert_eq!(row.status_at, at(2));
        assert_eq!(row.downloaded_at, Some(at(3)));
        assert_eq!(row.acknowledged_at, Some(at(2)));
        entries.push(row.record(
            Status::Withdrawn,
            at(5),
            json!({"reason": "licence"}),
            json!({}),
        ));
        entries.push(row.record(
            Status::Downloaded,
            at(6),
            Value::Null,
            json!({"late": true}),
        ));
        assert_eq!(row.status, Status::Withdrawn);
        assert_eq!(row.head_seq, 6);
        assert_eq!(Delivery::fold(&entries).unwrap(), row);
        assert_eq!(check_delivery(Some(&row), "d", &entries), None);
    }

    #[test]
    fn tampering_is_reported_with_the_entry() {
        let (mut row, first) = Delivery::open("d", facts(), at(0), json!({}));
        let second = row.record(Status::Downloaded, at(1), Value::Null, json!({"n": 1}));
        let entries = vec![first.clone(), second.clone()];
        let mut edited_row = row.clone();
        edited_row.facts.partner = "OTHER".into();
        let problem = check_delivery(Some(&edited_row), "d", &entries).unwrap();
        assert!(problem.message.contains("partner"), "{}", problem.message);
        let problem = check_delivery(Some(&row), "d", std::slice::from_ref(&first)).unwrap();
        assert!(
            problem.message.contains("removed from the end"),
            "{}",
            problem.message
        );
        let problem = check_delivery(Some(&row), "d", std::slice::from_ref(&second)).unwrap();
        assert_eq!(problem.seq, Some(1));
        let mut edited = second;
        edited.status = Status::Acknowledged;
        let problem = check_delivery(Some(&row), "d", &[first, edited]).unwrap();
        assert!(problem.message.contains("edited"), "{}", problem.message);
        assert_eq!(problem.kind, ProblemKind::Ledger);
    }

    fn export(row: &Delivery, entries: &[Entry]) -> Vec<String> {
        use crate::audit::export::{EXPORT_FORMAT, ExportLine, Header, LineWriter};
        let mut writer = LineWriter::new();
        let mut lines = vec![writer.write(&ExportLine::Header(Header {
            format: EXPORT_FORMAT.into(),
            generated_at: at(0),
            complete: true,
            filter: json!({}),
        }))];
        lines.push(writer.write(&ExportLine::Delivery(row.clone())));
        for entry in entries {
            lines.push(writer.write(&ExportLine::LedgerEntry(entry.clone())));
        }
        lines.push(writer.end());
        lines
    }

    fn verify(lines: &[String]) -> super::super::Report {
        let mut verifier = crate::audit::ExportVerifier::new(None);
        for line in lines {
            verifier.line(line.as_bytes());
        }
        verifier.finish()
    }

    #[test]
    fn the_offline_verifier_checks_each_exported_chain() {
        let (mut row, first) = Delivery::open("d", facts(), at(0), json!({}));
        let second = row.record(Status::Downloaded, at(1), Value::Null, json!({"n": 1}));
        let report = verify(&export(&row, &[first.clone(), second.clone()]));
        assert!(report.ok, "{:?}", report.problems);
        // Rewritten consistently (line hashes recomputed): the entry's own hash gives it
        // away, at its line.
        let mut edited = second;
        edited.status = Status::Acknowledged;
        let report = verify(&export(&row, &[first, edited]));
        assert!(!report.ok);
        assert_eq!(report.problems[0].kind, ProblemKind::Ledger);
        assert_eq!(report.problems[0].line, Some(4));
    }
}
