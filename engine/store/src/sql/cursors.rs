//! [`CursorStore`] on SQL: one row per source, written with one upsert
//! (`INSERT … ON CONFLICT (source) DO UPDATE`), which SQLite and PostgreSQL both accept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::SqlStore;
use super::error::db_error;
use super::query::Query;
use crate::Result;
use crate::cursors::CursorStore;
use crate::rules::to_micros;

#[async_trait]
impl CursorStore for SqlStore {
    async fn load_cursor(&self, source: &str) -> Result<Option<String>> {
        let context = format!("reading the poll cursor of {source}");
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT cursor FROM poll_cursor WHERE source = ")
            .bind(source);
        // Read from the writing connection: the poller reads what it wrote before.
        let row = self
            .writer
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        row.map(|row| {
            row.try_get_by_index::<String>(0)
                .map_err(|error| db_error(error, &context))
        })
        .transpose()
    }

    async fn save_cursor(&self, source: &str, cursor: &str, at: DateTime<Utc>) -> Result<()> {
        let context = format!("saving the poll cursor of {source}");
        let mut query = Query::new(self.backend, 3);
        query
            .sql("INSERT INTO poll_cursor (source, cursor, updated_at) VALUES (")
            .bind(source)
            .sql(", ")
            .bind(cursor)
            .sql(", ")
            .bind(to_micros(at))
            .sql(
                ") ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, \
                 updated_at = excluded.updated_at",
            );
        self.writer
            .execute_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        Ok(())
    }
}
