//! Admin routes: plugins (list, upload, versions, rollback, rollouts, approval),
//! jobs, and users.
//!
//! All need a signed-in admin or `Authorization: Bearer $HAM_ADMIN_TOKEN`. A
//! signed-in user who is not an admin gets 403 `not_admin`, a personal API
//! token (`ham_…`) 403 `token_not_allowed`; nobody signed in, 401
//! (or, without the variable set, 403 `admin_disabled`, saying how to turn them
//! on: there is no default token). The user routes (`/api/admin/users`) are in
//! `api::accounts`.

use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{ApiPath, ApiQuery};
use super::{ApiError, ErrorBody};
use crate::AppState;
use crate::auth::MaybeUser;
use crate::plugins::Manifest;
use crate::plugins::manifest::RouteClaim;
use crate::plugins::registry::{ApiDocument, Package};
use crate::plugins::rollout::{Figures, Plan, RolloutRow, RolloutState};
use crate::plugins::shadow::{ShadowExample, ShadowFigures};
use crate::plugins::{InstallOptions, Installed, Outcome, Source};
use crate::runtime::LoadedPlugin;
use crate::settings::PluginApproval;
use crate::store::jobs::{JobRow, JobState};
use axum::extract::FromRequestParts;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let (schemas, paths, upload) = routes!(upload);
    let upload = upload.layer(DefaultBodyLimit::max(state.settings.max_upload_bytes));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes((schemas, paths, upload))
        .routes(routes!(status))
        .routes(routes!(versions))
        .routes(routes!(rollback))
        .routes(routes!(promote))
        .routes(routes!(abort))
        .routes(routes!(approve))
        .routes(routes!(jobs))
        .routes(routes!(retry_job))
        .merge(super::accounts::admin_router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
}

/// Lets through the `HAM_ADMIN_TOKEN` bearer or a signed-in admin.
async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The admin token first: in `oidc` mode a bearer that is not a JWT would
    // otherwise be refused as an invalid token.
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let (Some(p), Some(token)) = (bearer, state.settings.admin_token.as_ref())
        && constant_time_eq(p.as_bytes(), token.expose().as_bytes())
    {
        return next.run(request).await;
    }
    // A personal API token never opens an admin route.
    if bearer.is_some_and(|b| b.starts_with(crate::auth::tokens::PREFIX)) {
        return crate::auth::token_not_allowed().into_response();
    }
    let (mut parts, body) = request.into_parts();
    let user = match MaybeUser::from_request_parts(&mut parts, &state).await {
        Ok(MaybeUser(user)) => user,
        Err(e) => return e.into_response(),
    };
    let request = Request::from_parts(parts, body);
    match user {
        Some(user) if user.is_admin => return next.run(request).await,
        Some(_) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "not_admin",
                "only an admin may do this",
            )
            .into_response();
        }
        None => {}
    }
    let Some(token) = state.settings.admin_token.as_ref() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "admin routes need a signed-in admin, or HAM_ADMIN_TOKEN set on the server",
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.expose().as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <HAM_ADMIN_TOKEN>",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A plugin as the admin API shows it.
#[derive(Serialize, ToSchema)]
pub struct PluginView {
    name: String,
    version: String,
    sha256: String,
    active: bool,
    exports: Vec<&'static str>,
    imports: Vec<String>,
    routes: Vec<RouteClaim>,
    uploaded_at: String,
    /// Required variables with no value: `config.get` fails for these.
    missing_variables: Vec<String>,
}

impl PluginView {
    fn of(plugin: &LoadedPlugin) -> Self {
        Self {
            name: plugin.manifest.name.clone(),
            version: plugin.version_label(),
            sha256: plugin.sha256.clone(),
            active: true,
            exports: plugin.exports.names(),
            imports: plugin.imports.clone(),
            routes: plugin.manifest.routes.clone(),
            uploaded_at: timestamp(plugin.uploaded_at),
            missing_variables: plugin.grants.variables.missing.clone(),
        }
    }
}

