//! `GET /api/openapi.json` describes every `/api` route: each documented operation
//! is served (a request reaches a handler, not the "no route" fallback), the
//! routes a user relies on are all there with their schemas and every answer they
//! can give, and routes claimed by plugins appear, change and disappear with the
//! plugins' versions: as the version's own OpenAPI document describes them, or
//! generically without one. A refused document changes nothing. 405 answers say
//! what is allowed; parameters are held to what the document says.

use crate::common;

use common::session::Session;
use common::{ADMIN_TOKEN, Backend, TestServer, client, guest};
use reqwest::Method;
use serde_json::{Value, json};

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
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
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
        ("POST", "/api/me/password"),
        ("POST", "/api/me/delete"),
        ("GET", "/api/me/tokens"),
        ("POST", "/api/me/tokens"),
        ("DELETE", "/api/me/tokens/{id}"),
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
        ("GET", "/api/admin/users"),
        ("POST", "/api/admin/users"),
        ("PATCH", "/api/admin/users/{id}"),
        ("DELETE", "/api/admin/users/{id}"),
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
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
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

/// `PUT /api/admin/plugins/{name}` with the wasi-proxy component and, when given,
/// an `openapi` field.
async fn upload(
    server: &TestServer,
    name: &str,
    manifest: &str,
    openapi: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .text("manifest", manifest.to_string())
        .part(
            "component",
            reqwest::multipart::Part::bytes(guest("wasi-proxy")).file_name("c.wasm"),
        );
    if let Some(openapi) = openapi {
        form = form.text("openapi", openapi.to_string());
    }
    client()
        .put(server.url(&format!("/api/admin/plugins/{name}")))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn install(server: &TestServer, name: &str, manifest: &str, openapi: Option<&str>) {
    let response = upload(server, name, manifest, openapi).await;
    let status = response.status();
    assert!(
        status.is_success(),
        "upload failed: {status} {}",
        response.text().await.unwrap()
    );
}

/// The first version of the `proxy` plugin: a webhook anyone may call, and items
/// under a `/*` claim for signed-in users.
const PROXY_V1: &str = "name = \"proxy\"\nversion = \"0.1.0\"\nopenapi = \"openapi.json\"\n\
    routes = [{ path = \"/api/proxy/hook\", methods = [\"GET\", \"POST\"], auth = \"none\" },\n\
    { path = \"/api/proxy/items/*\", methods = [\"GET\", \"DELETE\"] }]\n";

fn proxy_v1_document() -> String {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "proxy", "version": "0.1.0"},
        "paths": {
            "/api/proxy/hook": {
                "get": {
                    "operationId": "readHook",
                    "summary": "Reads the hook",
                    "responses": {"200": {"description": "the hook", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Hook"}}}}}
                },
                "post": {
                    "summary": "Fires the hook",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {"description": "fired"},
                        "400": {"description": "`bad_event`", "content": {"application/json":
                            {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}}
                }
            },
            "/api/proxy/items/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "One item", "responses": {"200": {"description": "the item"}}}
            }
        },
        "components": {"schemas": {"Hook": {"type": "object", "properties": {"fired": {"type": "boolean"}}}}}
    })
    .to_string()
}

/// The second version: only the webhook, its reading described anew; firing it
/// and the items are no longer documented or claimed.
const PROXY_V2: &str = "name = \"proxy\"\nversion = \"0.2.0\"\nopenapi = \"openapi.json\"\n\
    routes = [{ path = \"/api/proxy/hook\", methods = [\"GET\", \"POST\"], auth = \"none\" }]\n";

