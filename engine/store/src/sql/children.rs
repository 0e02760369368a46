//! Child instances on SQL: the links written with the children's rows
//! (`child_instance`), and a parent's children read with their statuses.

use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, Value};

use gridflow_core::{InstanceId, InstanceStatus, StepId};

use super::SqlStore;
use super::commit::{Failure, Rows, Step};
use super::error::{corrupt, db_error};
use super::query::Query;
use crate::rules::{from_micros, to_micros};
use crate::{Batch, ChildLink, ChildRecord, Result};

const INSERT_CHILD: &str = "INSERT INTO child_instance (child_id, parent_id, step, item, \
     attempt, created_at) VALUES ";
const CHILD_VALUES: usize = 6;

impl SqlStore {
    /// Inserts the batch's child links (an existing link stays as it is).
    pub(super) async fn add_child_links<'b>(
        &self,
        tx: &DatabaseTransaction,
        batch: &'b Batch,
    ) -> std::result::Result<(), Failure<'b>> {
        let rows = batch
            .children
            .iter()
            .map(|link| {
                [
                    link.child_id.as_str().into(),
                    link.parent_id.as_str().into(),
                    link.step.as_str().into(),
                    Value::from(link.item.map(i64::from)),
                    i64::from(link.attempt).into(),
                    to_micros(link.created_at).into(),
                ]
            })
            .collect::<Vec<[Value; CHILD_VALUES]>>();
        self.execute_rows(
            tx,
            Rows {
                head: INSERT_CHILD,
                tail: " ON CONFLICT (child_id) DO NOTHING",
                rows,
            },
            |_| Step::AddWork,
            |_, _| Ok(()),
        )
        .await
    }

    /// The children of `parent`, ordered by step, item and attempt.
    pub(super) async fn read_children(&self, parent: &InstanceId) -> Result<Vec<ChildRecord>> {
        let mut query = Query::new(self.backend, 1);
        query
            .sql(
                "SELECT c.child_id, c.parent_id, c.step, c.item, c.attempt, c.created_at, \
                 i.status FROM child_instance c JOIN instance i ON i.id = c.child_id \
                 WHERE c.parent_id = ",
            )
            .bind(parent.as_str())
            .sql(" ORDER BY c.step, c.item, c.attempt");
        let context = format!("reading the children of instance {parent}");
        let rows = self
            .reader
            .query_all_raw(query.build())
            .await
            .map_err(|error| db_error(error, &context))?;
        rows.iter().map(|row| child(row, &context)).collect()
    }
}

fn child(row: &QueryResult, context: &str) -> Result<ChildRecord> {
    let get_text = |index: usize| {
        row.try_get_by_index::<String>(index)
            .map_err(|error| db_error(error, context))
    };
    let get_int = |index: usize| {
        row.try_get_by_index::<i64>(index)
            .map_err(|error| db_error(error, context))
    };
    let item = row
        .try_get_by_index::<Option<i64>>(3)
        .map_err(|error| db_error(error, context))?;
    let number = |value: i64, what: &str| {
        u32::try_from(value).map_err(|_| corrupt(context, format!("{what} {value} out of range")))
    };
    let status: InstanceStatus = get_text(6)?
        .parse()
        .map_err(|problem: String| corrupt(context, problem))?;
    Ok(ChildRecord {
        link: ChildLink {
            child_id: InstanceId(get_text(0)?),
            parent_id: InstanceId(get_text(1)?),
            step: StepId::from(get_text(2)?.as_str()),
            item: item.map(|item| number(item, "item")).transpose()?,
            attempt: number(get_int(4)?, "attempt")?,
            created_at: from_micros(get_int(5)?)
                .ok_or_else(|| corrupt(context, "created_at out of range"))?,
        },
        status,
    })
}