pub(super) fn timestamp(ms: i64) -> String {
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

/// An active plugin with its latest rollout and the versions awaiting approval.
#[derive(Serialize, ToSchema)]
pub struct PluginStatus {
    #[serde(flatten)]
    plugin: PluginView,
    /// Its latest rollout: under way (`canary` with live figures, `shadow` with
    /// its comparisons) or decided (with the figures it was decided on); null
    /// when it never had one.
    rollout: Option<RolloutView>,
    /// Uploaded versions that ask for more than the active one and wait for an
    /// admin (`plugin_approval = "required"`), newest first.
    pending_approval: Vec<PendingVersion>,
}

/// A version stored awaiting approval.
#[derive(Serialize, ToSchema)]
pub struct PendingVersion {
    id: i64,
    version: String,
    uploaded_at: String,
    /// What it asks for beyond the active version when it was uploaded.
    added_capabilities: Vec<String>,
}

/// A rollout: the candidate serving a share beside the stable version, or (a
/// rule set) running in shadow beside it.
#[derive(Serialize, ToSchema)]
pub struct RolloutView {
    id: i64,
    state: RolloutState,
    stable_version: String,
    candidate_version: String,
    /// A canary plan (`canary_percent`, …) or a shadow run's
    /// (`{"shadow": true, "sample_percent": 10}`).
    plan: Plan,
    /// Requests and errors of the stable version over the window: live while
    /// the rollout runs, then those it was decided on.
    stable: Figures,
    /// The same for the candidate.
    candidate: Figures,
    /// While it runs: the candidate's requests since it began (judged at
    /// `plan.min_requests`).
    candidate_total_requests: Option<i64>,
    started_at: String,
    decided_at: Option<String>,
    /// `host` (by the figures) or `admin` (by hand).
    decided_by: Option<String>,
    /// Why it was decided so, with the figures.
    reason: Option<String>,
    /// A shadow run's comparisons, added up by every replica; null for a canary.
    shadow: Option<ShadowView>,
}

/// How a shadow run's candidate compares: habit answers compared, those that
/// differed, those the candidate failed (traps, timeouts, refused answers: not
/// differences), and the latest differences (at most 10, newest first, while it
/// runs; removed when it is decided).
#[derive(Serialize, ToSchema)]
pub struct ShadowView {
    #[serde(flatten)]
    figures: ShadowFigures,
    examples: Vec<ShadowExample>,
}

impl RolloutView {
    /// A rollout as stored; a running one with `live` figures (stable,
    /// candidate, the candidate's total) if this process serves it.
    /// A shadow run comes with its latest differences, `examples`.
    fn of(
        row: RolloutRow,
        live: Option<(Figures, Figures, i64)>,
        examples: Vec<ShadowExample>,
    ) -> Result<Self, ApiError> {
        let plan = Plan::parse(&row.plan).map_err(ApiError::internal)?;
        let (stable, candidate, total) = match (row.state, live) {
            (RolloutState::Canary, Some((s, c, t))) => (s, c, Some(t)),
            (RolloutState::Canary, None) => (row.stable, row.candidate, Some(0)),
            _ => (row.stable, row.candidate, None),
        };
        let shadow = matches!(plan, Plan::Shadow(_)).then_some(ShadowView {
            figures: row.shadow,
            examples,
        });
        Ok(Self {
            id: row.id,
            state: row.state,
            stable_version: row.stable_version,
            candidate_version: row.candidate_version,
            plan,
            stable,
            candidate,
            candidate_total_requests: total,
            started_at: timestamp(row.started_at),
            decided_at: row.decided_at.map(timestamp),
            decided_by: row.decided_by,
            reason: row.reason,
            shadow,
        })
    }
}

impl PluginStatus {
    async fn of(state: &AppState, plugin: &LoadedPlugin) -> Result<Self, ApiError> {
        let name = &plugin.manifest.name;
        let db = state.registry.db();
        let rollout = match db.latest_rollout(name).await? {
            Some(row) => {
                let live = match row.state {
                    RolloutState::Canary => state.registry.live_figures(name).await?,
                    _ => None,
                };
                let examples = match row.state {
                    RolloutState::Shadow => db.shadow_examples(row.id).await?,
                    _ => Vec::new(),
                };
                Some(RolloutView::of(row, live, examples)?)
            }
            None => None,
        };
        let pending_approval = db
            .pending_versions(name)
            .await?
            .into_iter()
            .map(|r| PendingVersion {
                id: r.id,
                version: r.version,
                uploaded_at: timestamp(r.uploaded_at),
                added_capabilities: added_list(r.added_capabilities.as_deref()),
            })
            .collect();
        Ok(Self {
            plugin: PluginView::of(plugin),
            rollout,
            pending_approval,
        })
    }
}

/// A stored list of added capabilities (JSON), as a list.
fn added_list(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The active plugins, each with its latest rollout and the versions awaiting
/// approval.
#[utoipa::path(get, path = "/plugins", tag = "admin",
    responses((status = 200, body = Vec<PluginStatus>),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody)))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<PluginStatus>>, ApiError> {
    let snapshot = state.registry.snapshot();
    let mut list = Vec::new();
    for plugin in snapshot.plugins.values() {
        list.push(PluginStatus::of(&state, plugin).await?);
    }
    Ok(Json(list))
}

