//! The registry: which version of each plugin is active, and swapping it live.
//!
//! The active set is an immutable [`Snapshot`] behind an `ArcSwap`. A request loads
//! the snapshot once and keeps its `Arc<LoadedPlugin>` to the end, so requests
//! already running finish on the version they started with while new requests see
//! the new one; nothing waits and nothing is dropped. Installs and rollbacks are
//! serialized by one lock and do all the slow work (compile, checks) before they
//! touch the database or the snapshot, so a refused upload changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestError, RouteClaim};
use crate::runtime::{LoadError, LoadedPlugin, Runtime};
use crate::store::plugin_versions::{NewVersion, VersionRow};
use crate::store::{self, Db, now_ms};

/// The active plugins and the routes they claim. Immutable once published.
#[derive(Default)]
pub struct Snapshot {
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Claimed paths (exact, or ending in `/*`) and the plugin claiming each.
    routes: HashMap<String, String>,
    /// The `/*` claims as (path covered, plugin), longest path first.
    prefixes: Vec<(String, String)>,
}

impl Snapshot {
    /// The plugin claiming a path, with its claim: an exact claim first, else the
    /// longest `/*` claim covering it.
    pub fn route(&self, path: &str) -> Option<(&Arc<LoadedPlugin>, &RouteClaim)> {
        if let Some(owner) = self.routes.get(path).filter(|_| !path.ends_with("/*")) {
            let plugin = self.plugins.get(owner)?;
            let claim = plugin.manifest.routes.iter().find(|r| r.path == path)?;
            return Some((plugin, claim));
        }
        let (base, owner) = self
            .prefixes
            .iter()
            .find(|(base, _)| super::manifest::is_under(path, base))?;
        let plugin = self.plugins.get(owner)?;
        let claim = plugin
            .manifest
            .routes
            .iter()
            .find(|r| r.prefix() == Some(base.as_str()))?;
        Some((plugin, claim))
    }

    fn check_routes(&self, manifest: &Manifest) -> Result<(), InstallError> {
        for claim in &manifest.routes {
            if let Some(owner) = self
                .routes
                .get(&claim.path)
                .filter(|o| **o != manifest.name)
            {
                return Err(InstallError::RouteTaken {
                    path: claim.path.clone(),
                    owner: owner.clone(),
                });
            }
        }
        Ok(())
    }

    fn with(&self, plugin: Arc<LoadedPlugin>) -> Self {
        let mut plugins = self.plugins.clone();
        plugins.insert(plugin.manifest.name.clone(), plugin);
        let routes = plugins
            .values()
            .flat_map(|p| {
                p.manifest
                    .routes
                    .iter()
                    .map(|r| (r.path.clone(), p.manifest.name.clone()))
            })
            .collect::<HashMap<_, _>>();
        let mut prefixes: Vec<(String, String)> = routes
            .iter()
            .filter_map(|(path, owner)| {
                path.strip_suffix("/*")
                    .map(|base| (base.to_string(), owner.clone()))
            })
            .collect();
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Self {
            plugins,
            routes,
            prefixes,
        }
    }
}

/// How a version came in; stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Upload,
    Bundled,
    Watch,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Upload => "upload",
            Source::Bundled => "bundled",
            Source::Watch => "watch",
        }
    }
}

/// Why an install or rollback was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the manifest names plugin `{manifest}`, but this upload is for `{path}`")]
    NameMismatch { manifest: String, path: String },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("route {path} is already served by plugin {owner}")]
    RouteTaken { path: String, owner: String },
    #[error("plugin {0} is not installed")]
    NotFound(String),
    #[error("plugin {0} has no earlier version to roll back to")]
    NoPrevious(String),
    #[error(transparent)]
    Db(#[from] store::Error),
}

/// The outcome of an install: the stored version, whether it was new (an identical
/// upload reuses the stored row), and the running plugin.
pub struct Installed {
    pub row: VersionRow,
    pub created: bool,
    pub plugin: Arc<LoadedPlugin>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    db: Db,
    plugin_env: Arc<BTreeMap<String, String>>,
    active: ArcSwap<Snapshot>,
    writer: tokio::sync::Mutex<()>,
    swaps: AtomicU64,
}

impl Registry {
    /// Loads the active version of every plugin from the database. A stored version
    /// that no longer loads is logged and left out rather than stopping the host.
    pub async fn load(
        runtime: Arc<Runtime>,
        db: Db,
        plugin_env: Arc<BTreeMap<String, String>>,
    ) -> store::Result<Self> {
        let registry = Self {
            runtime,
            db,
            plugin_env,
            active: ArcSwap::from_pointee(Snapshot::default()),
            writer: tokio::sync::Mutex::new(()),
            swaps: AtomicU64::new(0),
        };
        let mut snapshot = Snapshot::default();
        for (row, component) in registry.db.active_versions().await? {
            match registry.prepare(&row, &component).await {
                Ok(plugin) => snapshot = snapshot.with(Arc::new(plugin)),
                Err(e) => {
                    tracing::error!(plugin = %row.name, version = %row.version, error = %e, "active plugin version does not load; not serving it")
                }
            }
        }
        registry.active.store(Arc::new(snapshot));
        Ok(registry)
    }

