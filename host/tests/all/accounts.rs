//! Accounts: a user changes their password or deletes their account; an admin
//! lists, creates, promotes, resets and deletes users. Played against a real
//! server, with the attacks beside the stories: another user's account through
//! `/api/me`, a forged session, guessing the password through the password
//! routes, and a deletion that must leave nothing of the user behind (counted
//! table by table on SQLite and PostgreSQL) and tell Strava.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fake_strava::{FakeStrava, pending_jobs};
use common::llm::user_id;
use common::process::until;
use common::session::{Session, credentials};
use common::{ADMIN_TOKEN, Backend, TestServer, client, error_of};
use ham_host::settings::Secret;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Row as _;

async fn login(server: &TestServer, username: &str, password: &str) -> (StatusCode, Session) {
    let mut session = Session::default();
    let (status, _) = session
        .json(
            server,
            Method::POST,
            "/api/auth/login",
            Some(json!({"username": username, "password": password})),
        )
        .await;
    (status, session)
}

fn password_of(username: &str) -> String {
    credentials(username).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn me_status(server: &TestServer, session: &mut Session) -> StatusCode {
    session.json(server, Method::GET, "/api/me", None).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_the_other_sessions_and_keeps_this_one() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut phone = Session::register(&server, "alice").await;
    let (status, mut laptop) = login(&server, "alice", &password_of("alice")).await;
    assert_eq!(status, 200);

    // Registration's rules hold for the new password.
    let (status, body) = phone
        .json(
            &server,
            Method::POST,
            "/api/me/password",
            Some(json!({"current_password": password_of("alice"), "new_password": "short"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("new_password")
    );

    let (status, body) = phone
        .json(
            &server,
            Method::POST,
            "/api/me/password",
            Some(json!({"current_password": password_of("alice"), "new_password": "a brand new password"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        me_status(&server, &mut phone).await,
        200,
        "this session stays"
    );
    assert_eq!(
        me_status(&server, &mut laptop).await,
        401,
        "the other one is gone"
    );
    assert_eq!(login(&server, "alice", &password_of("alice")).await.0, 401);
    assert_eq!(login(&server, "alice", "a brand new password").await.0, 200);

    // Without a session, or with a forged one: 401, nothing changes.
    for cookie in [None, Some("ham_session=forged".to_string())] {
        let mut nobody = Session { cookie };
        let (status, _) = nobody
            .json(
                &server,
                Method::POST,
                "/api/me/password",
                Some(json!({"current_password": "a brand new password", "new_password": "taken over!"})),
            )
            .await;
        assert_eq!(status, 401);
        let (status, _) = nobody
            .json(
                &server,
                Method::POST,
                "/api/me/delete",
                Some(json!({"password": "a brand new password"})),
            )
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(login(&server, "alice", "a brand new password").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_current_password_is_refused_and_counted_as_a_failed_login() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut alice = Session::register(&server, "alice").await;
    let guess = |n: usize| json!({"current_password": format!("guess number {n}"), "new_password": "hijacked password"});
    for n in 0..ham_host::auth::login::MAX_FAILURES_PER_USER_AT_ADDRESS {
        let response = alice
            .send(&server, Method::POST, "/api/me/password", Some(guess(n)))
            .await;
        let (status, code, _) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "wrong_password"),
            "guess {n}"
        );
    }
    // The budget is the login form's: spent here, spent there.
    let response = alice
        .send(&server, Method::POST, "/api/me/password", Some(guess(99)))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    let response = alice
        .send(
            &server,
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": password_of("alice")})),
        )
        .await;
    assert_eq!(
        error_of(response).await.0,
        429,
        "even the right password waits"
    );
    assert_eq!(login(&server, "alice", &password_of("alice")).await.0, 429);
    // Nothing changed: the password is the old one, the account is there.
    assert_eq!(me_status(&server, &mut alice).await, 200);
    let id = user_id(&server, &mut alice).await;
    let stored = server.state.db.password_hash(&id).await.unwrap().unwrap();
    assert!(stored.starts_with("$argon2id$"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_and_the_last_admin_stays() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut root = Session::register(&server, "root").await;
    let root_id = user_id(&server, &mut root).await;

    let (status, created) = root
        .json(
            &server,
            Method::POST,
            "/api/admin/users",
            Some(json!({"username": "bob", "password": "bob's password", "is_admin": false})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["username"], "bob");
    assert_eq!(created["is_admin"], false);
    assert!(
        created["created"].as_str().unwrap().ends_with('Z'),
        "{created}"
    );
    let bob_id = created["id"].as_str().unwrap().to_string();
    let (status, _) = root
        .json(
            &server,
            Method::POST,
            "/api/admin/users",
            Some(json!({"username": "bob", "password": "another password"})),
        )
        .await;
    assert_eq!(status, 409);
    for bad in [
        json!({"username": "Bob!", "password": "long enough"}),
        json!({"username": "carol", "password": "short"}),
    ] {
        let (status, _) = root
            .json(&server, Method::POST, "/api/admin/users", Some(bad))
            .await;
        assert_eq!(status, 422);
    }
    let (status, list) = root
        .json(&server, Method::GET, "/api/admin/users", None)
        .await;
    assert_eq!(status, 200);
    let names: Vec<(&str, bool)> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap(),
                u["is_admin"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("bob", false), ("root", true)]);

    // A non-admin is refused every admin route, the old ones included.
    let (status, mut bob) = login(&server, "bob", "bob's password").await;
    assert_eq!(status, 200);
    for (method, path, body) in [
        (Method::GET, "/api/admin/users".to_string(), None),
        (
            Method::POST,
            "/api/admin/users".to_string(),
            Some(json!({"username": "mallory", "password": "mallory's pw"})),
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{bob_id}"),
            Some(json!({"is_admin": true})),
        ),
        (Method::DELETE, format!("/api/admin/users/{root_id}"), None),
        (Method::GET, "/api/admin/plugins".to_string(), None),
        (Method::GET, "/api/admin/jobs".to_string(), None),
    ] {
        let response = bob.send(&server, method.clone(), &path, body).await;
        let (status, code, _) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "not_admin"),
            "{method} {path}"
        );
    }
    // Nobody signed in: 401.
    let response = client()
        .get(server.url("/api/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The only admin cannot be demoted nor deleted, by anyone.
    let response = root
        .send(
            &server,
            Method::PATCH,
            &format!("/api/admin/users/{root_id}"),
            Some(json!({"is_admin": false})),
        )
        .await;
    assert_eq!(error_of(response).await.1, "last_admin");
    let response = client()
        .delete(server.url(&format!("/api/admin/users/{root_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (409, "last_admin"));
    let response = root
        .send(
            &server,
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": password_of("root")})),
        )
        .await;
    assert_eq!(error_of(response).await.1, "last_admin");
    assert_eq!(me_status(&server, &mut root).await, 200);

    // Promote bob; then root may step down.
    let (status, bob_view) = root
        .json(
            &server,
            Method::PATCH,
            &format!("/api/admin/users/{bob_id}"),
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(
        (status, bob_view["is_admin"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, _) = root
        .json(
            &server,
            Method::PATCH,
            &format!("/api/admin/users/{root_id}"),
            Some(json!({"is_admin": false})),
        )
        .await;
    assert_eq!(status, 200);

    // A reset signs the user out everywhere; the new password works.
    let (status, _) = bob
        .json(
            &server,
            Method::PATCH,
            &format!("/api/admin/users/{root_id}"),
            Some(json!({"password": "reset by bob"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(me_status(&server, &mut root).await, 401);
    let (status, mut root) = login(&server, "root", "reset by bob").await;
    assert_eq!(status, 200);
    let (status, _) = bob
        .json(
            &server,
            Method::PATCH,
            "/api/admin/users/no-such-user",
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = bob
        .json(
            &server,
            Method::DELETE,
            "/api/admin/users/no-such-user",
            None,
        )
        .await;
    assert_eq!(status, 404);

    // bob deletes root, who is signed out for good.
    let (status, _) = bob
        .json(
            &server,
            Method::DELETE,
            &format!("/api/admin/users/{root_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(me_status(&server, &mut root).await, 401);
    assert_eq!(login(&server, "root", "reset by bob").await.0, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_me_routes_act_only_on_the_signed_in_user() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| s.open_registration = true)
        .start()
        .await
        .unwrap();
    let _admin = Session::register(&server, "admin").await;
    let mut alice = Session::register(&server, "alice").await;
    let mut bob = Session::register(&server, "bob").await;
    // bob, with alice's password, still only reaches his own account: his own
    // password is what is checked, and it is not hers.
    for (path, body) in [
        ("/api/me/delete", json!({"password": password_of("alice")})),
        (
            "/api/me/password",
            json!({"current_password": password_of("alice"), "new_password": "bob took it"}),
        ),
    ] {
        let response = bob.send(&server, Method::POST, path, Some(body)).await;
        assert_eq!(error_of(response).await.1, "wrong_password", "{path}");
    }
    // Unknown fields (another user's id) are refused, not ignored.
    let alice_id = user_id(&server, &mut alice).await;
    let (status, _) = bob
        .json(
            &server,
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": password_of("bob"), "user_id": alice_id})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(me_status(&server, &mut alice).await, 200);
    assert_eq!(me_status(&server, &mut bob).await, 200);
    let bobs_cookie = bob.cookie.clone();
    // bob deletes himself: alice is untouched, bob's cookie is cleared and dead.
    let response = bob
        .send(
            &server,
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": password_of("bob")})),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(me_status(&server, &mut alice).await, 200);
    assert_eq!(bob.cookie, None, "the cookie is cleared");
    let mut old_bob = Session {
        cookie: bobs_cookie,
    };
    assert_eq!(me_status(&server, &mut old_bob).await, 401);
    assert_eq!(login(&server, "bob", &password_of("bob")).await.0, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_leaves_nothing_of_theirs_and_disconnects_strava_on_sqlite() {
    deletion_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_leaves_nothing_of_theirs_and_disconnects_strava_on_postgres() {
    deletion_story(Backend::Postgres).await;
}

/// Rows per table that belong to `user`: every table with a `user_id` column
/// (found in the schema, so a new table is counted too), entries and reminders
/// through their habits, plugin storage by owner.
async fn rows_of(server: &TestServer, user: &str) -> BTreeMap<String, i64> {
    let pool = server.state.db.pool();
    let tables_sql = match server.state.db.backend() {
        ham_host::store::Backend::Sqlite => {
            "SELECT m.name AS name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name = 'user_id' ORDER BY m.name"
        }
        ham_host::store::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name = 'user_id' ORDER BY table_name"
        }
    };
    let tables: Vec<String> = sqlx::query(tables_sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    assert!(tables.len() >= 8, "{tables:?}");
    let mut queries: Vec<(String, String)> = tables
        .into_iter()
        .map(|table| {
            let sql =
                format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table} WHERE user_id = $1");
            (table, sql)
        })
        .collect();
    for table in ["entries", "habit_reminders"] {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table} \
             WHERE habit_id IN (SELECT id FROM habits WHERE user_id = $1)"
        );
        queries.push((table.to_string(), sql));
    }
    queries.push((
        "plugin_kv".into(),
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM plugin_kv WHERE owner = $1".into(),
    ));
    queries.push((
        "users".into(),
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users WHERE id = $1".into(),
    ));
    let mut counts = BTreeMap::new();
    for (label, sql) in queries {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .fetch_one(pool)
            .await
            .unwrap()
            .get("n");
        counts.insert(label, n);
    }
    counts
}

/// Gives `user` a row in every table that holds users' rows: through the API
/// where there is a route, by hand where only plugins or the host write.
async fn seed(server: &TestServer, session: &mut Session, user: &str) {
    let (status, habit) = session
        .json(
            server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Stretch", "kind": "boolean", "reminders": [{"time": "07:30"}]})),
        )
        .await;
    assert_eq!(status, 201, "{habit}");
    let id = habit["id"].as_str().unwrap();
    let (status, _) = session
        .json(
            server,
            Method::PUT,
            &format!("/api/habits/{id}/entries/2026-01-05"),
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = session
        .json(
            server,
            Method::PUT,
            "/api/me/notifications",
            Some(json!({"channels": [{"kind": "ntfy", "url": "https://ntfy.sh/ham-test", "token": "tk"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = session
        .json(
            server,
            Method::POST,
            "/api/me/tokens",
            Some(json!({"name": "script"})),
        )
        .await;
    assert_eq!(status, 201);
    let pool = server.state.db.writer();
    let statements = [
        "INSERT INTO activities (id, user_id, source, external_id, sport_type, name, start_utc, start_local, updated_at) \
         VALUES ($1 || '-a', $1, 'test', $1, 'Run', 'Run', 0, '2026-01-01T07:00:00', 0)",
        "INSERT INTO jobs (id, plugin, user_id, kind, payload, state, attempts, max_attempts, run_after, created_at, updated_at) \
         VALUES ($1 || '-j', 'coach', $1, 'x', '', 'done', 1, 1, 0, 0, 0)",
        "INSERT INTO llm_usage (user_id, day, provider, model, updated_at) VALUES ($1, '2026-01-01', 'fake', 'm', 0)",
        "INSERT INTO llm_budget (user_id, day, updated_at) VALUES ($1, '2026-01-01', 0)",
        "INSERT INTO used_done_links (token_hash, user_id, expires_at, used_at) VALUES ($1 || '-l', $1, 0, 0)",
    ];
    for sql in statements {
        sqlx::query(sql).bind(user).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO plugin_kv (plugin, owner, key, value, size, revision) \
         VALUES ('coach', $1, 'conversation/1', $2, 5, 1)",
    )
    .bind(user)
    .bind(b"hello".to_vec())
    .execute(pool)
    .await
    .unwrap();
}

async fn deletion_story(backend: Backend) {
    let fake = FakeStrava::start().await;
    let Some(server) = TestServer::builder(backend)
        .with(|s| {
            s.open_registration = true;
            s.job_backoff_ms = 50;
            for (name, value) in fake.plugin_env() {
                s.plugin_env.insert(name, Secret::new(value));
            }
        })
        .start()
        .await
    else {
        return;
    };
    let mut admin = Session::register(&server, "admin").await;
    let mut bob = Session::register(&server, "bob").await;
    let mut carol = Session::register(&server, "carol").await;
    let ids = [
        user_id(&server, &mut admin).await,
        user_id(&server, &mut bob).await,
        user_id(&server, &mut carol).await,
    ];
    for (session, id) in [&mut admin, &mut bob, &mut carol].into_iter().zip(&ids) {
        seed(&server, session, id).await;
    }
    // bob's Strava: tokens in his plugin storage, a link at Strava.
    fake.connect(&server.url, bob.cookie.as_deref().unwrap())
        .await;
    until(Duration::from_secs(30), "the first sync", || async {
        (pending_jobs(&server).await == 0).then_some(())
    })
    .await;
    assert_eq!(fake.tokens().len(), 2);

    let mut before = Vec::new();
    for id in &ids {
        let rows = rows_of(&server, id).await;
        for (table, n) in &rows {
            assert!(
                *n > 0,
                "the test gives every user a row in {table}: {rows:?}"
            );
        }
        before.push(rows);
    }

    // The admin deletes bob: Strava is told first, then every row goes.
    let (status, body) = admin
        .json(
            &server,
            Method::DELETE,
            &format!("/api/admin/users/{}", ids[1]),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        fake.deauthorized(),
        1,
        "Strava was asked to revoke bob's tokens"
    );
    assert!(
        fake.tokens().is_empty(),
        "bob's tokens are revoked at Strava"
    );
    // carol deletes herself, after a wrong password that changes nothing.
    let response = carol
        .send(
            &server,
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": "not carol's"})),
        )
        .await;
    assert_eq!(error_of(response).await.1, "wrong_password");
    assert_eq!(rows_of(&server, &ids[2]).await, before[2]);
    let (status, _) = carol
        .json(
            &server,
            Method::POST,
            "/api/me/delete",
            Some(json!({"password": password_of("carol")})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(fake.deauthorized(), 1, "carol had no Strava connection");

    for gone in &ids[1..] {
        let rows = rows_of(&server, gone).await;
        assert!(
            rows.values().all(|n| *n == 0),
            "{backend:?}: left behind: {rows:?}"
        );
    }
    assert_eq!(
        rows_of(&server, &ids[0]).await,
        before[0],
        "the admin's rows are untouched"
    );
    assert_eq!(me_status(&server, &mut admin).await, 200);
    let (_, list) = admin
        .json(&server, Method::GET, "/api/admin/users", None)
        .await;
    assert_eq!(list["users"].as_array().unwrap().len(), 1, "{list}");
    server.stop().await;
}
