//! Decoding result rows into the store's records. Every column is read by position, in the
//! order of the `*_COLUMNS` lists below, which the queries select.

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::{QueryResult, TryGetable};
use serde_json::Value;

use gridflow_core::{DefinitionId, InstanceId, InstanceStatus, RecordedEvent};

use super::error::{corrupt, db_error};
use crate::rules::from_micros;
use crate::{DefinitionRecord, InstanceRecord, Result, TimerRecord, WorkItem};

/// Columns of [`definition`], in order.
pub(crate) const DEFINITION_COLUMNS: &str =
    "id, version, content_hash, source, definition, created_at";
/// Columns of [`instance`], in order.
pub(crate) const INSTANCE_COLUMNS: &str = "id, definition_id, definition_version, status, \
     state, input, output, error, created_at, updated_at, last_seq, last_hash, row_version, \
     snapshot_seq";
/// Where [`INSTANCE_COLUMNS`] are read from: the row and its state snapshot.
pub(crate) const INSTANCE_FROM: &str =
    "instance JOIN instance_state ON instance_state.instance_id = instance.id";
/// [`INSTANCE_COLUMNS`] with `state` left unread (`null`, `snapshot_seq` 0), for lists whose cost must not
/// grow with what instances accumulate while they run (steps, kept signals); input and
/// output are bounded by the request body and `limits.max_output_bytes`.
pub(crate) const INSTANCE_HEAD_COLUMNS: &str = "id, definition_id, definition_version, \
     status, 'null', input, output, error, created_at, updated_at, last_seq, last_hash, \
     row_version, CAST(0 AS BIGINT)";
/// Columns of [`event`], in order.
pub(crate) const EVENT_COLUMNS: &str =
    "instance_id, seq, event_type, at, actor, data, prev_hash, hash";
/// Columns of [`work_item`], in order.
pub(crate) const WORK_ITEM_COLUMNS: &str = "id, instance_id, payload, created_at";
/// Columns of [`timer`], in order.
pub(crate) const TIMER_COLUMNS: &str = "instance_id, \"key\", fire_at, payload";

/// What a row is, for error messages; formatted only when decoding fails.
#[derive(Debug, Clone, Copy)]
enum Label<'a> {
    Table(&'static str),
    Definition(&'a str),
    Instance(&'a str),
    Event(&'a str, i64),
    WorkItem(&'a str),
    Timer(&'a str, &'a str),
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Table(table) => write!(f, "{table} row"),
            Label::Definition(id) => write!(f, "definition {id}"),
            Label::Instance(id) => write!(f, "instance {id}"),
            Label::Event(id, seq) => write!(f, "instance {id}: history event seq {seq}"),
            Label::WorkItem(id) => write!(f, "work item {id}"),
            Label::Timer(id, key) => write!(f, "instance {id}: timer {key}"),
        }
    }
}

/// One row being decoded.
struct Row<'a> {
    row: &'a QueryResult,
    label: Label<'a>,
}

impl Row<'_> {
    fn get<T: TryGetable>(&self, index: usize, column: &str) -> Result<T> {
        self.row
            .try_get_by_index(index)
            .map_err(|error| db_error(error, format_args!("{}: column {column}", self.label)))
    }

    fn text(&self, index: usize, column: &str) -> Result<String> {
        self.get(index, column)
    }

    fn json(&self, index: usize, column: &str) -> Result<Value> {
        let text: String = self.get(index, column)?;
        parse_json(&text, self.label, column)
    }

    fn json_null(&self, index: usize, column: &str) -> Result<Option<Value>> {
        let text: Option<String> = self.get(index, column)?;
        text.map(|text| parse_json(&text, self.label, column))
            .transpose()
    }

    fn instant(&self, index: usize, column: &str) -> Result<DateTime<Utc>> {
        let micros: i64 = self.get(index, column)?;
        from_micros(micros).ok_or_else(|| {
            corrupt(
                self.label,
                format_args!("{column} {micros} is not an instant in microseconds"),
            )
        })
    }

    fn unsigned(&self, index: usize, column: &str) -> Result<u64> {
        let value: i64 = self.get(index, column)?;
        u64::try_from(value)
            .map_err(|_| corrupt(self.label, format_args!("{column} {value} is negative")))
    }

    fn version(&self, index: usize, column: &str) -> Result<u32> {
        let value: i64 = self.get(index, column)?;
        u32::try_from(value).map_err(|_| {
            corrupt(
                self.label,
                format_args!("{column} {value} is not a version"),
            )
        })
    }
}

fn parse_json(text: &str, label: Label<'_>, column: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|error| corrupt(label, format_args!("{column} is not JSON: {error}")))
}

