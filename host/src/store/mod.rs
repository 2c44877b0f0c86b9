//! The database: one `sqlx::AnyPool` over SQLite (the default, a file in the data
//! dir) or PostgreSQL (`postgres://…`), with migrations per backend run at start.
//!
//! Queries are written once in the SQL both backends accept (`$n` placeholders,
//! `ON CONFLICT`, `RETURNING`); where the schema must differ, the two migration
//! folders differ. Each table's queries live in the module that owns the concept.
//!
//! Rows are read by column name, never by position, into typed values: a private
//! record per row shape (`#[derive(sqlx::FromRow)]`) or `row.try_get("name")`,
//! and computed columns get an alias (`COUNT(*) AS n`). Enums stored as text are
//! mapped both ways in [`text`], and a stored value this binary cannot read is an
//! [`Error::Unreadable`] naming the column, never a default and never a panic.

pub mod habits;
pub mod jobs;
pub mod kv;
pub mod notifications;
pub mod plugin_versions;
pub mod rollouts;
pub mod sealed;
pub mod text;
pub mod tokens;
pub mod users;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database server a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A failure of the database layer. Never shown to clients as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported database URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the database schema is behind this binary (pending migrations: {0}); run `ham migrate`"
    )]
    SchemaBehind(String),
    /// A stored value this binary cannot read: an enum name it does not know, a
    /// number out of its type's range, aggregated text that does not parse.
    #[error("column {column} holds `{value}`, which this binary cannot read")]
    Unreadable { column: &'static str, value: String },
}

impl Error {
    /// Whether a write broke a unique constraint (a name or key already taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::Sqlx(sqlx::Error::Database(d)) if d.is_unique_violation())
    }

    /// A stored value of `column` that did not read as its type.
    pub fn unreadable(column: &'static str, value: impl std::fmt::Display) -> Self {
        Error::Unreadable {
            column,
            value: value.to_string(),
        }
    }
}

/// What [`Db::open`] does about migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply pending migrations (the default for `ham serve`).
    Apply,
    /// Apply nothing; fail with [`Error::SchemaBehind`] if any migration this
    /// binary knows is not applied yet (a separate `ham migrate` step owns them).
    Require,
    /// Touch nothing (`ham migrate`, which then calls [`Db::migrate`]).
    Leave,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection pool and the backend behind it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go: on SQLite a pool of one connection, so writers queue in
    /// order in-process instead of in SQLite's busy handler, whose sleeps grow to
    /// 25-100 ms under contention (the tail of webhook acknowledgements); on
    /// PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects (creating a SQLite file if missing) and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(url, Migrations::Apply).await
    }

    /// Connects, then applies or requires this binary's migrations.
    pub async fn open(url: &str, migrations: Migrations) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(Error::UnsupportedUrl(redact_url(url)));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; it persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let writer = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => pool.clone(),
        };
        let db = Self {
            pool,
            writer,
            backend,
        };
        match migrations {
            Migrations::Apply => db.migrator().run(&db.pool).await?,
            Migrations::Require => {
                let pending = db.pending_migrations().await?;
                if !pending.is_empty() {
                    return Err(Error::SchemaBehind(pending.join(", ")));
                }
            }
            Migrations::Leave => {}
        }
        Ok(db)
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// The migrations this binary knows that the database has not applied, as
    /// `<version>_<description>`. Migrations newer than the binary are fine: an
    /// older replica keeps serving while a rolling update replaces it.
    pub async fn pending_migrations(&self) -> Result<Vec<String>> {
        let tables: i64 = sqlx::query_scalar(match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        })
        .fetch_one(&self.pool)
        .await?;
        let applied: Vec<i64> = if tables > 0 {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{}_{}", m.version, m.description.replace(' ', "_")))
            .collect())
    }

    /// Applies pending migrations; returns how many there were.
    pub async fn migrate(&self) -> Result<usize> {
        let pending = self.pending_migrations().await?.len();
        self.migrator().run(&self.pool).await?;
        Ok(pending)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for statements that write outside a [`Db::begin_write`]
    /// transaction.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a deferred transaction that reads, then writes
    /// after another connection wrote, fails at once with "database is locked"
    /// instead of waiting its turn.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Milliseconds since the Unix epoch, the unit every timestamp column uses.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh row id: 128 random bits, hex (the form of `auth::new_id`, which
/// the store, below `auth`, cannot call).
pub fn new_id() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore as _};
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub use crate::settings::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:./data/ham.db"), "sqlite:./data/ham.db");
    }
}
