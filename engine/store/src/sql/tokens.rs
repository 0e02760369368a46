//! [`TokenStore`] and [`StoreCounts`] on SQL.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};

use gridflow_core::InstanceStatus;

use super::SqlStore;
use super::error::{Kind, corrupt, db_error, kind};
use super::query::Query;
use crate::rules::{from_micros, to_micros, token_exists, token_not_found};
use crate::{Result, StoreCounts, TokenRecord, TokenStore};

/// Columns of [`token`], in order. `username`, because `user` is reserved in PostgreSQL.
const TOKEN_COLUMNS: &str = "hash, username, role, groups, created_at, created_by, id, \
     expires_at, revoked_at, server_run";

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
    let instant = |index: usize, column: &str| -> Result<Option<DateTime<Utc>>> {
        let micros: Option<i64> = row
            .try_get_by_index(index)
            .map_err(|error| db_error(error, format_args!("{label}: column {column}")))?;
        micros
            .map(|micros| {
                from_micros(micros).ok_or_else(|| {
                    corrupt(
                        &label,
                        format_args!("{column} {micros} is not an instant in microseconds"),
                    )
                })
            })
            .transpose()
    };
    let created_at = instant(4, "created_at")?
        .ok_or_else(|| corrupt(&label, format_args!("created_at is null")))?;
    let id: Option<String> = row
        .try_get_by_index(6)
        .map_err(|error| db_error(error, format_args!("{label}: column id")))?;
    let server_run: Option<String> = row
        .try_get_by_index(9)
        .map_err(|error| db_error(error, format_args!("{label}: column server_run")))?;
    Ok(TokenRecord {
        id: id.ok_or_else(|| corrupt(&label, format_args!("id is null")))?,
        hash: get_text(0, "hash")?,
        user,
        role: get_text(2, "role")?,
        groups,
        created_at,
        created_by: get_text(5, "created_by")?,
        expires_at: instant(7, "expires_at")?,
        revoked_at: instant(8, "revoked_at")?,
        server_run,
    })
}

impl SqlStore {
    async fn token_where(&self, column: &str, value: &str) -> Result<Option<TokenRecord>> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(TOKEN_COLUMNS)
            .sql(" FROM token WHERE ")
            .sql(column)
            .sql(" = ")
            .bind(value);
        let found = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, "looking up a token"))?;
        found.as_ref().map(token).transpose()
    }
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
        let mut insert = Query::new(self.backend, 10);
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
                record.id.as_str().into(),
                record.expires_at.map(to_micros).into(),
                record.revoked_at.map(to_micros).into(),
                record.server_run.clone().into(),
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
        self.token_where("hash", hash).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut query = Query::new(self.backend, 0);
        query
            .sql("SELECT ")
            .sql(TOKEN_COLUMNS)
            .sql(" FROM token ORDER BY created_at, id");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "listing tokens"))?;
        rows.iter().map(token).collect()
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<(TokenRecord, bool)> {
        // An earlier revocation keeps its instant: only a valid token is updated.
        let mut update = Query::new(self.backend, 2);
        update
            .sql("UPDATE token SET revoked_at = ")
            .bind(to_micros(at))
            .sql(" WHERE revoked_at IS NULL AND id = ")
            .bind(id);
        let updated = self
            .writer
            .execute_raw(update.build())
            .await
            .map_err(|error| db_error(error, format_args!("revoking token {id}")))?;
        // Read from the writer: a replica-like reader could still see the token valid.
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(TOKEN_COLUMNS)
            .sql(" FROM token WHERE id = ")
            .bind(id);
        let found = self
            .writer
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("reading token {id}")))?;
        match found {
            Some(row) => Ok((token(&row)?, updated.rows_affected() > 0)),
            None => Err(token_not_found(id)),
        }
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
