//! The approvals read model on SQL: written inside the group commit's transaction
//! ([`SqlStore::write_approvals`], called last by the batch writer), read by
//! [`ApprovalReader`].
//!
//! `approval` holds one row per approval (assignees, decisions and bound artifacts as JSON
//! text);
//! `approval_assignee` holds one `(kind, name, approval_id)` row per assigned user or group,
//! so that the approvals visible to a user are found through its primary key.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, TryGetable, Value};

use gridflow_core::{ApprovalStatus, InstanceId, StepId};

use super::SqlStore;
use super::error::{corrupt, db_error};
use super::query::Query;
use crate::rules::{check_page_request, from_micros, to_micros};
use crate::{ApprovalFilter, ApprovalReader, ApprovalRecord, Batch, Error, Page, Result};

const APPROVAL_COLUMNS: &str = "id, instance_id, step, attempt, title, status, \
     assigned_users, assigned_groups, quorum, level, decisions, due_at, created_at, updated_at, \
     item, artifacts";
const APPROVAL_VALUES: usize = 16;
/// Rows per statement: far below SQLite's and PostgreSQL's limits on bound values.
const ROWS_PER_STATEMENT: usize = 64;

fn json_text(value: &impl serde::Serialize, id: &str, column: &str) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|error| Error::Invalid(format!("approval {id}: {column}: {error}")))
}

fn approval_row(record: &ApprovalRecord) -> Result<[Value; APPROVAL_VALUES]> {
    let id = record.id.as_str();
    Ok([
        id.into(),
        record.instance_id.as_str().into(),
        record.step.as_str().into(),
        i64::from(record.attempt).into(),
        record.title.as_str().into(),
        record.status.as_str().into(),
        json_text(&record.users, id, "users")?.into(),
        json_text(&record.groups, id, "groups")?.into(),
        i64::from(record.quorum).into(),
        i64::from(record.level).into(),
        json_text(&record.decisions, id, "decisions")?.into(),
        record.due_at.map(to_micros).into(),
        to_micros(record.created_at).into(),
        to_micros(record.updated_at).into(),
        record.item.map(i64::from).into(),
        record
            .artifacts
            .as_ref()
            .map(|artifacts| json_text(artifacts, id, "artifacts"))
            .transpose()?
            .into(),
    ])
}

/// The last record of each id, in first-appearance order (a multi-row upsert may not touch
/// a row twice on PostgreSQL).
fn last_per_id(records: &[ApprovalRecord]) -> Vec<&ApprovalRecord> {
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<&ApprovalRecord> = Vec::new();
    for record in records {
        match position.get(record.id.as_str()) {
            Some(&index) => unique[index] = record,
            None => {
                position.insert(record.id.as_str(), unique.len());
                unique.push(record);
            }
        }
    }
    unique
}

impl SqlStore {
    /// Upserts the batch's approval rows and replaces their assignee rows, inside `tx`.
    pub(super) async fn write_approvals(
        &self,
        tx: &DatabaseTransaction,
        batch: &Batch,
    ) -> Result<()> {
        let records = last_per_id(&batch.approvals);
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut query = Query::new(self.backend, chunk.len() * APPROVAL_VALUES);
            query
                .sql("INSERT INTO approval (")
                .sql(APPROVAL_COLUMNS)
                .sql(") VALUES ");
            for (index, record) in chunk.iter().enumerate() {
                if index > 0 {
                    query.sql(", ");
                }
                query.bind_row(approval_row(record)?);
            }
            query.sql(
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, \
                 status = excluded.status, assigned_users = excluded.assigned_users, \
                 assigned_groups = excluded.assigned_groups, quorum = excluded.quorum, \
                 level = excluded.level, decisions = excluded.decisions, \
                 due_at = excluded.due_at, updated_at = excluded.updated_at, \
                 artifacts = excluded.artifacts",
            );
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing approvals"))?;

            let mut query = Query::new(self.backend, chunk.len());
            query
                .sql("DELETE FROM approval_assignee WHERE approval_id IN (")
                .bind_list(chunk.iter().map(|record| record.id.as_str()))
                .sql(")");
            tx.execute_raw(query.build())
                .await
                .map_err(|error| db_error(error, "writing approval assignees"))?;

            let assignees: Vec<[Value; 3]> = chunk
                .iter()
                .flat_map(|record| {
                    let users = record.users.iter().map(|user| ("user", user));
                    let groups = record.groups.iter().map(|group| ("group", group));
                    users.chain(groups).map(|(kind, name)| {
                        [kind.into(), name.as_str().into(), record.id.as_str().into()]
                    })
                })
                .collect();
            for rows in assignees.chunks(ROWS_PER_STATEMENT * 4) {
                let mut query = Query::new(self.backend, rows.len() * 3);
                query.sql("INSERT INTO approval_assignee (kind, name, approval_id) VALUES ");
                for (index, row) in rows.iter().enumerate() {
                    if index > 0 {
                        query.sql(", ");
                    }
                    query.bind_row(row.clone());
                }
                query.sql(" ON CONFLICT DO NOTHING");
                tx.execute_raw(query.build())
                    .await
                    .map_err(|error| db_error(error, "writing approval assignees"))?;
            }
        }
        Ok(())
    }
}

