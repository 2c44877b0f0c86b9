//! The boundary between host and plugin holds both ways: a component written to
//! misbehave sees no visitor's credentials (cookies, bearer tokens, the proxy's
//! identity headers, forwarding headers a client made up), and cannot plant
//! cookies or run script on the app's origin.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer, client, guest, probe_manifest};
use ham_host::settings::AuthMode;
use reqwest::Method;

/// The header names the probe saw, lower case, with their values.
async fn seen_headers(request: reqwest::RequestBuilder) -> Vec<(String, String)> {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
        .text()
        .await
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect()
}

const CREDENTIAL_HEADERS: &[&str] = &[
    "cookie",
    "authorization",
    "proxy-authorization",
    "x-authentik-username",
    "x-authentik-email",
    "x-authentik-groups",
    "x-authentik-uid",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
];

#[tokio::test]
async fn a_plugin_sees_no_credentials_and_cannot_plant_cookies() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut admin = Session::register(&server, "admin").await;
    server
        .install(
            "probe",
            &probe_manifest(
                "probe",
                "0.1.0",
                "x",
                "routes = [{ path = \"/api/probe-app/*\", methods = [\"GET\"], auth = \"none\", app_content = true }]",
            ),
            guest("probe"),
        )
        .await;

    // Everything a visitor's browser or a forging client sends along.
    let mut request = client()
        .get(server.url("/plugins/probe/headers"))
        .header("cookie", admin.cookie.clone().unwrap())
        .header("authorization", "Bearer secret-token")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-custom", "kept");
    for name in &CREDENTIAL_HEADERS[3..] {
        request = request.header(*name, "forged");
    }
    let seen = seen_headers(request).await;
    for name in CREDENTIAL_HEADERS {
        assert!(
            !seen.iter().any(|(n, _)| n == name),
            "the plugin saw {name}: {seen:?}"
        );
    }
    // Its own headers and the host's mount prefix are there.
    assert!(
        seen.contains(&("x-custom".into(), "kept".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("x-forwarded-prefix".into(), "/plugins/probe".into())),
        "{seen:?}"
    );

    // A page that sets cookies and script: served without the cookies, sandboxed.
    let response = client()
        .get(server.url("/plugins/probe/plant"))
        .header("cookie", admin.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers.get("set-cookie").is_none(), "{headers:?}");
    assert!(
        headers.get("access-control-allow-credentials").is_none(),
        "{headers:?}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp: Vec<_> = headers
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(csp, ["sandbox"]);
    // The admin's session is untouched.
    let (status, me) = admin.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(
        (status.as_u16(), me["username"].as_str()),
        (200, Some("admin"))
    );

    // A route the manifest declares as app content is not sandboxed, but still
    // cannot set cookies.
    let response = client()
        .get(server.url("/api/probe-app/plant"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("content-security-policy").is_none());
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    server.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_plugin_gets_the_public_scheme_and_host_only() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.auth = AuthMode::ForwardAuth.into();
            s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .start()
        .await
        .unwrap();
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "x", ""),
            guest("probe"),
        )
        .await;
    let seen = seen_headers(
        client()
            .get(server.url("/plugins/probe/headers"))
            .header("x-authentik-username", "bob")
            .header("x-authentik-email", "bob@example.org")
            .header("x-authentik-uid", "b0b")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "ham.example.org"),
    )
    .await;
    assert!(
        seen.contains(&("x-forwarded-proto".into(), "https".into()))
            && seen.contains(&("x-forwarded-host".into(), "ham.example.org".into())),
        "{seen:?}"
    );
    for name in [
        "x-authentik-username",
        "x-authentik-email",
        "x-authentik-uid",
        "x-forwarded-for",
    ] {
        assert!(!seen.iter().any(|(n, _)| n == name), "{name}: {seen:?}");
    }
    server.stop().await;
}
