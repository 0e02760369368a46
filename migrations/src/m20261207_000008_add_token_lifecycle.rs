//! Gives every token an id, an expiry and a revocation, and binds the sandbox's demo
//! tokens to the server run that made them (issue 10, item 5).
//!
//! - `id`: a public handle (`GET /tokens`, `DELETE /tokens/{id}`), unlike the hash, which
//!   never leaves the store. Existing tokens get a random one here.
//! - `expires_at`: microseconds; `NULL` for tokens made before this migration, which keep
//!   working until an admin revokes them (the migration cannot know the configured
//!   lifetime, and expiring them here could lock every client out at once).
//! - `revoked_at`: microseconds; `NULL` while the token is valid.
//! - `server_run`: set on the demo tokens of `serve --sandbox`; such a token is accepted
//!   only by the server run that made it, so it ends with that run even after a SIGKILL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The migration that adds the token lifecycle columns.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000008_add_token_lifecycle"
    }
}

#[derive(DeriveIden)]
enum Token {
    Table,
    Id,
    ExpiresAt,
    RevokedAt,
    ServerRun,
}

/// The unique index on `token.id`.
const ID_INDEX: &str = "token_id_unique";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            ColumnDef::new(Token::Id).string().null().to_owned(),
            ColumnDef::new(Token::ExpiresAt)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Token::RevokedAt)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Token::ServerRun).string().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Token::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // Existing tokens get a random id (32 lowercase hex digits, evaluated per row).
        let fill = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "UPDATE token SET id = md5(random()::text || clock_timestamp()::text || hash)"
            }
            _ => "UPDATE token SET id = lower(hex(randomblob(16)))",
        };
        manager.get_connection().execute_unprepared(fill).await?;
        manager
            .create_index(
                Index::create()
                    .name(ID_INDEX)
                    .table(Token::Table)
                    .col(Token::Id)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(ID_INDEX).table(Token::Table).to_owned())
            .await?;
        for column in [
            Token::ServerRun,
            Token::RevokedAt,
            Token::ExpiresAt,
            Token::Id,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Token::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