/// One active plugin, with its latest rollout (`state`: `canary`, `shadow`,
/// `promoted`, `rolled_back` or `aborted`; both versions' requests and errors,
/// and a shadow run's comparisons with its latest differences) and the versions
/// awaiting approval.
#[utoipa::path(get, path = "/plugins/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = PluginStatus),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no version of that plugin is active", body = ErrorBody)))]
async fn status(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PluginStatus>, ApiError> {
    let Some(plugin) = state.registry.get(&name) else {
        return Err(ApiError::not_found(format!(
            "no version of plugin {name} is active"
        )));
    };
    Ok(Json(PluginStatus::of(&state, &plugin).await?))
}

/// The multipart fields of an upload.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "describes the multipart body; the handler reads the fields"
)]
pub struct UploadForm {
    /// `plugin.toml`, as text.
    manifest: String,
    /// The component (`.wasm`).
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
    /// The OpenAPI operations of the routes the manifest claims (JSON text); without
    /// it they get a generic description.
    openapi: Option<String>,
    /// A rollout (JSON, [`Plan`]): `{"canary_percent": 20, "min_requests":
    /// 50, "max_error_rate": 0.05, "window_s": 60}`, only `canary_percent`
    /// required; or, for a rule set of `habit-rules`, a shadow run
    /// `{"shadow": true, "sample_percent": 10}`. Without it the version goes live
    /// for everyone at once.
    rollout: Option<String>,
}

/// Uploads a version (multipart: `manifest`, `component`, optionally `openapi` and
/// `rollout`) and makes it active, or the candidate of a rollout, or (asking for
/// more than the active version under `plugin_approval = "required"`) stores it
/// awaiting approval.
#[utoipa::path(put, path = "/plugins/{name}", tag = "admin",
    params(("name" = String, Path, description = "the plugin's name, as its manifest says")),
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "fields `manifest` (plugin.toml text), `component` (the .wasm) and, optionally, `openapi` (its routes' OpenAPI operations, JSON: docs/plugins.md) and `rollout` (JSON: canary_percent, min_requests, max_error_rate, window_s; or shadow, sample_percent for a rule set)"),
    responses((status = 201, body = InstalledVersion, description = "a new version, now active (`activation: active`) or on trial (`activation: canary` or, a rule set, `shadow`, with `rollout`)"),
        (status = 200, body = InstalledVersion, description = "an identical upload: the stored version, active or on trial"),
        (status = 202, body = InstalledVersion, description = "stored, not active: it asks for more than the active version (`added_capabilities`) and waits for an admin's approval (`activation: pending_approval`)"),
        (status = 400, description = "`bad_request`: not multipart/form-data, a malformed multipart body, a missing or unknown field; `name_mismatch`: the manifest names another plugin; `invalid_rollout`: the `rollout` field is not a valid plan (the message names the field)", body = ErrorBody),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 409, description = "`route_taken`: another plugin serves a route it claims; `rollout_running`: a rollout of the plugin is under way (promote or abort it first)", body = ErrorBody),
        (status = 413, description = "`too_large`: over HAM_MAX_UPLOAD_BYTES", body = ErrorBody),
        (status = 422, description = "`invalid_manifest`, `invalid_openapi` (naming the path or `$ref` at fault), `invalid_component` or `contract_mismatch`; `rollout_not_applicable`: a canary rollout of a version that serves neither HTTP nor jobs, or a shadow run of anything but a rule set of `habit-rules`; the active version keeps serving", body = ErrorBody)))]
