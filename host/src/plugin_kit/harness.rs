//! The plugin harness: one plugin version, loaded the way the server loads an
//! upload, run without a server.
//!
//! [`Harness::load`] builds what `ham serve` builds for plugins (the same
//! runtime: engine, linker, limits; the same capabilities; the same registry
//! install path) over a throwaway data dir and an in-memory SQLite database, and
//! installs the plugin there. So a refusal is the server's refusal, word for
//! word ([`Answer`]: the status, code and message an upload would get), and an
//! invocation runs with the limits, grants and storage it would have on a server.
//!
//! Then it runs the plugin the three ways the host does:
//!
//! - [`Harness::http`]: a request, routed as the server routes it
//!   (`/plugins/{name}/…` with the prefix taken off, or a route the manifest
//!   claims, with its methods and `auth`), answered with the status, headers and
//!   body a client would get, the host's error answers included;
//! - [`Harness::evaluate`]: a rules evaluation from JSON fixtures
//!   ([`RulesFixture`]), the answer checked as the stats API checks it;
//! - [`Harness::job`]: a job, and how the queue would take its outcome.
//!
//! What only a server knows is out of reach: other plugins (routes they claim),
//! `plugin_approval`, sessions (a request names the user it acts for instead),
//! the language model (none is configured) and other plugins' stats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::Deserialize;

use crate::api::ApiError;
use crate::capabilities::Capabilities;
use crate::plugins::manifest::RouteAuth;
use crate::plugins::registry::{Package, Registry, Source};
use crate::plugins::{InstallError, Manifest};
use crate::rules::{HabitStats, Range, StatsError};
use crate::runtime::{LoadedPlugin, Runtime};
use crate::store::{Db, Migrations};
use crate::wit::exports::ham::plugin::job_handler::{Job, JobError};
use crate::wit::exports::ham::plugin::scheduled_rules as wit;

/// An answer the server would give: its status, `error.code` and
/// `error.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status.as_u16(),
            code: e.code.to_string(),
            message: e.message,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// Why the harness could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The server would refuse this upload, with this answer.
    #[error("the server would refuse this upload: {0}")]
    Refused(Answer),
    /// The plugin failed in a way the server answers with this error.
    #[error("{0}")]
    Failed(Answer),
    /// A file, request or fixture the harness was given is not usable; the text
    /// says which and why.
    #[error("{0}")]
    Input(String),
    /// The harness itself could not start (the runtime, the database).
    #[error("the harness could not start: {0}")]
    Setup(String),
}

/// Plugin variable values from this process's environment
/// (`HAM_PLUGIN_<NAME>_<VARIABLE>`), as the server takes them from its own.
pub fn plugin_env_from_process() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(key, _)| key.starts_with("HAM_PLUGIN_"))
        .collect()
}

