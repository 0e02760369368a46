//! Creates the approvals read model: `approval` (one row per requested approval, written in
//! the same transaction as the events that change it) and `approval_assignee` (one row per
//! assigned user or group, so that "the approvals visible to a user" is an index lookup).
//!
//! Instants are `BIGINT` microseconds, JSON is `TEXT`, keys compare by bytes (see the crate
//! documentation).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates the approval tables.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000002_create_approval"
    }
}

#[derive(DeriveIden)]
enum Approval {
    Table,
    Id,
    InstanceId,
    Step,
    Attempt,
    Title,
    Status,
    AssignedUsers,
    AssignedGroups,
    Quorum,
    Level,
    Decisions,
    DueAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApprovalAssignee {
    Table,
    Kind,
    Name,
    ApprovalId,
}

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
                    .table(Approval::Table)
                    .col(key(Approval::Id, backend).primary_key())
                    .col(key(Approval::InstanceId, backend))
                    .col(key(Approval::Step, backend))
                    .col(big_integer(Approval::Attempt))
                    .col(text(Approval::Title))
                    .col(key(Approval::Status, backend))
                    .col(text(Approval::AssignedUsers))
                    .col(text(Approval::AssignedGroups))
                    .col(big_integer(Approval::Quorum))
                    .col(big_integer(Approval::Level))
                    .col(text(Approval::Decisions))
                    .col(ColumnDef::new(Approval::DueAt).big_integer().null())
                    .col(big_integer(Approval::CreatedAt))
                    .col(big_integer(Approval::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_approval_instance")
                    .table(Approval::Table)
                    .col(Approval::InstanceId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApprovalAssignee::Table)
                    .col(key(ApprovalAssignee::Kind, backend))
                    .col(key(ApprovalAssignee::Name, backend))
                    .col(key(ApprovalAssignee::ApprovalId, backend))
                    .primary_key(
                        Index::create()
                            .name("pk_approval_assignee")
                            .col(ApprovalAssignee::Kind)
                            .col(ApprovalAssignee::Name)
                            .col(ApprovalAssignee::ApprovalId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_approval_assignee_approval")
                    .table(ApprovalAssignee::Table)
                    .col(ApprovalAssignee::ApprovalId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApprovalAssignee::Table.into_iden(),
            Approval::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
