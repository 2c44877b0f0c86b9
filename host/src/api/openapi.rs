//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every `/api` route, and the
//! extractors that hold query and path parameters to what it says.
//!
//! Host routes are registered through utoipa-axum's `OpenApiRouter`: the
//! `#[utoipa::path]` attribute on a handler is both its route and its description,
//! so the two cannot drift. The attribute lists what the handler itself answers
//! (its 404s and 409s, the 422 of a value it refuses). What every route of a kind
//! answers, whichever handler it is, is added here from the same rules the router
//! applies ([`complete_host_operation`]): 403 `cross_origin` and 408
//! `body_timeout` on every state-changing method (the layers in `api::router`),
//! 401 (and 429 for guessed personal API tokens) wherever a session is needed,
//! 400/413/415/422 wherever a JSON body is read,
//! 400 wherever parameters are parsed ([`ApiQuery`], [`ApiPath`]), 500 anywhere.
//!
//! Routes that active plugins claim change with every swap, so they are added when
//! the document is requested: the operations the active version documents (its
//! [`ApiDocument`], checked against its manifest at upload), completed with what
//! the host decides for them (security from the claim's `auth`, the answers the
//! host gives itself: 401, 403, 408, 413, 500, 503, 504); a claimed route and method
//! the version does not document gets a generic description.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};

use super::ApiError;
use crate::AppState;
use crate::plugins::manifest::{RouteAuth, RouteClaim};
use crate::plugins::registry::{ApiDocument, claim_covering};
use crate::runtime::LoadedPlugin;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "HAM",
        description = "A self-hosted habit tracker and fitness coach on a WebAssembly plugin host. Every error answers `{\"error\": {\"code\", \"message\"}}`."
    ),
    tags(
        (name = "auth", description = "Identity: local accounts, the signed-in user"),
        (name = "habits", description = "Habits, entries (check-ins) and their stats"),
        (name = "activities", description = "Workouts, such as those synced from Strava"),
        (name = "export", description = "Everything a user owns, out and back in"),
        (name = "reminders", description = "Where reminders are delivered, and the done link a reminder carries"),
        (name = "admin", description = "Plugins and jobs; an admin session or the HAM_ADMIN_TOKEN bearer"),
        (name = "plugins", description = "Routes served by the active plugins, as their OpenAPI documents (or else their manifests) describe them"),
    )
)]
struct Base;

/// The document's fixed part: info, tags, and the two ways to authenticate.
pub fn base() -> OpenApi {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "ham_session",
            "The session cookie set by POST /api/auth/login (HAM_AUTH=local)",
        ))),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A personal API token (`ham_…`, POST /api/me/tokens; not for the admin routes), an OIDC access token (HAM_AUTH=oidc), or HAM_ADMIN_TOKEN for the admin routes",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("session", Vec::<String>::new()),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
    ]);
    doc
}

/// The host's document, completed, plus the routes the active plugins claim now.
pub async fn serve(State(state): State<AppState>, host: Arc<OpenApi>) -> Response {
    let mut doc = match serde_json::to_value(&*host) {
        Ok(Value::Object(doc)) => doc,
        Ok(_) => {
            return ApiError::internal("the OpenAPI document is not an object").into_response();
        }
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let mut paths = take_object(&mut doc, "paths");
    let mut components = take_object(&mut doc, "components");
    for (_, item) in paths.iter_mut() {
        for (method, operation) in operations(item) {
            complete_host_operation(&method, operation, &components);
        }
    }
    let snapshot = state.registry.snapshot();
    for plugin in snapshot.plugins.values() {
        let document = snapshot.document(&plugin.manifest.name);
        add_plugin(&mut paths, &mut components, plugin, document);
    }
    doc.insert("paths".into(), Value::Object(paths));
    doc.insert("components".into(), Value::Object(components));
    Json(Value::Object(doc)).into_response()
}

fn take_object(doc: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match doc.remove(key) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The operations of a path item, with their lower-case method.
fn operations(item: &mut Value) -> Vec<(String, &mut Map<String, Value>)> {
    let Value::Object(item) = item else {
        return Vec::new();
    };
    item.iter_mut()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
            )
        })
        .filter_map(|(key, operation)| Some((key.clone(), operation.as_object_mut()?)))
        .collect()
}

