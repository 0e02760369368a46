//! [`InstanceReader`] and [`WorkReader`] on SQL. Reads go to the reading pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Statement};

use gridflow_core::{InstanceId, InstanceStatus, RecordedEvent};

use super::SqlStore;
use super::error::db_error;
use super::query::Query;
use super::row::{
    self, EVENT_COLUMNS, INSTANCE_COLUMNS, INSTANCE_FROM, INSTANCE_HEAD_COLUMNS, TIMER_COLUMNS,
    WORK_ITEM_COLUMNS,
};
use crate::rules::{check_page_request, to_i64, to_micros};
use crate::{
    Error, InstanceFilter, InstanceReader, InstanceRecord, Page, Result, TimerRecord, WorkItem,
    WorkReader,
};

/// The statuses that are not terminal, for start-up recovery.
const UNFINISHED: [InstanceStatus; 2] = [InstanceStatus::Running, InstanceStatus::Waiting];

fn instance_not_found(id: &InstanceId) -> Error {
    Error::NotFound(format!("instance {id}"))
}

impl SqlStore {
    async fn read_all(&self, statement: Statement, context: &str) -> Result<Vec<QueryResult>> {
        self.reader
            .query_all_raw(statement)
            .await
            .map_err(|error| db_error(error, context))
    }

    async fn instance_exists(&self, id: &InstanceId) -> Result<bool> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT 1 FROM instance WHERE id = ")
            .bind(id.as_str());
        self.reader
            .query_one_raw(query.build())
            .await
            .map(|found| found.is_some())
            .map_err(|error| db_error(error, format_args!("reading instance {id}")))
    }
}

#[async_trait]
impl InstanceReader for SqlStore {
    async fn instance(&self, id: &InstanceId) -> Result<InstanceRecord> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(INSTANCE_COLUMNS)
            .sql(" FROM ")
            .sql(INSTANCE_FROM)
            .sql(" WHERE id = ")
            .bind(id.as_str());
        let found = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("reading instance {id}")))?;
        match found {
            Some(found) => row::instance(&found),
            None => Err(instance_not_found(id)),
        }
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceRecord>> {
        self.list_instance_rows(INSTANCE_COLUMNS, INSTANCE_FROM, filter, cursor, limit)
            .await
    }

    async fn list_instance_heads(
        &self,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceRecord>> {
        self.list_instance_rows(INSTANCE_HEAD_COLUMNS, "instance", filter, cursor, limit)
            .await
    }

    async fn history(&self, id: &InstanceId) -> Result<Vec<RecordedEvent>> {
        // Every seq is at least 1, so the events after 0 are the whole history.
        let events = self.history_after(id, 0).await?;
        if events.is_empty() && !self.instance_exists(id).await? {
            return Err(instance_not_found(id));
        }
        Ok(events)
    }

    async fn history_after(&self, id: &InstanceId, after_seq: u64) -> Result<Vec<RecordedEvent>> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT ")
            .sql(EVENT_COLUMNS)
            .sql(" FROM history_event WHERE instance_id = ")
            .bind(id.as_str())
            .sql(" AND seq > ")
            .bind(to_i64(after_seq, || format!("instance {id}: seq"))?)
            .sql(" ORDER BY seq");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| {
                db_error(error, format_args!("reading the history of instance {id}"))
            })?;
        rows.iter().map(row::event).collect()
    }

    async fn children(&self, parent: &InstanceId) -> Result<Vec<crate::ChildRecord>> {
        self.read_children(parent).await
    }

    async fn unfinished_instances(&self) -> Result<Vec<InstanceId>> {
        let mut query = Query::new(self.backend, UNFINISHED.len());
        query
            .sql("SELECT id FROM instance WHERE status IN (")
            .bind_list(UNFINISHED.map(InstanceStatus::as_str))
            .sql(") ORDER BY id");
        let rows = self
            .read_all(query.build(), "listing unfinished instances")
            .await?;
        rows.iter()
            .map(|found| {
                found
                    .try_get_by_index::<String>(0)
                    .map(InstanceId)
                    .map_err(|error| db_error(error, "listing unfinished instances"))
            })
            .collect()
    }
}

#[async_trait]
impl WorkReader for SqlStore {
    async fn queued_work(&self) -> Result<Vec<WorkItem>> {
        let mut query = Query::new(self.backend, 0);
        query
            .sql("SELECT ")
            .sql(WORK_ITEM_COLUMNS)
            .sql(" FROM work_item ORDER BY created_at, id");
        let rows = self.read_all(query.build(), "reading queued work").await?;
        rows.iter().map(row::work_item).collect()
    }

    async fn due_timers(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TimerRecord>> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT ")
            .sql(TIMER_COLUMNS)
            .sql(" FROM timer WHERE fire_at <= ")
            .bind(to_micros(now))
            .sql(" ORDER BY fire_at, instance_id, \"key\" LIMIT ")
            .bind(i64::from(limit));
        let rows = self.read_all(query.build(), "reading due timers").await?;
        rows.iter().map(row::timer).collect()
    }

    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>> {
        let query = Query::text(self.backend, "SELECT MIN(fire_at) FROM timer");
        let found = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, "reading the next timer"))?;
        match found {
            Some(found) => row::optional_instant(&found, "timer"),
            None => Ok(None),
        }
    }
}

impl SqlStore {
    /// A page of instance rows, newest first, reading `columns` (in the order of
    /// [`INSTANCE_COLUMNS`]) from `from`.
    async fn list_instance_rows(
        &self,
        columns: &str,
        from: &str,
        filter: &InstanceFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InstanceRecord>> {
        check_page_request(cursor, limit)?;
        let mut query = Query::new(self.backend, 4);
        query
            .sql("SELECT ")
            .sql(columns)
            .sql(" FROM ")
            .sql(from)
            .sql(" WHERE 1 = 1");
        if let Some(status) = filter.status {
            query.sql(" AND status = ").bind(status.as_str());
        }
        if let Some(definition) = &filter.definition {
            query.sql(" AND definition_id = ").bind(definition.as_str());
        }
        if let Some(cursor) = cursor {
            query.sql(" AND id < ").bind(cursor);
        }
        // One row more than asked tells whether there is a next page.
        query
            .sql(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = self.read_all(query.build(), "listing instances").await?;
        let mut items = rows.iter().map(row::instance).collect::<Result<Vec<_>>>()?;
        let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > page_size {
            items.truncate(page_size);
            items.last().map(|last| last.id.0.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
