//! The only crate that knows SQL.
//!
//! Malipo runs on SQLite (the embedded default, WAL mode) or PostgreSQL (for
//! several nodes), behind the same methods. Queries are written once where the
//! SQL is portable (`$1` placeholders work on both) and twice where it is not
//! (`FOR UPDATE`, JSON array expansion): [`run!`] expands one query body for
//! each backend's native driver, so every column decodes with its native type
//! and nothing goes through `sqlx::Any`.
//!
//! - [`Store`]: the pools. On SQLite, one writer connection (SQLite allows one
//!   writer at a time; queuing in the pool beats `SQLITE_BUSY` retries) and a
//!   pool of readers; on PostgreSQL, one pool.
//! - [`Tx`]: one database transaction; a use case commits the object's new
//!   state, its ledger transfers, its events and its idempotency record in
//!   one of these.
//! - [`Conn`]: a borrowed connection (from a [`Tx`] or a reader); every
//!   repository method is a method on it, grouped by table in the modules.
//!
//! Architecture invariant: SQL lives here and nowhere else; the store makes
//! no business decisions (the ledger's rules live in `malipo-ledger`, the
//! transitions in `malipo-core`).

mod accounts;
mod audit;
pub mod bank;
mod conversions;
mod customer_tokens;
mod desk;
pub mod events;
mod idempotency;
pub mod inbound;
pub mod leases;
pub mod ledger;
mod list;
mod payments;
mod payouts;
pub mod pools;
mod refunds;
mod settings;
pub mod trading;
pub mod vouchers;
pub mod webhooks;

pub use accounts::{ApiKeyRecord, MerchantRecord};
pub use audit::{AuditFilters, AuditRecord};
pub use bank::{
    BankAccountRecord, BankDepositConfirmation, BankDepositRecord, BankStatementRecord,
};
pub use conversions::ConversionQuoteRecord;
pub use customer_tokens::CustomerTokenRecord;
pub use desk::{DeskQuoteRecord, DeskTradeRecord};
pub use events::EventRecord;
pub use idempotency::{IdempotencyClaim, IdempotencyRecord, StoredResponse};
pub use inbound::{ConnectorAccountRecord, InboundCount};
pub use leases::BookLease;
pub use list::{Cursor, Filter, Page};
pub use payments::{PaymentRecord, PendingOperation};
pub use payouts::PayoutRecord;
pub use pools::PoolRecord;
pub use refunds::RefundRecord;
pub use trading::{BookHead, BookRecord, CustomerRecord, FillRecord, OrderRecord};
pub use vouchers::{VoucherBatchRecord, VoucherRecord};
pub use webhooks::{DeliveryRecord, WebhookEndpointRecord};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Expands `$body` once per backend with `$c` bound to that backend's native
/// connection, so a query is written once and type-checked against both.
#[macro_export]
#[doc(hidden)]
macro_rules! run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::Conn::Sqlite($c) => $body,
            $crate::Conn::Postgres($c) => $body,
        }
    };
    // The same, with `$postgres` telling the body which backend it runs on,
    // for the few statements whose SQL differs.
    ($conn:expr, |$c:ident, $postgres:ident| $body:expr) => {
        match $conn {
            $crate::Conn::Sqlite($c) => {
                let $postgres = false;
                $body
            }
            $crate::Conn::Postgres($c) => {
                let $postgres = true;
                $body
            }
        }
    };
}

/// Failures of the store. The callers map them: `Database` and `Corrupt` are
/// server errors; `Ledger` is a business rule refusing a batch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Ledger(#[from] malipo_ledger::BatchError),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("a ledger batch may carry at most {max} transfers, got {got}")]
    BatchTooLarge { max: usize, got: usize },
}

impl StoreError {
    /// Whether this is a unique-constraint violation (a duplicate id/key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(error)) if error.is_unique_violation())
    }
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// `postgres://user@host:port/db?options` with the database name replaced
/// (tests and benchmarks create a fresh database on the server a URL names).
pub fn postgres_url_with_database(server_url: &str, name: &str) -> String {
    let (without_query, query) = match server_url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = without_query
        .find("://")
        .map(|index| index + 3)
        .unwrap_or(0);
    let base = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    /// Connections in the pool (readers on SQLite).
    pub connections_max: u32,
    /// SQLite only: fsync the WAL at every commit (`synchronous=FULL`), so an
    /// acknowledged write survives power loss, not only a process crash.
    pub sqlite_fsync_every_commit: bool,
    /// How long a query may wait for a pool connection.
    pub acquire_timeout_ms: u64,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            connections_max: 8,
            sqlite_fsync_every_commit: true,
            acquire_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database: SQLite or PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

/// SQLite: one trigger per refused statement (it has no TRUNCATE; an
/// unqualified DELETE fires the delete trigger).
const SQLITE_APPEND_ONLY_AUDIT: [&str; 2] = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
];

