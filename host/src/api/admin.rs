//! Admin routes for plugins: list, upload (install and activate), versions, rollback.
//!
//! All need `Authorization: Bearer $HAM_ADMIN_TOKEN`. Without the variable set the
//! routes are off (403, saying how to turn them on): there is no default token.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;

use super::ApiError;
use crate::AppState;
use crate::auth::MaybeUser;
use crate::plugins::manifest::RouteClaim;
use crate::plugins::{Installed, Source};
use crate::runtime::LoadedPlugin;
use axum::extract::FromRequestParts;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list))
        .route(
            "/plugins/{name}",
            put(upload).layer(DefaultBodyLimit::max(state.settings.max_upload_bytes)),
        )
        .route("/plugins/{name}/versions", get(versions))
        .route("/plugins/{name}/rollback", post(rollback))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}/retry", post(retry_job))
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
    let (mut parts, body) = request.into_parts();
    let session_admin = match MaybeUser::from_request_parts(&mut parts, &state).await {
        Ok(MaybeUser(user)) => user.is_some_and(|u| u.is_admin),
        Err(e) => return e.into_response(),
    };
    let request = Request::from_parts(parts, body);
    if session_admin {
        return next.run(request).await;
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
#[derive(Serialize)]
struct PluginView {
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
            missing_variables: plugin.variables.missing.clone(),
        }
    }
}

fn timestamp(ms: i64) -> String {
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

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

async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected multipart/form-data with fields `manifest` and `component`: {e}"),
        )
    })?;
    let (mut manifest, mut component) = (None, None);
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
        match field_name.as_str() {
            "manifest" => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "the `manifest` field is not UTF-8 text",
                    )
                })?;
                manifest = Some(text);
            }
            "component" => component = Some(bytes),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "unexpected multipart field `{other}`; send `manifest` and `component`"
                    ),
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
    let installed = state
        .registry
        .install(&manifest, &component, Source::Upload, Some(&name))
        .await?;
    let status = if installed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(version_answer(&installed))).into_response())
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

fn version_answer(installed: &Installed) -> serde_json::Value {
    let mut view = serde_json::to_value(PluginView::of(&installed.plugin)).unwrap_or_default();
    if let Some(map) = view.as_object_mut() {
        map.insert("id".into(), installed.row.id.into());
    }
    view
}

#[derive(Serialize)]
struct VersionView {
    id: i64,
    version: String,
    sha256: String,
    source: String,
    uploaded_at: String,
    active: bool,
}

async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let rows = state
        .registry
        .db()
        .versions(&name)
        .await
        .map_err(ApiError::internal)?;
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
                source: r.source,
                uploaded_at: timestamp(r.uploaded_at),
            })
            .collect(),
    ))
}

async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let installed = state.registry.rollback(&name).await?;
    Ok(Json(version_answer(&installed)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    state: Option<String>,
}

/// The newest 500 jobs, optionally in one state (`queued`, `running`, `done`, `dead`).
async fn jobs(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<JobsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(s) = q
        .state
        .as_deref()
        .filter(|s| !["queued", "running", "done", "dead"].contains(s))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("state: `{s}` is not one of queued, running, done, dead"),
        ));
    }
    let jobs = state
        .db
        .list_jobs(q.state.as_deref(), 500)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "jobs": jobs })))
}

/// Requeues a dead job with fresh attempts.
async fn retry_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(job) = state.db.get_job(&id).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("no job {id}")));
    };
    if !state
        .db
        .retry_dead_job(&id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!("job {id} is {}; only dead jobs are retried", job.state),
        ));
    }
    let job = state.db.get_job(&id).await.map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!(job)))
}
