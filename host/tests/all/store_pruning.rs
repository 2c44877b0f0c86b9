//! Tables that grow with traffic are pruned: finished jobs (with the webhook
//! payloads they carry) past `HAM_JOB_RETENTION`, and expired sessions. Rows past
//! their retention go; recent ones, and jobs still to run, stay. On SQLite and
//! PostgreSQL.

use crate::common;

use std::time::Duration;

use common::session::Session;
use common::{Backend, TestServer};
use ham_host::store::jobs::NewJob;
use ham_host::store::now_ms;
use reqwest::Method;

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn pruning(backend: Backend) {
    let Some(server) = TestServer::builder(backend)
        .with(|s| {
            s.job_retention = Duration::from_secs(7 * 24 * 3600);
        })
        .start()
        .await
    else {
        return;
    };
    let state = &server.state;

    // Jobs in every state, some finished long ago, some recently.
    let jobs = [
        ("done-old", "done", 8 * DAY_MS),
        ("dead-old", "dead", 30 * DAY_MS),
        ("done-recent", "done", 6 * DAY_MS),
        ("dead-recent", "dead", DAY_MS),
        ("queued-old", "queued", 30 * DAY_MS),
        ("running-old", "running", 30 * DAY_MS),
    ];
    for (id, job_state, age) in jobs {
        state
            .db
            .enqueue_job(&NewJob {
                id,
                plugin: "nobody",
                user_id: None,
                kind: "event",
                payload: br#"{"owner_id": 1}"#,
                // Far in the future: no worker picks these up during the test.
                run_after: now_ms() + 365 * DAY_MS,
                max_attempts: 5,
            })
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(job_state)
            .bind(now_ms() - age)
            .bind(id)
            .execute(state.db.writer())
            .await
            .unwrap();
    }

    // Two sessions of one user: one expired yesterday, one current.
    let mut alice = Session::register(&server, "alice").await;
    let mut old = Session::default();
    let (status, _) = old
        .json(
            &server,
            Method::POST,
            "/api/auth/login",
            common::session::credentials("alice"),
        )
        .await;
    assert_eq!(status, 200);
    let sessions_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(state.db.pool())
        .await
        .unwrap();
    assert_eq!(sessions_before, 2);
    let old_token = old
        .cookie
        .as_deref()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    sqlx::query("UPDATE sessions SET expires_at = $1 WHERE token_hash = $2")
        .bind(now_ms() - DAY_MS)
        .bind(ham_host::auth::token_hash(&old_token))
        .execute(state.db.writer())
        .await
        .unwrap();

    // Two used done links: one whose day ended yesterday, one still valid.
    let alice_id: String = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
        .fetch_one(state.db.pool())
        .await
        .unwrap();
    let now_s = now_ms() / 1000;
    for (hash, expires_at) in [("expired", now_s - 24 * 3600), ("current", now_s + 3600)] {
        assert!(
            state
                .db
                .use_done_link(hash, &alice_id, expires_at)
                .await
                .unwrap()
        );
    }

    ham_host::jobs::prune(&state.job_workers()).await;

    let links: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM used_done_links")
        .fetch_all(state.db.pool())
        .await
        .unwrap();
    assert_eq!(links, ["current"]);

    // The test's own jobs (the bundled plugins' scheduled ticks come and go).
    let mut left: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs WHERE plugin = 'nobody'")
        .fetch_all(state.db.pool())
        .await
        .unwrap();
    left.sort();
    assert_eq!(
        left,
        ["dead-recent", "done-recent", "queued-old", "running-old"]
    );
    let sessions_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(state.db.pool())
        .await
        .unwrap();
    assert_eq!(sessions_after, 1);
    // The current session still signs alice in; the expired one does not.
    let (status, _) = alice.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(status, 200);
    let (status, _) = old.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn pruning_on_sqlite() {
    pruning(Backend::Sqlite).await;
}

#[tokio::test]
async fn pruning_on_postgres() {
    pruning(Backend::Postgres).await;
}
