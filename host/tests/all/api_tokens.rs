//! Personal API tokens: `Authorization: Bearer ham_…` acts as its user on user
//! routes, in local and forward-auth mode; never on admin routes, never to make
//! more tokens; revoked means refused; only the hash is stored; guessing is
//! limited per address.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer, client, error_of};
use ham_host::settings::AuthMode;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row as _;

async fn with_token(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn make_token(server: &TestServer, session: &mut Session, name: &str) -> Value {
    let (status, made) = session
        .json(
            server,
            Method::POST,
            "/api/me/tokens",
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_acts_as_its_user_on_user_routes_only_until_revoked() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut alice = Session::register(&server, "alice").await;
    let (status, _) = alice
        .json(
            &server,
            Method::POST,
            "/api/admin/users",
            Some(json!({"username": "bob", "password": "bob's password"})),
        )
        .await;
    assert_eq!(status, 201);
    let mut bob = Session::default();
    let (status, _) = bob
        .json(
            &server,
            Method::POST,
            "/api/auth/login",
            Some(json!({"username": "bob", "password": "bob's password"})),
        )
        .await;
    assert_eq!(status, 200);
    let made = make_token(&server, &mut alice, "Home Assistant").await;
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ham_") && token.len() == 47, "{token}");
    assert_eq!(made["name"], "Home Assistant");

    // Only the sha256 is stored.
    let rows = sqlx::query("SELECT id, name, token_hash FROM api_tokens")
        .fetch_all(server.state.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].get("token_hash");
    assert_eq!(stored, ham_host::auth::token_hash(&token));
    assert!(!stored.contains(&token[4..]));

    // A check-in through the token.
    let response = with_token(&server, &token, Method::GET, "/api/me", None).await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    let response = with_token(
        &server,
        &token,
        Method::POST,
        "/api/habits",
        Some(json!({"name": "Water plants", "kind": "boolean"})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let habit: Value = response.json().await.unwrap();
    let id = habit["id"].as_str().unwrap();
    let response = with_token(
        &server,
        &token,
        Method::PUT,
        &format!("/api/habits/{id}/entries/2026-03-01"),
        Some(json!({"status": "done"})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let (_, entries) = alice
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{id}/entries"),
            None,
        )
        .await;
    assert_eq!(entries["entries"][0]["status"], "done", "{entries}");

    // Not for admin routes (alice is the admin), nor for what needs the person.
    for (method, path, body) in [
        (Method::GET, "/api/admin/users", None),
        (Method::GET, "/api/admin/plugins", None),
        (Method::GET, "/api/me/tokens", None),
        (
            Method::POST,
            "/api/me/tokens",
            Some(json!({"name": "more"})),
        ),
        (
            Method::POST,
            "/api/me/password",
            Some(
                json!({"current_password": "alice-secret-pw", "new_password": "taken by a script"}),
            ),
        ),
        (
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": "alice-secret-pw"})),
        ),
    ] {
        let response = with_token(&server, &token, method.clone(), path, body).await;
        let (status, code, _) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "token_not_allowed"),
            "{method} {path}"
        );
    }

    // Nor does an admin's token create accounts through registration.
    let response = with_token(
        &server,
        &token,
        Method::POST,
        "/api/auth/register",
        Some(json!({"username": "carol", "password": "carol's password"})),
    )
    .await;
    assert_eq!(error_of(response).await.1, "registration_closed");
    // The list shows when it was used, never the secret.
    let (status, list) = alice
        .json(&server, Method::GET, "/api/me/tokens", None)
        .await;
    assert_eq!(status, 200);
    let listed = &list["tokens"][0];
    assert_eq!(listed["id"], made["id"]);
    assert!(listed["last_used_at"].is_string(), "{list}");
    assert!(listed.get("token").is_none() && !list.to_string().contains(&token));

    // bob can neither see nor revoke it.
    let (_, bobs) = bob.json(&server, Method::GET, "/api/me/tokens", None).await;
    assert_eq!(bobs["tokens"], json!([]));
    let path = format!("/api/me/tokens/{}", made["id"].as_str().unwrap());
    let (status, _) = bob.json(&server, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    let response = with_token(&server, &token, Method::GET, "/api/me", None).await;
    assert_eq!(response.status(), 200);

    // Revoked: refused at once.
    let (status, _) = alice.json(&server, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let response = with_token(&server, &token, Method::GET, "/api/me", None).await;
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (401, "invalid_token"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_behind_forward_auth_too() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.auth = AuthMode::ForwardAuth.into();
            s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .start()
        .await
        .unwrap();
    let as_lou = |request: reqwest::RequestBuilder| {
        request
            .header("X-authentik-uid", "uid-lou")
            .header("X-authentik-username", "lou")
    };
    let made: Value = as_lou(client().post(server.url("/api/me/tokens")))
        .json(&json!({"name": "script"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = made["token"].as_str().unwrap();
    // No proxy headers, only the token.
    let response = with_token(&server, token, Method::GET, "/api/me", None).await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "lou");
    // The token goes before the headers: it names its user whatever they say.
    let response = as_lou(client().get(server.url("/api/me")))
        .header("X-authentik-uid", "uid-someone-else")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "lou");
    // The account's password belongs to the proxy's identity provider.
    for (path, body) in [
        ("/api/me/delete", json!({"password": "whatever it is"})),
        (
            "/api/me/password",
            json!({"current_password": "whatever it is", "new_password": "something new"}),
        ),
    ] {
        let response = as_lou(client().post(server.url(path)))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_of(response).await;
        assert_eq!((status, code.as_str()), (400, "wrong_auth_mode"), "{path}");
    }
    // And a token cannot make another one here either.
    let response = with_token(
        &server,
        token,
        Method::POST,
        "/api/me/tokens",
        Some(json!({"name": "more"})),
    )
    .await;
    assert_eq!(error_of(response).await.1, "token_not_allowed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_limited_per_address() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut alice = Session::register(&server, "alice").await;
    let made = make_token(&server, &mut alice, "good").await;
    let good = made["token"].as_str().unwrap();
    // A script's parallel requests are never refused for each other.
    let parallel = (0..24).map(|_| with_token(&server, good, Method::GET, "/api/me", None));
    for response in futures::future::join_all(parallel).await {
        assert_eq!(response.status(), 200);
    }
    for n in 0..ham_host::auth::login::MAX_FAILURES_PER_USER_AT_ADDRESS {
        let guess = format!("ham_guess{n:038}");
        let response = with_token(&server, &guess, Method::GET, "/api/me", None).await;
        assert_eq!(response.status(), 401, "guess {n}");
    }
    let response = with_token(&server, "ham_one_more", Method::GET, "/api/habits", None).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(error_of(response).await.1, "too_many_attempts");
    // From this address even the right token waits; from another it works.
    let response = with_token(&server, good, Method::GET, "/api/me", None).await;
    assert_eq!(response.status(), 429);
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = elsewhere
        .get(server.url("/api/me"))
        .bearer_auth(good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Sessions are not touched by it.
    let (status, _) = alice.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(status, 200);
    server.stop().await;
}