/// A row of [`DEFINITION_COLUMNS`].
pub(crate) fn definition(row: &QueryResult) -> Result<DefinitionRecord> {
    let id: String = Row {
        row,
        label: Label::Table("definition"),
    }
    .text(0, "id")?;
    let row = Row {
        row,
        label: Label::Definition(&id),
    };
    let record = DefinitionRecord {
        id: DefinitionId(String::new()),
        version: row.version(1, "version")?,
        content_hash: row.text(2, "content_hash")?,
        source: row.text(3, "source")?,
        definition: row.json(4, "definition")?,
        created_at: row.instant(5, "created_at")?,
    };
    Ok(DefinitionRecord {
        id: DefinitionId(id),
        ..record
    })
}

/// A row of [`INSTANCE_COLUMNS`].
pub(crate) fn instance(row: &QueryResult) -> Result<InstanceRecord> {
    let id: String = Row {
        row,
        label: Label::Table("instance"),
    }
    .text(0, "id")?;
    let row = Row {
        row,
        label: Label::Instance(&id),
    };
    let status: String = row.text(3, "status")?;
    let status: InstanceStatus = status
        .parse()
        .map_err(|problem: String| corrupt(row.label, problem))?;
    let record = InstanceRecord {
        id: InstanceId(String::new()),
        definition_id: DefinitionId(row.text(1, "definition_id")?),
        definition_version: row.version(2, "definition_version")?,
        status,
        state: row.json(4, "state")?,
        input: row.json(5, "input")?,
        output: row.json_null(6, "output")?,
        error: row.json_null(7, "error")?,
        created_at: row.instant(8, "created_at")?,
        updated_at: row.instant(9, "updated_at")?,
        last_seq: row.unsigned(10, "last_seq")?,
        last_hash: row.text(11, "last_hash")?,
        row_version: row.unsigned(12, "row_version")?,
        snapshot_seq: row.unsigned(13, "snapshot_seq")?,
    };
    Ok(InstanceRecord {
        id: InstanceId(id),
        ..record
    })
}

/// A row of [`EVENT_COLUMNS`].
pub(crate) fn event(row: &QueryResult) -> Result<RecordedEvent> {
    let first = Row {
        row,
        label: Label::Table("history_event"),
    };
    let instance_id: String = first.text(0, "instance_id")?;
    let seq: i64 = first.get(1, "seq")?;
    let row = Row {
        row,
        label: Label::Event(&instance_id, seq),
    };
    let event = RecordedEvent {
        instance_id: InstanceId(String::new()),
        seq: row.unsigned(1, "seq")?,
        event_type: row.text(2, "event_type")?,
        at: row.instant(3, "at")?,
        actor: row.text(4, "actor")?,
        data: row.json(5, "data")?,
        prev_hash: row.text(6, "prev_hash")?,
        hash: row.text(7, "hash")?,
    };
    Ok(RecordedEvent {
        instance_id: InstanceId(instance_id),
        ..event
    })
}

/// A row of [`WORK_ITEM_COLUMNS`].
pub(crate) fn work_item(row: &QueryResult) -> Result<WorkItem> {
    let id: String = Row {
        row,
        label: Label::Table("work_item"),
    }
    .text(0, "id")?;
    let row = Row {
        row,
        label: Label::WorkItem(&id),
    };
    let item = WorkItem {
        id: String::new(),
        instance_id: InstanceId(row.text(1, "instance_id")?),
        payload: row.json(2, "payload")?,
        created_at: row.instant(3, "created_at")?,
    };
    Ok(WorkItem { id, ..item })
}

/// A row of [`TIMER_COLUMNS`].
pub(crate) fn timer(row: &QueryResult) -> Result<TimerRecord> {
    let first = Row {
        row,
        label: Label::Table("timer"),
    };
    let instance_id = first.text(0, "instance_id")?;
    let key = first.text(1, "key")?;
    let row = Row {
        row,
        label: Label::Timer(&instance_id, &key),
    };
    let fire_at = row.instant(2, "fire_at")?;
    let payload = row.json(3, "payload")?;
    Ok(TimerRecord {
        instance_id: InstanceId(instance_id),
        key,
        fire_at,
        payload,
    })
}

/// The single `BIGINT` column of a row (the result of `MIN` or `MAX`), which may be `NULL`,
/// as an instant.
pub(crate) fn optional_instant(
    row: &QueryResult,
    table: &'static str,
) -> Result<Option<DateTime<Utc>>> {
    let row = Row {
        row,
        label: Label::Table(table),
    };
    let micros: Option<i64> = row.get(0, "value")?;
    micros
        .map(|micros| {
            from_micros(micros).ok_or_else(|| {
                corrupt(
                    row.label,
                    format_args!("{micros} is not an instant in microseconds"),
                )
            })
        })
        .transpose()
}
