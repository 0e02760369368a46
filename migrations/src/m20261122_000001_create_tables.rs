//! Creates the five tables of the engine: `definition`, `instance`, `history_event`,
//! `work_item` and `timer`.
//!
//! Instants are `BIGINT` microseconds since the Unix epoch (UTC), JSON is `TEXT`, and text
//! keys compare by bytes on both backends (see the crate documentation).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates the initial schema.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000001_create_tables"
    }
}

#[derive(DeriveIden)]
enum Definition {
    Table,
    Id,
    Version,
    ContentHash,
    Source,
    /// The parsed definition as JSON, in column `definition`.
    #[sea_orm(iden = "definition")]
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Instance {
    Table,
    Id,
    DefinitionId,
    DefinitionVersion,
    Status,
    State,
    Input,
    Output,
    Error,
    CreatedAt,
    UpdatedAt,
    LastSeq,
    LastHash,
    RowVersion,
}

#[derive(DeriveIden)]
enum HistoryEvent {
    Table,
    InstanceId,
    Seq,
    EventType,
    At,
    Actor,
    Data,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum WorkItem {
    Table,
    Id,
    InstanceId,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Timer {
    Table,
    InstanceId,
    Key,
    FireAt,
    Payload,
}

/// A text key column that sorts and compares by bytes on both backends.
///
/// SQLite's default `BINARY` collation already compares by bytes. PostgreSQL uses the
/// database's collation (often a linguistic one such as `en_US.UTF-8`), so the column is
/// declared `COLLATE "C"` there: `ORDER BY id` and the pagination cursor then agree with
/// SQLite and with the in-memory store.
fn key(column: impl IntoIden, backend: DbBackend) -> ColumnDef {
    let mut definition = ColumnDef::new(column);
    definition.string().not_null();
    if backend == DbBackend::Postgres {
        definition.extra("COLLATE \"C\"");
    }
    definition
}

fn text(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).text().not_null().to_owned()
}

fn text_null(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).text().null().to_owned()
}

fn string(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).string().not_null().to_owned()
}

fn big_integer(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        manager
            .create_table(
                Table::create()
                    .table(Definition::Table)
                    .col(key(Definition::Id, backend))
                    .col(big_integer(Definition::Version))
                    .col(string(Definition::ContentHash))
                    .col(text(Definition::Source))
                    .col(text(Definition::Body))
                    .col(big_integer(Definition::CreatedAt))
                    .primary_key(
                        Index::create()
                            .name("pk_definition")
                            .col(Definition::Id)
                            .col(Definition::Version),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Instance::Table)
                    .col(key(Instance::Id, backend).primary_key())
                    .col(key(Instance::DefinitionId, backend))
                    .col(big_integer(Instance::DefinitionVersion))
                    .col(string(Instance::Status))
                    .col(text(Instance::State))
                    .col(text(Instance::Input))
                    .col(text_null(Instance::Output))
                    .col(text_null(Instance::Error))
                    .col(big_integer(Instance::CreatedAt))
                    .col(big_integer(Instance::UpdatedAt))
                    .col(big_integer(Instance::LastSeq))
                    .col(string(Instance::LastHash))
                    .col(big_integer(Instance::RowVersion))
                    .to_owned(),
            )
            .await?;
        // Both indexes end with the id so that a filtered list is read in page order
        // (`WHERE status = ? AND id < ? ORDER BY id DESC`) without sorting.
        manager
            .create_index(
                Index::create()
                    .name("idx_instance_status")
                    .table(Instance::Table)
                    .col(Instance::Status)
                    .col(Instance::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_instance_definition")
                    .table(Instance::Table)
                    .col(Instance::DefinitionId)
                    .col(Instance::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(HistoryEvent::Table)
                    .col(key(HistoryEvent::InstanceId, backend))
                    .col(big_integer(HistoryEvent::Seq))
                    .col(string(HistoryEvent::EventType))
                    .col(big_integer(HistoryEvent::At))
                    .col(string(HistoryEvent::Actor))
                    .col(text(HistoryEvent::Data))
                    .col(string(HistoryEvent::PrevHash))
                    .col(string(HistoryEvent::Hash))
                    .primary_key(
                        Index::create()
                            .name("pk_history_event")
                            .col(HistoryEvent::InstanceId)
                            .col(HistoryEvent::Seq),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WorkItem::Table)
                    .col(key(WorkItem::Id, backend).primary_key())
                    .col(key(WorkItem::InstanceId, backend))
                    .col(text(WorkItem::Payload))
                    .col(big_integer(WorkItem::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Timer::Table)
                    .col(key(Timer::InstanceId, backend))
                    .col(key(Timer::Key, backend))
                    .col(big_integer(Timer::FireAt))
                    .col(text(Timer::Payload))
                    .primary_key(
                        Index::create()
                            .name("pk_timer")
                            .col(Timer::InstanceId)
                            .col(Timer::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_timer_fire_at")
                    .table(Timer::Table)
                    .col(Timer::FireAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping a table drops its indexes on both backends.
        for table in [
            Timer::Table.into_iden(),
            WorkItem::Table.into_iden(),
            HistoryEvent::Table.into_iden(),
            Instance::Table.into_iden(),
            Definition::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    /// The whole schema appears or none of it, on SQLite as well as PostgreSQL (both have
    /// transactional DDL).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm_migration::sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    #[test]
    fn key_columns_compare_by_bytes_on_postgres() {
        let statement = Table::create()
            .table(Instance::Table)
            .col(key(Instance::Id, DbBackend::Postgres).primary_key())
            .to_owned();
        let sql = statement.to_string(PostgresQueryBuilder);
        assert!(sql.contains("COLLATE \"C\""), "{sql}");
        let statement = Table::create()
            .table(Instance::Table)
            .col(key(Instance::Id, DbBackend::Sqlite).primary_key())
            .to_owned();
        let sql = statement.to_string(SqliteQueryBuilder);
        assert!(!sql.contains("COLLATE"), "{sql}");
    }
}
