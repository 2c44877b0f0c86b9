//! The per-request span (method, route, status; plugin and version when a
//! plugin serves it) and the HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;

use crate::AppState;

/// The route label of a request: the matched route template, else (plugin
/// routes, served by the fallback) `/plugins/{plugin}` for a plugin that exists
/// or the path a plugin claims, else `unmatched`. Borrowed where it can be: a
/// plugin's requests are the hot path.
fn route_label(state: &AppState, request: &Request) -> RouteLabel {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        return RouteLabel::Matched(matched.clone());
    }
    let path = request.uri().path();
    let snapshot = state.registry.snapshot();
    if let Some(rest) = path.strip_prefix("/plugins/") {
        let name = rest.split('/').next().unwrap_or_default();
        if let Some(plugin) = snapshot.plugins.get(name) {
            return RouteLabel::Plugin(plugin.clone());
        }
    } else if let Some((_, claim)) = snapshot.route(path) {
        return RouteLabel::Claimed(claim.path.clone());
    } else if !path.starts_with("/api/") {
        return RouteLabel::Fixed("web");
    }
    RouteLabel::Fixed("unmatched")
}

enum RouteLabel {
    Matched(MatchedPath),
    Plugin(std::sync::Arc<crate::runtime::LoadedPlugin>),
    Claimed(String),
    Fixed(&'static str),
}

impl RouteLabel {
    fn as_str(&self) -> &str {
        match self {
            Self::Matched(matched) => matched.as_str(),
            Self::Plugin(plugin) => plugin.mount_path(),
            Self::Claimed(path) => path,
            Self::Fixed(label) => label,
        }
    }
}

/// One request's span and metrics: started before the request is handled,
/// finished with its answer. The latency is to the response head; streamed
/// bodies run on.
pub struct Track {
    started: Instant,
    method: &'static str,
    route: RouteLabel,
    pub span: tracing::Span,
}

impl Track {
    pub fn start(state: &AppState, request: &Request) -> Self {
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
        let route = route_label(state, request);
        // A plugin invocation serving the request adds `plugin` and `version`
        // here rather than opening a span of its own. On `/plugins/` paths the
        // span is `debug`: a span costs every request about a sixth of the
        // plugin route's CPU (docs/benchmarks.md), and the events logged there
        // name their plugin and version themselves.
        // A span's level is fixed where it is written: one call site per level.
        macro_rules! request_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "request",
                    method = %method,
                    route = %route.as_str(),
                    status = tracing::field::Empty,
                    plugin = tracing::field::Empty,
                    version = tracing::field::Empty,
                )
            };
        }
        let span = match &route {
            RouteLabel::Plugin(_) => request_span!(tracing::Level::DEBUG),
            _ => request_span!(tracing::Level::INFO),
        };
        Self {
            started,
            method,
            route,
            span,
        }
    }

    pub fn finish(self, state: &AppState, response: &Response) {
        let status = response.status();
        let status = status.as_str();
        self.span.record("status", status);
        let (method, route) = (self.method, self.route.as_str());
        state.runtime.metrics.count_and_observe(
            (
                "ham_http_requests_total",
                &[("method", method), ("route", route), ("status", status)],
            ),
            (
                "ham_http_request_duration_seconds",
                &[("method", method), ("route", route)],
            ),
            self.started.elapsed().as_secs_f64(),
        );
    }
}
