//! The `plugin_versions` table: every version of every plugin ever installed, and
//! which one is active per name.
//!
//! Activation stamps a version with the next global sequence number; the active
//! version of a name is its highest stamp, and rollback re-stamps the one before it.
//! So rollback is "undo the last activation", and history is never rewritten.

use sqlx::{AssertSqlSafe, Row as _};

use super::text::{StoredText, decode};
use super::{Db, Result, now_ms};

/// How a version came in; stored with it (see [`super::text`] for the names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Upload,
    Bundled,
    Watch,
}

impl Source {
    /// The stored name: `upload`, `bundled` or `watch`.
    pub fn as_str(self) -> &'static str {
        self.as_stored()
    }
}

/// A stored plugin version, without its component bytes.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub manifest: String,
    pub source: Source,
    pub uploaded_at: i64,
    pub activated_seq: Option<i64>,
    /// The OpenAPI operations of its routes (JSON text, as uploaded), if it has any.
    pub openapi: Option<String>,
    /// Whether it waits for an admin's approval, or got it; `None`: it needed none.
    pub approval: Option<Approval>,
    /// What it asks for beyond the version active when it was uploaded (a JSON
    /// list of lines), when it was stored awaiting approval.
    pub added_capabilities: Option<String>,
    /// The rollout asked with its upload (JSON), started when it is approved.
    pub rollout_plan: Option<String>,
}

/// An upload's approval (stored as `pending`, `approved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Pending,
    Approved,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        self.as_stored()
    }
}

const COLUMNS: &str = "id, name, version, sha256, manifest, source, uploaded_at, activated_seq, \
     openapi, approval, added_capabilities, rollout_plan";

/// A `plugin_versions` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct VersionRecord {
    id: i64,
    name: String,
    version: String,
    sha256: String,
    manifest: String,
    source: String,
    uploaded_at: i64,
    activated_seq: Option<i64>,
    openapi: Option<String>,
    approval: Option<String>,
    added_capabilities: Option<String>,
    rollout_plan: Option<String>,
}

impl TryFrom<VersionRecord> for VersionRow {
    type Error = super::Error;

    fn try_from(r: VersionRecord) -> Result<Self> {
        Ok(VersionRow {
            id: r.id,
            name: r.name,
            version: r.version,
            sha256: r.sha256,
            manifest: r.manifest,
            source: decode(&r.source)?,
            uploaded_at: r.uploaded_at,
            activated_seq: r.activated_seq,
            openapi: r.openapi,
            approval: r.approval.as_deref().map(decode).transpose()?,
            added_capabilities: r.added_capabilities,
            rollout_plan: r.rollout_plan,
        })
    }
}

/// A version with its component bytes.
#[derive(sqlx::FromRow)]
struct VersionWithComponent {
    #[sqlx(flatten)]
    row: VersionRecord,
    component: Vec<u8>,
}

/// A version to store.
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub sha256: &'a str,
    pub manifest: &'a str,
    pub component: &'a [u8],
    pub source: Source,
    /// The OpenAPI operations of its routes (JSON text), already checked.
    pub openapi: Option<&'a str>,
}

impl Db {
    /// Stores a version (or finds the identical one already stored: same component,
    /// manifest and OpenAPI document) and makes it the active one. Returns the row
    /// and whether it was newly stored.
    pub async fn store_and_activate(&self, new: &NewVersion<'_>) -> Result<(VersionRow, bool)> {
        let mut tx = self.begin_write().await?;
        let (id, created) = insert_or_find(&mut tx, new).await?;
        stamp_active(&mut tx, id, self.backend()).await?;
        let row = row(&mut tx, id).await?;
        tx.commit().await?;
        Ok((row, created))
    }

