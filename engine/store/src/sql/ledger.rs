//! [`LedgerStore`] on SQL: tables `ledger_delivery` (one row per delivery) and
//! `ledger_entry` (its chain), written inside the batch's transaction or an event's own.
//!
//! Each write is a few statements: an `Open` is `INSERT … ON CONFLICT DO NOTHING` and, when
//! it inserted, its first entry; a `Status` reads the matching rows (`FOR UPDATE` on
//! PostgreSQL, so two transactions cannot extend one chain from the same head; SQLite has
//! one writer) and the deliveries among them that already have an entry of this origin,
//! then appends an entry to each other one and updates its row. The chain and the
//! precedence are computed by `gridflow_core::audit::ledger`, not in SQL.

use std::collections::HashSet;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Value};

use gridflow_core::InstanceId;

use super::SqlStore;
use super::error::{corrupt, db_error};
use super::query::Query;
use crate::ledger::{
    Delivery, Entry, Facts, LedgerFilter, LedgerStore, LedgerWrite, Status, StatusMatch, cursor_of,
    origin_key, parse_cursor,
};
use crate::rules::{check_page_request, from_micros, to_i64, to_micros};
use crate::{Error, Page, Result};

const DELIVERY_COLUMNS: &str = "delivery_id, system, asset_id, version, sha256, partner, \
     channel, reference, receipt, instance_id, step, item, attempt, delivered_at, status, \
     status_at, downloaded_at, acknowledged_at, head_seq, head_hash";
const DELIVERY_VALUES: usize = 20;

const ENTRY_COLUMNS: &str = "delivery_id, seq, status, at, detail, origin, prev_hash, hash";
const ENTRY_VALUES: usize = 8;

fn optional_text(value: Option<&str>) -> Value {
    Value::String(value.map(str::to_owned))
}

fn optional_number(value: Option<i64>) -> Value {
    Value::BigInt(value)
}

fn delivery_row(delivery: &Delivery) -> Result<[Value; DELIVERY_VALUES]> {
    let facts = &delivery.facts;
    let head_seq = to_i64(delivery.head_seq, || {
        format!("delivery {}: head_seq", delivery.delivery_id)
    })?;
    Ok([
        delivery.delivery_id.as_str().into(),
        facts.system.as_str().into(),
        facts.asset_id.as_str().into(),
        facts.version.as_str().into(),
        facts.sha256.as_str().into(),
        facts.partner.as_str().into(),
        facts.channel.as_str().into(),
        facts.reference.as_str().into(),
        optional_text(facts.receipt.as_deref()),
        optional_text(facts.instance_id.as_ref().map(InstanceId::as_str)),
        optional_text(facts.step.as_deref()),
        optional_number(facts.item.map(i64::from)),
        optional_number(facts.attempt.map(i64::from)),
        to_micros(delivery.delivered_at).into(),
        delivery.status.as_str().into(),
        to_micros(delivery.status_at).into(),
        optional_number(delivery.downloaded_at.map(to_micros)),
        optional_number(delivery.acknowledged_at.map(to_micros)),
        head_seq.into(),
        delivery.head_hash.as_str().into(),
    ])
}

fn entry_row(entry: &Entry) -> Result<[Value; ENTRY_VALUES]> {
    let seq = to_i64(entry.seq, || {
        format!("delivery {}: entry seq", entry.delivery_id)
    })?;
    let detail = super::commit::json(&entry.detail, || {
        format!("delivery {}: entry {} detail", entry.delivery_id, entry.seq)
    })?;
    Ok([
        entry.delivery_id.as_str().into(),
        seq.into(),
        entry.status.as_str().into(),
        to_micros(entry.at).into(),
        detail.into(),
        origin_key(&entry.origin).into(),
        entry.prev_hash.as_str().into(),
        entry.hash.as_str().into(),
    ])
}

/// Decodes one column of a ledger row, naming the row in errors.
struct Decoder<'a> {
    row: &'a QueryResult,
    what: String,
}

