//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every `/api` route.
//!
//! Host routes are registered through utoipa-axum's `OpenApiRouter`: the
//! `#[utoipa::path]` attribute on a handler is both its route and its description,
//! so the two cannot drift. Routes that active plugins claim in their manifests
//! change with every swap, so they are added when the document is requested.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use utoipa::OpenApi as _;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi, ResponseBuilder};

use crate::AppState;
use crate::plugins::manifest::RouteAuth;

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
        (name = "admin", description = "Plugins and jobs; an admin session or the HAM_ADMIN_TOKEN bearer"),
        (name = "plugins", description = "Routes served by the active plugins, as their manifests claim them"),
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
                    "An OIDC access token (HAM_AUTH=oidc), or HAM_ADMIN_TOKEN for the admin routes",
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

/// The host's document plus the routes the active plugins claim right now.
pub async fn serve(State(state): State<AppState>, host: Arc<OpenApi>) -> Json<OpenApi> {
    let mut doc = OpenApi::clone(&host);
    let snapshot = state.registry.snapshot();
    for plugin in snapshot.plugins.values() {
        for claim in &plugin.manifest.routes {
            let methods: Vec<HttpMethod> = claim.methods.iter().filter_map(|m| method(m)).collect();
            let mut operation = OperationBuilder::new()
                .tag("plugins")
                .summary(Some(format!(
                    "Served by plugin {} {}",
                    plugin.manifest.name,
                    plugin.version_label()
                )))
                .response(
                    "default",
                    ResponseBuilder::new().description("as the plugin answers"),
                );
            if claim.auth == RouteAuth::None {
                // An empty requirement: callable without credentials.
                operation = operation.security(SecurityRequirement::default());
            }
            doc.paths
                .add_path_operation(&claim.path, methods, operation.build());
        }
    }
    Json(doc)
}

fn method(name: &str) -> Option<HttpMethod> {
    Some(match name {
        "GET" => HttpMethod::Get,
        "HEAD" => HttpMethod::Head,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        "OPTIONS" => HttpMethod::Options,
        _ => return None,
    })
}
