//! Admin routes: plugins (list, upload, versions, rollback), jobs, and users.
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
use crate::plugins::{Installed, Source};
use crate::runtime::LoadedPlugin;
use crate::store::jobs::{JobRow, JobState};
use axum::extract::FromRequestParts;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let (schemas, paths, upload) = routes!(upload);
    let upload = upload.layer(DefaultBodyLimit::max(state.settings.max_upload_bytes));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes((schemas, paths, upload))
        .routes(routes!(versions))
        .routes(routes!(rollback))
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

/// The active plugins.
#[utoipa::path(get, path = "/plugins", tag = "admin",
    responses((status = 200, body = Vec<PluginView>),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody)))]
async fn list(State(state): State<AppState>) -> Json<Vec<PluginView>> {
    let snapshot = state.registry.snapshot();
    Json(
        snapshot
            .plugins
            .values()
            .map(|p| PluginView::of(p))
            .collect(),
    )
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
}

/// Uploads a version (multipart: `manifest`, `component`, and optionally `openapi`)
/// and makes it active.
#[utoipa::path(put, path = "/plugins/{name}", tag = "admin",
    params(("name" = String, Path, description = "the plugin's name, as its manifest says")),
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "fields `manifest` (plugin.toml text), `component` (the .wasm) and, optionally, `openapi` (its routes' OpenAPI operations, JSON: docs/plugins.md)"),
    responses((status = 201, body = InstalledVersion, description = "a new version, now active"),
        (status = 200, body = InstalledVersion, description = "an identical upload: the stored version, active"),
        (status = 400, description = "`bad_request`: not multipart/form-data, a malformed multipart body, a missing or unknown field; `name_mismatch`: the manifest names another plugin", body = ErrorBody),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 409, description = "`route_taken`: another plugin serves a route it claims", body = ErrorBody),
        (status = 413, description = "`too_large`: over HAM_MAX_UPLOAD_BYTES", body = ErrorBody),
        (status = 422, description = "`invalid_manifest`, `invalid_openapi` (naming the path or `$ref` at fault), `invalid_component` or `contract_mismatch`; the active version keeps serving", body = ErrorBody)))]
async fn upload(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let expected =
        "send multipart/form-data with fields `manifest`, `component` and optionally `openapi`";
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{expected}: {}", e.body_text()),
        )
    })?;
    let (mut manifest, mut component, mut openapi) = (None, None, None);
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
    // The document is checked here to answer `invalid_openapi`; the registry
    // checks it again (and a broken manifest is its to report).
    if let (Some(text), Ok(parsed)) = (&openapi, Manifest::parse(&manifest)) {
        ApiDocument::parse(text, &parsed).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_openapi",
                format!("the `openapi` document: {e}"),
            )
        })?;
    }
    let package = Package {
        manifest: &manifest,
        component: &component,
        openapi: openapi.as_deref(),
    };
    let installed = state
        .registry
        .install_package(&package, Source::Upload, Some(&name))
        .await?;
    let status = if installed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(InstalledVersion::of(&installed))).into_response())
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

/// The version an upload or rollback made active.
#[derive(Serialize, ToSchema)]
pub struct InstalledVersion {
    /// The stored version's id.
    id: i64,
    #[serde(flatten)]
    plugin: PluginView,
}

impl InstalledVersion {
    fn of(installed: &Installed) -> Self {
        Self {
            id: installed.row.id,
            plugin: PluginView::of(&installed.plugin),
        }
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
        (status = 409, description = "`no_previous_version`, or `route_taken`: another plugin now serves a route the earlier version claims", body = ErrorBody),
        (status = 422, description = "`invalid_component` or `contract_mismatch`: the earlier version no longer loads", body = ErrorBody)))]
async fn rollback(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<InstalledVersion>, ApiError> {
    let installed = state.registry.rollback(&name).await?;
    Ok(Json(InstalledVersion::of(&installed)))
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