/// A plugin version loaded as the server would load it, with a host of its own.
pub struct Harness {
    registry: Arc<Registry>,
    plugin: Arc<LoadedPlugin>,
    db: Db,
    /// Holds the in-memory database open while the pools' connections come
    /// and go (it lives as long as one connection to it does).
    _keeper: sqlx::AnyConnection,
    /// The data dir: the compiled-component cache.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// What [`Harness::load_with`] reads from disk: the manifest, and its
/// component and OpenAPI document (where the manifest names them, relative to
/// it; `component` overrides the manifest's).
pub struct PackageFiles {
    pub manifest: String,
    pub component: Vec<u8>,
    pub openapi: Option<String>,
    /// Where the component was read from.
    pub component_path: PathBuf,
}

impl PackageFiles {
    /// Reads a plugin's files as `ham plugin install` does.
    pub fn read(manifest: &Path, component: Option<&Path>) -> Result<Self, KitError> {
        let read_error = |path: &Path, e: std::io::Error| {
            KitError::Input(format!("reading {}: {e}", path.display()))
        };
        let text = std::fs::read_to_string(manifest).map_err(|e| read_error(manifest, e))?;
        let dir = manifest.parent().unwrap_or(Path::new("."));
        // The names of the files come from the manifest; a manifest that does
        // not parse is the server's to refuse, once the files are read.
        let parsed = Manifest::parse(&text).ok();
        let component_path = match (
            component,
            parsed.as_ref().and_then(|m| m.component.as_ref()),
        ) {
            (Some(path), _) => path.to_path_buf(),
            (None, Some(rel)) => dir.join(rel),
            (None, None) if parsed.is_some() => {
                return Err(KitError::Input(
                    "the manifest names no `component`; pass --component PATH".into(),
                ));
            }
            (None, None) => {
                // Refused below, before the component matters.
                return Ok(Self {
                    manifest: text,
                    component: Vec::new(),
                    openapi: None,
                    component_path: PathBuf::new(),
                });
            }
        };
        let bytes = std::fs::read(&component_path).map_err(|e| {
            KitError::Input(format!(
                "reading {}: {e} (build it first: cargo build --release --target wasm32-wasip2)",
                component_path.display()
            ))
        })?;
        let openapi = match parsed.as_ref().and_then(|m| m.openapi.as_ref()) {
            Some(rel) => {
                let path = dir.join(rel);
                Some(std::fs::read_to_string(&path).map_err(|e| {
                    KitError::Input(format!(
                        "reading {} (the manifest's `openapi`): {e}",
                        path.display()
                    ))
                })?)
            }
            None => None,
        };
        Ok(Self {
            manifest: text,
            component: bytes,
            openapi,
            component_path,
        })
    }
}

impl Harness {
    /// Loads the plugin `manifest` (a `plugin.toml`) describes, its component
    /// where the manifest says, with variable values from this process's
    /// environment.
    pub async fn load(manifest: impl AsRef<Path>) -> Result<Self, KitError> {
        Self::load_with(manifest.as_ref(), None).await
    }

    /// [`Harness::load`] with another component than the manifest's.
    pub async fn load_with(manifest: &Path, component: Option<&Path>) -> Result<Self, KitError> {
        let files = PackageFiles::read(manifest, component)?;
        let package = Package {
            manifest: &files.manifest,
            component: &files.component,
            openapi: files.openapi.as_deref(),
        };
        Self::from_package(&package, plugin_env_from_process()).await
    }

    /// Loads a plugin from its parts, with `plugin_env` as the variables'
    /// environment (`HAM_PLUGIN_<NAME>_<VARIABLE>` keys).
    pub async fn from_package(
        package: &Package<'_>,
        plugin_env: BTreeMap<String, String>,
    ) -> Result<Self, KitError> {
        // The upload handler checks the OpenAPI document first, for its own code.
        if let Some(refused) = crate::api::admin::openapi_refusal(package.manifest, package.openapi)
        {
            return Err(KitError::Refused(refused.into()));
        }
        let dir = tempfile::tempdir().map_err(|e| KitError::Setup(format!("a temp dir: {e}")))?;
        let url = memory_database_url();
        let setup = |what: &str, e: &dyn std::fmt::Display| KitError::Setup(format!("{what}: {e}"));
        let db = Db::open(&url, Migrations::Apply)
            .await
            .map_err(|e| setup("opening an in-memory database", &e))?;
        let keeper = {
            use sqlx::Connection as _;
            sqlx::AnyConnection::connect(&url)
                .await
                .map_err(|e| setup("opening an in-memory database", &e))?
        };
        let capabilities =
            Capabilities::with_defaults(db.clone()).map_err(|e| setup("capabilities", &e))?;
        let runtime = Runtime::new(dir.path(), capabilities, Arc::default())
            .map_err(|e| setup("the runtime", &e))?;
        let registry = Registry::load(Arc::new(runtime), db.clone(), Arc::new(plugin_env))
            .await
            .map_err(|e| setup("the registry", &e))?;
        let registry = Arc::new(registry);
        let installed = registry
            .install_package(package, Source::Upload, None)
            .await
            .map_err(refusal)?;
        Ok(Self {
            registry,
            plugin: installed.plugin,
            db,
            _keeper: keeper,
            _dir: dir,
        })
    }

