//! Creates the audit tables: `checkpoint` (signed checkpoints, chained to each other),
//! `checkpoint_head` (the chain head of every instance that a checkpoint covers, so that a
//! truncated history or a deleted instance is detectable against it) and `audit_log` (the
//! server's hash-chained log of operator actions that are not instance events).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that creates the audit tables.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000005_create_audit_tables"
    }
}

#[derive(DeriveIden)]
enum Checkpoint {
    Table,
    Seq,
    At,
    MerkleRoot,
    Instances,
    PrevCheckpointHash,
    AuditLogSeq,
    AuditLogHash,
    Hash,
    PublicKey,
    Signature,
}

#[derive(DeriveIden)]
enum CheckpointHead {
    Table,
    CheckpointSeq,
    InstanceId,
    Seq,
    Hash,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    EventType,
    At,
    Actor,
    Data,
    PrevHash,
    Hash,
}

/// A text key that compares by bytes on both backends (see the crate documentation).
fn key(column: impl IntoIden, backend: DbBackend) -> ColumnDef {
    let mut definition = ColumnDef::new(column);
    definition.string().not_null();
    if backend == DbBackend::Postgres {
        definition.extra("COLLATE \"C\"");
    }
    definition
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
                    .table(Checkpoint::Table)
                    .col(big_integer(Checkpoint::Seq).primary_key())
                    .col(big_integer(Checkpoint::At))
                    .col(string(Checkpoint::MerkleRoot))
                    .col(big_integer(Checkpoint::Instances))
                    .col(string(Checkpoint::PrevCheckpointHash))
                    .col(big_integer(Checkpoint::AuditLogSeq))
                    .col(string(Checkpoint::AuditLogHash))
                    .col(string(Checkpoint::Hash))
                    .col(string(Checkpoint::PublicKey))
                    .col(string(Checkpoint::Signature))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CheckpointHead::Table)
                    .col(big_integer(CheckpointHead::CheckpointSeq))
                    .col(key(CheckpointHead::InstanceId, backend))
                    .col(big_integer(CheckpointHead::Seq))
                    .col(string(CheckpointHead::Hash))
                    .primary_key(
                        Index::create()
                            .name("pk_checkpoint_head")
                            .col(CheckpointHead::CheckpointSeq)
                            .col(CheckpointHead::InstanceId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_integer(AuditLog::Seq).primary_key())
                    .col(string(AuditLog::EventType))
                    .col(big_integer(AuditLog::At))
                    .col(string(AuditLog::Actor))
                    .col(ColumnDef::new(AuditLog::Data).text().not_null())
                    .col(string(AuditLog::PrevHash))
                    .col(string(AuditLog::Hash))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            CheckpointHead::Table.into_iden(),
            Checkpoint::Table.into_iden(),
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
