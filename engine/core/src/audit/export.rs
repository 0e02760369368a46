//! The export format: JSON Lines that verify offline, with no database and no server.
//!
//! Every line is a JSON object with a `kind` and a `line_hash`:
//! `line_hash = sha256(previous line's line_hash ‖ canonical JSON of the line without
//! line_hash)` (64 zeros before the first line), so a changed, removed or reordered line is
//! reported with its line number. The line hashes only locate damage: anyone can recompute
//! them. What proves the content are the event chains and the signed checkpoints, checked
//! against a key the verifier trusts (`--key`, or the key line of the file).
//!
//! Lines, in order: `header`; `key`; every `checkpoint` (the last one with the `heads` it
//! covers); every `audit_record`; for each instance (by id) an `instance` line with its
//! head, then its `event`s in seq order; the distribution ledger: each `delivery` (by id)
//! followed by its `ledger_entry`s in seq order (format 2; every delivery in a complete
//! export, those of the exported instances in a filtered one); `end` with the number of
//! lines before it. Format 1 (no ledger lines) still verifies.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::checkpoint::{Checkpoint, PublicKey};
use super::ledger::{Delivery, Entry, check_delivery};
use super::log::AuditRecord;
use super::merkle::ChainHead;
use super::verify::{Problem, ProblemKind, Report, Verification};
use crate::history::{GENESIS_HASH, RecordedEvent, canonical_json};
use crate::id::InstanceId;

/// The `format` of the header line.
pub const EXPORT_FORMAT: &str = "gridflow-audit-export/2";

/// The format before the ledger lines, which verifies the same way.
const EXPORT_FORMAT_1: &str = "gridflow-audit-export/1";

/// The first line: what the export is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// When the export was written.
    pub generated_at: DateTime<Utc>,
    /// Whether every instance is exported (no filter): then an instance that the last
    /// checkpoint covers and the export lacks is reported missing.
    pub complete: bool,
    /// The filter the export was made with, as given.
    pub filter: Value,
}

/// An instance line: the instance's recorded head, followed by its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceLine {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its definition.
    pub definition: String,
    /// The definition version.
    pub version: u32,
    /// The instance's last seq as its row records it.
    pub last_seq: u64,
    /// The hash of that event.
    pub last_hash: String,
}

/// One line of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportLine {
    /// What the export is.
    Header(Header),
    /// The server's public key.
    Key {
        /// Always `ed25519`.
        algorithm: String,
        /// The key, hex.
        public_key: String,
    },
    /// A checkpoint; the last one carries the heads that its Merkle root covers.
    Checkpoint {
        /// The signed checkpoint.
        checkpoint: Checkpoint,
        /// The heads it covers (last checkpoint only).
        heads: Option<Vec<ChainHead>>,
    },
    /// A record of the server's audit log.
    AuditRecord(AuditRecord),
    /// An instance, before its events.
    Instance(InstanceLine),
    /// An event of the instance named by the last instance line.
    Event(RecordedEvent),
    /// A distribution ledger row, before its entries.
    Delivery(Delivery),
    /// An entry of the delivery named by the last delivery line.
    LedgerEntry(Entry),
    /// The last line.
    End {
        /// How many lines come before it.
        lines: u64,
    },
}