    /// The loaded version: its manifest, exports and imports.
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// The value the plugin stored under `key`: in its own scope (`user` none),
    /// or in that user's.
    pub async fn stored(&self, user: Option<&str>, key: &str) -> Result<Option<Vec<u8>>, KitError> {
        let scope = crate::store::kv::KvScope {
            plugin: &self.plugin.manifest.name,
            owner: user.unwrap_or(""),
        };
        let found = self
            .db
            .kv_get(scope, key)
            .await
            .map_err(|e| KitError::Setup(format!("reading storage: {e}")))?;
        Ok(found.map(|(value, _)| value))
    }

    /// Makes sure the user an invocation acts for exists (id and name alike),
    /// as a signed-in user does on a server.
    async fn ensure_user(&self, user: &str) -> Result<(), KitError> {
        match self.db.create_user(user, user, None, false).await {
            Ok(_) | Err(crate::store::users::CreateUserError::Taken) => Ok(()),
            Err(e) => Err(KitError::Setup(format!("creating user {user}: {e}"))),
        }
    }

    /// Serves one request as the server would: routed by its path, refused
    /// where the server refuses it (no such route, a method the claim does not
    /// list, `auth = "user"` without a user, a body over `request_body_kb`),
    /// credentials stripped, and the response guarded like the server's. A
    /// failed invocation is the server's error answer (500 `plugin_trap`, 504
    /// `plugin_timeout`, …), not an `Err`.
    pub async fn http(&self, request: HttpRequest) -> Result<HttpResponse, KitError> {
        let plugin = self.plugin.clone();
        let name = plugin.manifest.name.clone();
        let (path, query) = match request.path.split_once('?') {
            Some((path, query)) => (path.to_string(), format!("?{query}")),
            None => (request.path.clone(), String::new()),
        };
        if !path.starts_with('/') {
            return Err(KitError::Input(format!(
                "the path `{path}` must start with / (/plugins/{name}/… or a claimed /api/ route)"
            )));
        }
        let mut user = request.user.clone();
        let mut mount = None;
        let mut app_content = false;
        let uri = if let Some(rest) = path.strip_prefix("/plugins/") {
            let (asked, inner) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if asked != name || !plugin.exports.http {
                return answer_error(ApiError::not_found(format!(
                    "no plugin named `{asked}` serves HTTP"
                )))
                .await;
            }
            mount = Some(format!("/plugins/{name}"));
            format!("{inner}{query}")
        } else {
            let snapshot = self.registry.snapshot();
            let Some((_, claim)) = snapshot.route(&path) else {
                return answer_error(ApiError::not_found(format!(
                    "no route for {path} (this plugin serves /plugins/{name}/… and the routes its manifest claims)"
                )))
                .await;
            };
            if !claim.methods.iter().any(|m| m == request.method.as_str()) {
                let allow = claim.methods.join(", ");
                let mut response = answer_error(ApiError::new(
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{path} accepts {allow}"),
                ))
                .await?;
                response.headers.push(("allow".into(), allow));
                return Ok(response);
            }
            match claim.auth {
                // The server does not ask who calls an open route.
                RouteAuth::None => user = None,
                RouteAuth::User if user.is_none() => {
                    return answer_error(ApiError::new(
                        http::StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "sign in first",
                    ))
                    .await;
                }
                RouteAuth::User => {}
            }
            app_content = claim.app_content;
            format!("{path}{query}")
        };
        if let Some(user) = &user {
            self.ensure_user(user).await?;
        }

        let limit = plugin.manifest.limits.request_body_kb as usize * 1024;
        if request.body.len() > limit {
            return answer_error(crate::api::plugin_routes::too_large(limit)).await;
        }
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(&uri);
        for (key, value) in &request.headers {
            builder = builder.header(key.as_str(), value.as_str());
        }
        let body = http_body_util::Full::new(Bytes::from(request.body.clone())).map_err(
            |never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} },
        );
        let mut built = builder
            .body(body)
            .map_err(|e| KitError::Input(format!("the request is not valid HTTP: {e}")))?;
        crate::api::plugin_routes::strip_credentials(
            built.headers_mut(),
            &crate::settings::Settings::default(),
            false,
        );
        if let Some(mount) = mount
            && let Ok(value) = http::HeaderValue::from_str(&mount)
        {
            built.headers_mut().insert("x-forwarded-prefix", value);
        }
        if !built.headers().contains_key(http::header::HOST) {
            built.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
        }
        let version = plugin.version_label();
        let served = self
            .registry
            .runtime()
            .serve_http(plugin.clone(), user, built)
            .await;
        let mut response = match served {
            Ok(response) => response,
            Err(e) => return answer_error(crate::api::invoke_error(&name, &version, e)).await,
        };
        crate::api::plugin_routes::guard_response(response.headers_mut(), &plugin, app_content);
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| {
            KitError::Failed(Answer {
                status: 500,
                code: "plugin_failed".into(),
                message: format!("plugin {name} {version} broke off its response body: {e}"),
            })
        })?;
        Ok(HttpResponse::from_parts(&parts, body.to_bytes()))
    }

    /// Evaluates habits with the plugin's rules export, all in one call as the
    /// stats API does, and checks each answer as it does. The stats come back
    /// in the API's shape (`GET /api/habits/{id}/stats`), in the fixtures'
    /// order; a refusal is the API's answer (502 `rules_plugin_failed` or
    /// `rules_plugin_invalid`).
    pub async fn evaluate(&self, fixtures: &[RulesFixture]) -> Result<Vec<HabitStats>, KitError> {
        let plugin = self.plugin.clone();
        if !plugin.exports.judges_habits() {
            return Err(KitError::Input(format!(
                "{} {} exports no rules (ham:plugin/scheduled-rules or ham:plugin/rules)",
                plugin.manifest.name, plugin.manifest.version
            )));
        }
        let prepared = fixtures
            .iter()
            .enumerate()
            .map(|(i, f)| {
                f.input()
                    .map_err(|why| KitError::Input(format!("fixture {i}: {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inputs: Vec<wit::EvaluationInput> =
            prepared.iter().map(|(input, _, _)| input.clone()).collect();
        let (name, version) = (plugin.manifest.name.clone(), plugin.version_label());
        let answers = self
            .registry
            .runtime()
            .evaluate_rules(plugin, &inputs)
            .await
            .map_err(|source| {
                stats_error(StatsError::Invoke {
                    plugin: name.clone(),
                    version: version.clone(),
                    source,
                })
            })?;
        if answers.len() != inputs.len() {
            return Err(stats_error(StatsError::BadAnswer {
                plugin: name,
                version,
                why: format!("{} results for {} habits", answers.len(), inputs.len()),
            }));
        }
        let mut stats = Vec::with_capacity(answers.len());
        for (answer, (input, range, today)) in answers.into_iter().zip(prepared) {
            let checked = crate::rules::check_answer(
                vec![answer],
                std::slice::from_ref(&input),
                &range,
                today,
            )
            .map_err(|why| {
                stats_error(StatsError::BadAnswer {
                    plugin: name.clone(),
                    version: version.clone(),
                    why,
                })
            })?;
            stats.extend(checked);
        }
        Ok(stats)
    }

    /// Runs one job (attempt 1) acting for `job.user`, and says what the queue
    /// would make of its outcome.
    pub async fn job(&self, job: JobRequest) -> Result<JobOutcome, KitError> {
        let plugin = self.plugin.clone();
        if !plugin.exports.job_handler {
            return Err(KitError::Input(format!(
                "{} {} exports no ham:plugin/job-handler",
                plugin.manifest.name, plugin.manifest.version
            )));
        }
        if let Some(user) = &job.user {
            self.ensure_user(user).await?;
        }
        let call = Job {
            id: format!("test-{}", crate::store::now_ms()),
            kind: job.kind,
            payload: job.payload,
            attempt: 1,
            user_id: job.user.clone(),
        };
        let name = plugin.manifest.name.clone();
        let outcome = self
            .registry
            .runtime()
            .run_job(plugin, job.user, &call)
            .await;
        Ok(match outcome {
            Ok(Ok(())) => JobOutcome::Done,
            Ok(Err(JobError::Retry(reason))) => JobOutcome::Retry {
                reason,
                after_ms: None,
            },
            Ok(Err(JobError::RetryAfter(later))) => JobOutcome::Retry {
                reason: later.reason,
                after_ms: Some(later.after_ms),
            },
            Ok(Err(JobError::Fail(reason))) => JobOutcome::Fail { reason },
            Err(e) => JobOutcome::Crashed {
                kind: e.kind(),
                reason: format!("plugin {name} {e}"),
            },
        })
    }
}

/// An install refused as the upload would be: the upload handler's answer.
fn refusal(e: InstallError) -> KitError {
    KitError::Refused(ApiError::from(e).into())
}

fn stats_error(e: StatsError) -> KitError {
    KitError::Failed(ApiError::from(e).into())
}

/// The server's error answer, as a response.
async fn answer_error(e: ApiError) -> Result<HttpResponse, KitError> {
    use axum::response::IntoResponse as _;
    let (parts, body) = e.into_response().into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| KitError::Setup(format!("an error answer: {e}")))?;
    Ok(HttpResponse::from_parts(&parts, body.to_bytes()))
}

/// A fresh in-memory SQLite database, shared by the connections of this
/// process that name it.
fn memory_database_url() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "sqlite:file:ham-plugin-test-{}-{}?mode=memory&cache=shared",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A request for [`Harness::http`]: the path as a client asks it
/// (`/plugins/{name}/…`, or a route the manifest claims), and the user it acts
/// for, in place of a session.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The signed-in user (their id and name); none for an anonymous request.
    pub user: Option<String>,
}

impl HttpRequest {
    pub fn new(method: http::Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            user: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(http::Method::GET, path)
    }

    /// `METHOD /path`, as `ham plugin test --request` takes it.
    pub fn parse(line: &str) -> Result<Self, KitError> {
        let mut words = line.split_whitespace();
        let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
            return Err(KitError::Input(format!(
                "the request `{line}` is not `METHOD /path` (e.g. `GET /plugins/NAME/`)"
            )));
        };
        let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| KitError::Input(format!("`{method}` is not an HTTP method")))?;
        Ok(Self::new(method, path))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Acts for this user, as if they were signed in.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// What a client would get.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// In the order sent, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn from_parts(parts: &http::response::Parts, body: Bytes) -> Self {
        Self {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        }
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A job for [`Harness::job`].
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub kind: String,
    pub payload: Vec<u8>,
    /// The user it acts for; none for a job for no user (a scheduled one).
    pub user: Option<String>,
}

impl JobRequest {
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            payload: Vec::new(),
            user: None,
        }
    }

    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = payload.into();
        self
    }

    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// How a job ended, and what the queue does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done; the job is removed.
    Done,
    /// `retry` (with backoff) or `retry-after` (no sooner than `after_ms`).
    Retry {
        reason: String,
        after_ms: Option<u64>,
    },
    /// `fail`: kept as dead with the reason.
    Fail { reason: String },
    /// The invocation failed (a trap, a timeout, memory or fuel): retried with
    /// backoff. `kind` is the `kind` label of `ham_plugin_errors_total`.
    Crashed { kind: &'static str, reason: String },
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobOutcome::Done => write!(f, "done"),
            JobOutcome::Retry {
                reason,
                after_ms: None,
            } => write!(f, "retry (with backoff): {reason}"),
            JobOutcome::Retry {
                reason,
                after_ms: Some(ms),
            } => write!(f, "retry after {ms} ms: {reason}"),
            JobOutcome::Fail { reason } => write!(f, "fail (kept as dead): {reason}"),
            JobOutcome::Crashed { kind, reason } => {
                write!(f, "{kind} (retried with backoff): {reason}")
            }
        }
    }
}

