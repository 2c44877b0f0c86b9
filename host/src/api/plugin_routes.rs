//! Requests served by plugins: `/plugins/{name}/…` for every plugin exporting
//! `wasi:http/incoming-handler`, and the exact `/api/…` routes manifests claim.
//!
//! Under the prefix the guest sees the path relative to its mount (`/plugins/hello/x`
//! arrives as `/x`, with `x-forwarded-prefix: /plugins/hello`); a claimed route
//! arrives with its full path. The invocation acts for the signed-in user, if any;
//! a claimed route with `auth = "user"` requires one.
//!
//! The request body is read whole, up to the manifest's `limits.request_body_kb`
//! (413 beyond it, 408 when it does not arrive within the body deadline), before
//! an instance starts: a client that sends slowly holds a connection, never one of
//! the plugin's instance slots. Response bodies stream from the guest.

use axum::body::Body;
use axum::extract::{FromRequestParts as _, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;

use super::{ApiError, invoke_error};
use crate::AppState;
use crate::auth::MaybeUser;
use crate::plugins::manifest::RouteAuth;

pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    match route(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// The signed-in user the request comes from, if any. Asked only where an
/// invocation may act for a user: never for a route claimed with `auth = "none"`
/// (a webhook: forward-auth headers there did not come through the proxy's
/// authentication, so they must not name anyone) nor for the browser app's files.
async fn acting_user(
    state: &AppState,
    request: Request,
) -> (Request, Result<Option<String>, ApiError>) {
    let (mut parts, body) = request.into_parts();
    let user = MaybeUser::from_request_parts(&mut parts, state)
        .await
        .map(|MaybeUser(user)| user.map(|u| u.id));
    (Request::from_parts(parts, body), user)
}

async fn route(state: &AppState, mut request: Request) -> Result<Response, ApiError> {
    let snapshot = state.registry.snapshot();
    let path = request.uri().path().to_string();
    let (plugin, user) = if let Some(rest) = path.strip_prefix("/plugins/") {
        let (name, inner) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let plugin = snapshot
            .plugins
            .get(name)
            .filter(|p| p.exports.http)
            .ok_or_else(|| ApiError::not_found(format!("no plugin named `{name}` serves HTTP")))?
            .clone();
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let inner: Uri = format!("{inner}{query}").parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "invalid request path",
            )
        })?;
        *request.uri_mut() = inner;
        let prefix = HeaderValue::from_str(&format!("/plugins/{name}"))
            .map_err(|_| ApiError::not_found("invalid plugin name"))?;
        request.headers_mut().insert("x-forwarded-prefix", prefix);
        let (with_user, user) = acting_user(state, request).await;
        request = with_user;
        (plugin, user?)
    } else if let Some((plugin, claim)) = snapshot.route(&path) {
        if !claim.methods.iter().any(|m| m == request.method().as_str()) {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} accepts {}", claim.methods.join(", ")),
            ));
        }
        let user = match claim.auth {
            RouteAuth::None => None,
            RouteAuth::User => {
                let (with_user, user) = acting_user(state, request).await;
                request = with_user;
                match user? {
                    Some(user) => Some(user),
                    None => {
                        return Err(ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "unauthorized",
                            "sign in first",
                        ));
                    }
                }
            }
        };
        (plugin.clone(), user)
    } else {
        // Last: the browser app (its files, and index.html for client routes).
        return crate::web::serve(request.method(), &path, request.headers())
            .ok_or_else(|| ApiError::not_found(format!("no route for {path}")));
    };

    // wasi:http needs an authority; HTTP/1.1 clients send Host, others may not.
    if request.uri().authority().is_none() && !request.headers().contains_key(http::header::HOST) {
        request
            .headers_mut()
            .insert(http::header::HOST, HeaderValue::from_static("localhost"));
    }
    let limit = plugin.manifest.limits.request_body_kb as usize * 1024;
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, limit).await?;
    let request = Request::from_parts(parts, body);
    let name = plugin.manifest.name.clone();
    let version = plugin.version_label();
    let response = state
        .runtime
        .serve_http(plugin, user, request)
        .await
        .map_err(|e| invoke_error(&name, &version, e))?;
    Ok(response.map(Body::new))
}

/// The whole request body, at most `limit` bytes.
async fn read_body(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<impl http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + use<>, ApiError>
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body exceeds this plugin's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) if super::body_deadline::is_body_timeout(e.as_ref()) => {
            return Err(super::body_timeout());
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body was cut off",
            ));
        }
    };
    Ok(http_body_util::Full::new(bytes)
        .map_err(|never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} }))
}
