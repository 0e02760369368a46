//! Moves each instance's state snapshot out of `instance` into its own table,
//! `instance_state (instance_id, snapshot_seq, state)` (issue 10, item 4).
//!
//! Snapshots are written when due rather than at every commit, so a commit updates the
//! small `instance` row and leaves the snapshot alone. In its own table the snapshot is not
//! copied by those updates either (SQLite rewrites a whole row on `UPDATE`, large text
//! included). `snapshot_seq` is the seq of the last event the snapshot reflects; a reader
//! folds the events after it. Every existing snapshot is current, so it gets `last_seq`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `instance_state`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000010_create_instance_state"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The key compares by bytes on both backends, like `instance.id`.
        let collate = match manager.get_database_backend() {
            DbBackend::Postgres => " COLLATE \"C\"",
            _ => "",
        };
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE instance_state (instance_id VARCHAR{collate} NOT NULL PRIMARY KEY, \
                 snapshot_seq BIGINT NOT NULL, state TEXT NOT NULL)"
            ))
            .await?;
        connection
            .execute_unprepared(
                "INSERT INTO instance_state (instance_id, snapshot_seq, state) \
                 SELECT id, last_seq, state FROM instance",
            )
            .await?;
        connection
            .execute_unprepared("ALTER TABLE instance DROP COLUMN state")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared(
                "ALTER TABLE instance ADD COLUMN state TEXT NOT NULL DEFAULT 'null'",
            )
            .await?;
        // A snapshot older than its history cannot be made current here (that takes the
        // state machine): such a row keeps its older snapshot.
        connection
            .execute_unprepared(
                "UPDATE instance SET state = (SELECT s.state FROM instance_state s \
                 WHERE s.instance_id = instance.id)",
            )
            .await?;
        connection
            .execute_unprepared("DROP TABLE instance_state")
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