/// One habit to judge, as JSON: the habit as the API shows it, its entries, and
/// the days. The schedule the plugin gets follows from `habit.frequency`, as on
/// the server.
///
/// ```json
/// {
///   "habit": {"id": "walk", "kind": "boolean", "frequency": {"weekdays": [1, 3, 5]}, "created": "2026-03-01"},
///   "entries": [{"date": "2026-03-02", "value": "done"}, {"date": "2026-03-04", "value": "skipped"}],
///   "today": "2026-03-07", "from": "2026-03-01", "to": "2026-03-07"
/// }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFixture {
    pub habit: FixtureHabit,
    /// Oldest first or not, one a day; none after the later of `to` and `today`.
    #[serde(default)]
    pub entries: Vec<FixtureEntry>,
    /// `YYYY-MM-DD`.
    pub today: String,
    /// The first day to score; default `today`.
    pub from: Option<String>,
    /// The last day to score; default `today`.
    pub to: Option<String>,
}

/// A habit, in the API's words; only `created` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureHabit {
    #[serde(default = "default_habit_id")]
    pub id: String,
    #[serde(default = "default_habit_name")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub color: String,
    #[serde(default = "default_kind")]
    pub kind: crate::habits::HabitKind,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub target: Option<crate::habits::Target>,
    /// `{"times", "days"}` (default daily) or `{"weekdays": [1, 3, 5]}`.
    #[serde(default = "default_frequency")]
    pub frequency: crate::habits::Frequency,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub position: u32,
    /// `YYYY-MM-DD`.
    pub created: String,
}

