//! Requests served by plugins: `/plugins/{name}/…` for every plugin exporting
//! `wasi:http/incoming-handler`, and the exact `/api/…` routes manifests claim.
//!
//! Under the prefix the guest sees the path relative to its mount (`/plugins/hello/x`
//! arrives as `/x`, with `x-forwarded-prefix: /plugins/hello`); a claimed route
//! arrives with its full path. The invocation acts for the signed-in user, if any;
//! a claimed route with `auth = "user"` requires one.
//!
//! Credentials never reach plugin code: cookies, `Authorization`, forward-auth
//! identity headers and the client's forwarding headers are removed once the
//! host has settled who the request acts for. A plugin's response cannot set
//! cookies on the app's origin (`Set-Cookie` is dropped, logged once per
//! version) and is served with `X-Content-Type-Options: nosniff` and, unless the
//! route is declared `app_content`, `Content-Security-Policy: sandbox`.
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
        .map(|MaybeUser(user)| user.map(|u| u.id))
        .map_err(ApiError::from);
    (Request::from_parts(parts, body), user)
}

async fn route(state: &AppState, mut request: Request) -> Result<Response, ApiError> {
    let snapshot = state.registry.snapshot();
    let path = request.uri().path().to_string();
    let mut mount = None;
    let mut app_content = false;
    // The claim a request came in by (none: under `/plugins/{name}/`), so that a
    // rollout's candidate serves it only if it claims it too.
    let mut claimed: Option<&str> = None;
    let (plugin, user) = if let Some(rest) = path.strip_prefix("/plugins/") {
        let name = rest.split('/').next().unwrap_or_default();
        let Some(plugin) = snapshot.plugins.get(name).filter(|p| p.exports.http) else {
            // A person who opened the link gets the app's not-found page.
            return crate::web::serve(request.method(), &path, request.headers()).ok_or_else(
                || ApiError::not_found(format!("no plugin named `{name}` serves HTTP")),
            );
        };
        let plugin = plugin.clone();
        // The path and query below the mount, as sent: `/plugins/hello/x?q` is `/x?q`.
        let below = request
            .uri()
            .path_and_query()
            .map_or("", |pq| pq.as_str())
            .get(plugin.mount_path().len()..)
            .unwrap_or_default();
        let inner = match below.starts_with('/') {
            true => Uri::try_from(below),
            false => Uri::try_from(format!("/{below}")),
        };
        *request.uri_mut() = inner.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "invalid request path",
            )
        })?;
        mount = Some(plugin.mount.clone());
        let (with_user, user) = acting_user(state, request).await;
        request = with_user;
        (plugin, user?)
    } else if let Some((plugin, claim)) = snapshot.route(&path) {
        if !claim.methods.iter().any(|m| m == request.method().as_str()) {
            let allow = claim.methods.join(", ");
            let mut refused = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} accepts {allow}"),
            )
            .into_response();
            // RFC 9110: a 405 lists the methods the resource takes.
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                refused.headers_mut().insert(http::header::ALLOW, allow);
            }
            return Ok(refused);
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
        app_content = claim.app_content;
        claimed = Some(&claim.path);
        (plugin.clone(), user)
    } else {
        // Last: the browser app (its files, index.html for its screens, and
        // index.html with 404 for a browser navigation to anything else: the app's
        // not-found screen, never JSON). Scripts keep the JSON 404.
        return crate::web::serve(request.method(), &path, request.headers())
            .ok_or_else(|| ApiError::not_found(format!("no route for {path}")));
    };

    // During a rollout the candidate serves its share: a user by a stable hash,
    // anyone else request by request.
    let method = request.method().as_str();
    let plugin = snapshot.serving(&plugin, user.as_deref(), |candidate| {
        candidate.exports.http
            && claimed.is_none_or(|path| {
                candidate
                    .manifest
                    .routes
                    .iter()
                    .any(|r| r.path == path && r.methods.iter().any(|m| m == method))
            })
    });
    drop(snapshot);

    // Identity is settled: from here on the request is the plugin's to see.
    let (mut parts, body) = request.into_parts();
    let from_proxy = crate::auth::from_trusted_proxy(&parts, &state.settings);
    strip_credentials(&mut parts.headers, &state.settings, from_proxy);
    let mut request = Request::from_parts(parts, body);
    if let Some(mount) = mount {
        request.headers_mut().insert("x-forwarded-prefix", mount);
    }
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
    let served = state
        .runtime
        .serve_http(plugin.clone(), user, request)
        .await;
    match &served {
        // No slot: the version never ran, so its rollout counts nothing.
        Err(crate::runtime::InvokeError::Busy) => {}
        Ok(response) => state
            .registry
            .record(&plugin, response.status().is_server_error()),
        Err(_) => state.registry.record(&plugin, true),
    }
    let mut response =
        served.map_err(|e| invoke_error(&plugin.manifest.name, plugin.version_str(), e))?;
    guard_response(response.headers_mut(), &plugin, app_content);
    Ok(response.map(Body::new))
}