fn get<T: TryGetable>(row: &QueryResult, index: usize, id: &str, column: &str) -> Result<T> {
    row.try_get_by_index(index)
        .map_err(|error| db_error(error, format_args!("approval {id}: column {column}")))
}

fn json<T: serde::de::DeserializeOwned>(
    row: &QueryResult,
    index: usize,
    id: &str,
    column: &str,
) -> Result<T> {
    let text: String = get(row, index, id, column)?;
    serde_json::from_str(&text)
        .map_err(|error| corrupt(format_args!("approval {id}: column {column}"), error))
}

fn count(row: &QueryResult, index: usize, id: &str, column: &str) -> Result<u32> {
    let value: i64 = get(row, index, id, column)?;
    u32::try_from(value).map_err(|_| {
        corrupt(
            format_args!("approval {id}"),
            format_args!("{column} {value}"),
        )
    })
}

fn instant(micros: i64, id: &str, column: &str) -> Result<DateTime<Utc>> {
    from_micros(micros).ok_or_else(|| {
        corrupt(
            format_args!("approval {id}"),
            format_args!("{column} {micros} is not an instant"),
        )
    })
}

fn approval(row: &QueryResult) -> Result<ApprovalRecord> {
    let id: String = get(row, 0, "?", "id")?;
    let id = id.as_str();
    let status: String = get(row, 5, id, "status")?;
    let status = ApprovalStatus::parse(&status).ok_or_else(|| {
        corrupt(
            format_args!("approval {id}"),
            format_args!("unknown status {status:?}"),
        )
    })?;
    let due_at: Option<i64> = get(row, 11, id, "due_at")?;
    Ok(ApprovalRecord {
        id: id.to_owned(),
        instance_id: InstanceId(get(row, 1, id, "instance_id")?),
        step: StepId(get(row, 2, id, "step")?),
        attempt: count(row, 3, id, "attempt")?,
        title: get(row, 4, id, "title")?,
        status,
        users: json(row, 6, id, "assigned_users")?,
        groups: json(row, 7, id, "assigned_groups")?,
        quorum: count(row, 8, id, "quorum")?,
        level: count(row, 9, id, "level")?,
        decisions: json(row, 10, id, "decisions")?,
        due_at: due_at
            .map(|due_at| instant(due_at, id, "due_at"))
            .transpose()?,
        created_at: instant(get(row, 12, id, "created_at")?, id, "created_at")?,
        updated_at: instant(get(row, 13, id, "updated_at")?, id, "updated_at")?,
        item: get::<Option<i64>>(row, 14, id, "item")?
            .map(|item| {
                u32::try_from(item).map_err(|_| {
                    corrupt(format_args!("approval {id}"), format_args!("item {item}"))
                })
            })
            .transpose()?,
        artifacts: get::<Option<String>>(row, 15, id, "artifacts")?
            .map(|text| {
                serde_json::from_str(&text).map_err(|error| {
                    corrupt(format_args!("approval {id}: column artifacts"), error)
                })
            })
            .transpose()?,
    })
}

#[async_trait]
impl ApprovalReader for SqlStore {
    async fn approval(&self, id: &str) -> Result<ApprovalRecord> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql("SELECT ")
            .sql(APPROVAL_COLUMNS)
            .sql(" FROM approval WHERE id = ")
            .bind(id);
        let found = self
            .reader
            .query_one_raw(query.build())
            .await
            .map_err(|error| db_error(error, format_args!("reading approval {id}")))?;
        match found {
            Some(found) => approval(&found),
            None => Err(Error::NotFound(format!("approval {id}"))),
        }
    }

    async fn list_approvals(
        &self,
        filter: &ApprovalFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApprovalRecord>> {
        check_page_request(cursor, limit)?;
        let mut query = Query::new(self.backend, 4 + filter.groups.len());
        query
            .sql("SELECT ")
            .sql(APPROVAL_COLUMNS)
            .sql(
                " FROM approval WHERE id IN (SELECT approval_id FROM approval_assignee \
                 WHERE (kind = 'user' AND name = ",
            )
            .bind(filter.user.as_str())
            .sql(")");
        if !filter.groups.is_empty() {
            query
                .sql(" OR (kind = 'group' AND name IN (")
                .bind_list(filter.groups.iter().map(String::as_str))
                .sql("))");
        }
        query.sql(")");
        if let Some(status) = filter.status {
            query.sql(" AND status = ").bind(status.as_str());
        }
        if let Some(cursor) = cursor {
            query.sql(" AND id < ").bind(cursor);
        }
        query
            .sql(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, "listing approvals"))?;
        let mut items = rows.iter().map(approval).collect::<Result<Vec<_>>>()?;
        let page_size = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > page_size {
            items.truncate(page_size);
            items.last().map(|last| last.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