fn proxy_v2_document() -> String {
    json!({
        "openapi": "3.1.0",
        "paths": {"/api/proxy/hook": {"get": {
            "summary": "Reads the hook, second edition",
            "responses": {"200": {"description": "the hook", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HookV2"}}}}}
        }}},
        "components": {"schemas": {"HookV2": {"type": "object"}}}
    })
    .to_string()
}

/// Upload, swap, rollback and restart, each followed by the document: the
/// plugin's operations are merged (completed by the host, its components renamed
/// `proxy.*`), change with a swap, come back with a rollback, and are stored with
/// the version. On SQLite and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_document_swaps_and_rolls_back_with_its_version() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(server) = TestServer::builder(backend).start().await else {
            continue;
        };
        install(&server, "proxy", PROXY_V1, Some(&proxy_v1_document())).await;
        assert_documents_v1(&document(&server).await, backend);

        install(&server, "proxy", PROXY_V2, Some(&proxy_v2_document())).await;
        let doc = document(&server).await;
        let hook = &doc["paths"]["/api/proxy/hook"];
        assert_eq!(
            hook["get"]["summary"], "Reads the hook, second edition",
            "{backend:?}"
        );
        assert_eq!(
            hook["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/proxy.HookV2"
        );
        // Firing is claimed but no longer documented: the generic description.
        assert_eq!(hook["post"]["summary"], "Served by plugin proxy 0.2.0");
        assert!(hook["post"]["responses"].get("default").is_some(), "{hook}");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(
            !schemas.contains_key("proxy.Hook"),
            "v1's schema went with it"
        );
        assert!(schemas.contains_key("proxy.HookV2"));
        assert!(doc["paths"].get("/api/proxy/items/{id}").is_none());

        let rollback = client()
            .post(server.url("/api/admin/plugins/proxy/rollback"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(rollback.status(), 200);
        assert_documents_v1(&document(&server).await, backend);

        // Stored with the version: a restart serves the same document.
        let server = server.restart().await;
        assert_documents_v1(&document(&server).await, backend);
        server.stop().await;
    }
}

fn assert_documents_v1(doc: &Value, backend: Backend) {
    let hook = &doc["paths"]["/api/proxy/hook"];
    let get = &hook["get"];
    assert_eq!(get["summary"], "Reads the hook", "{backend:?}: {hook}");
    assert_eq!(get["operationId"], "proxy.readHook");
    assert_eq!(get["tags"], json!(["plugins"]));
    assert!(
        get["description"]
            .as_str()
            .unwrap()
            .ends_with("Served by plugin proxy 0.1.0."),
        "{get}"
    );
    // The claim's `auth = "none"`, whatever the document says.
    assert_eq!(get["security"], json!([{}]));
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/proxy.Hook"
    );
    // The answers the host gives itself, added to the plugin's own.
    for status in ["500", "503", "504"] {
        assert!(get["responses"].get(status).is_some(), "{status}: {get}");
    }
    assert!(
        get["responses"].get("403").is_none(),
        "GET is never cross-origin"
    );
    let post = &hook["post"];
    for status in ["400", "403", "408", "413"] {
        let answer = &post["responses"][status];
        assert_eq!(
            answer["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}: {post}"
        );
    }
    assert!(post["responses"].get("401").is_none(), "auth = none");
    // A `/*` claim documented with a path parameter; signed-in users only.
    let item = &doc["paths"]["/api/proxy/items/{id}"]["get"];
    assert_eq!(item["summary"], "One item", "{doc}");
    assert!(
        item.get("security").is_none(),
        "the document's: a session or a bearer"
    );
    assert!(item["responses"].get("401").is_some(), "{item}");
    // The claimed DELETE it does not document: generic, at the claim's path.
    let delete = &doc["paths"]["/api/proxy/items/*"]["delete"];
    assert_eq!(delete["summary"], "Served by plugin proxy 0.1.0");
    assert!(doc["paths"]["/api/proxy/items/*"].get("get").is_none());
    assert!(doc["components"]["schemas"].get("proxy.Hook").is_some());
}

/// Documents that do not fit the manifest are refused at upload with 422
/// `invalid_openapi`, naming what is wrong; the active version keeps serving,
/// and its document stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_document_is_refused_and_the_active_version_keeps_serving() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    install(&server, "proxy", PROXY_V1, Some(&proxy_v1_document())).await;
    let next = PROXY_V1.replace("0.1.0", "0.1.1");
    let get_hook = |paths: Value| json!({"openapi": "3.1.0", "paths": paths}).to_string();
    let ok = json!({"responses": {"200": {"description": "ok"}}});
    let cases = [
        ("{\"paths\": ", "not JSON".to_string()),
        ("[]", "not a JSON object".to_string()),
        (
            &json!({"openapi": "2.0", "paths": {}}).to_string(),
            "openapi: \"2.0\" is not an OpenAPI 3.x version".to_string(),
        ),
        (
            &json!({"paths": {}, "servers": [{"url": "https://elsewhere"}]}).to_string(),
            "servers: a plugin's document holds only".to_string(),
        ),
        (&json!({"openapi": "3.1.0"}).to_string(), "paths: required".to_string()),
        (
            &get_hook(json!({"/api/other/hook": {"get": ok}})),
            "paths./api/other/hook: the manifest claims no route covering it".to_string(),
        ),
        (
            &get_hook(json!({"/api/proxy/hook": {"put": ok}})),
            "paths./api/proxy/hook: put: the manifest claims GET, POST on /api/proxy/hook, not PUT"
                .to_string(),
        ),
        (
            &get_hook(json!({"/api/proxy/items/{id}": {"get": ok}})),
            "paths./api/proxy/items/{id}: get: the path parameter `id` is not described"
                .to_string(),
        ),
        (
            &get_hook(json!({"/api/proxy/items/*": {"get": ok}})),
            "paths./api/proxy/items/*: a path is /api/…".to_string(),
        ),
        (
            &get_hook(json!({"/api/proxy/hook": {"get": {"responses": {"200": {
                "description": "ok", "content": {"application/json": {"schema":
                    {"$ref": "#/components/schemas/Habit"}}}}}}}})),
            "paths./api/proxy/hook.get.responses.200.content.application/json.schema: `$ref` #/components/schemas/Habit names no component"
                .to_string(),
        ),
        (
            &json!({"paths": {}, "components": {"securitySchemes": {"k": {"type": "http"}}}})
                .to_string(),
            "components.securitySchemes: not a kind a plugin may define".to_string(),
        ),
    ];
    for (openapi, expected) in cases {
        let response = upload(&server, "proxy", &next, Some(openapi)).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 422, "{openapi}: {body}");
        assert_eq!(body["error"]["code"], "invalid_openapi", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&expected),
            "{openapi}: expected `{expected}` in {message}"
        );
        assert_eq!(
            server.get_text("/api/proxy/hook").await,
            (200, "wasi-proxy saw GET /api/proxy/hook\n".to_string()),
            "after {openapi}"
        );
        assert_documents_v1(&document(&server).await, Backend::Sqlite);
    }

    // Without the document the version is taken, and its routes get the generic
    // description.
    install(&server, "proxy", &next, None).await;
    let doc = document(&server).await;
    assert_eq!(
        doc["paths"]["/api/proxy/hook"]["get"]["summary"],
        "Served by plugin proxy 0.1.1"
    );
    assert!(doc["components"]["schemas"].get("proxy.Hook").is_none());
    let versions: Value = client()
        .get(server.url("/api/admin/plugins/proxy/versions"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    server.stop().await;
}

/// A 405 names the methods the resource takes: host routes and plugin claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_says_what_is_allowed() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    install(&server, "proxy", PROXY_V1, Some(&proxy_v1_document())).await;
    let cases = [
        (Method::TRACE, "/api/habits", vec!["GET", "POST"]),
        (Method::DELETE, "/api/auth/config", vec!["GET"]),
        (
            Method::PUT,
            "/api/admin/plugins/proxy/versions",
            vec!["GET"],
        ),
        (Method::DELETE, "/api/proxy/hook", vec!["GET", "POST"]),
        (Method::TRACE, "/api/proxy/items/7", vec!["GET", "DELETE"]),
    ];
    for (method, path, allowed) in cases {
        let response = client()
            .request(method.clone(), server.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"))
            .to_str()
            .unwrap()
            .to_string();
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for m in &allowed {
            assert!(listed.contains(m), "{method} {path}: Allow: {allow}");
        }
        assert!(
            !listed.contains(&method.as_str()),
            "{method} {path}: Allow: {allow}"
        );
    }
    // A plugin claim's 405 is the error shape too.
    let response = client()
        .delete(server.url("/api/proxy/hook"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    server.stop().await;
}

/// Every host operation documents the answers every route of its kind gives,
/// with the error shape; the bundled plugins' routes are described by their own
/// documents; parameters are what the handlers read, and refused as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_documented_and_parameters_are_held_to_it() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let doc = document(&server).await;
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let responses = &operation["responses"];
            let has = |status: &str| {
                responses.get(status).is_some_and(|r| {
                    r["content"]["application/json"]["schema"] == error_body
                        || r["content"]["application/json"]["schema"]["$ref"]
                            .as_str()
                            .is_some()
                })
            };
            let at = format!("{method} {path}");
            assert!(has("500"), "{at}: {responses}");
            if method != "get" {
                assert!(has("403") && has("408"), "{at}: {responses}");
            }
            if operation.get("security").is_none() {
                assert!(has("401"), "{at}: {responses}");
            }
            if operation["tags"] == json!(["plugins"]) {
                // The host's own answers for a plugin's route; the rest is the plugin's.
                assert!(has("503") && has("504"), "{at}: {responses}");
                continue;
            }
            let json_body = operation["requestBody"]["content"]
                .get("application/json")
                .is_some();
            if json_body {
                for status in ["400", "413", "415", "422"] {
                    assert!(has(status), "{at}: {status} in {responses}");
                }
            }
            if operation["parameters"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
            {
                assert!(has("400"), "{at}: {responses}");
            }
        }
    }
    let param = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
            .clone()
    };
    assert_eq!(param("/api/habits", "archived")["in"], "query");
    assert_eq!(param("/api/activities", "from")["schema"]["format"], "date");
    assert_eq!(
        param("/api/export", "format")["schema"]["enum"],
        json!(["json", "csv"]),
        "{}",
        param("/api/export", "format")
    );

    // The bundled plugins' own documents.
    let chat = &doc["paths"]["/api/coach/chat"]["post"];
    assert!(
        chat["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some(),
        "{chat}"
    );
    assert_eq!(
        chat["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/coach.ChatRequest"
    );
    let verify = &doc["paths"]["/api/strava/webhook"]["get"];
    assert_eq!(verify["security"], json!([{}]));
    assert!(
        verify["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "hub.challenge"),
        "{verify}"
    );
    let event = &doc["paths"]["/api/strava/webhook"]["post"]["responses"];
    assert_eq!(
        event["200"]["content"]["application/json"]["schema"]["properties"]["status"]["enum"],
        json!(["received"])
    );
    assert!(event.get("400").is_some(), "{event}");
    assert!(doc["paths"].get("/api/strava/rules/{id}").is_some());
    assert!(doc["paths"].get("/api/coach/conversations/{id}").is_some());

    // Parameters of the wrong type or unknown ones are refused with the error
    // shape, naming them.
    let mut user = Session::register(&server, "params").await;
    for (path, named) in [
        ("/api/habits?archived=maybe", "archived"),
        ("/api/habits?colour=red", "colour"),
        ("/api/activities?form=2026-01-01", "form"),
        ("/api/admin/jobs?state=dead&limit=3", "limit"),
    ] {
        let (status, body) = user.json(&server, Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(named),
            "{path}: {body}"
        );
    }
    let (status, body) = user
        .json(&server, Method::GET, "/api/export?format=xml", None)
        .await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (422, &json!("invalid_field"))
    );
    server.stop().await;
}

/// `ham plugin install` and `ham serve --watch` carry the document the manifest
/// names, read beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_watcher_carry_the_document_the_manifest_names() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let package = |at: &std::path::Path, manifest: &str, openapi: &str| {
        std::fs::create_dir_all(at).unwrap();
        std::fs::write(
            at.join("plugin.toml"),
            format!("{manifest}component = \"proxy.wasm\"\n"),
        )
        .unwrap();
        std::fs::write(at.join("proxy.wasm"), guest("wasi-proxy")).unwrap();
        std::fs::write(at.join("openapi.json"), openapi).unwrap();
    };

    let cli = server.data_dir.join("cli");
    package(&cli, PROXY_V1, &proxy_v1_document());
    let remote = ham_host::cli::Remote {
        url: server.url.clone(),
        token: Some(ADMIN_TOKEN.to_string()),
    };
    ham_host::cli::install(&remote, &cli.join("plugin.toml"), None, None)
        .await
        .unwrap();
    assert_documents_v1(&document(&server).await, Backend::Sqlite);

    let watched = server.data_dir.join("watched");
    package(&watched.join("proxy"), PROXY_V2, &proxy_v2_document());
    let watcher = ham_host::plugins::watch::spawn(server.state.registry.clone(), watched);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let doc = document(&server).await;
        if doc["paths"]["/api/proxy/hook"]["get"]["summary"] == "Reads the hook, second edition" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not install v2 with its document: {}",
            doc["paths"]["/api/proxy/hook"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    watcher.abort();
    server.stop().await;
}