async fn upload(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let expected = "send multipart/form-data with fields `manifest`, `component` and optionally `openapi` and `rollout`";
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{expected}: {}", e.body_text()),
        )
    })?;
    let (mut manifest, mut component, mut openapi, mut rollout) = (None, None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, &state))?
    {
        let field_name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(e, &state))?;
        let text = |bytes: axum::body::Bytes| {
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the `{field_name}` field is not UTF-8 text"),
                )
            })
        };
        match field_name.as_str() {
            "manifest" => manifest = Some(text(bytes)?),
            "component" => component = Some(bytes),
            "openapi" => openapi = Some(text(bytes)?),
            "rollout" => rollout = Some(text(bytes)?),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("unexpected multipart field `{other}`; {expected}"),
                ));
            }
        }
    }
    let missing = |field: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("missing multipart field `{field}`"),
        )
    };
    let manifest = manifest.ok_or_else(|| missing("manifest"))?;
    let component = component.ok_or_else(|| missing("component"))?;
    let rollout = rollout
        .as_deref()
        .map(Plan::parse)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_rollout", e.to_string()))?;
    if let Some(refused) = openapi_refusal(&manifest, openapi.as_deref()) {
        return Err(refused);
    }
    let package = Package {
        manifest: &manifest,
        component: &component,
        openapi: openapi.as_deref(),
    };
    let options = InstallOptions {
        rollout,
        approval_required: state.settings.plugin_approval == PluginApproval::Required,
    };
    let installed = state
        .registry
        .install_with(&package, Source::Upload, Some(&name), options)
        .await?;
    let status = match (&installed.outcome, installed.created) {
        (Outcome::PendingApproval, _) => StatusCode::ACCEPTED,
        (_, true) => StatusCode::CREATED,
        (_, false) => StatusCode::OK,
    };
    Ok((status, Json(InstalledVersion::of(installed)?)).into_response())
}

/// The upload's `invalid_openapi` answer, when its document does not fit its
/// manifest. Checked before the install to answer that code; the registry checks
/// the document again (and a broken manifest is its to report). `ham plugin
/// check` asks it too, to answer as an upload would.
pub(crate) fn openapi_refusal(manifest: &str, openapi: Option<&str>) -> Option<ApiError> {
    let (text, parsed) = (openapi?, Manifest::parse(manifest).ok()?);
    let e = ApiDocument::parse(text, &parsed).err()?;
    Some(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_openapi",
        format!("the `openapi` document: {e}"),
    ))
}

fn multipart_error(e: axum::extract::multipart::MultipartError, state: &AppState) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the upload exceeds the limit of {} bytes (HAM_MAX_UPLOAD_BYTES)",
                state.settings.max_upload_bytes
            ),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("malformed multipart body: {}", e.body_text()),
    )
}

/// The version an upload, rollback or approval stored or made live.
#[derive(Serialize, ToSchema)]
pub struct InstalledVersion {
    /// The stored version's id.
    id: i64,
    #[serde(flatten)]
    plugin: PluginView,
    /// `active` (serving everyone), `canary` (the candidate of `rollout`),
    /// `shadow` (a rule set compared in the shadow run `rollout`, serving nobody)
    /// or `pending_approval` (stored, not serving).
    activation: &'static str,
    /// What its manifest asks for beyond the version active before it (outbound
    /// hosts, llm, notifications, routes, schedules, higher limits), one line each.
    added_capabilities: Vec<String>,
    /// The rollout it is the candidate of (`activation: canary` or `shadow`).
    rollout: Option<RolloutView>,
}

impl InstalledVersion {
    fn of(installed: Installed) -> Result<Self, ApiError> {
        let mut plugin = PluginView::of(&installed.plugin);
        let (activation, rollout) = match installed.outcome {
            Outcome::Active => ("active", None),
            Outcome::Canary(row) => {
                let activation = match row.state {
                    RolloutState::Shadow => "shadow",
                    _ => "canary",
                };
                (activation, Some(RolloutView::of(*row, None, Vec::new())?))
            }
            Outcome::PendingApproval => ("pending_approval", None),
        };
        plugin.active = activation == "active";
        Ok(Self {
            id: installed.row.id,
            plugin,
            activation,
            added_capabilities: installed.added_capabilities,
            rollout,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    id: i64,
    version: String,
    sha256: String,
    source: String,
    uploaded_at: String,
    active: bool,
    /// `pending` (awaiting an admin), `approved`, or null (it needed no approval).
    approval: Option<&'static str>,
    /// What it asked for beyond the active version when stored awaiting approval.
    added_capabilities: Vec<String>,
}

/// Every stored version of a plugin, the active one marked.
#[utoipa::path(get, path = "/plugins/{name}/versions", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = Vec<VersionView>),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no version of that plugin is stored", body = ErrorBody)))]
async fn versions(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let rows = state.registry.db().versions(&name).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "plugin {name} is not installed"
        )));
    }
    let active_seq = rows.iter().filter_map(|r| r.activated_seq).max();
    Ok(Json(
        rows.into_iter()
            .map(|r| VersionView {
                active: r.activated_seq.is_some() && r.activated_seq == active_seq,
                id: r.id,
                version: r.version,
                sha256: r.sha256,
                source: r.source.as_str().to_string(),
                uploaded_at: timestamp(r.uploaded_at),
                approval: r.approval.map(|a| a.as_str()),
                added_capabilities: added_list(r.added_capabilities.as_deref()),
            })
            .collect(),
    ))
}