fn changes_state(method: &str) -> bool {
    !matches!(method, "get" | "head" | "options")
}

/// Adds what every host route of a kind answers, whatever its handler: the
/// rules of `api::router`'s layers and of the extractors the handlers share.
fn complete_host_operation(
    method: &str,
    operation: &mut Map<String, Value>,
    components: &Map<String, Value>,
) {
    let has_parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    // A JSON body is read by `ApiJson` (or the import's own reader), whose
    // refusals these are; other bodies (multipart) list their own.
    let has_json_body = operation
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .is_some_and(|c| c.get("application/json").is_some());
    // No `security` of its own: the document's, a session or a bearer, is needed.
    let signed_in = !operation.contains_key("security");
    let mut answers = Answers::of(operation, components);
    if has_parameters {
        answers.add(
            400,
            "invalid_parameter",
            "a query or path parameter that does not parse, or an unknown query parameter; the message names it",
        );
    }
    if has_json_body {
        answers.add(400, "invalid_json", "the body is not JSON");
        answers.add(413, "too_large", "the body is over the route's limit");
        answers.add(
            415,
            "unsupported_media_type",
            "the body's Content-Type is not one the route takes",
        );
        answers.add(
            422,
            "invalid_field",
            "a field is missing, of the wrong shape or refused; the message names it",
        );
    }
    if signed_in {
        answers.add(
            401,
            "unauthorized",
            "no session or bearer token, or one that is invalid or expired",
        );
        answers.add(
            400,
            "bad_request",
            "HAM_AUTH=forward-auth: the proxy's identity headers are over their length",
        );
        answers.add(
            429,
            "too_many_attempts",
            "too many unknown personal API tokens from this client address; Retry-After says when to try again",
        );
    }
    if changes_state(method) {
        answers.add(
            403,
            "cross_origin",
            "a browser sent it from another site's page",
        );
        answers.add(
            408,
            "body_timeout",
            "the body did not arrive within HAM_BODY_TIMEOUT",
        );
    }
    answers.add(
        500,
        "internal",
        "a failure of the server's own; its log has the details",
    );
}

/// An operation, to add error answers to its `responses`; `components` are the
/// document's, to inline a response given by `$ref` before adding to it.
struct Answers<'a> {
    operation: &'a mut Map<String, Value>,
    components: &'a Map<String, Value>,
}

impl<'a> Answers<'a> {
    fn of(operation: &'a mut Map<String, Value>, components: &'a Map<String, Value>) -> Self {
        Self {
            operation,
            components,
        }
    }

    /// An error answer `{"error": {"code", …}}` with `status`; when the status is
    /// already described, the description gains this code (unless it names it).
    fn add(&mut self, status: u16, code: &str, why: &str) {
        let responses = self
            .operation
            .entry("responses")
            .or_insert_with(|| Value::Object(Map::new()));
        // Checked to be an object (plugin documents) or made one (utoipa).
        let Value::Object(responses) = responses else {
            return;
        };
        let line = format!("`{code}`: {why}");
        let key = status.to_string();
        if let Some(target) = responses
            .get(&key)
            .and_then(|r| r.get("$ref"))
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            // A reference has no room for more: the response it names, inlined.
            let resolved = target
                .strip_prefix("#/components/responses/")
                .and_then(|name| self.components.get("responses")?.get(name))
                .cloned();
            match resolved {
                Some(resolved) => responses.insert(key.clone(), resolved),
                None => return,
            };
        }
        match responses.get_mut(&key) {
            Some(Value::Object(existing)) => {
                let description = existing
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !description.contains(code) {
                    let description = match description {
                        "" => line,
                        d => format!("{d}; or {line}"),
                    };
                    existing.insert("description".into(), Value::String(description));
                }
                existing.entry("content").or_insert_with(error_content);
            }
            _ => {
                responses.insert(
                    status.to_string(),
                    json!({"description": line, "content": error_content()}),
                );
            }
        }
    }
}

fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}})
}

