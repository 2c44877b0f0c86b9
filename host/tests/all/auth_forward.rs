//! `HAM_AUTH=forward-auth`: Authentik's headers name the user, believed only from
//! trusted proxy addresses.

use crate::common;

use common::{Backend, TestServer, client};
use ham_host::settings::AuthMode;
use serde_json::{Value, json};

async fn server(trusted: &str) -> TestServer {
    TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.auth = AuthMode::ForwardAuth.into();
            s.trusted_proxies = vec![trusted.parse().unwrap()];
            s.admin_group = Some("ham-admins".into());
        })
        .start()
        .await
        .unwrap()
}

fn as_user(request: reqwest::RequestBuilder, user: &str, groups: &str) -> reqwest::RequestBuilder {
    request
        .header("X-authentik-uid", format!("uid-{user}"))
        .header("X-authentik-username", user)
        .header("X-authentik-email", format!("{user}@example.org"))
        .header("X-authentik-groups", groups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_from_a_trusted_proxy_name_the_user() {
    // The test client connects from 127.0.0.1, which is the trusted proxy here.
    let server = server("127.0.0.0/8").await;
    let me: Value = as_user(
        client().get(server.url("/api/me")),
        "akadmin",
        "users|ham-admins",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        (me["username"].as_str(), me["is_admin"].as_bool()),
        (Some("akadmin"), Some(true))
    );
    assert_eq!(me["email"], "akadmin@example.org");

    // Created once, then found again; group changes follow the proxy.
    let again: Value = as_user(client().get(server.url("/api/me")), "akadmin", "users")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (again["id"].clone(), again["is_admin"].as_bool()),
        (me["id"].clone(), Some(false))
    );

    // The forwarded user works like any other.
    let habit = as_user(client().post(server.url("/api/habits")), "alice", "users")
        .json(&json!({"name": "Stretch", "kind": "boolean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(habit.status(), 201);
    let bobs: Value = as_user(client().get(server.url("/api/habits")), "bob", "users")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bobs, json!({"habits": []}));

    // No header: no user. Local accounts are off.
    assert_eq!(
        client()
            .get(server.url("/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let register = client()
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "eve", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_from_anyone_else_are_ignored() {
    // Only 10.0.0.0/8 is trusted; the test client (127.0.0.1) is not.
    let server = server("10.0.0.0/8").await;
    let forged = as_user(client().get(server.url("/api/me")), "akadmin", "ham-admins")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let forged = as_user(
        client().get(server.url("/api/admin/plugins")),
        "akadmin",
        "ham-admins",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        forged.status(),
        401,
        "forged admin headers must not open admin routes"
    );
    server.stop().await;
}

/// A route a plugin claims with `auth = "none"` (a webhook) is exposed by the
/// proxy without authentication, so identity headers on it came from the client:
/// they name no one and create no account, while the same headers on a `user`
/// route (through the proxy's authentication) do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_on_an_unauthenticated_route_name_no_one() {
    let server = server("127.0.0.0/8").await;
    let extra = "routes = [{ path = \"/api/hook/*\", methods = [\"POST\"], auth = \"none\" }, \
                 { path = \"/api/private/*\", methods = [\"GET\"] }]";
    server
        .install(
            "probe",
            &common::probe_manifest("probe", "0.1.0", "x", extra),
            common::guest("probe"),
        )
        .await;
    let accounts = |name: &'static str| {
        let db = server.state.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE username = $1")
                .bind(name)
                .fetch_one(db.pool())
                .await
                .unwrap()
        }
    };

    // The request reaches the plugin (the probe knows no such path: its 404).
    let forged = as_user(
        client().post(server.url("/api/hook/event")),
        "mallory",
        "ham-admins",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(forged.status(), 404);
    assert_eq!(forged.text().await.unwrap(), "no such probe\n");
    assert_eq!(
        accounts("mallory").await,
        0,
        "no account from a webhook route"
    );

    let authenticated = as_user(
        client().get(server.url("/api/private/page")),
        "alice",
        "users",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(authenticated.status(), 404);
    assert_eq!(accounts("alice").await, 1);
    let anonymous = client()
        .get(server.url("/api/private/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    server.stop().await;
}

/// The proxy's user id identifies a person; the username is only what they are
/// called. Two people with one name get two accounts; an account from before ids
/// were kept is carried over to the first id presenting its name; a local
/// account with a password is never taken over by an identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_id_identifies_and_the_name_is_only_a_name() {
    let server = server("127.0.0.0/8").await;
    let db = &server.state.db;
    let person = |uid: &str, name: &str, request: reqwest::RequestBuilder| {
        request
            .header("X-authentik-uid", uid)
            .header("X-authentik-username", name)
            .header("X-authentik-email", format!("{name}@example.org"))
    };
    let me = |uid: &'static str, name: &'static str| {
        let request = person(uid, name, client().get(server.url("/api/me")));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };

    // Two people called "sam".
    let first = me("uid-a", "sam").await;
    let second = me("uid-b", "sam").await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["username"], "sam");
    assert_eq!(second["username"], "sam-2");
    let created = person("uid-a", "sam", client().post(server.url("/api/habits")))
        .json(&json!({"name": "Only mine", "kind": "boolean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let theirs: Value = person("uid-b", "sam", client().get(server.url("/api/habits")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!({"habits": []}));
    // A renamed person keeps their account.
    assert_eq!(me("uid-a", "samantha").await["id"], first["id"]);

    // An account kept by name before ids (as migration 0009 marks them) goes to the
    // first id that presents that name, with its data; the next is someone else.
    db.create_user("legacy-id", "dora", None, false)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE users SET identity_issuer = 'legacy-name', identity_subject = 'dora' WHERE id = 'legacy-id'",
    )
    .execute(db.writer())
    .await
    .unwrap();
    assert_eq!(me("uid-dora", "dora").await["id"], "legacy-id");
    assert_eq!(me("uid-dora", "dora").await["id"], "legacy-id");
    let other = me("uid-not-dora", "dora").await;
    assert_ne!(other["id"], "legacy-id");
    assert_eq!(other["username"], "dora-2");

    // A local account with a password is never matched by a name from the proxy.
    db.create_user(
        "local-id",
        "lou",
        Some("$argon2id$v=19$a-password-hash"),
        true,
    )
    .await
    .unwrap();
    let lou = me("uid-lou", "lou").await;
    assert_ne!(lou["id"], "local-id");
    assert_eq!(
        (lou["username"].as_str(), lou["is_admin"].as_bool()),
        (Some("lou-2"), Some(false))
    );

    // A username without the id header signs no one in.
    let nameless = client()
        .get(server.url("/api/me"))
        .header("X-authentik-username", "sam")
        .send()
        .await
        .unwrap();
    assert_eq!(nameless.status(), 401);
    server.stop().await;
}
