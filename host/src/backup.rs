//! `ham backup` and `ham restore`: consistent snapshots of the embedded SQLite
//! database.
//!
//! A backup is `VACUUM INTO` on a connection of its own, which SQLite runs as one
//! read transaction: the snapshot is the database as of one instant, complete and
//! compact, while the server keeps reading and writing (WAL lets the writer go on).
//! The copy is then opened and must pass `PRAGMA integrity_check`.
//!
//! A restore (with the server stopped) checks that the snapshot opens, passes the
//! integrity check and has the migrations table, then swaps it in: the current
//! file is kept beside it as `ham.db.before-restore`, and stale `-wal`/`-shm`
//! files are removed (a WAL left from the old database would be replayed onto
//! the new one).
//!
//! PostgreSQL is refused: `pg_dump`/`pg_restore` are its tools.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// Why a backup or restore was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "`ham backup` and `ham restore` are for the embedded SQLite database; for PostgreSQL use pg_dump and pg_restore (see docs/operations.md)"
    )]
    Postgres,
    #[error("not a SQLite database URL: {0}")]
    NotSqlite(String),
    #[error("{0} already exists; choose a new file")]
    Exists(PathBuf),
    #[error("{path} is not a usable HAM snapshot: {why}")]
    BadSnapshot { path: PathBuf, why: String },
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// The file of a `sqlite:` URL (`sqlite://data/ham.db?mode=rwc` → `data/ham.db`).
pub fn sqlite_file(url: &str) -> Result<PathBuf, BackupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(BackupError::Postgres);
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| BackupError::NotSqlite(crate::store::redact_url(url)))?;
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" {
        return Err(BackupError::NotSqlite(url.to_string()));
    }
    Ok(PathBuf::from(file))
}

async fn open(file: &Path, read_only: bool) -> Result<SqliteConnection, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(file)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30));
    SqliteConnection::connect_with(&options).await
}

/// Checks that `file` is a sound HAM database: it opens, passes
/// `PRAGMA integrity_check`, and has the migrations table.
pub async fn check_snapshot(file: &Path) -> Result<(), BackupError> {
    let bad = |why: String| BackupError::BadSnapshot {
        path: file.to_path_buf(),
        why,
    };
    if !file.is_file() {
        return Err(bad("no such file".into()));
    }
    let mut conn = open(file, true).await.map_err(|e| bad(e.to_string()))?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if verdict != "ok" {
        return Err(bad(format!("integrity check: {verdict}")));
    }
    sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .map_err(|_| bad("it has no migrations table (not a HAM database)".into()))?;
    conn.close().await?;
    Ok(())
}

/// Writes a consistent snapshot of the database at `database_url` to `target`
/// (which must not exist), while the server may be running, and checks it.
pub async fn backup(database_url: &str, target: &Path) -> Result<(), BackupError> {
    let source = sqlite_file(database_url)?;
    if target.exists() {
        return Err(BackupError::Exists(target.to_path_buf()));
    }
    let mut conn = open(&source, false).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(target.display().to_string())
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    check_snapshot(target).await
}

/// Puts the snapshot `snapshot` in place of the database at `database_url`. The
/// server must be stopped. The database replaced is kept as
/// `<file>.before-restore`.
pub async fn restore(database_url: &str, snapshot: &Path) -> Result<PathBuf, BackupError> {
    let target = sqlite_file(database_url)?;
    check_snapshot(snapshot).await?;
    let io = |what: String| move |source| BackupError::Io { what, source };
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let staging = with_suffix(&target, ".restoring");
    std::fs::copy(snapshot, &staging).map_err(io(format!(
        "copying {} to {}",
        snapshot.display(),
        staging.display()
    )))?;
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", staging.display())))?;
    if target.exists() {
        let kept = with_suffix(&target, ".before-restore");
        std::fs::rename(&target, &kept).map_err(io(format!("keeping {}", kept.display())))?;
    }
    for stale in [with_suffix(&target, "-wal"), with_suffix(&target, "-shm")] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(io(format!("removing {}", stale.display())))?;
        }
    }
    std::fs::rename(&staging, &target).map_err(io(format!("moving into {}", target.display())))?;
    Ok(target)
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_file_of_sqlite_urls_and_refuses_postgres() {
        assert_eq!(
            sqlite_file("sqlite://data/ham.db?mode=rwc").unwrap(),
            PathBuf::from("data/ham.db")
        );
        assert_eq!(
            sqlite_file("sqlite:///var/ham/ham.db").unwrap(),
            PathBuf::from("/var/ham/ham.db")
        );
        assert!(matches!(
            sqlite_file("postgres://u:p@h/ham"),
            Err(BackupError::Postgres)
        ));
        assert!(
            BackupError::Postgres.to_string().contains("pg_dump"),
            "the refusal points to pg_dump"
        );
    }
}
