//! The Strava sync end to end: the real host, the bundled `strava-sync` component,
//! and a fake Strava over loopback (tests/common/fake_strava.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::time::Duration;

use common::fake_strava::{self, ATHLETE_ID, FakeStrava, event, post_event, run};
use common::llm::user_id;
use common::process::until;
use common::session::Session;
use common::{Backend, TestDb, TestServer, settings};
use ham_host::settings::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row as _;

struct Env {
    server: TestServer,
    fake: FakeStrava,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    let fake = FakeStrava::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let mut s = settings(dir.path(), &db);
    s.open_registration = true;
    s.job_backoff_ms = 50;
    for (name, value) in [
        ("CLIENT_ID", fake_strava::CLIENT_ID.to_string()),
        ("CLIENT_SECRET", fake_strava::CLIENT_SECRET.to_string()),
        ("VERIFY_TOKEN", fake_strava::VERIFY_TOKEN.to_string()),
        ("API_BASE_URL", fake.api_base()),
        ("OAUTH_BASE_URL", fake.oauth_base()),
        ("SUBSCRIPTION_ID", fake_strava::SUBSCRIPTION_ID.to_string()),
    ] {
        s.plugin_env
            .insert(format!("HAM_PLUGIN_STRAVA_SYNC_{name}"), Secret::new(value));
    }
    let server = TestServer::start(s).await;
    Env {
        server,
        fake,
        _db: db,
        _dir: dir,
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

/// Registers alice and connects her through the fake's OAuth; returns her
/// session and id.
async fn connect(env: &Env) -> (Session, String) {
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let cookie = alice.cookie.clone().unwrap();
    let client = no_redirects();
    let to_strava = client
        .get(server.url("/api/strava/connect"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(to_strava.status(), 302);
    let authorize = location(&to_strava);
    assert!(
        authorize.starts_with(&format!("{}/authorize?", env.fake.oauth_base())),
        "{authorize}"
    );
    for part in [
        "response_type=code",
        "approval_prompt=auto",
        "scope=read%2Cactivity%3Aread_all",
        "client_id=12345",
        "state=",
    ] {
        assert!(authorize.contains(part), "{part} missing in {authorize}");
    }
    let back = client.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 303, "the fake redirects back");
    let callback = location(&back);
    assert!(
        callback.starts_with(&server.url("/api/strava/callback?")),
        "{callback}"
    );
    let done = client
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), "/strava");
    // The state is single use.
    let again = client
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    let id = user_id(server, &mut alice).await;
    (alice, id)
}

async fn habit(server: &TestServer, session: &mut Session, body: Value) -> String {
    let (status, created) = session
        .json(server, Method::POST, "/api/habits", Some(body))
        .await;
    assert!(status.is_success(), "{created}");
    created["id"].as_str().unwrap().to_string()
}

async fn rule(server: &TestServer, session: &mut Session, body: Value) -> Value {
    let (status, created) = session
        .json(server, Method::POST, "/api/strava/rules", Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn activities(server: &TestServer, user: &str) -> Vec<ham_host::habits::Activity> {
    server
        .state
        .db
        .list_activities(
            user,
            ham_host::store::habits::ActivityRange::Utc {
                from: 0,
                to: i64::MAX / 2,
            },
        )
        .await
        .unwrap()
}

async fn entries(server: &TestServer, habit: &str) -> Vec<ham_host::habits::Entry> {
    server
        .state
        .db
        .list_entries(habit, "2000-01-01", "2100-01-01")
        .await
        .unwrap()
}

/// Jobs of the plugin not yet finished.
async fn pending_jobs(server: &TestServer) -> i64 {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM jobs WHERE plugin = 'strava-sync' AND state NOT IN ('done', 'dead')",
    )
    .fetch_one(server.state.db.pool())
    .await
    .unwrap();
    row.get::<i64, _>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_verification_echoes_the_challenge_only_for_the_right_token() {
    let env = start().await;
    let server = &env.server;
    let ok = common::client()
        .get(server.url(
            "/api/strava/webhook?hub.mode=subscribe&hub.verify_token=fake-verify-token&hub.challenge=15f7d1a91c1f40f8a748fd134752feb3",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body,
        json!({"hub.challenge": "15f7d1a91c1f40f8a748fd134752feb3"})
    );
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=x",
        "hub.mode=unsubscribe&hub.verify_token=fake-verify-token&hub.challenge=x",
        "hub.mode=subscribe&hub.challenge=x",
    ] {
        let (status, _) = server
            .get_text(&format!("/api/strava/webhook?{query}"))
            .await;
        assert_eq!(status, 403, "{query}");
    }
    // Malformed events are refused and nothing is queued.
    for body in [
        json!({"object_type": "activity"}),
        json!({"aspect_type": "create", "event_time": 1, "object_id": "x", "object_type": "activity", "owner_id": 1, "subscription_id": 1, "updates": {}}),
        json!({"aspect_type": "explode", "event_time": 1, "object_id": 1, "object_type": "activity", "owner_id": 1, "subscription_id": 1, "updates": {}}),
    ] {
        let (status, _) = post_event(&server.url, &body).await;
        assert_eq!(status, 400, "{body}");
    }
    // An unknown athlete or subscription: acknowledged, ignored.
    let (status, _) = post_event(&server.url, &event("activity", "create", 1, json!({}))).await;
    assert_eq!(status, 200);
    let mut foreign = event("activity", "create", 1, json!({}));
    foreign["subscription_id"] = json!(1);
    assert_eq!(post_event(&server.url, &foreign).await.0, 200);
    assert_eq!(pending_jobs(server).await, 0);
    server_stop(env).await;
}

async fn server_stop(env: Env) {
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_seals_the_tokens_and_status_shows_no_token() {
    let env = start().await;
    let server = &env.server;
    let (mut alice, _) = connect(&env).await;
    let (status, body) = alice
        .json(server, Method::GET, "/api/strava/status", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], true);
    assert_eq!(body["athlete"]["id"], ATHLETE_ID);
    let shown = body.to_string();
    let tokens = env.fake.tokens();
    assert_eq!(tokens.len(), 2, "one access and one refresh token");
    let rows = sqlx::query("SELECT key, value FROM plugin_kv WHERE plugin = 'strava-sync'")
        .fetch_all(server.state.db.pool())
        .await
        .unwrap();
    let mut sealed = false;
    for row in &rows {
        let key: String = row.get(0);
        let value: Vec<u8> = row.get(1);
        for token in &tokens {
            assert!(
                !value.windows(token.len()).any(|w| w == token.as_bytes()),
                "a plaintext token in {key}"
            );
            assert!(!shown.contains(token.as_str()));
        }
        if key == "connection" {
            assert!(value.starts_with(b"hamseal1"));
            sealed = true;
        }
    }
    assert!(sealed, "the connection is stored sealed");
    // Without a session, the user routes refuse.
    let (status, _) = server.get_text("/api/strava/status").await;
    assert_eq!(status, 401);
    // Disconnecting deauthorizes at Strava and forgets.
    let (status, _) = alice
        .json(server, Method::DELETE, "/api/strava/connection", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(env.fake.deauthorized(), 1);
    let (_, body) = alice
        .json(server, Method::GET, "/api/strava/status", None)
        .await;
    assert_eq!(body["connected"], false);
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_create_update_delete_and_deauthorize_each_have_their_effect() {
    let env = start().await;
    let server = &env.server;
    let (mut alice, user) = connect(&env).await;
    let run_habit = habit(
        server,
        &mut alice,
        json!({"name": "Run", "kind": "boolean", "frequency": {"times": 1, "days": 1}}),
    )
    .await;
    let km_habit = habit(
        server,
        &mut alice,
        json!({"name": "Distance", "kind": "measurable", "unit": "km", "target": {"value": 5.0, "type": "at_least"}, "frequency": {"times": 1, "days": 1}}),
    )
    .await;
    // Rules are validated, naming the field.
    let (status, body) = alice
        .json(
            server,
            Method::POST,
            "/api/strava/rules",
            Some(json!({"habit_id": run_habit, "sport_types": [], "measure": "done"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("sport_types"),
        "{body}"
    );
    let (status, body) = alice
        .json(
            server,
            Method::POST,
            "/api/strava/rules",
            Some(json!({"habit_id": run_habit, "sport_types": ["Run"], "measure": "distance_km"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("measure"),
        "{body}"
    );
    rule(
        server,
        &mut alice,
        json!({"habit_id": run_habit, "sport_types": ["Run", "TrailRun"], "min_distance_m": 3000, "min_moving_time_s": null, "measure": "done"}),
    )
    .await;
    let km_rule = rule(
        server,
        &mut alice,
        json!({"habit_id": km_habit, "sport_types": ["Run"], "measure": "distance_km"}),
    )
    .await;
    let (_, listed) = alice
        .json(server, Method::GET, "/api/strava/rules", None)
        .await;
    assert_eq!(listed["rules"].as_array().unwrap().len(), 2);

    // create: the activity arrives and checks both habits; five deliveries count once.
    env.fake
        .put_activity(run(1001, "Morning Run", "2026-03-02", 5200.0));
    for _ in 0..5 {
        let (status, _) =
            post_event(&server.url, &event("activity", "create", 1001, json!({}))).await;
        assert_eq!(status, 200);
    }
    until(
        Duration::from_secs(20),
        "the events to be processed",
        || async { (pending_jobs(server).await == 0).then_some(()) },
    )
    .await;
    let acts = activities(server, &user).await;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0].name, "Morning Run");
    assert_eq!(acts[0].start_local, "2026-03-02T07:00:00");
    let runs = entries(server, &run_habit).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].date, "2026-03-02");
    assert_eq!(runs[0].source, "strava");
    let kms = entries(server, &km_habit).await;
    assert_eq!(kms.len(), 1);
    assert_eq!(kms[0].value, Some(5.2), "not 5 x 5.2");

    // A second run that day adds to the measurable habit.
    env.fake
        .put_activity(run(1002, "Evening Run", "2026-03-02", 2000.0));
    post_event(&server.url, &event("activity", "create", 1002, json!({}))).await;
    until(Duration::from_secs(20), "the sum", || async {
        let kms = entries(server, &km_habit).await;
        (kms.first().and_then(|e| e.value) == Some(7.2)).then_some(())
    })
    .await;

    // update: a new title and type re-fetched from the API (the event body is a hint).
    let mut renamed = run(1001, "Morning Ride", "2026-03-02", 5200.0);
    renamed["sport_type"] = json!("Ride");
    renamed["type"] = json!("Ride");
    env.fake.put_activity(renamed);
    post_event(
        &server.url,
        &event(
            "activity",
            "update",
            1001,
            json!({"title": "Morning Ride", "type": "Ride"}),
        ),
    )
    .await;
    until(Duration::from_secs(20), "the update", || async {
        let acts = activities(server, &user).await;
        acts.iter()
            .any(|a| a.external_id == "1001" && a.name == "Morning Ride" && a.sport_type == "Ride")
            .then_some(())
    })
    .await;
    until(
        Duration::from_secs(20),
        "the ride to leave the run habit",
        || async {
            let kms = entries(server, &km_habit).await;
            let runs = entries(server, &run_habit).await;
            // The 2 km run is under the 3 km minimum: no run check-in is left.
            (kms.first().and_then(|e| e.value) == Some(2.0) && runs.is_empty()).then_some(())
        },
    )
    .await;

    // PATCH a rule; delete an activity: its check-ins go.
    let (status, patched) = alice
        .json(
            server,
            Method::PATCH,
            &format!("/api/strava/rules/{}", km_rule["id"].as_str().unwrap()),
            Some(json!({"measure": "moving_time_min"})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["measure"], "moving_time_min");
    env.fake.remove_activity(1002);
    post_event(&server.url, &event("activity", "delete", 1002, json!({}))).await;
    until(Duration::from_secs(20), "the delete", || async {
        let acts = activities(server, &user).await;
        let kms = entries(server, &km_habit).await;
        (acts.len() == 1 && kms.is_empty()).then_some(())
    })
    .await;

    // deauthorization: the connection and tokens are gone; later events are ignored.
    post_event(
        &server.url,
        &event(
            "athlete",
            "update",
            ATHLETE_ID,
            json!({"authorized": "false"}),
        ),
    )
    .await;
    until(Duration::from_secs(20), "the deauthorization", || async {
        let (_, body) = alice
            .clone()
            .json(server, Method::GET, "/api/strava/status", None)
            .await;
        (body["connected"] == false).then_some(())
    })
    .await;
    let rows = sqlx::query(
        "SELECT COUNT(*) FROM plugin_kv WHERE plugin = 'strava-sync' AND (key = 'connection' OR key LIKE 'athlete/%')",
    )
    .fetch_one(server.state.db.pool())
    .await
    .unwrap();
    assert_eq!(rows.get::<i64, _>(0), 0);
    let before = pending_jobs(server).await;
    post_event(&server.url, &event("activity", "create", 1003, json!({}))).await;
    assert_eq!(
        pending_jobs(server).await,
        before,
        "an unknown athlete queues nothing"
    );
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_delay_the_job_and_the_webhook_answers_at_once() {
    let env = start().await;
    let server = &env.server;
    let (mut alice, user) = connect(&env).await;
    let run_habit = habit(
        server,
        &mut alice,
        json!({"name": "Run", "kind": "boolean", "frequency": {"times": 1, "days": 1}}),
    )
    .await;
    rule(
        server,
        &mut alice,
        json!({"habit_id": run_habit, "sport_types": ["Run"], "measure": "done"}),
    )
    .await;
    env.fake
        .put_activity(run(2001, "Intervals", "2026-03-03", 8000.0));
    env.fake.script(&[429, 500]);
    let (status, took) =
        post_event(&server.url, &event("activity", "create", 2001, json!({}))).await;
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(500),
        "acknowledged in {took:?}"
    );
    until(
        Duration::from_secs(20),
        "the activity after 429 and 500",
        || async { (activities(server, &user).await.len() == 1).then_some(()) },
    )
    .await;
    assert_eq!(entries(server, &run_habit).await.len(), 1);
    let calls: Vec<_> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.contains("/activities/2001"))
        .collect();
    assert_eq!(calls.len(), 3, "429, 500, then OK: {calls:?}");
    let row =
        sqlx::query("SELECT attempts FROM jobs WHERE plugin = 'strava-sync' AND kind = 'event'")
            .fetch_one(server.state.db.pool())
            .await
            .unwrap();
    assert_eq!(row.get::<i64, _>(0), 2, "the 429 used no attempt");

    // A stalled Strava does not slow the webhook.
    env.fake.stall(Some(Duration::from_secs(3)));
    env.fake
        .put_activity(run(2002, "Easy", "2026-03-04", 4000.0));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let (status, took) =
            post_event(&server.url, &event("activity", "create", 2002, json!({}))).await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest ack {slowest:?}"
    );
    env.fake.stall(None);
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_of_the_sync_plugin_while_events_arrive_loses_none() {
    let env = start().await;
    let server = &env.server;
    let (_, user) = connect(&env).await;
    let bundled = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "strava-sync")
        .unwrap();
    for id in 0..20u64 {
        env.fake
            .put_activity(run(3000 + id, &format!("Run {id}"), "2026-03-05", 5000.0));
    }
    let poster = {
        let url = server.url.clone();
        tokio::spawn(async move {
            for id in 0..20u64 {
                let (status, _) =
                    post_event(&url, &event("activity", "create", 3000 + id, json!({}))).await;
                assert_eq!(status, 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for n in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let manifest = bundled.manifest.replace(
            "version = \"0.1.0\"",
            &format!("version = \"0.1.{}\"", n + 1),
        );
        // Uploads take SQLite's write lock up front, so one never fails because the
        // job workers are writing at the same moment.
        server
            .install(
                "strava-sync",
                &manifest,
                common::rebuilt(bundled.component, &format!("swap{n}")),
            )
            .await;
    }
    poster.await.unwrap();
    let active = server.state.registry.get("strava-sync").unwrap();
    assert_eq!(
        active.manifest.version.to_string(),
        "0.1.3",
        "the swaps happened"
    );
    until(
        Duration::from_secs(30),
        "every event to be processed",
        || async { (activities(server, &user).await.len() == 20).then_some(()) },
    )
    .await;
    server_stop(env).await;
}
