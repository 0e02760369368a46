//! [`DefinitionStore`] on SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde_json::Value;

use gridflow_core::DefinitionId;

use super::SqlStore;
use super::error::{Kind, db_error, kind};
use super::query::Query;
use super::row::{self, DEFINITION_COLUMNS};
use crate::rules::to_micros;
use crate::{DefinitionRecord, DefinitionStore, Deployed, Error, Result};

/// How often a deploy that lost a race for the next version number is tried again.
/// Every retry reads the winner's version, so two rounds settle any pair of deploys.
const DEPLOY_ATTEMPTS: usize = 5;

fn not_found(id: &DefinitionId, version: Option<u32>) -> Error {
    match version {
        Some(version) => Error::NotFound(format!("definition {id} version {version}")),
        None => Error::NotFound(format!("definition {id}")),
    }
}

/// What one deploy attempt did.
enum Attempt {
    Done(Deployed),
    /// Another deploy took the version number first.
    Lost,
}

impl SqlStore {
    /// One deploy attempt inside `tx`: read the latest version, then insert the next one.
    /// On SQLite the write transaction serializes deploys; on PostgreSQL two deploys may
    /// read the same latest version, and the primary key refuses the second insert.
    async fn deploy_in(
        &self,
        tx: &DatabaseTransaction,
        id: &DefinitionId,
        content_hash: &str,
        source: &str,
        definition: &Value,
        at: DateTime<Utc>,
    ) -> Result<Attempt> {
        let mut latest = Query::new(self.backend, 1);
        latest
            .sql("SELECT version, content_hash FROM definition WHERE id = ")
            .bind(id.as_str())
            .sql(" ORDER BY version DESC LIMIT 1");
        let latest = tx
            .query_one_raw(latest.build())
            .await
            .map_err(|error| db_error(error, format_args!("deploying definition {id}")))?;
        let version = match latest {
            None => 1,
            Some(latest) => {
                let version: i64 = latest
                    .try_get_by_index(0)
                    .map_err(|error| db_error(error, format_args!("reading definition {id}")))?;
                let stored_hash: String = latest
                    .try_get_by_index(1)
                    .map_err(|error| db_error(error, format_args!("reading definition {id}")))?;
                let version = u32::try_from(version).map_err(|_| {
                    Error::Corrupt(format!(
                        "definition {id}: version {version} is out of range"
                    ))
                })?;
                if stored_hash == content_hash {
                    return Ok(Attempt::Done(Deployed::Unchanged(version)));
                }
                version.checked_add(1).ok_or_else(|| {
                    Error::Invalid(format!("definition {id}: no version after {version}"))
                })?
            }
        };
        let definition_text = serde_json::to_string(definition).map_err(|error| {
            Error::Invalid(format!(
                "definition {id}: cannot be written as JSON: {error}"
            ))
        })?;
        let mut insert = Query::new(self.backend, 6);
        insert
            .sql(
                "INSERT INTO definition (id, version, content_hash, source, definition, created_at) \
                 VALUES ",
            )
            .bind_row([
                id.as_str().into(),
                i64::from(version).into(),
                content_hash.into(),
                source.into(),
                definition_text.into(),
                to_micros(at).into(),
            ]);
        match tx.execute_raw(insert.build()).await {
            Ok(_) => Ok(Attempt::Done(Deployed::Created(version))),
            Err(error) if kind(&error) == Kind::Duplicate => Ok(Attempt::Lost),
            Err(error) => Err(db_error(error, format_args!("deploying definition {id}"))),
        }
    }
}

#[async_trait]
impl DefinitionStore for SqlStore {
    async fn deploy(
        &self,
        id: &DefinitionId,
        content_hash: &str,
        source: &str,
        definition: &Value,
        at: DateTime<Utc>,
    ) -> Result<Deployed> {
        for _ in 0..DEPLOY_ATTEMPTS {
            let tx = self.begin_write().await?;
            match self
                .deploy_in(&tx, id, content_hash, source, definition, at)
                .await
            {
                Ok(Attempt::Done(deployed)) => {
                    tx.commit().await.map_err(|error| {
                        db_error(error, format_args!("deploying definition {id}"))
                    })?;
                    return Ok(deployed);
                }
                Ok(Attempt::Lost) => {
                    // The failed insert aborted the transaction on PostgreSQL; start over.
                    let _ = tx.rollback().await;
                }
                Err(error) => {
                    let _ = tx.rollback().await;
                    return Err(error);
                }
            }
        }
        Err(Error::Conflict(format!(
            "definition {id}: {DEPLOY_ATTEMPTS} concurrent deploys took the next version first"
        )))
    }

    async fn definition(
        &self,
        id: &DefinitionId,
        version: Option<u32>,
    ) -> Result<DefinitionRecord> {
        let mut query = Query::new(self.backend, 2);
        query
            .sql("SELECT ")
            .sql(DEFINITION_COLUMNS)
            .sql(" FROM definition WHERE id = ")
            .bind(id.as_str());
        match version {
            Some(version) => {
                query.sql(" AND version = ").bind(i64::from(version));
            }
            None => {
                query.sql(" ORDER BY version DESC LIMIT 1");
            }
        }
        let found = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("reading definition {id}")))?;
        match found {
            Some(found) => row::definition(&found),
            None => Err(not_found(id, version)),
        }
    }

    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>> {
        let mut query = Query::new(self.backend, 0);
        query.sql("SELECT ").sql(DEFINITION_COLUMNS).sql(
            " FROM definition AS d WHERE version = \
                 (SELECT MAX(version) FROM definition AS newer WHERE newer.id = d.id) \
                 ORDER BY id",
        );
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "listing definitions"))?;
        rows.iter().map(row::definition).collect()
    }

    async fn definition_versions(&self, id: &DefinitionId) -> Result<Vec<DefinitionRecord>> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(DEFINITION_COLUMNS)
            .sql(" FROM definition WHERE id = ")
            .bind(id.as_str())
            .sql(" ORDER BY version");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("reading definition {id}")))?;
        if rows.is_empty() {
            return Err(not_found(id, None));
        }
        rows.iter().map(row::definition).collect()
    }
}
