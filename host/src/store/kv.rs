//! Plugin key-value storage: the `ham:plugin/storage` interface and the table behind it.
//!
//! Every row belongs to one plugin and one owner (`''` for the plugin-wide scope, a
//! user id for a user's scope); a plugin can only name its own rows, and only the
//! user scope of the user its invocation acts for. The per-plugin quota counts key
//! plus value bytes across all owners and is checked in the same statement as the
//! write, so a full plugin loses nothing: the write is refused, the old value stays.
//!
//! Revisions start at 1 and grow by one per write; a deleted key starts again at 1.

use sqlx::{AssertSqlSafe, Row};

use super::{Db, Result};
use crate::runtime::Invocation;
use crate::runtime::bindings::ham::plugin::storage::{self, Entry, KeyPage, Scope};
use crate::runtime::bindings::ham::plugin::types::Error as GuestError;

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

// The quota check: bytes of every other row of this plugin, plus the new row.
const OTHERS_SIZE: &str = "(SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM plugin_kv \
     WHERE plugin = $1 AND NOT (owner = $2 AND key = $3))";

impl Db {
    /// The users with rows in a plugin's user scope: who has used the plugin.
    pub async fn kv_users(&self, plugin: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT owner FROM plugin_kv WHERE plugin = $1 AND owner <> '' ORDER BY owner",
        )
        .bind(plugin)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
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
        Ok(row.map(|r| (r.get::<Vec<u8>, _>(0), r.get::<i64, _>(1))))
    }

    /// Writes unconditionally; returns the new revision.
    pub async fn kv_set(
        &self,
        scope: KvScope<'_>,
        key: &str,
        value: &[u8],
        quota: i64,
    ) -> Result<i64, WriteError> {
        let size = row_size(key, value);
        let sql = format!(
            "INSERT INTO plugin_kv (plugin, owner, key, value, size, revision) \
             SELECT $1, $2, $3, $4, $5, 1 WHERE {OTHERS_SIZE} + $5 <= $6 \
             ON CONFLICT (plugin, owner, key) DO UPDATE \
             SET value = excluded.value, size = excluded.size, revision = plugin_kv.revision + 1 \
             RETURNING revision"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(scope.plugin)
            .bind(scope.owner)
            .bind(key)
            .bind(value)
            .bind(size)
            .bind(quota)
            .fetch_optional(self.writer())
            .await?;
        row.map(|r| r.get::<i64, _>(0))
            .ok_or(WriteError::QuotaExceeded)
    }

    /// Writes only if the key is at `expected` (none: absent); returns the new revision.
    pub async fn kv_compare_and_swap(
        &self,
        scope: KvScope<'_>,
        key: &str,
        expected: Option<i64>,
        value: &[u8],
        quota: i64,
    ) -> Result<i64, WriteError> {
        let size = row_size(key, value);
        let row = match expected {
            None => {
                let sql = format!(
                    "INSERT INTO plugin_kv (plugin, owner, key, value, size, revision) \
                     SELECT $1, $2, $3, $4, $5, 1 WHERE {OTHERS_SIZE} + $5 <= $6 \
                     ON CONFLICT (plugin, owner, key) DO NOTHING RETURNING revision"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(scope.plugin)
                    .bind(scope.owner)
                    .bind(key)
                    .bind(value)
                    .bind(size)
                    .bind(quota)
                    .fetch_optional(self.writer())
                    .await?
            }
            Some(revision) => {
                let sql = format!(
                    "UPDATE plugin_kv SET value = $4, size = $5, revision = revision + 1 \
                     WHERE plugin = $1 AND owner = $2 AND key = $3 AND revision = $7 \
                     AND {OTHERS_SIZE} + $5 <= $6 RETURNING revision"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(scope.plugin)
                    .bind(scope.owner)
                    .bind(key)
                    .bind(value)
                    .bind(size)
                    .bind(quota)
                    .bind(revision)
                    .fetch_optional(self.writer())
                    .await?
            }
        };
        if let Some(row) = row {
            return Ok(row.get::<i64, _>(0));
        }
        // Nothing written: tell a lost race from a full quota.
        let current = self.kv_get(scope, key).await?.map(|(_, revision)| revision);
        if current == expected {
            Err(WriteError::QuotaExceeded)
        } else {
            Err(WriteError::Conflict)
        }
    }

    pub async fn kv_delete(&self, scope: KvScope<'_>, key: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1 AND owner = $2 AND key = $3")
                .bind(scope.plugin)
                .bind(scope.owner)
                .bind(key)
                .execute(self.writer())
                .await?;
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
        let rows = sqlx::query(
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
        .await?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Bytes a plugin stores across all scopes.
    pub async fn kv_usage(&self, plugin: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM plugin_kv WHERE plugin = $1",
        )
        .bind(plugin)
        .fetch_one(self.pool())
        .await?;
        Ok(row.get::<i64, _>(0))
    }
}

fn row_size(key: &str, value: &[u8]) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX)
}

// ---- the WIT interface ----

impl Invocation {
    fn owner(&self, scope: Scope) -> Result<&str, GuestError> {
        match scope {
            Scope::Plugin => Ok(""),
            Scope::User => self.acting_user(),
        }
    }

    fn kv_scope(&self, scope: Scope) -> Result<KvScope<'_>, GuestError> {
        Ok(KvScope {
            plugin: &self.plugin.manifest.name,
            owner: self.owner(scope)?,
        })
    }

    fn quota(&self) -> i64 {
        i64::from(self.plugin.manifest.limits.storage_quota_mb) * 1024 * 1024
    }
}

