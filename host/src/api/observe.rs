//! The per-request span (method, route, status) and the HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::AppState;

/// The route label of a request: the matched route template, else (plugin
/// routes, served by the fallback) `/plugins/{plugin}` for a plugin that exists
/// or the path a plugin claims, else `unmatched`.
fn route_label(state: &AppState, request: &Request) -> String {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        return matched.as_str().to_string();
    }
    let path = request.uri().path();
    let snapshot = state.registry.snapshot();
    if let Some(rest) = path.strip_prefix("/plugins/") {
        let name = rest.split('/').next().unwrap_or_default();
        if snapshot.plugins.contains_key(name) {
            return format!("/plugins/{name}");
        }
    } else if let Some((_, claim)) = snapshot.route(path) {
        return claim.path.clone();
    } else if !path.starts_with("/api/") {
        return "web".to_string();
    }
    "unmatched".to_string()
}

/// Middleware: one span per request (method, route, status) and the HTTP
/// metrics. The latency is to the response head; streamed bodies run on.
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Standard methods only: an invented one must not become a new series.
    let method = match *request.method() {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = route_label(&state, &request);
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        status = tracing::field::Empty
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let status = status.as_str();
    span.record("status", status);
    let metrics = &state.runtime.metrics;
    metrics.inc(
        "ham_http_requests_total",
        &[("method", method), ("route", &route), ("status", status)],
    );
    metrics.observe(
        "ham_http_request_duration_seconds",
        &[("method", method), ("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    response
}
