//! Building parameterized statements by hand, for both backends.
//!
//! The batch write path builds multi-row `INSERT`s and `IN (…)` lists whose size varies
//! from batch to batch. Writing the SQL text directly (rather than through sea-query's
//! expression trees) keeps that path to one string and one value vector per statement.
//! Only fixed table and column names are ever written into the text; every value is bound.

use std::fmt::Write as _;

use sea_orm::{DbBackend, Statement, Value};

/// SQLite's default limit on bound variables per statement (`SQLITE_MAX_VARIABLE_NUMBER`).
const SQLITE_MAX_VARIABLES: usize = 32_766;
/// PostgreSQL's limit on bound parameters per statement (a 16-bit count in the protocol).
const POSTGRES_MAX_VARIABLES: usize = 65_535;

/// Row counts of the multi-row statements on PostgreSQL, largest first.
///
/// A batch of `n` rows is written as chunks of these sizes, the binary digits of `n`
/// (250 rows: 128 + 64 + 32 + 16 + 8 + 2). Each (table, size) pair is then one SQL text
/// that the driver's per-connection prepared-statement cache keeps, instead of a new text
/// to parse and plan for every distinct batch size, and a batch takes at most nine
/// statements per table (each one a round trip to the driver's worker on SQLite).
const CHUNK_ROWS: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// The most bytes of bound values that one PostgreSQL statement carries (unless a single
/// row is larger).
///
/// sqlx 0.9.0 does not set `TCP_NODELAY` on its sockets (launchbadge/sqlx#4335, fixed
/// upstream after 0.9.0). A message larger than the socket's initial send buffer (16 KiB
/// with Linux defaults) leaves the kernel with a small trailing segment that Nagle's
/// algorithm holds back until the server's delayed ACK, about 40 ms later: one 25 KiB
/// `INSERT` took 45 ms where two of 12 KiB took 1 ms. Keeping statements under this budget
/// avoids the stall. SQLite has no socket and no budget.
const POSTGRES_STATEMENT_BYTES: usize = 12 * 1024;

/// A statement being built: SQL text with placeholders, and the values they bind.
#[derive(Debug)]
pub(crate) struct Query {
    backend: DbBackend,
    sql: String,
    values: Vec<Value>,
}

impl Query {
    /// An empty statement for `backend`, with room for `values` bound values.
    pub(crate) fn new(backend: DbBackend, values: usize) -> Self {
        Self {
            backend,
            sql: String::with_capacity(64 + values * 4),
            values: Vec::with_capacity(values),
        }
    }

    /// A statement of fixed SQL and no values.
    pub(crate) fn text(backend: DbBackend, sql: &str) -> Self {
        let mut query = Self::new(backend, 0);
        query.sql(sql);
        query
    }

    /// Appends SQL text.
    pub(crate) fn sql(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                // Writing to a String cannot fail.
                let _ = write!(self.sql, "${}", self.values.len());
            }
            _ => self.sql.push('?'),
        }
        self
    }

    /// Appends `(v1, v2, …)`, binding each value; a row of one value is just `v1`, as an
    /// `IN (…)` list wants it.
    pub(crate) fn bind_row<const N: usize>(&mut self, row: [Value; N]) -> &mut Self {
        if N != 1 {
            self.sql.push('(');
        }
        for (index, value) in row.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        if N != 1 {
            self.sql.push(')');
        }
        self
    }

    /// Appends `v1, v2, …` (for an `IN (…)` list), binding each value.
    pub(crate) fn bind_list<V: Into<Value>>(
        &mut self,
        values: impl IntoIterator<Item = V>,
    ) -> &mut Self {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The finished statement.
    pub(crate) fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.sql, self.values)
    }
}

/// The bytes that `value` adds to a statement, roughly as the wire protocol carries it.
pub(crate) fn value_bytes(value: &Value) -> usize {
    4 + match value {
        Value::String(Some(text)) => text.len(),
        _ => 8,
    }
}

