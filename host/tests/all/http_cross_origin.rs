//! Cross-site requests change nothing: a page on another site makes the browser
//! send the user's cookie along, and HAM refuses every state change it marks as
//! cross-site (403 `cross_origin`), on host routes and plugin routes alike; JSON
//! routes refuse other content types (415); same-origin pages and clients that
//! are not browsers are unaffected.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer, client, error_of};
use reqwest::Method;
use serde_json::json;

/// A request with alice's cookie and the given browser headers.
fn with_cookie(
    server: &TestServer,
    session: &Session,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = client()
        .request(method, server.url(path))
        .header("cookie", session.cookie.clone().unwrap());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

async fn habit_names(server: &TestServer, session: &mut Session) -> Vec<String> {
    let (status, habits) = session.json(server, Method::GET, "/api/habits", None).await;
    assert_eq!(status, 200);
    habits
        .as_array()
        .or_else(|| habits["habits"].as_array())
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn cross_site_state_changes_are_refused_and_change_nothing() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut alice = Session::register(&server, "alice").await;
    let (status, kept) = alice
        .json(
            &server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Read", "kind": "boolean"})),
        )
        .await;
    assert_eq!(status, 201);
    let kept_id = kept["id"].as_str().unwrap().to_string();
    let own_origin = server.url.clone();

    // What another site's page can make a browser send, with alice's cookie.
    type Forged<'a> = (Method, String, &'a [(&'a str, &'a str)]);
    let forged: &[Forged] = &[
        (
            Method::POST,
            "/api/habits".into(),
            &[("origin", "http://evil.example")],
        ),
        (
            Method::POST,
            "/api/habits".into(),
            &[("sec-fetch-site", "cross-site")],
        ),
        (
            Method::POST,
            "/api/habits".into(),
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "http://evil.example"),
            ],
        ),
        (
            Method::DELETE,
            format!("/api/habits/{kept_id}"),
            &[("sec-fetch-site", "cross-site")],
        ),
        (
            Method::PATCH,
            format!("/api/habits/{kept_id}"),
            &[("origin", "null")],
        ),
        (
            Method::POST,
            "/api/coach/chat".into(),
            &[("sec-fetch-site", "cross-site")],
        ),
        (
            Method::POST,
            "/plugins/hello/visits".into(),
            &[("origin", "http://evil.example")],
        ),
        (
            Method::POST,
            "/api/auth/logout".into(),
            &[("sec-fetch-site", "cross-site")],
        ),
    ];
    for (method, path, headers) in forged {
        // A form post: text/plain, which a cross-site page may send without asking.
        let response = with_cookie(&server, &alice, method.clone(), path, headers)
            .header("content-type", "text/plain")
            .body(r#"{"name": "Forged", "kind": "boolean", "message": "hi"}"#)
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "cross_origin"),
            "{method} {path} {headers:?}: {message}"
        );
    }
    // Nothing changed: the habit is there, nothing was added, alice is signed in.
    assert_eq!(habit_names(&server, &mut alice).await, ["Read"]);

    // The same requests from alice's own pages go through.
    let response = with_cookie(
        &server,
        &alice,
        Method::POST,
        "/api/habits",
        &[("origin", &own_origin), ("sec-fetch-site", "same-origin")],
    )
    .json(&json!({"name": "Walk", "kind": "boolean"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let response = with_cookie(
        &server,
        &alice,
        Method::POST,
        "/api/habits",
        &[("origin", &own_origin)],
    )
    .json(&json!({"name": "Swim", "kind": "boolean"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    // A client that is not a browser (no Origin, no Sec-Fetch-Site) too.
    let (status, _) = alice
        .json(
            &server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Cook", "kind": "boolean"})),
        )
        .await;
    assert_eq!(status, 201);
    // Reading is never refused, whatever the site.
    let response = with_cookie(
        &server,
        &alice,
        Method::GET,
        "/api/habits",
        &[("sec-fetch-site", "cross-site")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);

    // A same-origin request with a form's content type to a JSON route: 415.
    let response = with_cookie(
        &server,
        &alice,
        Method::POST,
        "/api/habits",
        &[("sec-fetch-site", "same-origin")],
    )
    .header("content-type", "text/plain")
    .body(r#"{"name": "Typed", "kind": "boolean"}"#)
    .send()
    .await
    .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    let mut names = habit_names(&server, &mut alice).await;
    names.sort();
    assert_eq!(names, ["Cook", "Read", "Swim", "Walk"]);
    server.stop().await;
}
