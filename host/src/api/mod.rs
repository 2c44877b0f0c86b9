//! The HTTP API: routes, the one error shape, and the dispatch of plugin routes.
//!
//! Every error a client sees is `{"error": {"code": "...", "message": "..."}}`.
//! Client mistakes say exactly what is wrong; internal failures say little to the
//! client and everything to the log.

mod accounts;
pub(crate) mod admin;
mod auth;
pub mod body_deadline;
pub mod cross_origin;
mod export;
mod habits;
mod observe;
mod openapi;
pub(crate) mod plugin_routes;
mod reminders;
mod tokens;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::plugins::InstallError;
use crate::runtime::{InvokeError, LoadError};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client to try again in `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure that is ours, not the client's: logged in full, reported vaguely.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

/// The body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

impl ErrorBody {
    /// The body of an error answer made by hand (one that carries more fields
    /// beside `error`).
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `not_found`, `invalid_field`, `plugin_trap`, ...
    code: String,
    /// For people: what is wrong, naming the field at fault.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        });
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            InstallError::Manifest(_) => Self::new(status, "invalid_manifest", e.to_string()),
            InstallError::NameMismatch { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "name_mismatch", e.to_string())
            }
            InstallError::Load(LoadError::Internal(_)) => Self::internal(e),
            InstallError::Load(
                LoadError::NotWasm | LoadError::CoreModule | LoadError::Compile(_),
            ) => Self::new(status, "invalid_component", e.to_string()),
            InstallError::Load(LoadError::Outbound(_)) => {
                Self::new(status, "invalid_manifest", e.to_string())
            }
            InstallError::Load(_) => Self::new(status, "contract_mismatch", e.to_string()),
            InstallError::RouteTaken { .. } => {
                Self::new(StatusCode::CONFLICT, "route_taken", e.to_string())
            }
            InstallError::NotFound(_) => Self::not_found(e.to_string()),
            InstallError::NoPrevious(_) => {
                Self::new(StatusCode::CONFLICT, "no_previous_version", e.to_string())
            }
            InstallError::EnvCollision(_) => {
                Self::new(StatusCode::CONFLICT, "name_collision", e.to_string())
            }
            InstallError::RolloutRunning { .. } => {
                Self::new(StatusCode::CONFLICT, "rollout_running", e.to_string())
            }
            InstallError::NoRollout(_) => {
                Self::new(StatusCode::CONFLICT, "no_rollout", e.to_string())
            }
            InstallError::NotPending { .. } => {
                Self::new(StatusCode::CONFLICT, "not_pending", e.to_string())
            }
            InstallError::RolloutNotApplicable(_) | InstallError::ShadowNotApplicable(_) => {
                Self::new(status, "rollout_not_applicable", e.to_string())
            }
            InstallError::Plan(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_rollout", e.to_string())
            }
            InstallError::Db(_) => Self::internal(e),
        }
    }
}

/// A store failure. A unique violation is the client's `409 conflict` (no handler
/// reaches one today: registration answers `username_taken` from
/// [`crate::store::users::CreateUserError::Taken`], and every other write
/// upserts or uses fresh ids); anything else, a row that does not read included,
/// is ours: logged in full, answered `500 internal` with nothing of the database
/// in it. A missing row is not an error here: the store answers `None` and the
/// handler says what was not found.
impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        if e.is_unique_violation() {
            tracing::warn!(error = %e, "a write conflicted with a unique constraint");
            return Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "the change conflicts with data already stored",
            );
        }
        Self::internal(e)
    }
}

/// A failed plugin invocation, naming the plugin and its version.
pub fn invoke_error(plugin: &str, version: &str, e: InvokeError) -> ApiError {
    let (status, code) = match &e {
        InvokeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "plugin_timeout"),
        InvokeError::MemoryLimit(_) => (StatusCode::INTERNAL_SERVER_ERROR, "plugin_memory_limit"),
        InvokeError::OutOfFuel(_) => (StatusCode::INTERNAL_SERVER_ERROR, "plugin_out_of_fuel"),
        InvokeError::Trap(_) => (StatusCode::INTERNAL_SERVER_ERROR, "plugin_trap"),
        InvokeError::NoResponse | InvokeError::GuestError(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "plugin_failed")
        }
        InvokeError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "plugin_busy"),
        InvokeError::NoHttpExport | InvokeError::NoJobHandler | InvokeError::NoRules => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        InvokeError::Internal(_) => {
            return ApiError::internal(format!("plugin {plugin} {version}: {e}"));
        }
    };
    // Trap details (backtraces) stay in the log; the client learns the kind.
    let message = match &e {
        InvokeError::Trap(_) => format!("plugin {plugin} {version} trapped"),
        _ => format!("plugin {plugin} {version} {e}"),
    };
    let error = ApiError::new(status, code, message);
    match e {
        InvokeError::Busy => error.retry_after(1),
        _ => error,
    }
}

/// The answer to a client whose body did not arrive in time.
pub fn body_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "the request body did not arrive in time",
    )
}

/// Largest JSON body the `/api` routes read.
pub const API_BODY_LIMIT: usize = 256 * 1024;

/// `Json<T>` whose rejections are [`ApiError`]s: a body that is not JSON is 400, a
/// field of the wrong shape 422 (the message names it), a missing
/// `Content-Type: application/json` 415, an oversized body 413.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    e.body_text(),
                ),
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text())
                }
                JsonRejection::MissingJsonContentType(e) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    e.body_text(),
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the body exceeds {API_BODY_LIMIT} bytes"),
                    )
                }
                other if body_deadline::is_body_timeout(&other) => body_timeout(),
                other => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
            }),
        }
    }
}

/// The whole HTTP surface of the host. The `/api` routes are registered with
/// their OpenAPI description (utoipa-axum), which `GET /api/openapi.json` serves.
pub fn router(state: AppState) -> Router {
    let (api, document) = OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/admin", admin::router(&state))
        .nest(
            "/api",
            auth::router()
                .merge(accounts::me_router())
                .merge(tokens::router())
                .merge(habits::router())
                .merge(export::router())
                .merge(reminders::router())
                .layer(axum::extract::DefaultBodyLimit::max(API_BODY_LIMIT)),
        )
        .split_for_parts();
    let document = std::sync::Arc::new(document);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/llm/status", get(crate::llm::status))
        .route(
            "/api/openapi.json",
            get(move |state| openapi::serve(state, document.clone())),
        )
        .merge(api)
        .fallback(plugin_routes::dispatch)
        .layer(axum::middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// What every request passes through, in one middleware (each layer of its own
/// would cost every request a boxed future and a clone of the stack below it):
/// the request's span and metrics ([`observe`]), the body deadline
/// ([`body_deadline`]), and the refusal of cross-site changes ([`cross_origin`]).
async fn front(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    guarded(&state, request, |request| next.run(request)).await
}

/// A request under `/plugins/`, served without the router: no route of it can
/// match there, so the router would only find its fallback, at the price of a
/// boxed future per layer, two extensions and a matcher walk on the plugins' hot
/// path. It passes through the same [`front`]. What the router adds to every
/// answer, hyper does here: `Content-Length` for a body of known size, no body
/// for HEAD.
pub(crate) async fn serve_plugin_path(state: AppState, request: Request) -> Response {
    // Boxed: the routing and invocation future is about 6 KiB, and hyper moves
    // the connection's request future around; a pointer moves cheaper.
    guarded(&state, request, |request| {
        Box::pin(plugin_routes::dispatch(
            axum::extract::State(state.clone()),
            request,
        ))
    })
    .await
}

/// [`front`]'s work around `handler`.
async fn guarded<F, Fut>(state: &AppState, request: Request, handler: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    use tracing::Instrument as _;
    let track = observe::Track::start(state, &request);
    let response = async {
        let (request, read_to_end) = body_deadline::arm(state, request);
        let response = match cross_origin::refusal(&request) {
            Some(refused) => refused,
            None => handler(request).await,
        };
        body_deadline::close_unless_read(response, read_to_end)
    }
    .instrument(track.span.clone())
    .await;
    track.finish(state, &response);
    response
}

async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    if state.db.ping().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database does not answer",
        )
        .into_response()
    }
}

/// The metrics listener's surface (`metrics_addr`): `GET /metrics` and nothing
/// else, so the main listener, which the public route reaches, never serves
/// them. Any other path is the API's JSON 404.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::not_found("this listener serves GET /metrics only").into_response()
        })
        .with_state(state)
}

/// The host's metrics in Prometheus' text format; the gauges (active versions,
/// jobs by state, memory) are read now.
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    use crate::telemetry::Gauge;
    let mut gauges: Vec<Gauge> = state
        .registry
        .snapshot()
        .plugins
        .values()
        .map(|p| {
            Gauge::new(
                "ham_plugin_active",
                &[
                    ("plugin", &p.manifest.name),
                    ("version", &p.version_label()),
                ],
                1.0,
            )
        })
        .collect();
    match crate::jobs::count_by_state(&state.db).await {
        Ok(counts) => gauges.extend(counts.into_iter().map(|(job_state, n)| {
            // Counts fit an f64 exactly far beyond any real queue.
            #[allow(clippy::cast_precision_loss, reason = "a job count")]
            let n = n as f64;
            Gauge::new("ham_jobs", &[("state", job_state.as_str())], n)
        })),
        Err(e) => tracing::warn!(error = %e, "could not count jobs for /metrics"),
    }
    #[allow(clippy::cast_precision_loss, reason = "at most MAX_IDLE_INSTANCES")]
    let idle = state.runtime.idle.idle() as f64;
    gauges.push(Gauge::new("ham_plugin_idle_instances", &[], idle));
    if let Some(bytes) = crate::telemetry::resident_memory_bytes() {
        #[allow(clippy::cast_precision_loss, reason = "memory in bytes")]
        let bytes = bytes as f64;
        gauges.push(Gauge::new("ham_process_resident_memory_bytes", &[], bytes));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.runtime.metrics.render(&gauges),
    )
        .into_response()
}
