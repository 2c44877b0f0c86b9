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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestError, RouteClaim};
use crate::runtime::{LoadError, LoadedPlugin, Runtime};
use crate::store::plugin_versions::{NewVersion, VersionRow};
use crate::store::{self, Db, now_ms};

/// The active plugins and the routes they claim. Immutable once published.
#[derive(Default)]
pub struct Snapshot {
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
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
            documents,
            routes,
            prefixes,
        }
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
                Ok((plugin, document)) => snapshot = snapshot.with(Arc::new(plugin), document),
                Err(e) => {
                    tracing::error!(plugin = %row.name, version = %row.version, error = %e, "active plugin version does not load; not serving it")
                }
            }
        }
        registry.active.store(Arc::new(snapshot));
        Ok(registry)
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

        let _writer = self.writer.lock().await;
        self.snapshot().check_routes(&plugin.manifest)?;
        crate::capabilities::config::env_collision(
            &plugin.manifest.name,
            self.snapshot().plugins.keys().map(String::as_str),
        )?;
        let (row, created) = self
            .db
            .store_and_activate(&NewVersion {
                name: &plugin.manifest.name,
                version: &plugin.manifest.version.to_string(),
                sha256: &sha256,
                manifest: manifest_text,
                component,
                source,
                openapi: package.openapi,
            })
            .await?;
        plugin.version_id = row.id;
        plugin.uploaded_at = row.uploaded_at;
        let plugin = Arc::new(plugin);
        self.publish(plugin.clone(), document);
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
        let (plugin, document) = self.prepare(&row, &component).await?;
        let _writer = self.writer.lock().await;
        let still_active = self.db.active_version(name).await?.map(|r| r.id) == Some(row.id);
        if !still_active || self.get(name).map(|p| p.version_id) == Some(row.id) {
            return Ok(false);
        }
        self.publish(Arc::new(plugin), document);
        tracing::info!(plugin = %row.name, version = %row.version, sha256 = %row.sha256, "plugin version active (activated by another process)");
        Ok(true)
    }

    fn publish(&self, plugin: Arc<LoadedPlugin>, document: Option<Arc<ApiDocument>>) {
        let name = plugin.manifest.name.clone();
        let next = self.snapshot().with(plugin, document);
        self.active.store(Arc::new(next));
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.runtime
            .metrics
            .inc("ham_plugin_swaps_total", &[("plugin", &name)]);
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
