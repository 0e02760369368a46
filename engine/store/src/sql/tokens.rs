//! [`TokenStore`] and [`StoreCounts`] on SQL.

use std::str::FromStr;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, QueryResult};

use gridflow_core::InstanceStatus;

use super::SqlStore;
use super::error::{Kind, corrupt, db_error, kind};
use super::query::Query;
use crate::rules::{from_micros, to_micros, token_exists};
use crate::{Result, StoreCounts, TokenRecord, TokenStore};

/// Columns of [`token`], in order. `username`, because `user` is reserved in PostgreSQL.
const TOKEN_COLUMNS: &str = "hash, username, role, groups, created_at, created_by";

/// A row of [`TOKEN_COLUMNS`]. The hash is not repeated in messages: it identifies a
/// secret, so the user names the row instead.
fn token(row: &QueryResult) -> Result<TokenRecord> {
    let get_text = |index: usize, column: &str| -> Result<String> {
        row.try_get_by_index(index)
            .map_err(|error| db_error(error, format_args!("token row: column {column}")))
    };
    let user = get_text(1, "username")?;
    let label = format!("token of user {user:?}");
    let groups_text = get_text(3, "groups")?;
    let groups: Vec<String> = serde_json::from_str(&groups_text).map_err(|error| {
        corrupt(
            &label,
            format_args!("groups is not a JSON array of text: {error}"),
        )
    })?;
    let micros: i64 = row
        .try_get_by_index(4)
        .map_err(|error| db_error(error, format_args!("{label}: column created_at")))?;
    let created_at = from_micros(micros).ok_or_else(|| {
        corrupt(
            &label,
            format_args!("created_at {micros} is not an instant in microseconds"),
        )
    })?;
    Ok(TokenRecord {
        hash: get_text(0, "hash")?,
        user,
        role: get_text(2, "role")?,
        groups,
        created_at,
        created_by: get_text(5, "created_by")?,
    })
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(&self, record: &TokenRecord) -> Result<()> {
        let groups = serde_json::to_string(&record.groups).map_err(|error| {
            crate::Error::Invalid(format!(
                "token of user {:?}: groups cannot be written as JSON: {error}",
                record.user
            ))
        })?;
        let mut insert = Query::new(self.backend, 6);
        insert
            .sql("INSERT INTO token (")
            .sql(TOKEN_COLUMNS)
            .sql(") VALUES ")
            .bind_row([
                record.hash.as_str().into(),
                record.user.as_str().into(),
                record.role.as_str().into(),
                groups.into(),
                to_micros(record.created_at).into(),
                record.created_by.as_str().into(),
            ]);
        match self.writer.execute_raw(insert.build()).await {
            Ok(_) => Ok(()),
            Err(error) if kind(&error) == Kind::Duplicate => Err(token_exists(&record.user)),
            Err(error) => Err(db_error(
                error,
                format_args!("creating a token for user {:?}", record.user),
            )),
        }
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(TOKEN_COLUMNS)
            .sql(" FROM token WHERE hash = ")
            .bind(hash);
        let found = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, "looking up a token"))?;
        found.as_ref().map(token).transpose()
    }
}

#[async_trait]
impl StoreCounts for SqlStore {
    async fn instance_counts(&self) -> Result<Vec<(InstanceStatus, u64)>> {
        let query = Query::text(
            self.backend,
            "SELECT status, COUNT(*) FROM instance GROUP BY status ORDER BY status",
        );
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "counting instances by status"))?;
        rows.iter()
            .map(|row| {
                let status: String = row
                    .try_get_by_index(0)
                    .map_err(|error| db_error(error, "counting instances: column status"))?;
                let count: i64 = row
                    .try_get_by_index(1)
                    .map_err(|error| db_error(error, "counting instances: count"))?;
                let status = InstanceStatus::from_str(&status)
                    .map_err(|problem| corrupt("instance row", problem))?;
                Ok((status, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }

    async fn queued_work_count(&self) -> Result<u64> {
        let query = Query::text(self.backend, "SELECT COUNT(*) FROM work_item");
        let row = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, "counting queued work"))?;
        let count: i64 = match row {
            Some(row) => row
                .try_get_by_index(0)
                .map_err(|error| db_error(error, "counting queued work"))?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