/// PostgreSQL: one function raising, fired per row on UPDATE and DELETE
/// and per statement on TRUNCATE (the only way around it is a superuser
/// dropping the trigger, which the database's own log records).
const POSTGRES_APPEND_ONLY_AUDIT: [&str; 3] = [
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger \
     LANGUAGE plpgsql AS $$ BEGIN \
     RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege'; \
     END $$",
    "CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log \
     FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log \
     FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
];

impl Store {
    pub async fn connect(options: &StoreOptions) -> Result<Store, StoreError> {
        let acquire_timeout = Duration::from_millis(options.acquire_timeout_ms);
        let backend =
            if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
                let connect = PgConnectOptions::from_str(&options.url)
                    .map_err(|error| StoreError::InvalidUrl(error.to_string()))?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.connections_max)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(connect)
                    .await?;
                Backend::Postgres(pool)
            } else if options.url.starts_with("sqlite:") {
                let synchronous = if options.sqlite_fsync_every_commit {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                };
                let connect = SqliteConnectOptions::from_str(&options.url)
                    .map_err(|error| StoreError::InvalidUrl(error.to_string()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(connect.clone())
                    .await?;
                let readers = SqlitePoolOptions::new()
                    .max_connections(options.connections_max.max(1))
                    .acquire_timeout(acquire_timeout)
                    .connect_with(connect.read_only(true))
                    .await?;
                Backend::Sqlite { writer, readers }
            } else {
                return Err(StoreError::InvalidUrl(
                    "the database url must start with sqlite: or postgres://".into(),
                ));
            };
        Ok(Store { backend })
    }

    /// Applies the migrations this binary carries (`migrations/`, compiled
    /// in), then makes the audit log append-only in the database itself
    /// (triggers refuse every UPDATE, DELETE and TRUNCATE of `audit_log`):
    /// no bug and no injected statement can rewrite history. The triggers'
    /// syntax differs between the backends, so they are created here
    /// rather than in the shared migrations, idempotently on every start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = sqlx::migrate!("./migrations");
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                migrator.run(writer).await?;
                for statement in SQLITE_APPEND_ONLY_AUDIT {
                    sqlx::query(statement).execute(writer).await?;
                }
            }
            Backend::Postgres(pool) => {
                migrator.run(pool).await?;
                // Nodes starting together: one at a time replaces them.
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7236431117)")
                    .execute(&mut *tx)
                    .await?;
                for statement in POSTGRES_APPEND_ONLY_AUDIT {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Starts a read-write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx {
            inner: match &self.backend {
                Backend::Sqlite { writer, .. } => TxInner::Sqlite(writer.begin().await?),
                Backend::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
            },
        })
    }

    /// A connection for reads that need no transaction.
    pub async fn reader(&self) -> Result<Reader, StoreError> {
        Ok(Reader {
            inner: match &self.backend {
                Backend::Sqlite { readers, .. } => ReaderInner::Sqlite(readers.acquire().await?),
                Backend::Postgres(pool) => ReaderInner::Postgres(pool.acquire().await?),
            },
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut reader = self.reader().await?;
        run!(&mut reader.conn(), |c| sqlx::query("SELECT 1")
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, readers } => {
                writer.close().await;
                readers.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// One database transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: TxInner,
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Conn::Sqlite(tx),
            TxInner::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

enum ReaderInner {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A pooled connection for reads outside a transaction.
pub struct Reader {
    inner: ReaderInner,
}

impl Reader {
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            ReaderInner::Sqlite(connection) => Conn::Sqlite(connection),
            ReaderInner::Postgres(connection) => Conn::Postgres(connection),
        }
    }
}

/// A borrowed connection on either backend; repositories are its methods.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

#[cfg(test)]
mod tests {
    use super::postgres_url_with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            postgres_url_with_database("postgres://u@h:5432/postgres", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(
            postgres_url_with_database("postgres://u@h:5432", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(
            postgres_url_with_database("postgres://u@h/db?sslmode=disable", "t1"),
            "postgres://u@h/t1?sslmode=disable"
        );
    }
}
