//! `GET /api/openapi.json` describes every `/api` route: each documented operation
//! is served (a request reaches a handler, not the "no route" fallback), the
//! routes a user relies on are all there with their schemas, and routes claimed by
//! plugins appear and disappear with the plugins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use common::{Backend, TestDb, TestServer, client, guest, settings};
use reqwest::Method;
use serde_json::Value;

async fn document(server: &TestServer) -> Value {
    let response = client()
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Every (method, path) the document lists.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let server = TestServer::start(settings(dir.path(), &db)).await;
    let doc = document(&server).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "HAM");

    let ops = operations(&doc);
    for expected in [
        ("GET", "/api/auth/config"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/me"),
        ("PATCH", "/api/me"),
        ("GET", "/api/habits"),
        ("POST", "/api/habits"),
        ("GET", "/api/habits/stats"),
        ("GET", "/api/habits/{id}"),
        ("PATCH", "/api/habits/{id}"),
        ("DELETE", "/api/habits/{id}"),
        ("GET", "/api/habits/{id}/stats"),
        ("GET", "/api/habits/{id}/entries"),
        ("PUT", "/api/habits/{id}/entries/{date}"),
        ("DELETE", "/api/habits/{id}/entries/{date}"),
        ("GET", "/api/activities"),
        ("GET", "/api/export"),
        ("POST", "/api/import"),
        ("GET", "/api/admin/plugins"),
        ("PUT", "/api/admin/plugins/{name}"),
        ("GET", "/api/admin/plugins/{name}/versions"),
        ("POST", "/api/admin/plugins/{name}/rollback"),
        ("GET", "/api/admin/jobs"),
        ("POST", "/api/admin/jobs/{id}/retry"),
    ] {
        assert!(
            ops.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} is not documented; the document has {ops:?}"
        );
    }

    // Every documented operation reaches a handler: whatever it answers an
    // anonymous, bodiless request, it is not the fallback's "no route".
    for (method, path) in &ops {
        let concrete = path
            .replace("{id}", "x")
            .replace("{date}", "2026-01-01")
            .replace("{name}", "hello");
        let response = client()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(&concrete),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("no route for"),
            "{method} {path} is documented but not served: {status} {body}"
        );
    }

    // The schemas a client needs are described, down to the error shape.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Habit",
        "HabitInput",
        "Entry",
        "EntryInput",
        "HabitStats",
        "ErrorBody",
        "Export",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let habit = &schemas["Habit"]["properties"];
    for field in ["id", "name", "kind", "frequency", "target", "created"] {
        assert!(habit.get(field).is_some(), "Habit.{field} missing: {habit}");
    }
    let stats = &doc["paths"]["/api/habits/{id}/stats"]["get"]["responses"];
    assert!(
        stats.get("502").is_some(),
        "the stats route documents its 502: {stats}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_routes_follow_the_active_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let server = TestServer::start(settings(dir.path(), &db)).await;
    assert!(
        document(&server).await["paths"]
            .get("/api/proxy/hook")
            .is_none()
    );

    let manifest = "name = \"proxy\"\nversion = \"0.1.0\"\n\
        routes = [{ path = \"/api/proxy/hook\", methods = [\"GET\", \"POST\"], auth = \"none\" }]\n";
    server.install("proxy", manifest, guest("wasi-proxy")).await;
    let doc = document(&server).await;
    let item = &doc["paths"]["/api/proxy/hook"];
    for method in ["get", "post"] {
        assert_eq!(
            item[method]["summary"], "Served by plugin proxy 0.1.0",
            "{item}"
        );
        assert_eq!(item[method]["tags"][0], "plugins");
        assert_eq!(
            item[method]["security"],
            serde_json::json!([{}]),
            "auth = none"
        );
    }
    assert!(item.get("put").is_none());

    let manifest = "name = \"proxy\"\nversion = \"0.2.0\"\n";
    server.install("proxy", manifest, guest("wasi-proxy")).await;
    assert!(
        document(&server).await["paths"]
            .get("/api/proxy/hook")
            .is_none()
    );
    server.stop().await;
}
