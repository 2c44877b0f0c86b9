//! Plugin key-value storage: the `ham:plugin/storage` interface and the table behind it.
//!
//! Every row belongs to one plugin and one owner (`''` for the plugin-wide scope, a
//! user id for a user's scope); a plugin can only name its own rows, and only the
//! user scope of the user its invocation acts for.
//!
//! Quotas are fair shares ([`Quota`]): each scope (each user's, and the plugin's
//! own) holds at most `limits.storage_quota_mb`, and all scopes of the plugin
//! together at most `limits.storage_total_mb`, counting key plus value bytes. One
//! user at their quota does not stop anyone else's writes; the plugin scope, which
//! anonymous routes write, cannot take more than one scope's share of the total.
//!
//! Reserve before spending: a write runs in one transaction that first locks the
//! plugin's row of `plugin_kv_usage` (its byte count, kept by triggers), then
//! checks both quotas and writes. Writers of one plugin therefore take turns, in
//! this process and in every replica, and concurrent writers cannot overshoot. A
//! write that would pass a quota is refused with `quota-exceeded` and changes
//! nothing: the old value stays. A write that does not grow its row is never
//! refused, so a plugin over a lowered quota can still shrink and delete. Anything
//! else that writes `plugin_kv` must take the same lock first ([`Db::kv_delete`]
//! does), or PostgreSQL may end one of two crossing writers as a deadlock.
//!
//! Revisions start at 1 and grow by one per write; a deleted key starts again at 1.

use sqlx::Row as _;

use super::{Db, Result};

/// Longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Most keys one `list-keys` page returns.
pub const MAX_PAGE: u32 = 1000;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("storage quota exceeded")]
    QuotaExceeded,
    #[error("revision conflict")]
    Conflict,
    #[error(transparent)]
    Db(#[from] super::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

/// One plugin's view of one scope: the rows it may touch.
#[derive(Debug, Clone, Copy)]
pub struct KvScope<'a> {
    pub plugin: &'a str,
    pub owner: &'a str,
}

/// A plugin's storage quotas, in bytes of keys plus values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// What one scope may hold: a user's, or the plugin's own.
    pub scope: i64,
    /// What all the plugin's scopes together may hold.
    pub total: i64,
}

/// What a write expects of the key it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Anything: an unconditional `set`.
    Any,
    /// No value.
    Absent,
    /// The value at this revision.
    Revision(i64),
}

