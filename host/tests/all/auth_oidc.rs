//! `HAM_AUTH=oidc`: bearer JWTs checked against a local issuer's JWKS: signature,
//! `iss`, `aud`, `exp`; keys cached, and fetched again for an unknown `kid`.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TestServer, client};
use ham_host::settings::AuthMode;
use ring::signature::RsaKeyPair;
use serde_json::{Value, json};

const AUDIENCE: &str = "ham";

fn key(n: u8) -> RsaKeyPair {
    let der: &[u8] = match n {
        1 => include_bytes!("fixtures/oidc-test-key-1.der"),
        _ => include_bytes!("fixtures/oidc-test-key-2.der"),
    };
    RsaKeyPair::from_der(der).unwrap()
}

fn jwk(kid: &str, key: &RsaKeyPair) -> Value {
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": URL_SAFE_NO_PAD.encode(public.n), "e": URL_SAFE_NO_PAD.encode(public.e)})
}

fn token(kid: &str, key: &RsaKeyPair, claims: Value) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A local issuer: discovery document and JWKS, counting key fetches.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(vec![jwk("k1", &key(1))]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (jwks_keys, jwks_fetches, base) = (keys.clone(), fetches.clone(), url.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let base = base.clone();
                async move { Json(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")})) }
            }),
        )
        .route(
            "/jwks",
            get(move || {
                jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let keys = jwks_keys.lock().unwrap().clone();
                async move { Json(json!({ "keys": keys })) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Issuer { url, keys, fetches }
}

async fn me(server: &TestServer, token: &str) -> (u16, Value) {
    let response = client()
        .get(server.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_checked_against_the_issuer() {
    let issuer = issuer().await;
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.auth = AuthMode::Oidc.into();
            s.oidc_issuer = Some(issuer.url.clone());
            s.oidc_audience = Some(AUDIENCE.into());
            s.admin_group = Some("ham-admins".into());
        })
        .start()
        .await
        .unwrap();
    let claims = |overrides: Value| {
        let mut c = json!({"iss": issuer.url, "aud": AUDIENCE, "exp": now() + 300, "sub": "u-1", "preferred_username": "carol", "email": "carol@example.org", "groups": ["ham-admins"]});
        for (k, v) in overrides.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };

    // A valid token names the user, created on first sight.
    let (status, user) = me(&server, &token("k1", &key(1), claims(json!({})))).await;
    assert_eq!(
        (
            status,
            user["username"].as_str(),
            user["is_admin"].as_bool()
        ),
        (200, Some("carol"), Some(true))
    );
    let (status, _) = me(
        &server,
        &token("k1", &key(1), claims(json!({"aud": ["other", AUDIENCE]}))),
    )
    .await;
    assert_eq!(status, 200, "an audience list containing ours is accepted");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "keys are cached");

    // The issuer's `sub` identifies a person, `preferred_username` only names them:
    // another person called carol is someone else, and carol renamed is still carol.
    let (_, first) = me(&server, &token("k1", &key(1), claims(json!({})))).await;
    let (status, namesake) = me(
        &server,
        &token("k1", &key(1), claims(json!({"sub": "u-3", "groups": []}))),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(namesake["id"], first["id"]);
    assert_eq!(namesake["username"], "carol-2");
    let (_, renamed) = me(
        &server,
        &token(
            "k1",
            &key(1),
            claims(json!({"preferred_username": "caroline"})),
        ),
    )
    .await;
    assert_eq!(renamed["id"], first["id"]);

    // Refused: expired, wrong audience, wrong issuer, tampered, wrong key, not a JWT.
    let valid = token("k1", &key(1), claims(json!({})));
    let mut parts: Vec<&str> = valid.split('.').collect();
    let forged_payload =
        URL_SAFE_NO_PAD.encode(claims(json!({"preferred_username": "mallory"})).to_string());
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    for (what, bad, reason) in [
        (
            "expired",
            token("k1", &key(1), claims(json!({"exp": now() - 3600}))),
            "expired",
        ),
        (
            "audience",
            token("k1", &key(1), claims(json!({"aud": "someone-else"}))),
            "audience",
        ),
        (
            "issuer",
            token(
                "k1",
                &key(1),
                claims(json!({"iss": "https://evil.example"})),
            ),
            "issuer",
        ),
        ("tampered", tampered, "signature"),
        (
            "signed by another key",
            token("k1", &key(2), claims(json!({}))),
            "signature",
        ),
        ("not a JWT", "abc".to_string(), "not a JWT"),
    ] {
        let (status, error) = me(&server, &bad).await;
        assert_eq!(status, 401, "{what}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{what}: {message}");
    }
    assert_eq!(
        client()
            .get(server.url("/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "no token, no user"
    );

    // Key rotation: a token with a new kid makes the host fetch the keys again.
    issuer.keys.lock().unwrap().push(jwk("k2", &key(2)));
    tokio::time::sleep(std::time::Duration::from_secs(10)).await; // past the refresh floor
    let (status, user) = me(
        &server,
        &token(
            "k2",
            &key(2),
            claims(json!({"sub": "u-2", "preferred_username": "dave", "groups": []})),
        ),
    )
    .await;
    assert_eq!(
        (
            status,
            user["username"].as_str(),
            user["is_admin"].as_bool()
        ),
        (200, Some("dave"), Some(false))
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);

    // The admin token still opens admin routes in this mode.
    let admin = client()
        .get(server.url("/api/admin/plugins"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    server.stop().await;
}

/// A personal API token made with an OIDC bearer token acts as the same user,
/// without the identity provider, until it is revoked; it cannot make another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_api_token_works_in_oidc_mode() {
    let issuer = issuer().await;
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.auth = AuthMode::Oidc.into();
            s.oidc_issuer = Some(issuer.url.clone());
            s.oidc_audience = Some(AUDIENCE.into());
        })
        .start()
        .await
        .unwrap();
    let jwt = token(
        "k1",
        &key(1),
        json!({"iss": issuer.url, "aud": AUDIENCE, "exp": now() + 300, "sub": "u-9", "preferred_username": "dana"}),
    );
    let call = |bearer: &str, method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client()
            .request(method, server.url(path))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let response = call(
        &jwt,
        reqwest::Method::POST,
        "/api/me/tokens",
        Some(json!({"name": "shortcut"})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let made: Value = response.json().await.unwrap();
    let ham = made["token"].as_str().unwrap().to_string();
    assert!(ham.starts_with("ham_"), "{ham}");

    // The token is dana, and checks a habit in for her.
    let (status, user) = me(&server, &ham).await;
    assert_eq!((status, user["username"].as_str()), (200, Some("dana")));
    let habit: Value = call(
        &jwt,
        reqwest::Method::POST,
        "/api/habits",
        Some(json!({"name": "Stretch", "kind": "boolean"})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let today = user["today"].as_str().unwrap();
    let path = format!(
        "/api/habits/{}/entries/{today}",
        habit["id"].as_str().unwrap()
    );
    let response = call(
        &ham,
        reqwest::Method::PUT,
        &path,
        Some(json!({"status": "done"})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);

    // It cannot mint another token; revoked, it is refused.
    let response = call(
        &ham,
        reqwest::Method::POST,
        "/api/me/tokens",
        Some(json!({"name": "more"})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    let response = call(
        &jwt,
        reqwest::Method::DELETE,
        &format!("/api/me/tokens/{}", made["id"].as_str().unwrap()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = me(&server, &ham).await;
    assert_eq!(status, 401);
    server.stop().await;
}
