//! The registry: which version of each plugin is active, and swapping it live.
//!
//! The active set is an immutable [`Snapshot`] behind an `ArcSwap`. A request loads
//! the snapshot once and keeps its `Arc<LoadedPlugin>` to the end, so requests
//! already running finish on the version they started with while new requests see
//! the new one; nothing waits and nothing is dropped. Installs and rollbacks are
//! serialized by one lock and do all the slow work (compile, checks) before they
//! touch the database or the snapshot, so a refused upload changes nothing.
//!
//! A version may carry an [`ApiDocument`]: the OpenAPI operations of the routes
//! its manifest claims. It is checked against the manifest at install, stored with
//! the version, and published in the snapshot beside it, so the API document
//! (`GET /api/openapi.json`) swaps, and rolls back, with the version.
//!
//! A version may also go live as the candidate of a rollout (see
//! [`super::rollout`]): the snapshot then holds it as a [`Canary`] beside the
//! active (stable) version, [`Snapshot::serving`] hands it its share of
//! invocations, and the registry counts both versions' outcomes and publishes
//! the decision (promotion makes it the active version; a rollback or an abort
//! drops it). The candidate serves the stable version's routes that it also
//! claims; its own new routes and its OpenAPI document go live at promotion.
//! A shadow run (see [`super::shadow`]) is held the same way but serves nothing:
//! [`Snapshot::shadow`] hands it to the rules evaluator, and an admin decides.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestError, RouteClaim};
use super::rollout::{self, Arm, Figures, Plan, PlanError, RolloutRow, RolloutState, Tally};
use super::shadow::ShadowTally;
use crate::runtime::{LoadError, LoadedPlugin, Runtime};
use crate::store::plugin_versions::{NewVersion, VersionRow};
use crate::store::rollouts::{Decision, Start};
use crate::store::{self, Db, now_ms};

/// A candidate version on trial beside the active version of its plugin: on a
/// canary share, or in shadow (serving nobody).
pub struct Canary {
    pub rollout_id: i64,
    pub plan: Plan,
    pub candidate: Arc<LoadedPlugin>,
    /// Its OpenAPI operations, published when it is promoted.
    document: Option<Arc<ApiDocument>>,
}

impl Canary {
    /// Whether the candidate serves an invocation acting for `user`: a user by a
    /// stable hash (one person, one version), no user invocation by invocation.
    /// A candidate in shadow serves nobody.
    pub fn takes(&self, user: Option<&str>) -> bool {
        let Plan::Canary(plan) = &self.plan else {
            return false;
        };
        match user {
            Some(user) => rollout::user_takes_candidate(
                &self.candidate.manifest.name,
                self.candidate.version_id,
                user,
                plan.canary_percent,
            ),
            None => rollout::request_takes_candidate(plan.canary_percent),
        }
    }
}

/// The active plugins and the routes they claim. Immutable once published.
#[derive(Default, Clone)]
pub struct Snapshot {
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Candidates on trial, by plugin name (see [`super::rollout`]).
    canaries: BTreeMap<String, Arc<Canary>>,
    /// The OpenAPI operations of the active versions that carry them, by name.
    documents: BTreeMap<String, Arc<ApiDocument>>,
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

    /// The OpenAPI operations the active version of plugin `name` documents, if it
    /// carries any.
    pub fn document(&self, name: &str) -> Option<&ApiDocument> {
        self.documents.get(name).map(|d| &**d)
    }

    /// The candidate on trial for plugin `name`, if a rollout runs (canary or
    /// shadow).
    pub fn canary(&self, name: &str) -> Option<&Arc<Canary>> {
        self.canaries.get(name)
    }

    /// The candidate of plugin `name` in a shadow run, if one runs.
    pub fn shadow(&self, name: &str) -> Option<&Arc<Canary>> {
        self.canaries
            .get(name)
            .filter(|c| matches!(c.plan, Plan::Shadow(_)))
    }

    /// The version that serves one invocation of `stable` (an active version of
    /// this snapshot) acting for `user`: the candidate of a rollout of it, for
    /// its share, when `fits` it (it serves the route asked), else `stable`.
    pub fn serving(
        &self,
        stable: &Arc<LoadedPlugin>,
        user: Option<&str>,
        fits: impl Fn(&LoadedPlugin) -> bool,
    ) -> Arc<LoadedPlugin> {
        match self.canaries.get(&stable.manifest.name) {
            Some(c) if fits(&c.candidate) && c.takes(user) => c.candidate.clone(),
            _ => stable.clone(),
        }
    }

    fn check_routes(&self, manifest: &Manifest) -> Result<(), InstallError> {
        // A candidate's routes are spoken for: it may be promoted any moment.
        for canary in self.canaries.values() {
            let owner = &canary.candidate.manifest.name;
            if *owner == manifest.name {
                continue;
            }
            if let Some(claim) = manifest.routes.iter().find(|c| {
                canary
                    .candidate
                    .manifest
                    .routes
                    .iter()
                    .any(|r| r.path == c.path)
            }) {
                return Err(InstallError::RouteTaken {
                    path: claim.path.clone(),
                    owner: owner.clone(),
                });
            }
        }
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

    fn with(&self, plugin: Arc<LoadedPlugin>, document: Option<Arc<ApiDocument>>) -> Self {
        let mut plugins = self.plugins.clone();
        let mut documents = self.documents.clone();
        match document {
            Some(document) => documents.insert(plugin.manifest.name.clone(), document),
            None => documents.remove(&plugin.manifest.name),
        };
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
            canaries: self.canaries.clone(),
            documents,
            routes,
            prefixes,
        }
    }