impl ExportLine {
    fn kind(&self) -> &'static str {
        match self {
            ExportLine::Header(_) => "header",
            ExportLine::Key { .. } => "key",
            ExportLine::Checkpoint { .. } => "checkpoint",
            ExportLine::AuditRecord(_) => "audit_record",
            ExportLine::Instance(_) => "instance",
            ExportLine::Event(_) => "event",
            ExportLine::Delivery(_) => "delivery",
            ExportLine::LedgerEntry(_) => "ledger_entry",
            ExportLine::End { .. } => "end",
        }
    }

    fn to_object(&self) -> Map<String, Value> {
        let value = match self {
            ExportLine::Header(header) => serde_json::to_value(header),
            ExportLine::Key {
                algorithm,
                public_key,
            } => Ok(serde_json::json!({"algorithm": algorithm, "public_key": public_key})),
            ExportLine::Checkpoint { checkpoint, heads } => {
                serde_json::to_value(checkpoint).map(|mut value| {
                    if let (Value::Object(map), Some(heads)) = (&mut value, heads) {
                        map.insert(
                            "heads".to_owned(),
                            serde_json::to_value(heads).unwrap_or_default(),
                        );
                    }
                    value
                })
            }
            ExportLine::AuditRecord(record) => serde_json::to_value(record),
            ExportLine::Instance(instance) => serde_json::to_value(instance),
            ExportLine::Event(event) => serde_json::to_value(event),
            ExportLine::Delivery(delivery) => serde_json::to_value(delivery),
            ExportLine::LedgerEntry(entry) => serde_json::to_value(entry),
            ExportLine::End { lines } => Ok(serde_json::json!({ "lines": lines })),
        };
        match value {
            Ok(Value::Object(map)) => map,
            // Every line type is a struct of plain fields: it serializes to an object.
            _ => Map::new(),
        }
    }

    fn parse(kind: &str, value: Value) -> Result<Self, String> {
        fn decode<T: serde::de::DeserializeOwned>(kind: &str, value: Value) -> Result<T, String> {
            serde_json::from_value(value)
                .map_err(|error| format!("not a valid {kind} line: {error}"))
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Key {
            algorithm: String,
            public_key: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct End {
            lines: u64,
        }
        Ok(match kind {
            "header" => ExportLine::Header(decode(kind, value)?),
            "key" => {
                let key: Key = decode(kind, value)?;
                ExportLine::Key {
                    algorithm: key.algorithm,
                    public_key: key.public_key,
                }
            }
            "checkpoint" => {
                let mut value = value;
                let heads = value.as_object_mut().and_then(|map| map.remove("heads"));
                ExportLine::Checkpoint {
                    checkpoint: decode(kind, value)?,
                    heads: heads.map(|heads| decode("checkpoint", heads)).transpose()?,
                }
            }
            "audit_record" => ExportLine::AuditRecord(decode(kind, value)?),
            "instance" => ExportLine::Instance(decode(kind, value)?),
            "event" => ExportLine::Event(decode(kind, value)?),
            "delivery" => ExportLine::Delivery(decode(kind, value)?),
            "ledger_entry" => ExportLine::LedgerEntry(decode(kind, value)?),
            "end" => ExportLine::End {
                lines: decode::<End>(kind, value)?.lines,
            },
            other => return Err(format!("unknown line kind {other:?}")),
        })
    }
}

fn line_hash(prev: &str, object: &Map<String, Value>) -> String {
    // `canonical_json` takes a Value; the clone of a line is cheap next to hashing it.
    let canonical = canonical_json(&Value::Object(object.clone()));
    super::sha256_hex(&[prev.as_bytes(), canonical.as_bytes()])
}

/// Writes export lines, chaining their `line_hash`es.
#[derive(Debug, Clone)]
pub struct LineWriter {
    prev: String,
    lines: u64,
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineWriter {
    /// A writer before the first line.
    pub fn new() -> Self {
        Self {
            prev: GENESIS_HASH.to_owned(),
            lines: 0,
        }
    }

    /// The text of the next line, without its newline.
    pub fn write(&mut self, line: &ExportLine) -> String {
        let mut object = line.to_object();
        object.insert("kind".to_owned(), Value::from(line.kind()));
        let hash = line_hash(&self.prev, &object);
        object.insert("line_hash".to_owned(), Value::from(hash.clone()));
        self.prev = hash;
        self.lines += 1;
        Value::Object(object).to_string()
    }

    /// The `end` line, which closes the export.
    pub fn end(&mut self) -> String {
        let lines = self.lines;
        self.write(&ExportLine::End { lines })
    }
}

/// The instance whose events are being read.
#[derive(Debug)]
struct Group {
    line: u64,
    instance: InstanceLine,
    events: Vec<RecordedEvent>,
    lines: Vec<u64>,
    /// A line of this instance could not be read: it is reported, and the chain is not
    /// checked (it would report the same damage again, at an earlier line).
    damaged: bool,
}

/// Verifies an export line by line, keeping one instance's events at a time.
#[derive(Debug)]
pub struct ExportVerifier {
    trusted: Option<PublicKey>,
    line: u64,
    prev_line_hash: String,
    header: Option<Header>,
    key: Option<(u64, String)>,
    checkpoints: Vec<Checkpoint>,
    checkpoint_lines: Vec<u64>,
    last_heads: Vec<ChainHead>,
    audit: Vec<AuditRecord>,
    audit_lines: Vec<u64>,
    prelude_checked: bool,
    prelude_damaged: bool,
    group: Option<Group>,
    ended: bool,
    exported: HashMap<InstanceId, u64>,
    /// Ledger rows by id with their lines, and entries by delivery with theirs.
    ledger_rows: BTreeMap<String, (u64, Delivery)>,
    ledger_entries: BTreeMap<String, Vec<(u64, Entry)>>,
    verification: Verification,
}

impl ExportVerifier {
    /// A verifier that trusts `trusted` (from `--key`), or else the file's key line.
    pub fn new(trusted: Option<PublicKey>) -> Self {
        Self {
            trusted,
            line: 0,
            prev_line_hash: GENESIS_HASH.to_owned(),
            header: None,
            key: None,
            checkpoints: Vec::new(),
            checkpoint_lines: Vec::new(),
            last_heads: Vec::new(),
            audit: Vec::new(),
            audit_lines: Vec::new(),
            prelude_checked: false,
            prelude_damaged: false,
            group: None,
            ended: false,
            exported: HashMap::new(),
            ledger_rows: BTreeMap::new(),
            ledger_entries: BTreeMap::new(),
            verification: Verification::new(Vec::new()),
        }
    }

    fn malformed(&mut self, line: u64, message: impl Into<String>) {
        match &mut self.group {
            Some(group) => group.damaged = true,
            None if !self.prelude_checked => self.prelude_damaged = true,
            None => {}
        }
        self.verification
            .problem(Problem::new(ProblemKind::Malformed, message).line(line));
    }

    /// Verifies the next line (its bytes without the newline).
    pub fn line(&mut self, bytes: &[u8]) {
        self.line += 1;
        let number = self.line;
        if self.ended {
            return self.malformed(number, "a line after the end line");
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return self.malformed(number, "the line is not UTF-8"),
        };
        let mut object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return self.malformed(number, "the line is not a JSON object"),
            Err(error) => return self.malformed(number, format!("the line is not JSON: {error}")),
        };
        let recorded = match object.remove("line_hash") {
            Some(Value::String(hash)) => hash,
            _ => return self.malformed(number, "the line has no line_hash"),
        };
        if line_hash(&self.prev_line_hash, &object) != recorded {
            self.malformed(
                number,
                "line_hash does not match: this line was altered, or a line before it removed or moved",
            );
        }
        self.prev_line_hash = recorded;
        let kind = match object.remove("kind") {
            Some(Value::String(kind)) => kind,
            _ => return self.malformed(number, "the line has no kind"),
        };
        match ExportLine::parse(&kind, Value::Object(object)) {
            Ok(line) => self.accept(number, line),
            Err(message) => self.malformed(number, message),
        }
    }

    fn accept(&mut self, number: u64, line: ExportLine) {
        if self.header.is_none() && !matches!(line, ExportLine::Header(_)) {
            self.malformed(number, "the export does not start with its header line");
        }
        match line {
            ExportLine::Header(header) => {
                if number != 1 || self.header.is_some() {
                    return self.malformed(number, "a header line that is not the first line");
                }
                if header.format != EXPORT_FORMAT && header.format != EXPORT_FORMAT_1 {
                    self.malformed(
                        number,
                        format!(
                            "unknown format {:?}, expected {EXPORT_FORMAT:?}",
                            header.format
                        ),
                    );
                }
                self.verification.set_complete(header.complete);
                self.header = Some(header);
            }
            ExportLine::Key {
                algorithm,
                public_key,
            } => {
                if algorithm != "ed25519" {
                    self.malformed(number, format!("unknown key algorithm {algorithm:?}"));
                }
                self.key = Some((number, public_key));
            }
            ExportLine::Checkpoint { checkpoint, heads } => {
                if self.prelude_checked {
                    return self.malformed(number, "a checkpoint line after the instances");
                }
                self.last_heads = heads.unwrap_or_default();
                self.checkpoints.push(checkpoint);
                self.checkpoint_lines.push(number);
            }
            ExportLine::AuditRecord(record) => {
                if self.prelude_checked {
                    return self.malformed(number, "an audit_record line after the instances");
                }
                self.audit.push(record);
                self.audit_lines.push(number);
            }
            ExportLine::Instance(instance) => {
                self.check_prelude();
                self.flush_group();
                if let Some(previous) = self.exported.insert(instance.instance_id.clone(), number) {
                    self.malformed(
                        number,
                        format!(
                            "instance {} was already exported at line {previous}",
                            instance.instance_id
                        ),
                    );
                }
                self.group = Some(Group {
                    line: number,
                    instance,
                    events: Vec::new(),
                    lines: Vec::new(),
                    damaged: false,
                });
            }
            ExportLine::Event(event) => match &mut self.group {
                Some(group) if group.instance.instance_id == event.instance_id => {
                    group.events.push(event);
                    group.lines.push(number);
                }
                _ => self.malformed(
                    number,
                    format!(
                        "an event of instance {} that does not follow its instance line",
                        event.instance_id
                    ),
                ),
            },
            ExportLine::Delivery(delivery) => {
                self.check_prelude();
                self.flush_group();
                let id = delivery.delivery_id.clone();
                if let Some((previous, _)) = self.ledger_rows.insert(id.clone(), (number, delivery))
                {
                    self.malformed(
                        number,
                        format!("delivery {id} was already exported at line {previous}"),
                    );
                }
            }
            ExportLine::LedgerEntry(entry) => {
                self.ledger_entries
                    .entry(entry.delivery_id.clone())
                    .or_default()
                    .push((number, entry));
            }
            ExportLine::End { lines } => {
                self.check_prelude();
                self.flush_group();
                self.check_ledger();
                if lines + 1 != number {
                    self.malformed(
                        number,
                        format!(
                            "the end line counts {lines} lines before it, found {}",
                            number - 1
                        ),
                    );
                }
                self.ended = true;
            }
        }
    }

    /// Checks the key, the checkpoints and the audit log, once they have all been read.
    fn check_prelude(&mut self) {
        if self.prelude_checked {
            return;
        }
        self.prelude_checked = true;
        if self.prelude_damaged {
            return;
        }
        let file_key = self.key.clone();
        let trusted = match (&self.trusted, &file_key) {
            (Some(trusted), Some((line, key))) => {
                if key != &trusted.to_string() {
                    self.verification.problem(
                        Problem::new(
                            ProblemKind::Checkpoint,
                            format!("the export's key {key} is not the trusted key {trusted}"),
                        )
                        .line(*line),
                    );
                }
                Some(*trusted)
            }
            (Some(trusted), None) => Some(*trusted),
            (None, Some((line, key))) => match key.parse::<PublicKey>() {
                Ok(key) => Some(key),
                Err(message) => {
                    self.malformed(*line, format!("the key line: {message}"));
                    None
                }
            },
            (None, None) => None,
        };
        match trusted {
            Some(trusted) => {
                let problems = self.verification.checkpoint_problems(
                    &self.checkpoints,
                    &self.last_heads,
                    &trusted,
                );
                for (index, problem) in problems {
                    let line = self
                        .checkpoint_lines
                        .get(index)
                        .copied()
                        .unwrap_or(self.line);
                    self.verification.problem(problem.line(line));
                }
            }
            None if !self.checkpoints.is_empty() => {
                let line = self.checkpoint_lines[0];
                self.verification.problem(
                    Problem::new(
                        ProblemKind::Checkpoint,
                        "no public key to check the checkpoints with (give --key)",
                    )
                    .line(line),
                );
            }
            None => {}
        }
        if let Some((index, problem)) = self
            .verification
            .audit_log_problem(&self.audit, self.checkpoints.last())
        {
            let line = self.audit_lines.get(index).copied().unwrap_or(self.line);
            self.verification.problem(problem.line(line));
        }
    }

    fn flush_group(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        if group.damaged {
            return;
        }
        let head = ChainHead {
            instance_id: group.instance.instance_id.clone(),
            seq: group.instance.last_seq,
            hash: group.instance.last_hash.clone(),
        };
        if let Some((index, problem)) = self.verification.instance_problem(
            &group.instance.instance_id,
            &group.events,
            Some(head),
        ) {
            let line = index
                .and_then(|index| group.lines.get(index).copied())
                .unwrap_or(group.line);
            self.verification.problem(problem.line(line));
        }
    }

    /// Checks each exported delivery's chain and row (`ledger::check_delivery`).
    fn check_ledger(&mut self) {
        let rows = std::mem::take(&mut self.ledger_rows);
        let mut entries = std::mem::take(&mut self.ledger_entries);
        for (id, (line, row)) in &rows {
            let found = entries.remove(id).unwrap_or_default();
            let (lines, chain): (Vec<u64>, Vec<Entry>) = found.into_iter().unzip();
            if let Some(problem) = check_delivery(Some(row), id, &chain) {
                let at = problem
                    .seq
                    .and_then(|seq| usize::try_from(seq).ok())
                    .and_then(|seq| seq.checked_sub(1))
                    .and_then(|index| lines.get(index).copied())
                    .unwrap_or(*line);
                self.verification.problem(problem.line(at));
            }
        }
        for (id, found) in entries {
            let line = found.first().map_or(self.line, |(line, _)| *line);
            self.verification.problem(
                Problem::new(
                    ProblemKind::Ledger,
                    format!("delivery {id}: entries without their delivery line"),
                )
                .line(line),
            );
        }
    }

    /// Ends the verification after the last line.
    pub fn finish(mut self) -> Report {
        if self.header.is_none() {
            self.malformed(1, "the export is empty");
        }
        if !self.ended {
            let line = self.line + 1;
            self.check_prelude();
            self.flush_group();
            self.check_ledger();
            self.malformed(
                line,
                "the export ends without its end line (file truncated)",
            );
        }
        let mut report = self.verification.finish();
        // Problems sorted by line, so the first one is the first failing line.
        report
            .problems
            .sort_by_key(|problem| problem.line.unwrap_or(u64::MAX));
        report
    }
}
