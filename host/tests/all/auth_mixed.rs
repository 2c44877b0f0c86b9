//! `HAM_AUTH=forward-auth,local`: a trusted proxy's identity headers name the
//! user; any other request is known by its local session (or a personal API
//! token). Played over loopback with two source addresses: the trusted proxy is
//! `127.0.0.1`, and a client bound to `127.0.0.2` is a peer that is not one (a
//! LAN client, or someone forging the proxy's headers).

use crate::common;

use std::net::IpAddr;

use common::process::run_ham;
use common::session::credentials;
use common::{ADMIN_TOKEN, Backend, TestServer, error_of};
use serde_json::{Value, json};

async fn server() -> TestServer {
    TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.auth = "local,forward-auth".parse().unwrap();
            s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            s.admin_group = Some("ham-admins".into());
        })
        .start()
        .await
        .unwrap()
}

/// A client whose connections come from `ip` (a loopback address), with no
/// connection shared with any other client.
fn from(ip: [u8; 4]) -> reqwest::Client {
    let _ = common::client(); // installs the TLS provider every reqwest client needs
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

/// The trusted proxy.
fn proxy() -> reqwest::Client {
    from([127, 0, 0, 1])
}

/// A peer that is not a trusted proxy.
fn stranger() -> reqwest::Client {
    from([127, 0, 0, 2])
}

/// The proxy's identity headers for `user`.
fn as_user(request: reqwest::RequestBuilder, user: &str, groups: &str) -> reqwest::RequestBuilder {
    request
        .header("X-authentik-uid", format!("uid-{user}"))
        .header("X-authentik-username", user)
        .header("X-authentik-email", format!("{user}@example.org"))
        .header("X-authentik-groups", groups)
}

/// The status and, on success, the JSON body.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The session cookie (`name=value`) a response sets.
fn cookie_of(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn accounts(server: &TestServer, username: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(server.state.db.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_user_and_everyone_else_signs_in_locally() {
    let server = server().await;
    let url = |path: &str| server.url(path);

    // The LAN client is offered the sign-in form: local mode speaks for it.
    let (_, config) = answer(stranger().get(url("/api/auth/config"))).await;
    assert_eq!(
        config,
        json!({"mode": "local", "modes": ["forward-auth", "local"],
               "first_run": true, "open_registration": false})
    );
    // Through the proxy, with its headers, the proxy's mode speaks.
    let (_, config) = answer(as_user(
        proxy().get(url("/api/auth/config")),
        "alice",
        "users",
    ))
    .await;
    assert_eq!(config["mode"], "forward-auth");

    // First run from the LAN: the first account is the admin, and signed in.
    let registered = stranger()
        .post(url("/api/auth/register"))
        .json(&credentials("lan-admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let admin_cookie = cookie_of(&registered);
    let (status, me) = answer(
        stranger()
            .get(url("/api/me"))
            .header("cookie", &admin_cookie),
    )
    .await;
    assert_eq!(
        (status, me["username"].as_str(), me["is_admin"].as_bool()),
        (200, Some("lan-admin"), Some(true))
    );

    // The proxy's headers name their user, created on first sight.
    let (status, alice) = answer(as_user(proxy().get(url("/api/me")), "alice", "users")).await;
    assert_eq!((status, alice["username"].as_str()), (200, Some("alice")));
    let (_, boss) = answer(as_user(
        proxy().get(url("/api/me")),
        "boss",
        "users|ham-admins",
    ))
    .await;
    assert_eq!(boss["is_admin"], true);

    // The same headers from anyone else name no one and create no account.
    let (status, _) = answer(as_user(stranger().get(url("/api/me")), "alice", "users")).await;
    assert_eq!(status, 401);
    let (status, _) = answer(as_user(
        stranger().get(url("/api/me")),
        "mallory",
        "ham-admins",
    ))
    .await;
    assert_eq!(status, 401);
    assert_eq!(accounts(&server, "mallory").await, 0);
    let (status, _) = answer(as_user(
        stranger().get(url("/api/admin/users")),
        "boss",
        "ham-admins",
    ))
    .await;
    assert_eq!(status, 401, "forged admin headers open no admin route");
    // With a session, an untrusted peer is its session's user, whatever headers
    // it adds.
    let (_, me) = answer(as_user(
        stranger()
            .get(url("/api/me"))
            .header("cookie", &admin_cookie),
        "alice",
        "users",
    ))
    .await;
    assert_eq!(me["username"], "lan-admin");

    // Through the proxy without headers (a LAN route that skips the identity
    // provider): the session. With headers: the proxy's word.
    let (_, me) = answer(proxy().get(url("/api/me")).header("cookie", &admin_cookie)).await;
    assert_eq!(me["username"], "lan-admin");
    let (_, me) = answer(as_user(
        proxy().get(url("/api/me")).header("cookie", &admin_cookie),
        "alice",
        "users",
    ))
    .await;
    assert_eq!(me["id"], alice["id"]);

    // Local accounts work as in local mode: the admin creates one, it signs in,
    // signs out, and its session is gone.
    let created = stranger()
        .post(url("/api/admin/users"))
        .header("cookie", &admin_cookie)
        .json(&json!({"username": "bob", "password": "bob-own-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let login = stranger()
        .post(url("/api/auth/login"))
        .json(&credentials("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(login).await.0, 401, "wrong password");
    let login = stranger()
        .post(url("/api/auth/login"))
        .json(&json!({"username": "bob", "password": "bob-own-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let bob_cookie = cookie_of(&login);
    let habit = stranger()
        .post(url("/api/habits"))
        .header("cookie", &bob_cookie)
        .json(&json!({"name": "Read", "kind": "boolean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(habit.status(), 201);
    let (_, alices) = answer(as_user(proxy().get(url("/api/habits")), "alice", "users")).await;
    assert_eq!(alices, json!({"habits": []}), "bob's habit is his own");
    let logout = stranger()
        .post(url("/api/auth/logout"))
        .header("cookie", &bob_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let (status, _) = answer(stranger().get(url("/api/me")).header("cookie", &bob_cookie)).await;
    assert_eq!(status, 401, "signed out");

    // Personal API tokens, made by a local user or a proxy user, work from anywhere.
    for (who, made) in [
        (
            "lan-admin",
            stranger()
                .post(url("/api/me/tokens"))
                .header("cookie", &admin_cookie),
        ),
        (
            "alice",
            as_user(proxy().post(url("/api/me/tokens")), "alice", "users"),
        ),
    ] {
        let (status, made) = answer(made.json(&json!({"name": "script"}))).await;
        assert_eq!(status, 201, "{who}: {made}");
        let token = made["token"].as_str().unwrap();
        let (status, me) = answer(stranger().get(url("/api/me")).bearer_auth(token)).await;
        assert_eq!((status, me["username"].as_str()), (200, Some(who)));
    }
    server.stop().await;
}

/// One person, both routes: an admin sets a password on the account the proxy
/// made, and its owner signs in with it on the LAN as the same user, with the
/// same habits. The proxy's identity still finds that account by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_account_given_a_password_signs_in_on_the_lan_as_itself() {
    let server = server().await;
    let url = |path: &str| server.url(path);
    let (_, alice) = answer(as_user(proxy().get(url("/api/me")), "alice", "users")).await;
    let habit = as_user(proxy().post(url("/api/habits")), "alice", "users")
        .json(&json!({"name": "Stretch", "kind": "boolean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(habit.status(), 201);

    // No password yet: nobody signs in as alice locally.
    let login = stranger()
        .post(url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": "alice-lan-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(login).await.0, 401);

    let reset = stranger()
        .patch(url(&format!(
            "/api/admin/users/{}",
            alice["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"password": "alice-lan-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let login = stranger()
        .post(url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": "alice-lan-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = cookie_of(&login);
    let (_, me) = answer(stranger().get(url("/api/me")).header("cookie", &cookie)).await;
    assert_eq!(me["id"], alice["id"]);
    let (_, habits) = answer(stranger().get(url("/api/habits")).header("cookie", &cookie)).await;
    assert_eq!(habits["habits"][0]["name"], "Stretch");
    let (_, again) = answer(as_user(proxy().get(url("/api/me")), "alice", "users")).await;
    assert_eq!(again["id"], alice["id"]);
    server.stop().await;
}

/// A combination that makes no sense is refused before the server starts,
/// saying what is wrong: by the real binary, for the variable and the file alike.
#[tokio::test]
async fn nonsensical_mode_lists_stop_ham_at_start() {
    let cases = [
        (
            "forward-auth,oidc",
            "`forward-auth` cannot be combined with `oidc`",
        ),
        ("local,forward-auth,local", "`local` is named twice"),
        ("forward-auth,ldap", "`ldap` is not an identity mode"),
    ];
    for (modes, why) in cases {
        let (ok, out) = run_ham(&["config"], &[("HAM_AUTH", modes)]).await;
        assert!(!ok, "{modes}: {out}");
        assert!(
            out.contains(&format!("invalid HAM_AUTH: {why}")),
            "{modes}: {out}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ham.toml");
    std::fs::write(&file, "auth = [\"oidc\", \"forward-auth\"]\n").unwrap();
    let data_dir = dir.path().display().to_string();
    let (ok, out) = run_ham(
        &["--config", file.to_str().unwrap(), "serve"],
        &[("HAM_DATA_DIR", data_dir.as_str())],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("invalid `auth`")
            && out.contains("`oidc` cannot be combined with `forward-auth`"),
        "{out}"
    );
    let (ok, out) = run_ham(&["config"], &[("HAM_AUTH", "local, forward-auth")]).await;
    assert!(ok, "{out}");
    assert!(out.contains("auth = \"forward-auth,local\""), "{out}");
}