/// Adds the routes a plugin claims: the operations its active version documents,
/// completed, and a generic description of each claimed route and method it does
/// not document.
fn add_plugin(
    paths: &mut Map<String, Value>,
    components: &mut Map<String, Value>,
    plugin: &LoadedPlugin,
    document: Option<&ApiDocument>,
) {
    let manifest = &plugin.manifest;
    let served_by = format!(
        "Served by plugin {} {}",
        manifest.name,
        plugin.version_label()
    );
    let mut documented: Vec<(&str, String)> = Vec::new();
    if let Some(document) = document {
        for (path, item) in &document.paths {
            let Some(claim) = claim_covering(manifest, path) else {
                continue;
            };
            let mut item = item.clone();
            for (method, operation) in operations(&mut item) {
                complete_plugin_operation(&method, operation, plugin, claim, &document.components);
                let description = match operation.get("description").and_then(Value::as_str) {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{served_by}."),
                    _ => format!("{served_by}."),
                };
                operation.insert("description".into(), Value::String(description));
                if let Some(Value::String(id)) = operation.get_mut("operationId") {
                    *id = format!("{}.{id}", manifest.name);
                }
                documented.push((claim.path.as_str(), method.to_ascii_uppercase()));
            }
            paths.insert(path.clone(), item);
        }
        for (kind, entries) in &document.components {
            let Value::Object(entries) = entries else {
                continue;
            };
            let target = components
                .entry(kind.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(target) = target {
                target.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    for claim in &manifest.routes {
        for method in &claim.methods {
            if documented
                .iter()
                .any(|(path, m)| *path == claim.path && m == method)
            {
                continue;
            }
            let method = method.to_ascii_lowercase();
            let mut operation = Map::new();
            operation.insert("summary".into(), Value::String(served_by.clone()));
            operation.insert(
                "responses".into(),
                json!({"default": {"description": "as the plugin answers"}}),
            );
            complete_plugin_operation(&method, &mut operation, plugin, claim, &Map::new());
            let item = paths
                .entry(claim.path.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(item) = item {
                item.insert(method, Value::Object(operation));
            }
        }
    }
}

/// What the host decides for a plugin's operation: its tag (`plugins`, unless it
/// names its own), its security (the claim's `auth`), and the answers the host
/// gives before or instead of the plugin.
fn complete_plugin_operation(
    method: &str,
    operation: &mut Map<String, Value>,
    plugin: &LoadedPlugin,
    claim: &RouteClaim,
    components: &Map<String, Value>,
) {
    if operation
        .get("tags")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        operation.insert("tags".into(), json!(["plugins"]));
    }
    match claim.auth {
        // An empty requirement: callable without credentials.
        RouteAuth::None => {
            operation.insert("security".into(), json!([{}]));
        }
        // The document's: a session or a bearer.
        RouteAuth::User => {
            operation.remove("security");
        }
    }
    let limits = &plugin.manifest.limits;
    let mut answers = Answers::of(operation, components);
    if claim.auth == RouteAuth::User {
        answers.add(401, "unauthorized", "sign in first");
    }
    if changes_state(method) {
        answers.add(
            403,
            "cross_origin",
            "a browser sent it from another site's page",
        );
        answers.add(
            408,
            "body_timeout",
            "the body did not arrive within HAM_BODY_TIMEOUT",
        );
        answers.add(
            413,
            "too_large",
            &format!(
                "the body is over the plugin's limit of {} KiB",
                limits.request_body_kb
            ),
        );
    }
    answers.add(
        500,
        "plugin_failed",
        "the plugin trapped, failed, or ran out of memory or fuel (also `plugin_trap`, `plugin_memory_limit`, `plugin_out_of_fuel`)",
    );
    answers.add(
        503,
        "plugin_busy",
        &format!(
            "all {} of the plugin's instances are busy; Retry-After says when to try again",
            limits.max_concurrency
        ),
    );
    answers.add(
        504,
        "plugin_timeout",
        &format!("the plugin did not answer within {} ms", limits.timeout_ms),
    );
}

/// `Query<T>` whose rejection is an [`ApiError`]: 400 `invalid_parameter`, the
/// message naming the parameter (a wrong type, an unknown parameter), as the
/// document says.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                rejection.body_text(),
            )),
        }
    }
}

/// `Path<T>` whose rejection is an [`ApiError`]: 400 `invalid_parameter` (a path
/// segment that is not UTF-8 once decoded, or not of the type).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                rejection.body_text(),
            )),
        }
    }
}
