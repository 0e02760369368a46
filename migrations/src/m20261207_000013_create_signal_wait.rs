//! The signal index (issue 12, item 8): `signal_wait (instance_id, step, signal_name,
//! key_path, key_value)`, one row per active wait step of an instance, written in the
//! commit that makes the wait active and removed in the one that ends it; and
//! `signal_key_path (signal_name, key_path)`, the payload paths that keyed waits of a
//! signal use. A signal reads the rows for its name and keys instead of every instance.
//!
//! An unkeyed wait has `''` in both key columns. The instances unfinished at this
//! migration are listed in `signal_wait_unindexed`: the migration cannot evaluate the
//! machine's keys, so a signal takes each of them as a candidate (and the machine decides)
//! until a commit writes its rows, which removes it from that list.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `signal_wait`, `signal_key_path` and
/// `signal_wait_unindexed`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000013_create_signal_wait"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Keys compare by bytes on both backends, like `instance.id`.
        let collate = match manager.get_database_backend() {
            DbBackend::Postgres => " COLLATE \"C\"",
            _ => "",
        };
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE signal_wait (instance_id VARCHAR{collate} NOT NULL, \
                 step VARCHAR{collate} NOT NULL, signal_name VARCHAR{collate} NOT NULL, \
                 key_path VARCHAR{collate} NOT NULL, key_value VARCHAR{collate} NOT NULL, \
                 PRIMARY KEY (instance_id, step, signal_name, key_path, key_value))"
            ))
            .await?;
        connection
            .execute_unprepared(
                "CREATE INDEX signal_wait_by_key ON signal_wait \
                 (signal_name, key_path, key_value)",
            )
            .await?;
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE signal_key_path (signal_name VARCHAR{collate} NOT NULL, \
                 key_path VARCHAR{collate} NOT NULL, PRIMARY KEY (signal_name, key_path))"
            ))
            .await?;
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE signal_wait_unindexed \
                 (instance_id VARCHAR{collate} NOT NULL PRIMARY KEY)"
            ))
            .await?;
        connection
            .execute_unprepared(
                "INSERT INTO signal_wait_unindexed (instance_id) \
                 SELECT id FROM instance WHERE status IN ('running', 'waiting')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared("DROP TABLE signal_wait_unindexed")
            .await?;
        connection
            .execute_unprepared("DROP TABLE signal_key_path")
            .await?;
        connection
            .execute_unprepared("DROP TABLE signal_wait")
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
