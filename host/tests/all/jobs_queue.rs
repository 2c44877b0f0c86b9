//! Durable jobs: run, retried with backoff, dead after their attempts, requeued by
//! an admin, taken over after a lease expires, and shared by two host processes
//! on one PostgreSQL with each job run exactly once.

use crate::common;

use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Backend, TestServer, client, guest, probe_manifest};
use serde_json::{Value, json};

/// Fast retries and short leases, for a story that waits on them.
fn job_settings(s: &mut ham_host::settings::Settings) {
    s.job_backoff_ms = 50;
    s.job_max_attempts = 3;
    s.job_lease_ms = 1500;
}

async fn enqueue(server: &TestServer, kind: &str, payload: &str, cookie: Option<&str>) -> String {
    let mut request = client().get(server.url(&format!(
        "/plugins/probe/jobs/enqueue?kind={kind}&payload={payload}"
    )));
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn job(server: &TestServer, id: &str) -> Value {
    common::admin_jobs(&server.url)
        .await
        .into_iter()
        .find(|j| j["id"] == id)
        .unwrap_or(Value::Null)
}

/// Polls until the job reaches `state`, for at most 15 s.
async fn until_state(server: &TestServer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let j = job(server, id).await;
        if j["state"] == state {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} is {j}, want {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(server: &TestServer, payload: &str) -> String {
    server
        .get_text(&format!("/plugins/probe/kv/plugin/count/{payload}"))
        .await
        .1
}

async fn jobs_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend)
        .with(job_settings)
        .start()
        .await
    else {
        return;
    };
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "j", ""),
            guest("probe"),
        )
        .await;

    // A job runs once and succeeds.
    let id = enqueue(&server, "count", "a", None).await;
    let done = until_state(&server, &id, "done").await;
    assert_eq!(
        (
            done["attempts"].as_i64(),
            done["plugin"].as_str(),
            done["user_id"].clone()
        ),
        (Some(1), Some("probe"), Value::Null)
    );
    assert_eq!(count(&server, "a").await, "1\n1");

    // Retries until it succeeds.
    let id = enqueue(&server, "flaky", "", None).await;
    assert_eq!(until_state(&server, &id, "done").await["attempts"], 3);

    // Dead after its attempts, with the last error; backoff spaces the attempts.
    let started = Instant::now();
    let id = enqueue(&server, "broken", "", None).await;
    let dead = until_state(&server, &id, "dead").await;
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "50 ms then 100 ms of backoff, less jitter"
    );
    assert_eq!(
        (dead["attempts"].as_i64(), dead["last_error"].as_str()),
        (Some(3), Some("boom"))
    );
    let listed: Value = client()
        .get(server.url("/api/admin/jobs?state=dead"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "dead")
    );
    // An admin requeues it; it runs its attempts again.
    let retry = client()
        .post(server.url(&format!("/api/admin/jobs/{id}/retry")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    until_state(&server, &id, "dead").await;
    let done_id = enqueue(&server, "count", "b", None).await;
    until_state(&server, &done_id, "done").await;
    let refused = client()
        .post(server.url(&format!("/api/admin/jobs/{done_id}/retry")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let missing = client()
        .post(server.url("/api/admin/jobs/nope/retry"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client()
        .get(server.url("/api/admin/jobs?state=lost"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    // A job that gives up is dead at once.
    let id = enqueue(&server, "fatal", "", None).await;
    let dead = until_state(&server, &id, "dead").await;
    assert_eq!(
        (dead["attempts"].as_i64(), dead["last_error"].as_str()),
        (Some(1), Some("nope"))
    );

    // A requested delay (a rate limit) does not use an attempt.
    let id = enqueue(&server, "later", "", None).await;
    assert_eq!(until_state(&server, &id, "done").await["attempts"], 1);

    // A job whose host died mid-run (running, lease expired) is taken over.
    let orphan = "orphan-job";
    let now = ham_host::store::now_ms();
    sqlx::query(
        "INSERT INTO jobs (id, plugin, user_id, kind, payload, state, attempts, max_attempts, run_after, lease_until, created_at, updated_at) \
         VALUES ($1, 'probe', NULL, 'count', $2, 'running', 1, 3, $3, $4, $3, $3)",
    )
    .bind(orphan)
    .bind(b"orphan".to_vec())
    .bind(now - 10_000)
    .bind(now - 1)
    .execute(server.state.db.pool())
    .await
    .unwrap();
    assert_eq!(until_state(&server, orphan, "done").await["attempts"], 2);
    assert_eq!(count(&server, "orphan").await, "1\n1");

    // A job queued by a signed-in user runs for that user.
    let register = client()
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "alice", "password": "alice-secret-pw"}))
        .send()
        .await
        .unwrap();
    let cookie = register.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: Value = register.json().await.unwrap();
    let id = enqueue(&server, "count", "u", Some(&cookie)).await;
    assert_eq!(until_state(&server, &id, "done").await["user_id"], me["id"]);
    let ran = client()
        .get(server.url("/plugins/probe/kv/user/job-ran"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ran.text().await.unwrap(), "1\nyes");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_sqlite() {
    jobs_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_postgres() {
    jobs_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_on_one_postgres_run_each_job_once() {
    let Some(a) = TestServer::builder(Backend::Postgres)
        .with(job_settings)
        .start()
        .await
    else {
        return;
    };
    // Every minute is a slot; both hosts' schedulers see it.
    let every_minute = "schedule = [{ cron = \"* * * * *\", job = \"count\" }]";
    a.install(
        "probe",
        &probe_manifest("probe", "0.1.0", "j", every_minute),
        guest("probe"),
    )
    .await;
    let b = TestServer::builder(Backend::Postgres)
        .sharing_database_of(&a)
        .with(job_settings)
        .start()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        ids.push(enqueue(server, "count", &format!("p{i}"), None).await);
    }
    for id in &ids {
        until_state(&a, id, "done").await;
    }
    for i in 0..40 {
        assert_eq!(
            count(&a, &format!("p{i}")).await,
            "1\n1",
            "job p{i} must run exactly once"
        );
    }

    // The scheduled slot was queued once, not once per host, and ran once.
    let scheduled = || async {
        common::admin_jobs(&a.url)
            .await
            .into_iter()
            .filter(|j| {
                j["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("schedule:probe:count:")
            })
            .collect::<Vec<_>>()
    };
    // Polled, as a new minute may open a new slot meanwhile: all slots done and
    // the counter equal to their number.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let slots = scheduled().await;
        let ran = count(&a, "").await;
        let done = !slots.is_empty() && slots.iter().all(|j| j["state"] == "done");
        if done && ran == format!("{0}\n{0}", slots.len()) {
            assert!(slots.len() <= 2, "one job per minute slot, got {slots:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scheduled jobs: {slots:?}, counter {ran}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.stop().await;
    a.stop().await;
}

/// A `per_user` schedule queues one job per user who has data in the plugin's
/// user storage, each acting for that user, once per slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_schedules_run_once_for_each_user() {
    use common::session::Session;
    use reqwest::Method;

    let server = TestServer::builder(Backend::Sqlite)
        .with(job_settings)
        .with(|s| s.open_registration = true)
        .start()
        .await
        .unwrap();
    let per_user = "schedule = [{ cron = \"* * * * *\", job = \"count\", per_user = true }]";
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "j", per_user),
            guest("probe"),
        )
        .await;
    let mut users = Vec::new();
    for name in ["ada", "bob", "cyd"] {
        let mut session = Session::register(&server, name).await;
        if name != "cyd" {
            // ada and bob have used the plugin; cyd has not.
            let response = session
                .send(&server, Method::PUT, "/plugins/probe/kv/user/seen", None)
                .await;
            assert_eq!(response.status(), 200);
        }
        let (_, me) = session.json(&server, Method::GET, "/api/me", None).await;
        users.push((name, me["id"].as_str().unwrap().to_string(), session));
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let slots = loop {
        let slots: Vec<Value> = common::admin_jobs(&server.url)
            .await
            .into_iter()
            .filter(|j| {
                j["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("schedule:probe:count:")
            })
            .collect();
        let ada_and_bob_done = ["ada", "bob"].iter().all(|name| {
            let id = &users.iter().find(|u| u.0 == *name).unwrap().1;
            slots
                .iter()
                .any(|j| j["user_id"] == id.as_str() && j["state"] == "done")
        });
        if ada_and_bob_done {
            break slots;
        }
        assert!(Instant::now() < deadline, "per-user slots: {slots:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cy = &users.iter().find(|u| u.0 == "cyd").unwrap().1;
    assert!(
        slots
            .iter()
            .all(|j| j["user_id"] != cy.as_str() && !j["user_id"].is_null()),
        "only users with data get a job, and each acts for its user: {slots:?}"
    );
    for (name, id, session) in &mut users {
        let per_slot = slots.iter().filter(|j| j["user_id"] == id.as_str()).count();
        let (status, ran) = session
            .json(&server, Method::GET, "/plugins/probe/kv/user/job-ran", None)
            .await;
        assert_eq!(status, 200);
        if *name == "cyd" {
            assert_eq!((per_slot, ran.as_str()), (0, Some("absent")), "{ran}");
        } else {
            assert!(
                (1..=2).contains(&per_slot),
                "{name}: one job per minute slot"
            );
            assert!(
                ran.as_str().unwrap().ends_with("yes"),
                "{name}'s job ran as {name}: {ran}"
            );
        }
    }
    server.stop().await;
}