/// Row counts for the multi-row statements that write rows of `columns` values, whose
/// sizes in bytes are `row_bytes`: within the backend's limit on bound variables; on
/// SQLite as few statements as that allows, on PostgreSQL chunks of [`CHUNK_ROWS`] sizes
/// within [`POSTGRES_STATEMENT_BYTES`] (a larger single row goes alone).
pub(crate) fn chunk_lengths(backend: DbBackend, columns: usize, row_bytes: &[usize]) -> Vec<usize> {
    let (max_variables, max_bytes) = match backend {
        DbBackend::Postgres => (POSTGRES_MAX_VARIABLES, POSTGRES_STATEMENT_BYTES),
        _ => (SQLITE_MAX_VARIABLES, usize::MAX),
    };
    let max_rows = (max_variables / columns.max(1)).max(1);
    if backend == DbBackend::Sqlite {
        // SQLite: as few statements as the variable limit allows, of the exact size. Each
        // statement is a round trip to sqlx's worker thread, and those round trips, not
        // parsing a new statement text, were most of a W1 commit (10,500–12,100 durable
        // steps/s this way against 8,300–10,900 with the power-of-two chunks).
        let mut lengths = Vec::new();
        let mut rest = row_bytes.len();
        while rest > 0 {
            let rows = rest.min(max_rows);
            lengths.push(rows);
            rest -= rows;
        }
        return lengths;
    }
    let mut lengths = Vec::new();
    let mut rest = row_bytes;
    while !rest.is_empty() {
        let rows = CHUNK_ROWS
            .iter()
            .copied()
            .find(|&rows| {
                rows <= rest.len()
                    && rows <= max_rows
                    && (rows == 1 || rest[..rows].iter().sum::<usize>() <= max_bytes)
            })
            .unwrap_or(1);
        lengths.push(rows);
        rest = &rest[rows..];
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_and_anonymous_on_sqlite() {
        let mut postgres = Query::new(DbBackend::Postgres, 3);
        postgres
            .sql("INSERT INTO t (a, b) VALUES ")
            .bind_row([Value::from(1i64), Value::from("x")]);
        postgres.sql(" WHERE c IN (").bind_list([7i64]).sql(")");
        let statement = postgres.build();
        assert_eq!(
            statement.sql,
            "INSERT INTO t (a, b) VALUES ($1, $2) WHERE c IN ($3)"
        );

        let mut sqlite = Query::new(DbBackend::Sqlite, 2);
        sqlite.sql("SELECT ").bind_list(["a", "b"]);
        assert_eq!(sqlite.build().sql, "SELECT ?, ?");
    }

    #[test]
    fn postgres_chunks_use_few_fixed_sizes() {
        let sizes = vec![10; 250];
        assert_eq!(
            chunk_lengths(DbBackend::Postgres, 8, &sizes),
            vec![128, 64, 32, 16, 8, 2]
        );
        assert!(chunk_lengths(DbBackend::Postgres, 8, &[]).is_empty());
    }

    #[test]
    fn sqlite_writes_one_statement_per_table_within_the_variable_limit() {
        let sizes = vec![100; 250];
        assert_eq!(chunk_lengths(DbBackend::Sqlite, 8, &sizes), vec![250]);
        assert!(chunk_lengths(DbBackend::Sqlite, 8, &[]).is_empty());
        // 32,766 variables hold 4,095 rows of 8.
        let sizes = vec![1; 5000];
        assert_eq!(chunk_lengths(DbBackend::Sqlite, 8, &sizes), vec![4095, 905]);
    }

    #[test]
    fn chunks_respect_the_variable_limit() {
        let sizes = vec![1; 1000];
        let lengths = chunk_lengths(DbBackend::Sqlite, 1000, &sizes);
        assert!(lengths.iter().all(|&rows| rows * 1000 <= 32_766));
        assert_eq!(lengths.iter().sum::<usize>(), 1000);
    }

    #[test]
    fn postgres_chunks_respect_the_byte_budget() {
        let sizes = vec![1000; 40];
        let lengths = chunk_lengths(DbBackend::Postgres, 8, &sizes);
        assert_eq!(lengths, vec![8, 8, 8, 8, 8]);
        assert_eq!(
            chunk_lengths(DbBackend::Postgres, 8, &[50_000, 10]),
            vec![1, 1]
        );
        // SQLite has no byte budget (no socket in between).
        assert_eq!(chunk_lengths(DbBackend::Sqlite, 8, &sizes), vec![40]);
    }
}
