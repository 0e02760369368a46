//! Creates `poll_cursor`: the durable position of each change poller (one row per polled
//! system), so that a restarted server resumes where it stopped.
//!
//! The cursor is the system's own position, opaque to the store (OTMM: the last change
//! instant and the changes seen at it; Trading Grid: the last event sequence).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates `poll_cursor`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000006_create_poll_cursor"
    }
}

#[derive(DeriveIden)]
enum PollCursor {
    Table,
    Source,
    Cursor,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut source = ColumnDef::new(PollCursor::Source);
        source.string().not_null().primary_key();
        if manager.get_database_backend() == DbBackend::Postgres {
            source.extra("COLLATE \"C\"");
        }
        manager
            .create_table(
                Table::create()
                    .table(PollCursor::Table)
                    .col(source)
                    .col(ColumnDef::new(PollCursor::Cursor).text().not_null())
                    .col(
                        ColumnDef::new(PollCursor::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(PollCursor::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