/// Removes what identifies or authenticates the visitor before a request enters a
/// component: cookies, `Authorization`, the forward-auth identity headers (and any
/// `X-authentik-*`), and the client's forwarding headers. A plugin learns who it
/// acts for only from the host. From a trusted proxy, the scheme and host the
/// visitor used (`X-Forwarded-Proto`, `X-Forwarded-Host`) stay, so a plugin can
/// build its public URLs; from anyone else they are the client's word, and go.
pub(crate) fn strip_credentials(
    headers: &mut http::HeaderMap,
    settings: &crate::settings::Settings,
    from_trusted_proxy: bool,
) {
    let kept: Vec<(&str, HeaderValue)> = match from_trusted_proxy {
        true => ["x-forwarded-proto", "x-forwarded-host"]
            .into_iter()
            .filter_map(|name| Some((name, headers.get(name)?.clone())))
            .collect(),
        false => Vec::new(),
    };
    let configured = [
        &settings.forward_auth_headers.uid,
        &settings.forward_auth_headers.user,
        &settings.forward_auth_headers.email,
        &settings.forward_auth_headers.groups,
    ];
    let doomed: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            matches!(
                name,
                "cookie" | "authorization" | "proxy-authorization" | "forwarded" | "x-real-ip"
            ) || name.starts_with("x-forwarded-")
                || name.starts_with("x-authentik-")
                || configured.iter().any(|c| c.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    for (name, value) in kept {
        headers.insert(name, value);
    }
}

/// Response headers a plugin may not send: they would act on the app's origin
/// (cookies, wiping the site's data) or let other sites read answers made for
/// the signed-in user (credentialed CORS).
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "clear-site-data",
    "access-control-allow-credentials",
];

/// Makes a plugin's response safe to serve on the app's origin: drops the headers
/// above (logged once per version), forbids content sniffing, and, unless the
/// route is declared `app_content`, sandboxes any page it serves
/// (`Content-Security-Policy: sandbox`: no script on the app's origin, no cookies).
pub(crate) fn guard_response(
    headers: &mut http::HeaderMap,
    plugin: &crate::runtime::LoadedPlugin,
    app_content: bool,
) {
    let mut dropped = Vec::new();
    for name in DROPPED_RESPONSE_HEADERS {
        if headers.remove(*name).is_some() {
            dropped.push(*name);
        }
    }
    if !dropped.is_empty()
        && !plugin
            .dropped_header_logged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            plugin = %plugin.manifest.name,
            version = %plugin.manifest.version,
            headers = ?dropped,
            "dropped response headers a plugin may not set (logged once per version)"
        );
    }
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !app_content {
        // Appended: a policy of the plugin's own still applies, and so does this.
        headers.append(
            http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
}

/// The whole request body, at most `limit` bytes.
async fn read_body(
    headers: &http::HeaderMap,
    body: Body,
    limit: usize,
) -> Result<impl http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + use<>, ApiError>
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let bytes = if http_body::Body::is_end_stream(&body) {
        Bytes::new()
    } else {
        collect_body(body, limit).await?
    };
    Ok(http_body_util::Full::new(bytes)
        .map_err(|never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} }))
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body exceeds this plugin's limit of {limit} bytes"),
    )
}

/// Reads a body to its end, at most `limit` bytes.
async fn collect_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(limit)),
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
    Ok(bytes)
}

/// Calls a route a plugin claims, in-process, acting for `user_id`, with an
/// empty body, and waits for the whole answer: how the host asks a plugin to
/// undo what it holds outside HAM (`DELETE /api/strava/connection` before an
/// account is deleted). `None` when no active plugin claims the route for that
/// method; otherwise the status the plugin answered.
pub async fn call_as(
    state: &AppState,
    user_id: &str,
    method: http::Method,
    path: &str,
) -> Result<Option<StatusCode>, ApiError> {
    let snapshot = state.registry.snapshot();
    let Some((plugin, claim)) = snapshot.route(path) else {
        return Ok(None);
    };
    if !claim.methods.iter().any(|m| m == method.as_str()) {
        return Ok(None);
    }
    let plugin = plugin.clone();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost")
        .body(http_body_util::Empty::<Bytes>::new().map_err(
            |never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} },
        ))
        .map_err(ApiError::internal)?;
    let name = plugin.manifest.name.clone();
    let version = plugin.version_label();
    let response = state
        .runtime
        .serve_http(plugin, Some(user_id.to_string()), request)
        .await
        .map_err(|e| invoke_error(&name, &version, e))?;
    let status = response.status();
    // The plugin's work ends with its body.
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::internal(format!("plugin {name} {version}: {e}")))?;
    Ok(Some(status))
}