    /// Stores a version (or finds the identical one) awaiting an admin's approval,
    /// with what it asks for beyond the active version (`added`, a JSON list) and
    /// the rollout asked with it. Not active. Returns the row and whether it was
    /// newly stored.
    pub async fn store_pending(
        &self,
        new: &NewVersion<'_>,
        added: &str,
        rollout_plan: Option<&str>,
    ) -> Result<(VersionRow, bool)> {
        let mut tx = self.begin_write().await?;
        let (id, created) = insert_or_find(&mut tx, new).await?;
        sqlx::query(
            "UPDATE plugin_versions SET approval = 'pending', added_capabilities = $2, \
             rollout_plan = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(added)
        .bind(rollout_plan)
        .execute(&mut *tx)
        .await?;
        let row = row(&mut tx, id).await?;
        tx.commit().await?;
        Ok((row, created))
    }

    /// Whether a version identical to `new` was approved or active before: its
    /// grants were accepted once, and are not asked about again.
    pub async fn granted_before(&self, new: &NewVersion<'_>) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM plugin_versions WHERE name = $1 AND sha256 = $2 AND manifest = $3 \
             AND COALESCE(openapi, '') = COALESCE($4, '') \
             AND (activated_seq IS NOT NULL OR approval = 'approved') LIMIT 1",
        )
        .bind(new.name)
        .bind(new.sha256)
        .bind(new.manifest)
        .bind(new.openapi)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// The versions of `name` awaiting approval, newest first.
    pub async fn pending_versions(&self, name: &str) -> Result<Vec<VersionRow>> {
        let rows: Vec<VersionRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plugin_versions WHERE name = $1 AND approval = 'pending' \
             ORDER BY id DESC"
        )))
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(VersionRow::try_from).collect()
    }

    /// Marks a pending version approved and, with `activate`, makes it the active
    /// one of its name, in one transaction. False when it was not pending (an
    /// admin approved it meanwhile): nothing changed.
    pub async fn approve_version(&self, id: i64, activate: bool) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let approved = sqlx::query(
            "UPDATE plugin_versions SET approval = 'approved' WHERE id = $1 AND approval = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if approved == 0 {
            return Ok(false);
        }
        if activate {
            stamp_active(&mut tx, id, self.backend()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// One stored version by id, without its component.
    pub async fn version(&self, id: i64) -> Result<Option<VersionRow>> {
        let row: Option<VersionRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plugin_versions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(VersionRow::try_from).transpose()
    }

    /// The version that was active before the current one of `name`, if any.
    pub async fn previous_version(&self, name: &str) -> Result<Option<VersionRow>> {
        let row: Option<VersionRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plugin_versions WHERE name = $1 AND activated_seq IS NOT NULL \
             ORDER BY activated_seq DESC LIMIT 1 OFFSET 1"
        )))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(VersionRow::try_from).transpose()
    }

    /// Makes a stored version the active one of its name.
    pub async fn activate(&self, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        stamp_active(&mut tx, id, self.backend()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The active version of every plugin, with its component bytes.
    pub async fn active_versions(&self) -> Result<Vec<(VersionRow, Vec<u8>)>> {
        let rows: Vec<VersionWithComponent> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS}, component FROM plugin_versions v WHERE activated_seq = \
             (SELECT MAX(activated_seq) FROM plugin_versions w WHERE w.name = v.name) ORDER BY name"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.row.try_into()?, r.component)))
            .collect()
    }

    /// The active version of one plugin, without its component.
    pub async fn active_version(&self, name: &str) -> Result<Option<VersionRow>> {
        let row: Option<VersionRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plugin_versions WHERE name = $1 AND activated_seq IS NOT NULL \
             ORDER BY activated_seq DESC LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(VersionRow::try_from).transpose()
    }

    /// (name, id) of the active version of every plugin: the cheap check replicas
    /// run periodically.
    pub async fn active_version_ids(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT name, id FROM plugin_versions v WHERE activated_seq = \
             (SELECT MAX(activated_seq) FROM plugin_versions w WHERE w.name = v.name) ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("id")?)))
            .collect()
    }

    /// The component bytes of one version.
    pub async fn component_bytes(&self, id: i64) -> Result<Vec<u8>> {
        Ok(
            sqlx::query_scalar("SELECT component FROM plugin_versions WHERE id = $1")
                .bind(id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Every stored version of a plugin, newest upload first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRow>> {
        let rows: Vec<VersionRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plugin_versions WHERE name = $1 ORDER BY id DESC"
        )))
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(VersionRow::try_from).collect()
    }
}

/// Finds the stored version identical to `new` (same component, manifest and
/// OpenAPI document), or stores it; returns its id and whether it is new.
pub(super) async fn insert_or_find(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewVersion<'_>,
) -> Result<(i64, bool)> {
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM plugin_versions WHERE name = $1 AND sha256 = $2 AND manifest = $3 \
         AND COALESCE(openapi, '') = COALESCE($4, '')",
    )
    .bind(new.name)
    .bind(new.sha256)
    .bind(new.manifest)
    .bind(new.openapi)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO plugin_versions (name, version, sha256, manifest, component, source, uploaded_at, openapi) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(new.name)
    .bind(new.version)
    .bind(new.sha256)
    .bind(new.manifest)
    .bind(new.component)
    .bind(new.source.as_stored())
    .bind(now_ms())
    .bind(new.openapi)
    .fetch_one(&mut **tx)
    .await?;
    Ok((id, true))
}

/// One version's row, read inside a transaction.
pub(super) async fn row(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> Result<VersionRow> {
    let row: VersionRecord = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM plugin_versions WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    row.try_into()
}

/// Stamps a version active. On PostgreSQL the activation is also announced on the
/// `ham_plugins` channel (payload: the plugin name), delivered when the transaction
/// commits, so other processes reload it (see `plugins::replicas`).
pub(super) async fn stamp_active(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    backend: super::Backend,
) -> Result<()> {
    sqlx::query(
        "UPDATE plugin_versions SET activated_seq = \
         (SELECT COALESCE(MAX(activated_seq), 0) + 1 FROM plugin_versions) WHERE id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if backend == super::Backend::Postgres {
        // `pg_notify` returns `void`, which the Any driver cannot decode: count it.
        sqlx::query(
            "SELECT COUNT(*) FROM (SELECT pg_notify($1, name) FROM plugin_versions WHERE id = $2) AS n",
        )
        .bind(SWAP_CHANNEL)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Announces a change to plugin `name` other than an activation (a rollout
/// started or decided) on the `ham_plugins` channel, delivered at commit.
pub(super) async fn notify(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    backend: super::Backend,
) -> Result<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(SWAP_CHANNEL)
            .bind(name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The PostgreSQL channel activations are announced on.
pub const SWAP_CHANNEL: &str = "ham_plugins";