impl Decoder<'_> {
    fn get<T: sea_orm::TryGetable>(&self, index: usize, column: &str) -> Result<T> {
        self.row
            .try_get_by_index(index)
            .map_err(|error| db_error(error, format_args!("{}: column {column}", self.what)))
    }

    fn instant(&self, index: usize, column: &str) -> Result<chrono::DateTime<chrono::Utc>> {
        let micros: i64 = self.get(index, column)?;
        from_micros(micros).ok_or_else(|| corrupt(&self.what, format_args!("{column} {micros}")))
    }

    fn optional_instant(
        &self,
        index: usize,
        column: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let micros: Option<i64> = self.get(index, column)?;
        micros
            .map(|micros| {
                from_micros(micros)
                    .ok_or_else(|| corrupt(&self.what, format_args!("{column} {micros}")))
            })
            .transpose()
    }

    fn small(&self, index: usize, column: &str) -> Result<Option<u32>> {
        let value: Option<i64> = self.get(index, column)?;
        value
            .map(|value| {
                u32::try_from(value)
                    .map_err(|_| corrupt(&self.what, format_args!("{column} {value}")))
            })
            .transpose()
    }

    fn status(&self, index: usize) -> Result<Status> {
        let name: String = self.get(index, "status")?;
        Status::parse(&name).ok_or_else(|| corrupt(&self.what, format_args!("status {name:?}")))
    }

    fn json(&self, index: usize, column: &str) -> Result<serde_json::Value> {
        let text: String = self.get(index, column)?;
        serde_json::from_str(&text)
            .map_err(|error| corrupt(&self.what, format_args!("{column} is not JSON: {error}")))
    }
}

fn delivery(row: &QueryResult) -> Result<Delivery> {
    let id: String = row
        .try_get_by_index(0)
        .map_err(|error| db_error(error, "ledger_delivery row: column delivery_id"))?;
    let row = Decoder {
        row,
        what: format!("delivery {id}"),
    };
    let instance_id: Option<String> = row.get(9, "instance_id")?;
    let head_seq: i64 = row.get(18, "head_seq")?;
    Ok(Delivery {
        delivery_id: id,
        facts: Facts {
            system: row.get(1, "system")?,
            asset_id: row.get(2, "asset_id")?,
            version: row.get(3, "version")?,
            sha256: row.get(4, "sha256")?,
            partner: row.get(5, "partner")?,
            channel: row.get(6, "channel")?,
            reference: row.get(7, "reference")?,
            receipt: row.get(8, "receipt")?,
            instance_id: instance_id.map(InstanceId::from),
            step: row.get(10, "step")?,
            item: row.small(11, "item")?,
            attempt: row.small(12, "attempt")?,
        },
        delivered_at: row.instant(13, "delivered_at")?,
        status: row.status(14)?,
        status_at: row.instant(15, "status_at")?,
        downloaded_at: row.optional_instant(16, "downloaded_at")?,
        acknowledged_at: row.optional_instant(17, "acknowledged_at")?,
        head_seq: u64::try_from(head_seq)
            .map_err(|_| corrupt(&row.what, format_args!("head_seq {head_seq}")))?,
        head_hash: row.get(19, "head_hash")?,
    })
}

fn entry(row: &QueryResult) -> Result<Entry> {
    let id: String = row
        .try_get_by_index(0)
        .map_err(|error| db_error(error, "ledger_entry row: column delivery_id"))?;
    let seq: i64 = row
        .try_get_by_index(1)
        .map_err(|error| db_error(error, format_args!("delivery {id}: entry seq")))?;
    let row = Decoder {
        row,
        what: format!("delivery {id}: entry {seq}"),
    };
    Ok(Entry {
        delivery_id: id,
        seq: u64::try_from(seq).map_err(|_| corrupt(&row.what, "negative seq"))?,
        status: row.status(2)?,
        at: row.instant(3, "at")?,
        detail: row.json(4, "detail")?,
        origin: row.json(5, "origin")?,
        prev_hash: row.get(6, "prev_hash")?,
        hash: row.get(7, "hash")?,
    })
}

/// The writes of one transaction, statement by statement.
struct Writer<'t> {
    tx: &'t DatabaseTransaction,
    backend: DbBackend,
    written: u64,
}