impl Db {
    /// The users with rows in a plugin's user scope: who has used the plugin.
    pub async fn kv_users(&self, plugin: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT owner FROM plugin_kv WHERE plugin = $1 AND owner <> '' ORDER BY owner",
        )
        .bind(plugin)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn kv_get(&self, scope: KvScope<'_>, key: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let row = sqlx::query(
            "SELECT value, revision FROM plugin_kv WHERE plugin = $1 AND owner = $2 AND key = $3",
        )
        .bind(scope.plugin)
        .bind(scope.owner)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("value")?, r.try_get("revision")?)),
            None => None,
        })
    }

    /// Writes unconditionally; returns the new revision.
    pub async fn kv_set(
        &self,
        scope: KvScope<'_>,
        key: &str,
        value: &[u8],
        quota: Quota,
    ) -> Result<i64, WriteError> {
        self.kv_write(scope, key, value, Expect::Any, quota).await
    }

    /// Writes only if the key is at `expected` (none: absent); returns the new revision.
    pub async fn kv_compare_and_swap(
        &self,
        scope: KvScope<'_>,
        key: &str,
        expected: Option<i64>,
        value: &[u8],
        quota: Quota,
    ) -> Result<i64, WriteError> {
        let expect = expected.map_or(Expect::Absent, Expect::Revision);
        self.kv_write(scope, key, value, expect, quota).await
    }

    /// One write, in turn with the plugin's other writers (see the module doc).
    async fn kv_write(
        &self,
        scope: KvScope<'_>,
        key: &str,
        value: &[u8],
        expect: Expect,
        quota: Quota,
    ) -> Result<i64, WriteError> {
        let size = row_size(key, value);
        let mut tx = self.begin_write().await?;
        let total = lock_plugin_usage(&mut tx, scope.plugin).await?;
        let old = sqlx::query(
            "SELECT size, revision FROM plugin_kv WHERE plugin = $1 AND owner = $2 AND key = $3",
        )
        .bind(scope.plugin)
        .bind(scope.owner)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let old: Option<(i64, i64)> = match old {
            Some(r) => Some((r.try_get("size")?, r.try_get("revision")?)),
            None => None,
        };
        let expected = match (expect, old) {
            (Expect::Any, _) | (Expect::Absent, None) => true,
            (Expect::Revision(want), Some((_, revision))) => want == revision,
            (Expect::Absent, Some(_)) | (Expect::Revision(_), None) => false,
        };
        if !expected {
            tx.rollback().await?;
            return Err(WriteError::Conflict);
        }
        let grows = size - old.map_or(0, |(size, _)| size);
        if grows > 0 {
            let in_scope: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM plugin_kv \
                 WHERE plugin = $1 AND owner = $2",
            )
            .bind(scope.plugin)
            .bind(scope.owner)
            .fetch_one(&mut *tx)
            .await?;
            if in_scope.saturating_add(grows) > quota.scope
                || total.saturating_add(grows) > quota.total
            {
                tx.rollback().await?;
                return Err(WriteError::QuotaExceeded);
            }
        }
        let written: i64 = match old {
            None => sqlx::query_scalar(
                "INSERT INTO plugin_kv (plugin, owner, key, value, size, revision) \
                 VALUES ($1, $2, $3, $4, $5, 1) RETURNING revision",
            ),
            Some(_) => sqlx::query_scalar(
                "UPDATE plugin_kv SET value = $4, size = $5, revision = revision + 1 \
                 WHERE plugin = $1 AND owner = $2 AND key = $3 RETURNING revision",
            ),
        }
        .bind(scope.plugin)
        .bind(scope.owner)
        .bind(key)
        .bind(value)
        .bind(size)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(written)
    }

    pub async fn kv_delete(&self, scope: KvScope<'_>, key: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        lock_plugin_usage(&mut tx, scope.plugin).await?;
        let done =
            sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1 AND owner = $2 AND key = $3")
                .bind(scope.plugin)
                .bind(scope.owner)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Keys starting with `prefix`, after `after`, in byte order.
    pub async fn kv_list_keys(
        &self,
        scope: KvScope<'_>,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM plugin_kv WHERE plugin = $1 AND owner = $2 \
             AND key >= $3 AND substr(key, 1, CAST($4 AS INTEGER)) = $3 AND key > $5 \
             ORDER BY key LIMIT $6",
        )
        .bind(scope.plugin)
        .bind(scope.owner)
        .bind(prefix)
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// Bytes a plugin stores across all scopes.
    pub async fn kv_usage(&self, plugin: &str) -> Result<i64> {
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT bytes FROM plugin_kv_usage WHERE plugin = $1")
                .bind(plugin)
                .fetch_optional(self.pool())
                .await?;
        Ok(bytes.unwrap_or(0))
    }

    /// Bytes one scope of a plugin stores.
    pub async fn kv_scope_usage(&self, scope: KvScope<'_>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM plugin_kv \
             WHERE plugin = $1 AND owner = $2",
        )
        .bind(scope.plugin)
        .bind(scope.owner)
        .fetch_one(self.pool())
        .await?)
    }
}

/// Takes the plugin's turn to write: locks its `plugin_kv_usage` row (made at 0
/// bytes if it has none) until the transaction ends, and returns its bytes. On
/// SQLite the write transaction (`BEGIN IMMEDIATE`) already holds the only write
/// lock; on PostgreSQL the upsert locks the row.
async fn lock_plugin_usage(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    plugin: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO plugin_kv_usage (plugin, bytes) VALUES ($1, 0) \
         ON CONFLICT (plugin) DO UPDATE SET bytes = plugin_kv_usage.bytes RETURNING bytes",
    )
    .bind(plugin)
    .fetch_one(&mut **tx)
    .await?)
}

fn row_size(key: &str, value: &[u8]) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX)
}
