//! The `ham:plugin/storage` interface: a plugin's key-value rows, in its own
//! scope or the acting user's, under the version's quotas. The table, its
//! quotas and its locking are the store's ([`crate::store::kv`]); this module
//! checks what the guest sent and names the rows it may touch.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::{Caller, CapabilitiesView, ctx};
use crate::store::Db;
use crate::store::kv::{KvScope, MAX_KEY_BYTES, MAX_PAGE, WriteError};
use crate::store::sealed::HostSecret;
use crate::wit::ham::plugin::storage::{self, Entry, KeyPage, Scope};
use crate::wit::ham::plugin::types::Error as GuestError;

/// What storage draws on: the database, and the key values are sealed with.
pub struct StorageHost {
    pub(super) db: Db,
    pub(super) secret: HostSecret,
}

/// The storage context of one invocation.
pub struct StorageCtx {
    pub(super) caller: Caller,
    pub(super) host: Arc<StorageHost>,
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    storage::add_to_linker::<T, HasSelf<StorageCtx>>(linker, |t| &mut ctx(t).storage)
}

impl StorageCtx {
    fn owner(&self, scope: Scope) -> Result<&str, GuestError> {
        match scope {
            Scope::Plugin => Ok(""),
            Scope::User => self.caller.acting_user(),
        }
    }

    fn kv_scope(&self, scope: Scope) -> Result<KvScope<'_>, GuestError> {
        Ok(KvScope {
            plugin: self.caller.plugin(),
            owner: self.owner(scope)?,
        })
    }

    fn write_failed(&self, e: WriteError) -> GuestError {
        match e {
            WriteError::QuotaExceeded => GuestError::QuotaExceeded,
            WriteError::Conflict => GuestError::Conflict,
            WriteError::Db(e) => self.caller.host_failed(e),
        }
    }
}

fn check_key(key: &str) -> Result<(), GuestError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(GuestError::InvalidArgument(format!(
            "a key must be 1 to {MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    // PostgreSQL cannot store NUL in text; refused on both backends alike.
    if key.contains('\0') {
        return Err(GuestError::InvalidArgument(
            "a key must not contain NUL characters".into(),
        ));
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

impl storage::Host for StorageCtx {
    async fn get(&mut self, scope: Scope, key: String) -> Result<Option<Entry>, GuestError> {
        check_key(&key)?;
        let found = self.host.db.kv_get(self.kv_scope(scope)?, &key).await;
        let found = found.map_err(|e| self.caller.host_failed(e))?;
        Ok(found.map(|(value, revision)| Entry {
            value,
            revision: revision_out(revision),
        }))
    }

    async fn set(&mut self, scope: Scope, key: String, value: Vec<u8>) -> Result<u64, GuestError> {
        check_key(&key)?;
        let written = self
            .host
            .db
            .kv_set(
                self.kv_scope(scope)?,
                &key,
                &value,
                self.caller.grants.storage,
            )
            .await;
        written.map(revision_out).map_err(|e| self.write_failed(e))
    }

    async fn delete(&mut self, scope: Scope, key: String) -> Result<bool, GuestError> {
        check_key(&key)?;
        let deleted = self.host.db.kv_delete(self.kv_scope(scope)?, &key).await;
        deleted.map_err(|e| self.caller.host_failed(e))
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
            .host
            .db
            .kv_list_keys(self.kv_scope(scope)?, &prefix, cursor.as_deref(), limit + 1)
            .await;
        let mut keys = listed.map_err(|e| self.caller.host_failed(e))?;
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
            .host
            .db
            .kv_compare_and_swap(
                self.kv_scope(scope)?,
                &key,
                expected,
                &value,
                self.caller.grants.storage,
            )
            .await;
        written.map(revision_out).map_err(|e| self.write_failed(e))
    }

    /// `set`, with the value sealed (see [`crate::store::sealed`]) before it is stored.
    async fn set_sealed(
        &mut self,
        scope: Scope,
        key: String,
        value: Vec<u8>,
    ) -> Result<u64, GuestError> {
        check_key(&key)?;
        let kv = self.kv_scope(scope)?;
        let sealed = self.host.secret.seal(kv.plugin, kv.owner, &key, &value);
        let sealed = sealed.map_err(|e| self.caller.host_failed(e))?;
        let written = self
            .host
            .db
            .kv_set(kv, &key, &sealed, self.caller.grants.storage)
            .await;
        written.map(revision_out).map_err(|e| self.write_failed(e))
    }

    async fn get_sealed(&mut self, scope: Scope, key: String) -> Result<Option<Entry>, GuestError> {
        check_key(&key)?;
        let kv = self.kv_scope(scope)?;
        let found = self.host.db.kv_get(kv, &key).await;
        let Some((stored, revision)) = found.map_err(|e| self.caller.host_failed(e))? else {
            return Ok(None);
        };
        let value = self
            .host
            .secret
            .open(kv.plugin, kv.owner, &key, &stored)
            .map_err(|e| GuestError::InvalidArgument(format!("{key}: {e}")))?;
        Ok(Some(Entry {
            value,
            revision: revision_out(revision),
        }))
    }
}