impl Writer<'_> {
    async fn execute(&self, query: Query, context: &str) -> Result<u64> {
        self.tx
            .execute_raw(query.build())
            .await
            .map(|done| done.rows_affected())
            .map_err(|error| db_error(error, context))
    }

    async fn insert_entry(&mut self, entry: &Entry) -> Result<()> {
        let mut query = Query::new(self.backend, ENTRY_VALUES);
        query
            .sql("INSERT INTO ledger_entry (")
            .sql(ENTRY_COLUMNS)
            .sql(") VALUES ")
            .bind_row(entry_row(entry)?);
        let context = format!(
            "writing entry {} of delivery {}",
            entry.seq, entry.delivery_id
        );
        self.execute(query, &context).await?;
        self.written += 1;
        Ok(())
    }

    async fn write(&mut self, write: &LedgerWrite) -> Result<()> {
        match write {
            LedgerWrite::Open {
                delivery_id,
                facts,
                at,
                origin,
            } => {
                let (delivery, first) =
                    Delivery::open(delivery_id, facts.clone(), *at, origin.clone());
                let mut query = Query::new(self.backend, DELIVERY_VALUES);
                query
                    .sql("INSERT INTO ledger_delivery (")
                    .sql(DELIVERY_COLUMNS)
                    .sql(") VALUES ")
                    .bind_row(delivery_row(&delivery)?)
                    .sql(" ON CONFLICT (delivery_id) DO NOTHING");
                let context = format!("writing delivery {delivery_id}");
                if self.execute(query, &context).await? == 1 {
                    self.insert_entry(&first).await?;
                }
                Ok(())
            }
            LedgerWrite::Status {
                matching,
                status,
                at,
                detail,
                origin,
            } => {
                let key = origin_key(origin);
                for mut delivery in self.matching(matching, &key).await? {
                    let entry = delivery.record(*status, *at, detail.clone(), origin.clone());
                    self.insert_entry(&entry).await?;
                    self.update(&delivery).await?;
                }
                Ok(())
            }
        }
    }

    /// The deliveries `matching` names that have no entry of origin `key`, locked.
    async fn matching(&self, matching: &StatusMatch, key: &str) -> Result<Vec<Delivery>> {
        let context = format!(
            "reading the deliveries of {} {}",
            matching.channel, matching.reference
        );
        let mut query = Query::new(self.backend, 4);
        query
            .sql("SELECT ")
            .sql(DELIVERY_COLUMNS)
            .sql(" FROM ledger_delivery WHERE channel = ")
            .bind(matching.channel.as_str())
            .sql(" AND reference = ")
            .bind(matching.reference.as_str());
        if let Some(partner) = &matching.partner {
            query.sql(" AND partner = ").bind(partner.as_str());
        }
        if let Some(receipt) = &matching.receipt {
            query.sql(" AND receipt = ").bind(receipt.as_str());
        }
        query.sql(" ORDER BY delivery_id");
        if self.backend == DbBackend::Postgres {
            query.sql(" FOR UPDATE");
        }
        let rows = self
            .tx
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        let deliveries = rows.iter().map(delivery).collect::<Result<Vec<_>>>()?;
        if deliveries.is_empty() {
            return Ok(deliveries);
        }
        let mut query = Query::new(self.backend, deliveries.len() + 1);
        query
            .sql("SELECT delivery_id FROM ledger_entry WHERE origin = ")
            .bind(key)
            .sql(" AND delivery_id IN (")
            .bind_list(deliveries.iter().map(|found| found.delivery_id.as_str()))
            .sql(")");
        let rows = self
            .tx
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        let mut written = HashSet::new();
        for row in rows {
            let id: String = row
                .try_get_by_index(0)
                .map_err(|error| db_error(error, &context))?;
            written.insert(id);
        }
        Ok(deliveries
            .into_iter()
            .filter(|found| !written.contains(&found.delivery_id))
            .collect())
    }

    async fn update(&self, delivery: &Delivery) -> Result<()> {
        let head_seq = to_i64(delivery.head_seq, || {
            format!("delivery {}: head_seq", delivery.delivery_id)
        })?;
        let mut query = Query::new(self.backend, 7);
        query
            .sql("UPDATE ledger_delivery SET status = ")
            .bind(delivery.status.as_str())
            .sql(", status_at = ")
            .bind(to_micros(delivery.status_at))
            .sql(", downloaded_at = ")
            .bind(optional_number(delivery.downloaded_at.map(to_micros)))
            .sql(", acknowledged_at = ")
            .bind(optional_number(delivery.acknowledged_at.map(to_micros)))
            .sql(", head_seq = ")
            .bind(head_seq)
            .sql(", head_hash = ")
            .bind(delivery.head_hash.as_str())
            .sql(" WHERE delivery_id = ")
            .bind(delivery.delivery_id.as_str());
        let context = format!("updating delivery {}", delivery.delivery_id);
        self.execute(query, &context).await?;
        Ok(())
    }
}

impl SqlStore {
    /// Writes ledger changes inside `tx` (a batch's or an event's); returns how many entries
    /// were written.
    pub(super) async fn write_ledger(
        &self,
        tx: &DatabaseTransaction,
        writes: &[LedgerWrite],
    ) -> Result<u64> {
        let mut writer = Writer {
            tx,
            backend: self.backend,
            written: 0,
        };
        for write in writes {
            writer.write(write).await?;
        }
        Ok(writer.written)
    }

