//! Strava events across real `ham serve` processes on one PostgreSQL: webhook
//! events acknowledged by a host that is then killed (SIGKILL) with their jobs
//! pending or mid-call, and another process on the same database that processes
//! every one of them exactly once.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fake_strava::{FakeStrava, event, post_event, run};
use common::process::{HamProcess, until};
use common::session::credentials;
use common::{ADMIN_TOKEN, Backend, TestDb, client};
use reqwest::Method;
use serde_json::{Value, json};

/// Shared by both processes: it seals the tokens and signs the grants.
const SECRET_KEY: &str = "5f0c2a7e9b1d4c6e8a3f5b7d9e1c3a5f7b9d1e3c5a7f9b1d3e5c7a9f1b3d5e7c";

/// The environment of one `ham serve`: the database, its own data dir, the shared
/// secret, short job leases, and the plugin pointed at the fake.
fn env(db: &TestDb, dir: &str, fake: &FakeStrava) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.as_str()),
        ("HAM_DATA_DIR", dir),
        ("HAM_ADMIN_TOKEN", ADMIN_TOKEN),
        ("HAM_SECRET_KEY", SECRET_KEY),
        ("HAM_JOB_LEASE_MS", "2000"),
        ("HAM_JOB_BACKOFF_MS", "50"),
        ("HAM_JOB_WORKERS", &WORKERS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(fake.plugin_env());
    vars
}

fn spawn(vars: &[(String, String)]) -> HamProcess {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    HamProcess::spawn(&pairs)
}

/// A signed-in user's request to `host`; the status and the JSON body.
async fn call(
    host: &HamProcess,
    cookie: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method, host.url(path))
        .header("cookie", cookie);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers `username` on `host` and returns the session cookie.
async fn register(host: &HamProcess, username: &str) -> String {
    let response = client()
        .post(host.url("/api/auth/register"))
        .json(&credentials(username).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn event_jobs(host: &HamProcess) -> Vec<Value> {
    common::admin_jobs(&host.url)
        .await
        .into_iter()
        .filter(|j| j["plugin"] == "strava-sync" && j["kind"] == "event")
        .collect()
}

const EVENTS: u64 = 12;
/// Job workers per process.
const WORKERS: usize = 2;

/// Event `i`'s run: three a day over four days, each a different distance, so a
/// day's sum shows whether any run was counted twice.
fn nth_run(i: u64) -> Value {
    let date = format!("2026-04-0{}", 1 + i / 3);
    run(
        7000 + i,
        &format!("Run {i}"),
        &date,
        1000.0 * (i + 1) as f64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_pending_on_a_killed_host_are_processed_once_by_the_next() {
    let _machine = common::machine::timed().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some(db) = TestDb::new(Backend::Postgres, dir_a.path()).await else {
        return;
    };
    let fake = FakeStrava::start().await;
    let a = spawn(&env(&db, &dir_a.path().display().to_string(), &fake));
    let cookie = register(&a, "alice").await;
    fake.connect(&a.url, &cookie).await;
    let mut habits = Vec::new();
    for (body, measure) in [
        (
            json!({"name": "Run", "kind": "boolean", "frequency": {"times": 1, "days": 1}}),
            "done",
        ),
        (
            json!({"name": "Distance", "kind": "measurable", "unit": "km", "target": {"value": 5.0, "type": "at_least"}, "frequency": {"times": 1, "days": 1}}),
            "distance_km",
        ),
    ] {
        let (status, habit) = call(&a, &cookie, Method::POST, "/api/habits", Some(body)).await;
        assert!((200..300).contains(&status), "{habit}");
        let id = habit["id"].as_str().unwrap().to_string();
        let (status, rule) = call(
            &a,
            &cookie,
            Method::POST,
            "/api/strava/rules",
            Some(json!({"habit_id": id, "sport_types": ["Run"], "measure": measure})),
        )
        .await;
        assert_eq!(status, 201, "{rule}");
        habits.push(id);
    }
    for i in 0..EVENTS {
        fake.put_activity(nth_run(i));
    }

    // Strava's API hangs: A acknowledges every event, its workers are stuck in
    // their first calls, and the rest of the jobs wait in the queue.
    fake.stall(Some(Duration::from_secs(60)));
    for i in 0..EVENTS {
        let (status, took) =
            post_event(&a.url, &event("activity", "create", 7000 + i, json!({}))).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "acknowledged in {took:?}");
    }
    // Kill A only once every worker holds a job and its fetch has reached Strava:
    // a worker killed between its claim and its call would make the count of
    // fetches below depend on timing.
    let activity_fetches = || {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/v3/activities/"))
            .count()
    };
    let (running, queued) = until(
        Duration::from_secs(20),
        "A's workers to be stuck in Strava calls",
        || async {
            let jobs = event_jobs(&a).await;
            let count = |state: &str| jobs.iter().filter(|j| j["state"] == state).count();
            (jobs.len() == EVENTS as usize
                && count("running") == WORKERS
                && activity_fetches() == WORKERS)
                .then(|| (count("running"), count("queued")))
        },
    )
    .await;
    assert!(queued > 0, "jobs still pending when A dies");
    assert_eq!(running + queued, EVENTS as usize, "none finished on A");
    a.kill();
    fake.stall(None);

    // B, on the same database: the queued jobs at once, A's once their leases end.
    let b = spawn(&env(&db, &dir_b.path().display().to_string(), &fake));
    let jobs = until(
        Duration::from_secs(60),
        "every event to be processed on B",
        || async {
            let jobs = event_jobs(&b).await;
            jobs.iter().all(|j| j["state"] == "done").then_some(jobs)
        },
    )
    .await;
    assert_eq!(jobs.len(), EVENTS as usize, "no job lost, none added");
    let retaken = jobs.iter().filter(|j| j["attempts"] == 2).count();
    assert_eq!(retaken, running, "A's claims count as attempts: {jobs:?}");
    assert!(
        jobs.iter()
            .all(|j| j["attempts"] == 1 || j["attempts"] == 2),
        "{jobs:?}"
    );

    // Every activity once; each fetched once, or twice when A died in its call.
    let (_, listed) = call(&b, &cookie, Method::GET, "/api/activities", None).await;
    let mut ids: Vec<String> = listed["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["external_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let expected: Vec<String> = (0..EVENTS).map(|i| (7000 + i).to_string()).collect();
    assert_eq!(ids, expected);
    assert_eq!(activity_fetches(), EVENTS as usize + running);

    // One check-in per day; each day's distance counts each run once.
    let mut km_by_day: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..EVENTS {
        let run = nth_run(i);
        let day = run["start_date_local"].as_str().unwrap()[..10].to_string();
        *km_by_day.entry(day).or_default() += run["distance"].as_f64().unwrap() / 1000.0;
    }
    let (_, done) = call(
        &b,
        &cookie,
        Method::GET,
        &format!("/api/habits/{}/entries", habits[0]),
        None,
    )
    .await;
    let done_days: Vec<&str> = done["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["date"].as_str().unwrap())
        .collect();
    assert_eq!(
        done_days,
        km_by_day.keys().map(String::as_str).collect::<Vec<_>>()
    );
    let (_, km) = call(
        &b,
        &cookie,
        Method::GET,
        &format!("/api/habits/{}/entries", habits[1]),
        None,
    )
    .await;
    let km: BTreeMap<String, f64> = km["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["source"], "strava", "{e}");
            (
                e["date"].as_str().unwrap().to_string(),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(km, km_by_day, "each run counted once");
    b.kill();
}