    async fn prepare(
        &self,
        row: &VersionRow,
        component: &[u8],
    ) -> Result<LoadedPlugin, InstallError> {
        let manifest = Manifest::parse(&row.manifest)?;
        Ok(self
            .runtime
            .prepare(
                manifest,
                component,
                &row.sha256,
                row.id,
                row.uploaded_at,
                &self.plugin_env,
            )
            .await?)
    }

    /// The active set, for one request's use.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.active.load_full()
    }

    /// The active version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.active.load().plugins.get(name).cloned()
    }

    /// Swaps performed since start.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Validates, compiles and checks a version, stores it, and makes it active.
    /// `expected_name` is the name the caller addressed (the upload path).
    pub async fn install(
        &self,
        manifest_text: &str,
        component: &[u8],
        source: Source,
        expected_name: Option<&str>,
    ) -> Result<Installed, InstallError> {
        let manifest = Manifest::parse(manifest_text)?;
        if let Some(path) = expected_name.filter(|n| *n != manifest.name) {
            return Err(InstallError::NameMismatch {
                manifest: manifest.name,
                path: path.to_string(),
            });
        }
        let sha256 = hex::encode(Sha256::digest(component));
        let mut plugin = self
            .runtime
            .prepare(manifest, component, &sha256, 0, now_ms(), &self.plugin_env)
            .await?;

        let _writer = self.writer.lock().await;
        self.snapshot().check_routes(&plugin.manifest)?;
        let (row, created) = self
            .db
            .store_and_activate(&NewVersion {
                name: &plugin.manifest.name,
                version: &plugin.manifest.version.to_string(),
                sha256: &sha256,
                manifest: manifest_text,
                component,
                source: source.as_str(),
            })
            .await?;
        plugin.version_id = row.id;
        plugin.uploaded_at = row.uploaded_at;
        let plugin = Arc::new(plugin);
        self.publish(plugin.clone());
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, source = source.as_str(), "plugin version active");
        Ok(Installed {
            row,
            created,
            plugin,
        })
    }

    /// Reactivates the version that was active before the current one.
    pub async fn rollback(&self, name: &str) -> Result<Installed, InstallError> {
        let _writer = self.writer.lock().await;
        let previous = self.db.previous_version(name).await?;
        let Some(row) = previous else {
            return Err(match self.db.versions(name).await?.is_empty() {
                true => InstallError::NotFound(name.to_string()),
                false => InstallError::NoPrevious(name.to_string()),
            });
        };
        let component = self.db.component_bytes(row.id).await?;
        let plugin = self.prepare(&row, &component).await?;
        self.snapshot().check_routes(&plugin.manifest)?;
        self.db.activate(row.id).await?;
        let plugin = Arc::new(plugin);
        self.publish(plugin.clone());
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, "plugin rolled back");
        Ok(Installed {
            row,
            created: false,
            plugin,
        })
    }

    /// Makes this process serve the version the database says is active for
    /// `name`, when another process activated it (an upload or rollback there).
    /// Returns whether the snapshot changed.
    ///
    /// The slow part (reading and preparing the component, milliseconds from the
    /// compiled cache) runs outside the writer lock; under the lock the database is
    /// asked again, so a local install that won the race is never replaced by the
    /// version read before it.
    pub async fn reload(&self, name: &str) -> Result<bool, InstallError> {
        let Some(row) = self.db.active_version(name).await? else {
            return Ok(false);
        };
        if self.get(name).map(|p| p.version_id) == Some(row.id) {
            return Ok(false);
        }
        let component = self.db.component_bytes(row.id).await?;
        let plugin = self.prepare(&row, &component).await?;
        let _writer = self.writer.lock().await;
        let still_active = self.db.active_version(name).await?.map(|r| r.id) == Some(row.id);
        if !still_active || self.get(name).map(|p| p.version_id) == Some(row.id) {
            return Ok(false);
        }
        self.publish(Arc::new(plugin));
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, "plugin version active (activated by another process)");
        Ok(true)
    }

    fn publish(&self, plugin: Arc<LoadedPlugin>) {
        let name = plugin.manifest.name.clone();
        let next = self.snapshot().with(plugin);
        self.active.store(Arc::new(next));
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.runtime
            .metrics
            .inc("ham_plugin_swaps_total", &[("plugin", &name)]);
    }
}