    /// The same snapshot with `canary` on trial for plugin `name` (none: no
    /// rollout of it).
    fn with_canary(&self, name: &str, canary: Option<Arc<Canary>>) -> Self {
        let mut next = self.clone();
        match canary {
            Some(canary) => next.canaries.insert(name.to_string(), canary),
            None => next.canaries.remove(name),
        };
        next
    }
}

/// How a version came in; stored with it (the store owns its stored names).
pub use crate::store::plugin_versions::Source;

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
    #[error(
        "a rollout of {name} {candidate} is under way: promote or abort it first \
         (POST /api/admin/plugins/{name}/rollout/promote or /abort)"
    )]
    RolloutRunning { name: String, candidate: String },
    #[error("no rollout of plugin {0} is under way")]
    NoRollout(String),
    #[error("{name} {version} is not awaiting approval")]
    NotPending { name: String, version: String },
    #[error(
        "{0} serves neither HTTP nor jobs, the invocations a rollout shares: upload it without `rollout`"
    )]
    RolloutNotApplicable(String),
    #[error(
        "{0} is not a rule set: only a version of `{rules}` that judges habits (exports \
         scheduled-rules or rules) runs in shadow; upload it without `shadow`",
        rules = crate::rules::RULES_PLUGIN
    )]
    ShadowNotApplicable(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    EnvCollision(#[from] crate::capabilities::config::EnvCollision),
    #[error(transparent)]
    Db(#[from] store::Error),
}

/// What a version is made of: its manifest (TOML text), its component, and the
/// OpenAPI operations of the routes it claims (JSON text; without them its routes
/// get a generic description).
pub struct Package<'a> {
    pub manifest: &'a str,
    pub component: &'a [u8],
    pub openapi: Option<&'a str>,
}

/// The outcome of an install: the stored version, whether it was new (an identical
/// upload reuses the stored row), the plugin ready to run, how it went live, and
/// what it asks for beyond the version active before it.
pub struct Installed {
    pub row: VersionRow,
    pub created: bool,
    pub plugin: Arc<LoadedPlugin>,
    pub outcome: Outcome,
    pub added_capabilities: Vec<String>,
}

/// How an installed version went live.
pub enum Outcome {
    /// It is the active version.
    Active,
    /// It is the candidate of this rollout, beside the active version.
    Canary(Box<RolloutRow>),
    /// Stored, not serving: an admin must approve it first.
    PendingApproval,
}

/// How an upload is to go live.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    /// Try it on a share first, or (a rule set) in shadow, beside the active
    /// version (without an active version it simply goes live).
    pub rollout: Option<Plan>,
    /// Hold an upload that asks for more than the active version until an
    /// admin approves it (`plugin_approval = "required"`; uploads only).
    pub approval_required: bool,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    db: Db,
    plugin_env: Arc<BTreeMap<String, String>>,
    active: ArcSwap<Snapshot>,
    writer: tokio::sync::Mutex<()>,
    swaps: AtomicU64,
    /// This process's rollout counts not yet in the database.
    tally: Tally,
    /// This process's shadow figures not yet in the database.
    shadow_tally: ShadowTally,
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
            tally: Tally::default(),
            shadow_tally: ShadowTally::default(),
        };
        let mut snapshot = Snapshot::default();
        for (row, component) in registry.db.active_versions().await? {
            match registry.prepare(&row, &component).await {
                Ok((plugin, document)) => snapshot = snapshot.with(Arc::new(plugin), document),
                Err(e) => {
                    tracing::error!(plugin = %row.name, version = %row.version, error = %e, "active plugin version does not load; not serving it")
                }
            }
        }
        for row in registry.db.running_rollouts().await? {
            match registry.canary_of(&row).await {
                Ok(canary) => snapshot = snapshot.with_canary(&row.name, Some(Arc::new(canary))),
                Err(e) => {
                    tracing::error!(plugin = %row.name, version = %row.candidate_version, error = %e, "the candidate of a rollout does not load; not serving it")
                }
            }
        }
        registry.active.store(Arc::new(snapshot));
        Ok(registry)
    }

    /// The running rollout `row`'s candidate, ready to serve.
    async fn canary_of(&self, row: &RolloutRow) -> Result<Canary, InstallError> {
        let version = self.db.version(row.candidate_id).await?.ok_or_else(|| {
            InstallError::NotFound(format!("{} {}", row.name, row.candidate_version))
        })?;
        let component = self.db.component_bytes(version.id).await?;
        let (plugin, document) = self.prepare(&version, &component).await?;
        Ok(Canary {
            rollout_id: row.id,
            plan: Plan::parse(&row.plan)?,
            candidate: Arc::new(plugin),
            document,
        })
    }

    /// A stored version, ready to serve, with its stored OpenAPI operations. A stored
    /// document that no longer passes the checks is logged and left out: its routes
    /// get the generic description, and the version still serves.
    async fn prepare(
        &self,
        row: &VersionRow,
        component: &[u8],
    ) -> Result<(LoadedPlugin, Option<Arc<ApiDocument>>), InstallError> {
        let manifest = Manifest::parse(&row.manifest)?;
        let document = row.openapi.as_deref().and_then(|text| {
            ApiDocument::parse(text, &manifest)
                .inspect_err(|e| {
                    tracing::warn!(plugin = %row.name, version = %row.version, error = %e, "stored OpenAPI document refused; its routes get the generic description");
                })
                .ok()
                .map(Arc::new)
        });
        let plugin = self
            .runtime
            .prepare(
                manifest,
                component,
                &row.sha256,
                row.id,
                row.uploaded_at,
                &self.plugin_env,
            )
            .await?;
        Ok((plugin, document))
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

    /// Where shadow comparisons are counted until the next [`Registry::tick`].
    pub fn shadow_tally(&self) -> &ShadowTally {
        &self.shadow_tally
    }

    /// [`Registry::install_package`] of a version without an OpenAPI document.
    pub async fn install(
        &self,
        manifest_text: &str,
        component: &[u8],
        source: Source,
        expected_name: Option<&str>,
    ) -> Result<Installed, InstallError> {
        let package = Package {
            manifest: manifest_text,
            component,
            openapi: None,
        };
        self.install_package(&package, source, expected_name).await
    }

    /// Validates, compiles and checks a version (its OpenAPI document against its
    /// manifest too), stores it, and makes it active. `expected_name` is the name
    /// the caller addressed (the upload path).
    pub async fn install_package(
        &self,
        package: &Package<'_>,
        source: Source,
        expected_name: Option<&str>,
    ) -> Result<Installed, InstallError> {
        self.install_with(package, source, expected_name, InstallOptions::default())
            .await
    }

    /// [`Registry::install_package`], going live as `options` say: at once, as the
    /// candidate of a rollout, or (an upload asking for more than the active
    /// version, when approval is required) not before an admin approves it.
    pub async fn install_with(
        &self,
        package: &Package<'_>,
        source: Source,
        expected_name: Option<&str>,
        options: InstallOptions,
    ) -> Result<Installed, InstallError> {
        let (manifest_text, component) = (package.manifest, package.component);
        let manifest = Manifest::parse(manifest_text)?;
        if let Some(path) = expected_name.filter(|n| *n != manifest.name) {
            return Err(InstallError::NameMismatch {
                manifest: manifest.name,
                path: path.to_string(),
            });
        }
        let document = package_document(&manifest, package.openapi)?.map(Arc::new);
        let sha256 = hex::encode(Sha256::digest(component));
        let mut plugin = self
            .runtime
            .prepare(manifest, component, &sha256, 0, now_ms(), &self.plugin_env)
            .await?;
        let name = plugin.manifest.name.clone();
        match options.rollout {
            Some(Plan::Canary(_)) if !(plugin.exports.http || plugin.exports.job_handler) => {
                return Err(InstallError::RolloutNotApplicable(name));
            }
            Some(Plan::Shadow(_))
                if name != crate::rules::RULES_PLUGIN || !plugin.exports.judges_habits() =>
            {
                return Err(InstallError::ShadowNotApplicable(name));
            }
            _ => {}
        }

        let _writer = self.writer.lock().await;
        let snapshot = self.snapshot();
        snapshot.check_routes(&plugin.manifest)?;
        crate::capabilities::config::env_collision(
            &name,
            snapshot.plugins.keys().map(String::as_str),
        )?;
        if let Some(canary) = snapshot.canary(&name) {
            return Err(InstallError::RolloutRunning {
                name,
                candidate: canary.candidate.version_label(),
            });
        }
        let stable = snapshot.plugins.get(&name).cloned();
        let added = super::approval::added_capabilities(
            stable.as_ref().map(|p| &p.manifest),
            &plugin.manifest,
        );
        let version = plugin.manifest.version.to_string();
        let new = NewVersion {
            name: &name,
            version: &version,
            sha256: &sha256,
            manifest: manifest_text,
            component,
            source,
            openapi: package.openapi,
        };
        if options.approval_required
            && source == Source::Upload
            && !added.is_empty()
            && !self.db.granted_before(&new).await?
        {
            let listed = serde_json::to_string(&added).unwrap_or_else(|_| "[]".into());
            let plan = options.rollout.map(|p| p.to_json());
            let (row, created) = self
                .db
                .store_pending(&new, &listed, plan.as_deref())
                .await?;
            plugin.version_id = row.id;
            plugin.uploaded_at = row.uploaded_at;
            tracing::info!(plugin = %row.name, version = %row.version, added = ?added, "plugin version stored; it asks for more than the active version and awaits approval");
            return Ok(Installed {
                row,
                created,
                plugin: Arc::new(plugin),
                outcome: Outcome::PendingApproval,
                added_capabilities: added,
            });
        }
        if let (Some(plan), Some(stable)) = (options.rollout, &stable)
            && let Some((row, created, rollout)) = self
                .db
                .store_candidate(
                    &new,
                    stable.version_id,
                    &plan.to_json(),
                    plan.running_state(),
                )
                .await?
        {
            plugin.version_id = row.id;
            plugin.uploaded_at = row.uploaded_at;
            let plugin = Arc::new(plugin);
            self.start_canary(&snapshot, &rollout, plan, plugin.clone(), document);
            return Ok(Installed {
                row,
                created,
                plugin,
                outcome: Outcome::Canary(Box::new(rollout)),
                added_capabilities: added,
            });
        }
        let (row, created) = self.db.store_and_activate(&new).await?;
        plugin.version_id = row.id;
        plugin.uploaded_at = row.uploaded_at;
        let plugin = Arc::new(plugin);
        self.publish(plugin.clone(), document);
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, source = source.as_str(), "plugin version active");
        Ok(Installed {
            row,
            created,
            plugin,
            outcome: Outcome::Active,
            added_capabilities: added,
        })
    }

    /// Publishes a rollout just started: `candidate` on trial beside the active
    /// version.
    fn start_canary(
        &self,
        snapshot: &Snapshot,
        rollout: &RolloutRow,
        plan: Plan,
        candidate: Arc<LoadedPlugin>,
        document: Option<Arc<ApiDocument>>,
    ) {
        let canary = Arc::new(Canary {
            rollout_id: rollout.id,
            plan,
            candidate,
            document,
        });
        self.publish_snapshot(
            snapshot.with_canary(&rollout.name, Some(canary)),
            &rollout.name,
        );
        tracing::info!(plugin = %rollout.name, stable = %rollout.stable_version, candidate = %rollout.candidate_version, plan = %plan.to_json(), "rollout started");
    }

    /// Approves a version stored awaiting approval (the newest of `name` with
    /// that version label) and makes it live as its upload asked: active, or the
    /// candidate of the rollout it came with.
    pub async fn approve(&self, name: &str, version: &str) -> Result<Installed, InstallError> {
        let pending = self.db.pending_versions(name).await?;
        let Some(row) = pending.into_iter().find(|r| r.version == version) else {
            let stored = self.db.versions(name).await?;
            return Err(match stored.iter().any(|r| r.version == version) {
                true => InstallError::NotPending {
                    name: name.to_string(),
                    version: version.to_string(),
                },
                false => InstallError::NotFound(format!("{name} {version}")),
            });
        };
        let added: Vec<String> = row
            .added_capabilities
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let plan = row.rollout_plan.as_deref().map(Plan::parse).transpose()?;
        let component = self.db.component_bytes(row.id).await?;
        let (plugin, document) = self.prepare(&row, &component).await?;
        let plugin = Arc::new(plugin);

        let _writer = self.writer.lock().await;
        let snapshot = self.snapshot();
        snapshot.check_routes(&plugin.manifest)?;
        if let Some(canary) = snapshot.canary(name) {
            return Err(InstallError::RolloutRunning {
                name: name.to_string(),
                candidate: canary.candidate.version_label(),
            });
        }
        let not_pending = || InstallError::NotPending {
            name: name.to_string(),
            version: version.to_string(),
        };
        let stable = snapshot.plugins.get(name).cloned();
        let outcome = match (plan, stable) {
            (Some(plan), Some(stable)) if stable.version_id != row.id => {
                if !self.db.approve_version(row.id, false).await? {
                    return Err(not_pending());
                }
                let rollout = self
                    .db
                    .start_rollout(&Start {
                        name,
                        stable_id: stable.version_id,
                        candidate_id: row.id,
                        plan: &plan.to_json(),
                        state: plan.running_state(),
                    })
                    .await?;
                self.start_canary(&snapshot, &rollout, plan, plugin.clone(), document);
                Outcome::Canary(Box::new(rollout))
            }
            _ => {
                if !self.db.approve_version(row.id, true).await? {
                    return Err(not_pending());
                }
                self.publish(plugin.clone(), document);
                Outcome::Active
            }
        };
        tracing::info!(plugin = %row.name, version = %row.version, "plugin version approved");
        Ok(Installed {
            row,
            created: false,
            plugin,
            outcome,
            added_capabilities: added,
        })
    }

    /// Reactivates the version that was active before the current one.
    pub async fn rollback(&self, name: &str) -> Result<Installed, InstallError> {
        let _writer = self.writer.lock().await;
        if let Some(canary) = self.snapshot().canary(name) {
            return Err(InstallError::RolloutRunning {
                name: name.to_string(),
                candidate: canary.candidate.version_label(),
            });
        }
        let previous = self.db.previous_version(name).await?;
        let Some(row) = previous else {
            return Err(match self.db.versions(name).await?.is_empty() {
                true => InstallError::NotFound(name.to_string()),
                false => InstallError::NoPrevious(name.to_string()),
            });
        };
        let component = self.db.component_bytes(row.id).await?;
        let (plugin, document) = self.prepare(&row, &component).await?;
        self.snapshot().check_routes(&plugin.manifest)?;
        self.db.activate(row.id).await?;
        let plugin = Arc::new(plugin);
        self.publish(plugin.clone(), document);
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, "plugin rolled back");
        Ok(Installed {
            row,
            created: false,
            plugin,
            outcome: Outcome::Active,
            added_capabilities: Vec::new(),
        })
    }

    /// Makes this process serve what the database says of `name` (its active
    /// version, and the candidate of its rollout under way) when another process
    /// changed it (an upload, rollback, rollout or decision there). Returns
    /// whether the snapshot changed.
    ///
    /// The slow part (reading and preparing components, milliseconds from the
    /// compiled cache) runs outside the writer lock; under the lock the database is
    /// asked again, so a local change that won the race is never replaced by the
    /// state read before it.
    pub async fn reload(&self, name: &str) -> Result<bool, InstallError> {
        let Some(row) = self.db.active_version(name).await? else {
            return Ok(false);
        };
        let rollout = self.db.running_rollout(name).await?;
        let wanted = (row.id, rollout.as_ref().map(|r| r.id));
        let serving = |snapshot: &Snapshot| {
            (
                snapshot.plugins.get(name).map(|p| p.version_id),
                snapshot.canary(name).map(|c| c.rollout_id),
            )
        };
        let before = self.snapshot();
        if serving(&before) == (Some(wanted.0), wanted.1) {
            return Ok(false);
        }
        let stable = match before.plugins.get(name) {
            Some(p) if p.version_id == row.id => None,
            _ => {
                let component = self.db.component_bytes(row.id).await?;
                Some(self.prepare(&row, &component).await?)
            }
        };
        let canary = match &rollout {
            Some(r) => match before.canary(name) {
                Some(c) if c.rollout_id == r.id => Some(c.clone()),
                _ => Some(Arc::new(self.canary_of(r).await?)),
            },
            None => None,
        };
        let _writer = self.writer.lock().await;
        let still = (
            self.db.active_version(name).await?.map(|r| r.id),
            self.db.running_rollout(name).await?.map(|r| r.id),
        );
        let current = self.snapshot();
        if still != (Some(wanted.0), wanted.1) || serving(&current) == (Some(wanted.0), wanted.1) {
            return Ok(false);
        }
        let base = match stable {
            Some((plugin, document)) => current.with(Arc::new(plugin), document),
            None => (*current).clone(),
        };
        self.publish_snapshot(base.with_canary(name, canary), name);
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, rollout = ?wanted.1, "plugin follows another process's activation or rollout");
        Ok(true)
    }

    fn publish(&self, plugin: Arc<LoadedPlugin>, document: Option<Arc<ApiDocument>>) {
        let name = plugin.manifest.name.clone();
        let next = self.snapshot().with(plugin, document);
        self.publish_snapshot(next, &name);
    }

    fn publish_snapshot(&self, next: Snapshot, name: &str) {
        self.active.store(Arc::new(next));
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.runtime
            .metrics
            .inc("ham_plugin_swaps_total", &[("plugin", name)]);
    }

    /// Counts one finished invocation of `plugin` for the rollout of its name, if
    /// one runs and `plugin` is one of its two versions; `error`: a 5xx answer, a
    /// trap, a timeout or a memory failure (see [`super::rollout`]).
    pub fn record(&self, plugin: &LoadedPlugin, error: bool) {
        let snapshot = self.active.load();
        let name = &plugin.manifest.name;
        let Some(canary) = snapshot.canary(name) else {
            return;
        };
        if matches!(canary.plan, Plan::Shadow(_)) {
            return;
        }
        let arm = if plugin.version_id == canary.candidate.version_id {
            Arm::Candidate
        } else if snapshot
            .plugins
            .get(name)
            .is_some_and(|p| p.version_id == plugin.version_id)
        {
            Arm::Stable
        } else {
            return;
        };
        self.tally.add(canary.rollout_id, arm, error);
    }

    /// One round of every rollout this process serves: adds its counts to the
    /// database, follows a rollout decided elsewhere, and judges the others.
    pub async fn tick(&self) {
        let snapshot = self.snapshot();
        let counts: Vec<_> = self
            .tally
            .drain()
            .into_iter()
            .filter(|c| snapshot.canaries.values().any(|k| k.rollout_id == c.0))
            .collect();
        if let Err(e) = self.db.add_rollout_counts(&counts).await {
            tracing::warn!(error = %e, "could not record rollout counts");
        }
        self.flush_shadow_figures().await;
        for canary in snapshot.canaries.values() {
            let name = &canary.candidate.manifest.name;
            match self.db.rollout(canary.rollout_id).await {
                Ok(Some(row)) if row.state == RolloutState::Canary => {}
                // An admin decides a shadow run.
                Ok(Some(row)) if row.state == RolloutState::Shadow => continue,
                Ok(_) => {
                    if let Err(e) = self.reload(name).await {
                        tracing::error!(plugin = %name, error = %e, "could not follow a rollout decided elsewhere");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "could not read a rollout");
                    continue;
                }
            }
            let (stable, candidate, total) = match self.figures(canary).await {
                Ok(figures) => figures,
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "could not read a rollout's counts");
                    continue;
                }
            };
            let Plan::Canary(plan) = &canary.plan else {
                continue;
            };
            if let Some(verdict) = rollout::judge(plan, stable, candidate, total) {
                let decision = Decision {
                    state: verdict.state,
                    by: "host",
                    reason: &verdict.reason,
                    stable,
                    candidate,
                };
                if let Err(e) = self.decide(name, Some(canary.rollout_id), &decision).await {
                    tracing::warn!(plugin = %name, error = %e, "could not record a rollout's decision");
                }
            }
        }
    }

    /// Adds this process's shadow figures to the database.
    async fn flush_shadow_figures(&self) {
        for (rollout, figures, examples) in self.shadow_tally.drain() {
            if let Err(e) = self
                .db
                .add_shadow_figures(rollout, figures, &examples)
                .await
            {
                tracing::warn!(rollout, error = %e, "could not record shadow figures");
            }
        }
    }

    /// A running rollout's figures: each version's over its window, and the
    /// candidate's requests since it began.
    /// A shadow run has none (zeros): its figures are its row's.
    async fn figures(&self, canary: &Canary) -> store::Result<(Figures, Figures, i64)> {
        let Plan::Canary(plan) = &canary.plan else {
            return Ok(Default::default());
        };
        let window = i64::try_from(plan.window_s).unwrap_or(i64::MAX / 2);
        let since = now_ms() / 1000 - window + 1;
        self.db.rollout_figures(canary.rollout_id, since).await
    }

    /// The figures of the rollout of `name` under way, as [`Registry::tick`]
    /// judges them; `None` when this process serves no rollout of it.
    pub async fn live_figures(
        &self,
        name: &str,
    ) -> Result<Option<(Figures, Figures, i64)>, InstallError> {
        let Some(canary) = self.snapshot().canary(name).cloned() else {
            return Ok(None);
        };
        Ok(Some(self.figures(&canary).await?))
    }

    /// An admin's decision on the rollout of `name` under way: `promote`, else
    /// abort. Returns the decided rollout.
    pub async fn decide_by_hand(
        &self,
        name: &str,
        promote: bool,
    ) -> Result<RolloutRow, InstallError> {
        // A rollout started through another replica a moment ago.
        if self.snapshot().canary(name).is_none() {
            self.reload(name).await?;
        }
        let Some(canary) = self.snapshot().canary(name).cloned() else {
            return Err(match self.db.versions(name).await?.is_empty() {
                true => InstallError::NotFound(name.to_string()),
                false => InstallError::NoRollout(name.to_string()),
            });
        };
        let (stable, candidate, _) = self.figures(&canary).await?;
        // A shadow run's latest figures go in before it is decided.
        if matches!(canary.plan, Plan::Shadow(_)) {
            self.flush_shadow_figures().await;
        }
        let (state, reason) = match promote {
            true => (RolloutState::Promoted, "promoted by an admin"),
            false => (RolloutState::Aborted, "aborted by an admin"),
        };
        let decision = Decision {
            state,
            by: "admin",
            reason,
            stable,
            candidate,
        };
        self.decide(name, Some(canary.rollout_id), &decision).await
    }

    /// Records and publishes the decision on the rollout of `name` (the one
    /// numbered `expected`). This process stops (or, promoting, starts) sending
    /// everyone to the candidate first, then the database records the decision;
    /// when another process decided first, this one follows the database.
    async fn decide(
        &self,
        name: &str,
        expected: Option<i64>,
        decision: &Decision<'_>,
    ) -> Result<RolloutRow, InstallError> {
        let writer = self.writer.lock().await;
        let snapshot = self.snapshot();
        let canary = match snapshot.canary(name) {
            Some(c) if expected.is_none_or(|id| id == c.rollout_id) => c.clone(),
            _ => return Err(InstallError::NoRollout(name.to_string())),
        };
        let next = match decision.state {
            RolloutState::Promoted => snapshot
                .with(canary.candidate.clone(), canary.document.clone())
                .with_canary(name, None),
            _ => snapshot.with_canary(name, None),
        };
        self.publish_snapshot(next, name);
        let recorded = self.db.decide_rollout(canary.rollout_id, decision).await;
        drop(writer);
        match recorded {
            Ok(true) => {
                let outcome = decision.state.as_str();
                self.runtime.metrics.inc(
                    "ham_plugin_rollouts_total",
                    &[("plugin", name), ("outcome", outcome)],
                );
                tracing::info!(plugin = %name, candidate = %canary.candidate.version_label(), outcome, by = decision.by, reason = decision.reason, "rollout decided");
            }
            Ok(false) => {
                self.reload(name).await?;
            }
            Err(e) => {
                let _ = self.reload(name).await;
                return Err(e.into());
            }
        }
        self.db
            .rollout(canary.rollout_id)
            .await?
            .ok_or_else(|| InstallError::NoRollout(name.to_string()))
    }
}

