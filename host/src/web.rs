//! The browser app, embedded in the binary and served at `/`.
//!
//! `build.rs` builds `host/web` with npm and embeds every file of its `dist/`
//! ([`WEB_ASSETS`]), so `cargo build -p ham-host` alone gives a binary that serves
//! the app. This module owns how those files are answered:
//!
//! - `/assets/*` are content-hashed by the bundler: `Cache-Control: public,
//!   max-age=31536000, immutable`. Any other file (`index.html`, icons) is
//!   `no-cache`: the browser revalidates it (an `ETag` makes that a 304) so a new
//!   binary's app is picked up on the next load.
//! - A `GET` or `HEAD` for a path with no file extension that no other route owns
//!   is a client-side route of the app: it gets `index.html` (SPA fallback).
//! - Paths under `/api`, `/plugins`, `/healthz`, `/readyz` and `/metrics` are never
//!   the app's, nor is an unknown file (`/assets/gone.js`): those stay 404.
//!
//! It is called last, from the fallback of [`crate::api`]'s router, after the
//! plugin routes.

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

/// Prefixes that belong to the host's other routes; the app never answers them.
const NOT_THE_APP: &[&str] = &["/api", "/plugins", "/healthz", "/readyz", "/metrics"];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Limits what the app's page may load and connect to: only this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The embedded file at `path` (relative to `dist/`), if any.
pub fn asset(path: &str) -> Option<&'static WebAsset> {
    WEB_ASSETS.iter().find(|a| a.path == path)
}

/// Answers `method path` from the app, or `None` when the path is not the app's
/// (the caller answers 404).
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let owned_elsewhere = NOT_THE_APP.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if owned_elsewhere {
        return None;
    }
    let relative = path.trim_start_matches('/');
    let file = match asset(relative) {
        Some(file) => file,
        None => {
            let last = relative.rsplit('/').next().unwrap_or_default();
            if last.contains('.') {
                return None;
            }
            asset("index.html")?
        }
    };
    Some(respond(method, file, headers))
}

fn respond(method: &Method, file: &WebAsset, headers: &HeaderMap) -> Response {
    let cache = if file.path.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == file.etag));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if method == Method::HEAD {
        (StatusCode::OK, Body::empty())
    } else {
        (StatusCode::OK, Body::from(file.bytes))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(file.path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, HeaderValue::from_static(file.etag));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status == StatusCode::OK {
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