fn check_key(key: &str) -> Result<(), GuestError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(GuestError::InvalidArgument(format!(
            "a key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn revision_in(revision: u64) -> Result<i64, GuestError> {
    i64::try_from(revision)
        .map_err(|_| GuestError::InvalidArgument(format!("revision {revision} is out of range")))
}

fn revision_out(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

impl Invocation {
    fn write_failed(&self, e: WriteError) -> GuestError {
        match e {
            WriteError::QuotaExceeded => GuestError::QuotaExceeded,
            WriteError::Conflict => GuestError::Conflict,
            WriteError::Db(e) => self.host_failed(e),
        }
    }
}

impl storage::Host for Invocation {
    async fn get(&mut self, scope: Scope, key: String) -> Result<Option<Entry>, GuestError> {
        check_key(&key)?;
        let found = self.db.kv_get(self.kv_scope(scope)?, &key).await;
        let found = found.map_err(|e| self.host_failed(e))?;
        Ok(found.map(|(value, revision)| Entry {
            value,
            revision: revision_out(revision),
        }))
    }

    async fn set(&mut self, scope: Scope, key: String, value: Vec<u8>) -> Result<u64, GuestError> {
        check_key(&key)?;
        let written = self
            .db
            .kv_set(self.kv_scope(scope)?, &key, &value, self.quota())
            .await;
        written.map(revision_out).map_err(|e| self.write_failed(e))
    }

    async fn delete(&mut self, scope: Scope, key: String) -> Result<bool, GuestError> {
        check_key(&key)?;
        let deleted = self.db.kv_delete(self.kv_scope(scope)?, &key).await;
        deleted.map_err(|e| self.host_failed(e))
    }

    async fn list_keys(
        &mut self,
        scope: Scope,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<KeyPage, GuestError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(GuestError::InvalidArgument(format!(
                "limit must be 1 to {MAX_PAGE}, got {limit}"
            )));
        }
        // One extra row tells whether another page follows.
        let listed = self
            .db
            .kv_list_keys(self.kv_scope(scope)?, &prefix, cursor.as_deref(), limit + 1)
            .await;
        let mut keys = listed.map_err(|e| self.host_failed(e))?;
        let cursor = if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyPage { keys, cursor })
    }

    async fn compare_and_swap(
        &mut self,
        scope: Scope,
        key: String,
        expected: Option<u64>,
        value: Vec<u8>,
    ) -> Result<u64, GuestError> {
        check_key(&key)?;
        let expected = expected.map(revision_in).transpose()?;
        let written = self
            .db
            .kv_compare_and_swap(self.kv_scope(scope)?, &key, expected, &value, self.quota())
            .await;
        written.map(revision_out).map_err(|e| self.write_failed(e))
    }

    /// `set`, with the value sealed (see [`super::sealed`]) before it is stored.
    async fn set_sealed(
        &mut self,
        scope: Scope,
        key: String,
        value: Vec<u8>,
    ) -> Result<u64, GuestError> {
        check_key(&key)?;
        let kv = self.kv_scope(scope)?;
        let sealed = self.secret.seal(kv.plugin, kv.owner, &key, &value);
        let sealed = sealed.map_err(|e| self.host_failed(e))?;
        let written = self.db.kv_set(kv, &key, &sealed, self.quota()).await;
        written.map(revision_out).map_err(|e| self.write_failed(e))
    }

    async fn get_sealed(&mut self, scope: Scope, key: String) -> Result<Option<Entry>, GuestError> {
        check_key(&key)?;
        let kv = self.kv_scope(scope)?;
        let found = self.db.kv_get(kv, &key).await;
        let Some((stored, revision)) = found.map_err(|e| self.host_failed(e))? else {
            return Ok(None);
        };
        let value = self
            .secret
            .open(kv.plugin, kv.owner, &key, &stored)
            .map_err(|e| GuestError::InvalidArgument(format!("{key}: {e}")))?;
        Ok(Some(Entry {
            value,
            revision: revision_out(revision),
        }))
    }
}