/// The document a version is installed with: the one its package carries, checked
/// against its manifest. Without one its routes get the generic description, also
/// when the manifest names an `openapi` file (said in the log: an upload that left
/// the field out).
fn package_document(
    manifest: &Manifest,
    openapi: Option<&str>,
) -> Result<Option<ApiDocument>, InstallError> {
    match (openapi, &manifest.openapi) {
        (Some(text), _) => ApiDocument::parse(text, manifest)
            .map(Some)
            .map_err(|e| ManifestError(format!("openapi: {e}")).into()),
        (None, Some(file)) => {
            tracing::warn!(plugin = %manifest.name, version = %manifest.version, file = %file, "the manifest names an OpenAPI document the version does not carry; its routes get the generic description");
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// Largest OpenAPI document a version may carry.
pub const MAX_API_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The host's components a plugin's document may refer to without defining them.
pub const HOST_COMPONENTS: &[&str] = &["#/components/schemas/ErrorBody"];

/// The operations of a path item, as OpenAPI names them.
const OPERATION_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The components a plugin's document may define: not `securitySchemes`, since how
/// a route authenticates is the host's to say.
const COMPONENT_KINDS: &[&str] = &[
    "schemas",
    "responses",
    "parameters",
    "examples",
    "requestBodies",
    "headers",
    "links",
    "callbacks",
    "pathItems",
];

/// The OpenAPI operations a plugin version documents for the routes it claims:
/// the `openapi` file beside its manifest, a JSON OpenAPI 3.x document with
/// `paths`, and `components` when its operations refer to any.
///
/// Checked against the manifest, and refused naming the place at fault:
/// - at the top only `openapi` (3.x), `info` (not used), `paths` and
///   `components`: no `servers`, `security` or `webhooks`, since where and how a
///   route is served is the host's to say;
/// - every path is one the manifest claims: an exact claim, or a path under a
///   `/*` claim whose `{parameter}` segments stand for what the claim leaves open
///   (`/api/coach/conversations/{id}` under `/api/coach/conversations/*`), each
///   described `in: path`;
/// - every operation is a method its claim lists;
/// - every `$ref` names a component the document defines, or the host's
///   `#/components/schemas/ErrorBody` (the error shape).
///
/// Components are renamed `{plugin}.{name}`, with every `$ref` to them, so two
/// plugins' `Rule` schemas collide neither with each other nor with the host's.
/// The host completes each operation when it serves the document (security, the
/// answers it gives itself); see `api::openapi`.
#[derive(Debug, Clone)]
pub struct ApiDocument {
    /// Path template -> path item, `$ref`s renamed.
    pub paths: Map<String, Value>,
    /// Component kind (`schemas`, `responses`, …) -> renamed name -> definition.
    pub components: Map<String, Value>,
}

/// Why a plugin's OpenAPI document was refused, naming the place at fault
/// (`paths./api/x.post: …`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiDocumentError(pub String);

impl ApiDocument {
    /// Parses and checks a document against the manifest of its version.
    pub fn parse(text: &str, manifest: &Manifest) -> Result<Self, ApiDocumentError> {
        let bad = |why: String| Err(ApiDocumentError(why));
        if text.len() > MAX_API_DOCUMENT_BYTES {
            return bad(format!(
                "the document is over {} KiB",
                MAX_API_DOCUMENT_BYTES / 1024
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| ApiDocumentError(format!("not JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return bad("not a JSON object (an OpenAPI document with `paths`)".into());
        };
        if let Some(key) = top
            .keys()
            .find(|k| !matches!(k.as_str(), "openapi" | "info" | "paths" | "components"))
        {
            return bad(format!(
                "{key}: a plugin's document holds only openapi, info, paths and components; \
                 where and how its routes are served is the host's to say"
            ));
        }
        if let Some(version) = top.get("openapi")
            && !version.as_str().is_some_and(|v| v.starts_with("3."))
        {
            return bad(format!("openapi: {version} is not an OpenAPI 3.x version"));
        }
        let components = match top.remove("components") {
            None => Map::new(),
            Some(Value::Object(components)) => components,
            Some(_) => return bad("components: not an object".into()),
        };
        let mut defined = BTreeSet::new();
        for (kind, entries) in &components {
            if !COMPONENT_KINDS.contains(&kind.as_str()) {
                return bad(format!(
                    "components.{kind}: not a kind a plugin may define ({})",
                    COMPONENT_KINDS.join(", ")
                ));
            }
            let Value::Object(entries) = entries else {
                return bad(format!("components.{kind}: not an object"));
            };
            for name in entries.keys() {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    return bad(format!(
                        "components.{kind}.{name}: a component name is letters, digits, '.', '_' and '-'"
                    ));
                }
                defined.insert(format!("#/components/{kind}/{name}"));
            }
        }
        let Some(Value::Object(paths)) = top.remove("paths") else {
            return bad("paths: required, an object of the routes the manifest claims".into());
        };
        for (path, item) in &paths {
            check_path_item(path, item, manifest, &components)?;
        }

        let renamer = Renamer {
            defined: &defined,
            plugin: &manifest.name,
        };
        let mut renamed_paths = Map::new();
        for (path, mut item) in paths {
            renamer.rename(&mut item, &format!("paths.{path}"))?;
            renamed_paths.insert(path, item);
        }
        let mut renamed_components = Map::new();
        for (kind, entries) in components {
            let Value::Object(entries) = entries else {
                continue;
            };
            let mut out = Map::new();
            for (name, mut definition) in entries {
                renamer.rename(&mut definition, &format!("components.{kind}.{name}"))?;
                out.insert(format!("{}.{name}", manifest.name), definition);
            }
            renamed_components.insert(kind, Value::Object(out));
        }
        Ok(Self {
            paths: renamed_paths,
            components: renamed_components,
        })
    }
}

/// The claim of `manifest` that serves `path` (an OpenAPI path template): the
/// exact claim of that path, else the longest `/*` claim covering it, as the
/// router chooses.
pub fn claim_covering<'m>(manifest: &'m Manifest, path: &str) -> Option<&'m RouteClaim> {
    manifest
        .routes
        .iter()
        .find(|c| c.prefix().is_none() && c.path == path)
        .or_else(|| {
            manifest
                .routes
                .iter()
                .filter(|c| c.prefix().is_some() && c.matches(path))
                .max_by_key(|c| c.path.len())
        })
}

fn check_path_item(
    path: &str,
    item: &Value,
    manifest: &Manifest,
    components: &Map<String, Value>,
) -> Result<(), ApiDocumentError> {
    let at = format!("paths.{path}");
    let bad = |why: String| Err(ApiDocumentError(format!("{at}: {why}")));
    if !path.starts_with("/api/") || path.contains(['*', '?', '#']) {
        return bad(
            "a path is /api/…, with a {parameter} segment for each part a /* claim leaves open"
                .into(),
        );
    }
    let Some(claim) = claim_covering(manifest, path) else {
        let claims: Vec<&str> = manifest.routes.iter().map(|c| c.path.as_str()).collect();
        return bad(format!(
            "the manifest claims no route covering it (it claims {})",
            if claims.is_empty() {
                "none".to_string()
            } else {
                claims.join(", ")
            }
        ));
    };
    let mut parameters = Vec::new();
    for segment in path.split('/') {
        if !segment.contains(['{', '}']) {
            continue;
        }
        let name = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|n| !n.is_empty() && !n.contains(['{', '}']));
        match name {
            Some(name) => parameters.push(name),
            None => {
                return bad(format!(
                    "`{segment}`: a parameter is a whole segment `{{name}}`"
                ));
            }
        }
    }
    let Value::Object(item) = item else {
        return bad("not an object".into());
    };
    let shared = item.get("parameters");
    for (key, operation) in item {
        let key = key.as_str();
        if OPERATION_METHODS.contains(&key) {
            let method = key.to_ascii_uppercase();
            if !claim.methods.contains(&method) {
                return bad(format!(
                    "{key}: the manifest claims {} on {}, not {method}",
                    claim.methods.join(", "),
                    claim.path
                ));
            }
            let Value::Object(operation) = operation else {
                return bad(format!("{key}: not an object"));
            };
            if operation.get("responses").is_some_and(|r| !r.is_object()) {
                return bad(format!("{key}.responses: not an object"));
            }
            let own = operation.get("parameters");
            if let Some(name) = parameters.iter().find(|name| {
                !describes_path_parameter(own, name, components)
                    && !describes_path_parameter(shared, name, components)
            }) {
                return bad(format!(
                    "{key}: the path parameter `{name}` is not described (a parameter `in: path`)"
                ));
            }
        } else if !matches!(key, "summary" | "description" | "parameters") && !key.starts_with("x-")
        {
            return bad(format!(
                "{key}: a path item holds operations (get, post, …), summary, description and parameters"
            ));
        }
    }
    Ok(())
}

/// Whether a `parameters` list describes the path parameter `name`, itself or by a
/// `$ref` to the document's components.
fn describes_path_parameter(
    parameters: Option<&Value>,
    name: &str,
    components: &Map<String, Value>,
) -> bool {
    let Some(Value::Array(parameters)) = parameters else {
        return false;
    };
    parameters.iter().any(|p| {
        let p = match p.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix("#/components/parameters/") {
                Some(component) => {
                    match components.get("parameters").and_then(|c| c.get(component)) {
                        Some(p) => p,
                        None => return false,
                    }
                }
                None => return false,
            },
            None => p,
        };
        p.get("name").and_then(Value::as_str) == Some(name)
            && p.get("in").and_then(Value::as_str) == Some("path")
    })
}

/// Renames a document's `$ref`s to its components `{plugin}.{name}`, and refuses
/// one that names anything else (but the host's [`HOST_COMPONENTS`]).
struct Renamer<'a> {
    defined: &'a BTreeSet<String>,
    plugin: &'a str,
}

impl Renamer<'_> {
    fn rename(&self, value: &mut Value, at: &str) -> Result<(), ApiDocumentError> {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get_mut("$ref") {
                    if self.defined.contains(target.as_str()) {
                        if let Some((kind, name)) = target.rsplit_once('/') {
                            *target = format!("{kind}/{}.{name}", self.plugin);
                        }
                    } else if !HOST_COMPONENTS.contains(&target.as_str()) {
                        return Err(ApiDocumentError(format!(
                            "{at}: `$ref` {target} names no component of this document \
                             (of the host's, only {})",
                            HOST_COMPONENTS.join(", ")
                        )));
                    }
                }
                for (key, child) in map.iter_mut() {
                    // Values, not schemas: a `$ref` there is data.
                    if !matches!(
                        key.as_str(),
                        "$ref" | "example" | "default" | "const" | "enum"
                    ) {
                        self.rename(child, &format!("{at}.{key}"))?;
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.rename(item, &format!("{at}[{i}]"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
