//! Rights windows as durable timers (issue 13, item 6): `rights_window (system, asset_id,
//! valid_from, valid_until, first_seen_at, seen_at, updated_at)`, the latest licence or
//! embargo window seen for each asset (an unknown bound is NULL), and `rights_firing
//! (definition_id, trigger_index, system, asset_id, valid_until, state, instance_id,
//! fired_at, fired_by)`, one row per `rights` trigger and window end that was acted on,
//! whose primary key makes a window end fire once per trigger.
//!
//! Instants are `BIGINT` microseconds, keys compare by bytes on both backends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `rights_window` and `rights_firing`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000015_create_rights_window"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let collate = match manager.get_database_backend() {
            DbBackend::Postgres => " COLLATE \"C\"",
            _ => "",
        };
        let connection = manager.get_connection();
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE rights_window (system VARCHAR{collate} NOT NULL, \
                 asset_id VARCHAR{collate} NOT NULL, valid_from BIGINT NULL, \
                 valid_until BIGINT NULL, first_seen_at BIGINT NOT NULL, \
                 seen_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
                 PRIMARY KEY (system, asset_id))"
            ))
            .await?;
        // The timer reads the windows ending before an instant, and the next end after one.
        connection
            .execute_unprepared(
                "CREATE INDEX rights_window_by_end ON rights_window (valid_until, system)",
            )
            .await?;
        connection
            .execute_unprepared(&format!(
                "CREATE TABLE rights_firing (definition_id VARCHAR{collate} NOT NULL, \
                 trigger_index BIGINT NOT NULL, system VARCHAR{collate} NOT NULL, \
                 asset_id VARCHAR{collate} NOT NULL, valid_until BIGINT NOT NULL, \
                 state VARCHAR NOT NULL, instance_id VARCHAR NULL, fired_at BIGINT NOT NULL, \
                 fired_by VARCHAR NOT NULL, \
                 PRIMARY KEY (definition_id, trigger_index, system, asset_id, valid_until))"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared("DROP TABLE rights_firing")
            .await?;
        connection
            .execute_unprepared("DROP TABLE rights_window")
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