    async fn read_deliveries(&self, query: Query, context: &str) -> Result<Vec<Delivery>> {
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, context))?;
        rows.iter().map(delivery).collect()
    }

    async fn read_entries(&self, query: Query, context: &str) -> Result<Vec<Entry>> {
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, context))?;
        rows.iter().map(entry).collect()
    }
}

#[async_trait]
impl LedgerStore for SqlStore {
    async fn apply_ledger(&self, writes: &[LedgerWrite]) -> Result<u64> {
        if writes.is_empty() {
            return Ok(0);
        }
        let tx = self.begin_write().await?;
        match self.write_ledger(&tx, writes).await {
            Ok(written) => match tx.commit().await {
                Ok(()) => Ok(written),
                Err(error) => {
                    self.discard_writer();
                    Err(db_error(error, "committing ledger changes"))
                }
            },
            Err(error) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(%rollback, "rolling back ledger changes failed; its connection is closed");
                    self.discard_writer();
                }
                Err(error)
            }
        }
    }

    async fn list_deliveries(
        &self,
        filter: &LedgerFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Delivery>> {
        check_page_request(cursor, limit)?;
        let mut query = Query::new(self.backend, 9 + filter.statuses.len());
        query
            .sql("SELECT ")
            .sql(DELIVERY_COLUMNS)
            .sql(" FROM ledger_delivery WHERE 1 = 1");
        let columns = [
            ("system", &filter.system),
            ("asset_id", &filter.asset_id),
            ("version", &filter.version),
            ("partner", &filter.partner),
            ("channel", &filter.channel),
        ];
        for (column, wanted) in columns {
            if let Some(wanted) = wanted {
                query
                    .sql(" AND ")
                    .sql(column)
                    .sql(" = ")
                    .bind(wanted.as_str());
            }
        }
        if !filter.statuses.is_empty() {
            query
                .sql(" AND status IN (")
                .bind_list(filter.statuses.iter().map(|status| status.as_str()))
                .sql(")");
        }
        if let Some(cursor) = cursor {
            let (micros, id) = parse_cursor(cursor)?;
            query
                .sql(" AND (delivered_at < ")
                .bind(micros)
                .sql(" OR (delivered_at = ")
                .bind(micros)
                .sql(" AND delivery_id < ")
                .bind(id)
                .sql("))");
        }
        query
            .sql(" ORDER BY delivered_at DESC, delivery_id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let mut items = self.read_deliveries(query, "listing the ledger").await?;
        let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > page_size {
            items.truncate(page_size);
            items.last().map(cursor_of)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn delivery(&self, delivery_id: &str) -> Result<(Delivery, Vec<Entry>)> {
        let context = format!("reading delivery {delivery_id}");
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(DELIVERY_COLUMNS)
            .sql(" FROM ledger_delivery WHERE delivery_id = ")
            .bind(delivery_id);
        let Some(found) = self.read_deliveries(query, &context).await?.pop() else {
            return Err(Error::NotFound(format!("delivery {delivery_id}")));
        };
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(ENTRY_COLUMNS)
            .sql(" FROM ledger_entry WHERE delivery_id = ")
            .bind(delivery_id)
            .sql(" ORDER BY seq");
        let entries = self.read_entries(query, &context).await?;
        Ok((found, entries))
    }

    async fn deliveries_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<Delivery>> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT ")
            .sql(DELIVERY_COLUMNS)
            .sql(" FROM ledger_delivery");
        if let Some(after) = after {
            query.sql(" WHERE delivery_id > ").bind(after);
        }
        query
            .sql(" ORDER BY delivery_id LIMIT ")
            .bind(i64::from(limit));
        self.read_deliveries(query, "reading the ledger").await
    }

    async fn entries_after(&self, after: Option<(&str, u64)>, limit: u32) -> Result<Vec<Entry>> {
        let mut query = Query::new(self.backend, 4);
        query
            .sql("SELECT ")
            .sql(ENTRY_COLUMNS)
            .sql(" FROM ledger_entry");
        if let Some((id, seq)) = after {
            let seq = to_i64(seq, || format!("delivery {id}: entry seq"))?;
            query
                .sql(" WHERE delivery_id > ")
                .bind(id)
                .sql(" OR (delivery_id = ")
                .bind(id)
                .sql(" AND seq > ")
                .bind(seq)
                .sql(")");
        }
        query
            .sql(" ORDER BY delivery_id, seq LIMIT ")
            .bind(i64::from(limit));
        self.read_entries(query, "reading the ledger's entries")
            .await
    }
}