fn default_habit_id() -> String {
    "habit".into()
}

fn default_habit_name() -> String {
    "Habit".into()
}

fn default_kind() -> crate::habits::HabitKind {
    crate::habits::HabitKind::Boolean
}

fn default_frequency() -> crate::habits::Frequency {
    crate::habits::Frequency::DAILY
}

/// One day's entry: `"done"` (a boolean habit), a number (a measurable
/// habit's value) or `"skipped"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureEntry {
    pub date: String,
    pub value: FixtureValue,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum FixtureValue {
    Mark(FixtureMark),
    Value(f64),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FixtureMark {
    Done,
    Skipped,
}

impl RulesFixture {
    /// Reads a fixture file: one fixture (an object) or several (an array).
    pub fn read(path: &Path) -> Result<Vec<Self>, KitError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KitError::Input(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|why| KitError::Input(format!("{}: {why}", path.display())))
    }

    /// One fixture (an object) or several (an array), as JSON text.
    pub fn parse(text: &str) -> Result<Vec<Self>, String> {
        let parsed = match text.trim_start().starts_with('[') {
            true => serde_json::from_str(text),
            false => serde_json::from_str(text).map(|one| vec![one]),
        };
        parsed.map_err(|e| e.to_string())
    }

    /// The plugin's input, as the stats API builds it, with the range and today
    /// its answer is checked against.
    fn input(&self) -> Result<(wit::EvaluationInput, Range, jiff::civil::Date), String> {
        let date = |name: &str, text: &str| -> Result<jiff::civil::Date, String> {
            if !crate::habits::is_date(text) {
                return Err(format!("{name}: `{text}` is not a date YYYY-MM-DD"));
            }
            text.parse()
                .map_err(|_| format!("{name}: `{text}` is not a date YYYY-MM-DD"))
        };
        let today = date("today", &self.today)?;
        let range = Range::parse(
            self.from.as_deref().unwrap_or(&self.today),
            self.to.as_deref().unwrap_or(&self.today),
        )?;
        date("habit.created", &self.habit.created)?;
        match &self.habit.frequency {
            crate::habits::Frequency::Every { times, days } => {
                if !(1..=366).contains(times) || !(1..=366).contains(days) {
                    return Err("habit.frequency: times and days are 1 to 366".into());
                }
            }
            crate::habits::Frequency::Weekdays { weekdays } => {
                if weekdays.is_empty() || weekdays.iter().any(|d| !(1..=7).contains(d)) {
                    return Err(
                        "habit.frequency: weekdays are 1 (Monday) to 7 (Sunday), at least one"
                            .into(),
                    );
                }
            }
        }
        let measurable = self.habit.kind == crate::habits::HabitKind::Measurable;
        match (&self.habit.target, measurable) {
            (Some(_), false) => return Err("habit.target: a boolean habit has no target".into()),
            (None, true) => {
                return Err(
                    "habit.target: a measurable habit needs a target {\"value\", \"type\"}".into(),
                );
            }
            _ => {}
        }
        let last = range.to.max(today);
        let mut entries = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let day = date(&format!("entries[{i}].date"), &entry.date)?;
            if day > last {
                return Err(format!(
                    "entries[{i}].date: {day} is after {last}, the later of `to` and `today` (the host sends no entry after it)"
                ));
            }
            // What the API takes for the habit's kind.
            let value = match (entry.value, measurable) {
                (FixtureValue::Mark(FixtureMark::Skipped), _) => wit::EntryValue::Skipped,
                (FixtureValue::Mark(FixtureMark::Done), false) => wit::EntryValue::Done,
                (FixtureValue::Value(v), true) if v.is_finite() && v >= 0.0 => {
                    wit::EntryValue::Value(v)
                }
                (FixtureValue::Value(v), true) => {
                    return Err(format!(
                        "entries[{i}].value: {v} must be a number of at least 0"
                    ));
                }
                (FixtureValue::Value(_), false) => {
                    return Err(format!(
                        "entries[{i}].value: a boolean habit takes \"done\" or \"skipped\""
                    ));
                }
                (FixtureValue::Mark(FixtureMark::Done), true) => {
                    return Err(format!(
                        "entries[{i}].value: a measurable habit takes a number (or \"skipped\")"
                    ));
                }
            };
            entries.push(wit::DayEntry {
                day: crate::rules::day_of(day),
                value,
            });
        }
        entries.sort_by_key(|e| e.day);
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].day == pair[1].day) {
            return Err(format!(
                "entries: two entries on {} (a habit has at most one a day)",
                civil_day::format(i64::from(pair[0].day))
            ));
        }
        let h = &self.habit;
        let habit = crate::habits::Habit {
            id: h.id.clone(),
            name: h.name.clone(),
            description: h.description.clone(),
            color: h.color.clone(),
            kind: h.kind,
            unit: h.unit.clone(),
            target: h.target,
            frequency: h.frequency.clone(),
            reminders: Vec::new(),
            archived: h.archived,
            position: i64::from(h.position),
            group: None,
            created: h.created.clone(),
        };
        let input = wit::EvaluationInput {
            schedule: match habit.frequency.weekdays() {
                Some(days) => wit::Schedule::Weekdays(days.to_vec()),
                None => wit::Schedule::Every,
            },
            habit: crate::capabilities::habits::habit(habit),
            entries,
            today: crate::rules::day_of(today),
            from: crate::rules::day_of(range.from),
            to: crate::rules::day_of(range.to),
        };
        Ok((input, range, today))
    }
}
