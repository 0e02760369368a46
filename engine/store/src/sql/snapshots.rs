//! Writing state snapshots, apart from the instance rows: `instance_state (instance_id,
//! snapshot_seq, state)`.
//!
//! A new instance's snapshot is inserted with its row; a stored instance's snapshot is
//! replaced only by a write that carries one (`InstanceWrite::snapshot`). So the commits
//! between two snapshots update the small `instance` row and leave the large state alone:
//! SQLite rewrites a whole row on `UPDATE`, and the state in that row made every commit of
//! a long instance cost what its state weighs.

use sea_orm::{DatabaseTransaction, Value};

use super::SqlStore;
use super::commit::{Failure, Rows, StateWrite, Step, json};
use crate::rules::to_i64;
use crate::{InstanceWrite, Result};

const INSERT_STATE: &str = "INSERT INTO instance_state (instance_id, snapshot_seq, state) VALUES ";
const UPDATE_STATES_HEAD: &str = "WITH v (instance_id, snapshot_seq, state) AS (VALUES ";
const UPDATE_STATES_TAIL: &str = ") UPDATE instance_state SET snapshot_seq = v.snapshot_seq, \
     state = v.state FROM v WHERE instance_state.instance_id = v.instance_id";
const STATE_VALUES: usize = 3;

fn state_row(write: &InstanceWrite) -> Result<[Value; STATE_VALUES]> {
    let record = &write.record;
    let id = &record.id;
    Ok([
        id.as_str().into(),
        to_i64(record.snapshot_seq, || {
            format!("instance {id}: snapshot_seq")
        })?
        .into(),
        json(&record.state, || format!("instance {id}: state"))?.into(),
    ])
}

impl SqlStore {
    /// Writes the snapshots of `writes`.
    pub(super) async fn write_states<'b>(
        &self,
        tx: &DatabaseTransaction,
        writes: &[&'b InstanceWrite],
        how: StateWrite,
    ) -> std::result::Result<(), Failure<'b>> {
        let rows = writes
            .iter()
            .map(|write| state_row(write))
            .collect::<Result<Vec<_>>>()?;
        let (head, tail) = match how {
            StateWrite::Insert => (INSERT_STATE, ""),
            StateWrite::Update => (UPDATE_STATES_HEAD, UPDATE_STATES_TAIL),
        };
        self.execute_rows(
            tx,
            Rows { head, tail, rows },
            |range| {
                let ids = writes[range].iter().map(|write| &write.record.id).collect();
                match how {
                    StateWrite::Insert => Step::InsertInstances(ids),
                    StateWrite::Update => Step::UpdateInstances(ids),
                }
            },
            |range, written| {
                if written == range.len() as u64 {
                    Ok(())
                } else {
                    Err(Failure::Stale(writes[range].to_vec()))
                }
            },
        )
        .await
    }
}
