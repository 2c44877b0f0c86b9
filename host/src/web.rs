//! The browser app, embedded in the binary and served at `/`.
//!
//! `build.rs` builds `host/web` with npm and embeds every file of its `dist/`
//! ([`WEB_ASSETS`]), so `cargo build -p ham-host` alone gives a binary that serves
//! the app. This module owns how those files are answered:
//!
//! - `/assets/*` are content-hashed by the bundler: `Cache-Control: public,
//!   max-age=31536000, immutable`. Any other file (`index.html`, icons) is
//!   `no-cache`: the browser revalidates it (an `ETag` makes that a 304) so a new
//!   binary's app is picked up on the next load. That includes the service worker
//!   `/sw.js` (at the root, so its scope is the whole app; the browser sees each
//!   new one), the web app manifest `/manifest.webmanifest`
//!   (`application/manifest+json`) and the icons `/icons/*.png`.
//! - A `GET` or `HEAD` for one of the app's screens ([`APP_ROUTES`], the same list
//!   as `host/web/src/lib/routes.ts`, which a unit test there compares) gets
//!   `index.html` with 200, so every screen reloads and every link to one opens.
//! - A browser navigation (`Accept: text/html`, or `Sec-Fetch-Mode: navigate`) to
//!   any other path gets `index.html` with **404**: the app renders its not-found
//!   screen, the status stays honest (for link checkers and monitoring), and a
//!   person never lands on a page of JSON. That includes unknown paths under
//!   `/api` and `/healthz`-style host paths.
//! - Every other request for a path that is not a file stays `None`: the caller
//!   answers with the API's JSON 404, so scripts and `fetch` keep their error shape.
//! - The app's screens live under no prefix a plugin can take (`/plugins/{name}/…`,
//!   and the `/api/…` routes manifests claim), so a plugin never shadows a screen.
//!
//! It is called last, from the fallback of [`crate::api`]'s router, after the
//! plugin routes. Requests under `/plugins/{name}/` never reach it: that prefix is
//! the plugins' (an unknown plugin is the plugin router's JSON 404).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

/// One embedded file of the app.
pub struct WebAsset {
    /// Path relative to `dist/`, with `/` separators (`assets/index-3f2a.js`).
    pub path: &'static str,
    /// A quoted content tag for `ETag`.
    pub etag: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Prefixes that belong to the host's other routes; no file of the app is
/// served under them.
const NOT_THE_APP: &[&str] = &["/api", "/plugins", "/healthz", "/readyz", "/metrics"];

/// The app's screens (`*` is one path segment). Keep in step with
/// `host/web/src/lib/routes.ts` (its test reads this list).
const APP_ROUTES: &[&str] = &[
    "/",
    "/today",
    "/habits/new",
    "/habits/*",
    "/habits/*/edit",
    "/archived",
    "/arrange",
    "/activities",
    "/strava",
    "/coach",
    "/coach/*",
    "/settings",
    "/more",
    "/admin/plugins",
    "/admin/users",
];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Limits what the app's page may load and connect to: only this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The embedded file at `path` (relative to `dist/`), if any.
pub fn asset(path: &str) -> Option<&'static WebAsset> {
    WEB_ASSETS.iter().find(|a| a.path == path)
}

/// Whether `path` is one of [`APP_ROUTES`] (a trailing slash is ignored).
pub fn is_app_route(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    APP_ROUTES.iter().any(|route| {
        let parts: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(part, segment)| *part == "*" || part == segment)
    })
}

/// Whether the request is a browser opening a page (typed, linked, reloaded),
/// as opposed to a script's `fetch` or a command-line client.
pub fn is_navigation(headers: &HeaderMap) -> bool {
    let navigate = headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v.as_bytes() == b"navigate");
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|part| part.trim().to_ascii_lowercase().starts_with("text/html"))
        });
    navigate || wants_html
}

/// Answers `method path` from the app, or `None` when the path is not the app's
/// and the request is no browser navigation (the caller answers its JSON 404).
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let owned_elsewhere = NOT_THE_APP.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if !owned_elsewhere {
        let relative = path.trim_start_matches('/');
        if let Some(file) = asset(relative).filter(|_| !relative.is_empty()) {
            return Some(respond(method, file, headers, StatusCode::OK));
        }
        if is_app_route(path) {
            return Some(respond(
                method,
                asset("index.html")?,
                headers,
                StatusCode::OK,
            ));
        }
    }
    if is_navigation(headers) {
        return Some(respond(
            method,
            asset("index.html")?,
            headers,
            StatusCode::NOT_FOUND,
        ));
    }
    None
}

/// `file` with its headers; `status` is 200, or 404 for the not-found page (which
/// is never a 304: revalidation is for the real thing).
fn respond(method: &Method, file: &WebAsset, headers: &HeaderMap, status: StatusCode) -> Response {
    let cache = if file.path.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let not_modified = status == StatusCode::OK
        && headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|tag| tag.trim() == file.etag));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if method == Method::HEAD {
        (status, Body::empty())
    } else {
        (status, Body::from(file.bytes))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(file.path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if status != StatusCode::NOT_FOUND {
        h.insert(header::ETAG, HeaderValue::from_static(file.etag));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status != StatusCode::NOT_MODIFIED {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.bytes.len()));
    }
    if file.path.ends_with(".html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

/// The media type for a file name, by extension.
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_routes_match_one_segment_per_star() {
        for path in [
            "/",
            "/today",
            "/habits/new",
            "/habits/abc",
            "/habits/abc/edit",
            "/coach/42",
            "/admin/plugins",
            "/settings/",
        ] {
            assert!(is_app_route(path), "{path}");
        }
        for path in [
            "/plugins",
            "/habits/abc/edit/x",
            "/admin",
            "/nothing",
            "/api/me",
        ] {
            assert!(!is_app_route(path), "{path}");
        }
    }

    #[test]
    fn app_routes_never_sit_where_a_plugin_serves() {
        for route in APP_ROUTES {
            assert!(
                !NOT_THE_APP
                    .iter()
                    .any(|p| route == p || route.starts_with(&format!("{p}/"))),
                "{route}"
            );
        }
    }

    #[test]
    fn navigations_are_told_from_fetches() {
        let with = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            h
        };
        assert!(is_navigation(&with(
            "accept",
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(is_navigation(&with("sec-fetch-mode", "navigate")));
        assert!(!is_navigation(&with("accept", "*/*")));
        assert!(!is_navigation(&with("accept", "application/json")));
        assert!(!is_navigation(&HeaderMap::new()));
    }
}