/// Reactivates the version that was active before the current one.
#[utoipa::path(post, path = "/plugins/{name}/rollback", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = InstalledVersion, description = "the version active before, active again (its OpenAPI operations too)"),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no version of that plugin is stored", body = ErrorBody),
        (status = 409, description = "`no_previous_version`; `rollout_running`: a rollout is under way (abort it instead); or `route_taken`: another plugin now serves a route the earlier version claims", body = ErrorBody),
        (status = 422, description = "`invalid_component` or `contract_mismatch`: the earlier version no longer loads", body = ErrorBody)))]
async fn rollback(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<InstalledVersion>, ApiError> {
    let installed = state.registry.rollback(&name).await?;
    Ok(Json(InstalledVersion::of(installed)?))
}

/// Promotes the candidate of the rollout under way (canary or shadow): it becomes
/// the active version, for everyone, on every replica.
#[utoipa::path(post, path = "/plugins/{name}/rollout/promote", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = RolloutView, description = "the rollout, `promoted` by `admin`"),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no version of that plugin is stored", body = ErrorBody),
        (status = 409, description = "`no_rollout`: no rollout of it is under way", body = ErrorBody)))]
async fn promote(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RolloutView>, ApiError> {
    let row = state.registry.decide_by_hand(&name, true).await?;
    Ok(Json(RolloutView::of(row, None, Vec::new())?))
}

/// Aborts the rollout under way (canary or shadow): the candidate stops serving
/// (or being compared), the stable version serves everyone, on every replica.
#[utoipa::path(post, path = "/plugins/{name}/rollout/abort", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = RolloutView, description = "the rollout, `aborted` by `admin`"),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no version of that plugin is stored", body = ErrorBody),
        (status = 409, description = "`no_rollout`: no rollout of it is under way", body = ErrorBody)))]
async fn abort(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RolloutView>, ApiError> {
    let row = state.registry.decide_by_hand(&name, false).await?;
    Ok(Json(RolloutView::of(row, None, Vec::new())?))
}

/// Approves a version stored awaiting approval (the newest upload of that version
/// label) and makes it live as its upload asked: active, or the candidate of its
/// rollout.
#[utoipa::path(post, path = "/plugins/{name}/versions/{version}/approve", tag = "admin",
    params(("name" = String, Path), ("version" = String, Path, description = "the version label, e.g. 0.2.0")),
    responses((status = 200, body = InstalledVersion, description = "approved: `activation` says how it went live"),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no such version of that plugin is stored", body = ErrorBody),
        (status = 409, description = "`not_pending`: it does not await approval; `rollout_running`: a rollout of the plugin is under way; `route_taken`: another plugin now serves a route it claims", body = ErrorBody),
        (status = 422, description = "`invalid_component` or `contract_mismatch`: the version no longer loads", body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Json<InstalledVersion>, ApiError> {
    let installed = state.registry.approve(&name, &version).await?;
    Ok(Json(InstalledVersion::of(installed)?))
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    /// `queued`, `running`, `done` or `dead`.
    #[param(value_type = Option<JobState>, inline)]
    state: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobRow>,
}

/// The newest 500 jobs, optionally in one state (`queued`, `running`, `done`, `dead`).
#[utoipa::path(get, path = "/jobs", tag = "admin", params(JobsQuery),
    responses((status = 200, body = JobList),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `state` is not one of queued, running, done, dead", body = ErrorBody)))]
async fn jobs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> Result<Json<JobList>, ApiError> {
    let wanted = q
        .state
        .as_deref()
        .map(|s| {
            s.parse::<JobState>().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    format!("state: `{s}` is not one of queued, running, done, dead"),
                )
            })
        })
        .transpose()?;
    let jobs = state.db.list_jobs(wanted, 500).await?;
    Ok(Json(JobList { jobs }))
}

/// Requeues a dead job with fresh attempts.
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = JobRow),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`not_dead`: only dead jobs are retried", body = ErrorBody)))]
async fn retry_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobRow>, ApiError> {
    let Some(job) = state.db.get_job(&id).await? else {
        return Err(ApiError::not_found(format!("no job {id}")));
    };
    if !state.db.retry_dead_job(&id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!("job {id} is {}; only dead jobs are retried", job.state),
        ));
    }
    let job = state
        .db
        .get_job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(job))
}
