//! `child_instance (child_id, parent_id, step, item, attempt, created_at)`: which unit of
//! which parent started each child instance of a workflow step (issue 12, item 1).
//!
//! Written in the transaction that inserts the child's `instance` row; read by the parent's
//! view (its steps list their children, with the children's statuses from `instance`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `child_instance`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000011_create_child_instance"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The keys compare by bytes on both backends, like `instance.id`.
        let collate = match manager.get_database_backend() {
            DbBackend::Postgres => " COLLATE \"C\"",
            _ => "",
        };
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE child_instance (child_id VARCHAR{collate} NOT NULL PRIMARY KEY, \
                 parent_id VARCHAR{collate} NOT NULL, step VARCHAR{collate} NOT NULL, item BIGINT, \
                 attempt BIGINT NOT NULL, created_at BIGINT NOT NULL)"
            ))
            .await?;
        connection
            .execute_unprepared(
                "CREATE INDEX child_instance_parent ON child_instance (parent_id, child_id)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE child_instance")
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
