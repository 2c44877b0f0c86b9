//! Cross-site request refusal: a page on another site can make the browser send
//! requests to HAM with the user's cookie (or through a forward-auth proxy that
//! signs them in); such a request must not change anything.
//!
//! The rule follows Go's `net/http.CrossOriginProtection`. Safe methods (GET,
//! HEAD, OPTIONS) always pass. A state-changing request is refused with 403
//! `cross_origin` when the browser says it is cross-site: `Sec-Fetch-Site` other
//! than `same-origin` or `none` (the user typed the URL), or, from a browser too
//! old to send that header, an `Origin` whose host and port are not the request's
//! `Host`. A request with neither header does not come from a browser page (curl,
//! scripts, Strava's webhook deliveries) and passes: it carries no ambient
//! credentials a page could abuse. It applies to every route, plugin routes
//! included, whatever the request's content type.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The 403 for a cross-site state-changing request, before any handler runs;
/// `None` lets the request through.
pub fn refusal(request: &Request) -> Option<Response> {
    let authority = request.uri().authority().map(|a| a.as_str());
    if !is_cross_site(request.method(), request.headers(), authority) {
        return None;
    }
    tracing::warn!(
        method = %request.method(),
        path = %request.uri().path(),
        "cross-site request refused"
    );
    Some(
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "this request came from another site's page; HAM only accepts changes from its own pages",
        )
        .into_response(),
    )
}

/// Whether a request is a state change a browser sent from another site.
/// `authority` is the request target's, for absolute-form requests without `Host`.
pub fn is_cross_site(method: &Method, headers: &HeaderMap, authority: Option<&str>) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority);
    // `Origin` is `scheme://host[:port]` (or `null` from an opaque origin).
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    match (origin_host, host) {
        (Some(origin), Some(host)) => !origin.eq_ignore_ascii_case(host),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn browser_signals_decide_and_their_absence_passes() {
        type Case<'a> = (&'a Method, &'a [(&'static str, &'a str)], bool);
        let cases: &[Case] = &[
            (&Method::GET, &[("sec-fetch-site", "cross-site")], false),
            (&Method::POST, &[("sec-fetch-site", "same-origin")], false),
            (&Method::POST, &[("sec-fetch-site", "none")], false),
            (&Method::POST, &[("sec-fetch-site", "cross-site")], true),
            (&Method::DELETE, &[("sec-fetch-site", "same-site")], true),
            (
                &Method::PUT,
                &[("origin", "http://evil.example"), ("host", "ham.lan:3001")],
                true,
            ),
            (
                &Method::PATCH,
                &[("origin", "https://ham.lan:3001"), ("host", "ham.lan:3001")],
                false,
            ),
            (
                &Method::POST,
                &[("origin", "https://HAM.lan"), ("host", "ham.lan")],
                false,
            ),
            (
                &Method::POST,
                &[("origin", "null"), ("host", "ham.lan")],
                true,
            ),
            (&Method::POST, &[("host", "ham.lan")], false),
            (&Method::POST, &[], false),
        ];
        for (method, pairs, cross) in cases {
            assert_eq!(
                is_cross_site(method, &headers(pairs), None),
                *cross,
                "{method} {pairs:?}"
            );
        }
    }
}
