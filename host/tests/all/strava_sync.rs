//! The Strava sync end to end: the real host, the bundled `strava-sync` component,
//! and a fake Strava over loopback (common/fake_strava.rs).

use crate::common;

use std::time::Duration;

use common::fake_strava::{
    ATHLETE_ID, FakeStrava, activities, admin_jobs, calls, entries, event, pending_jobs,
    post_event, post_event_answer, run,
};
use common::llm::user_id;
use common::process::until;
use common::session::Session;
use common::{Backend, TestServer};
use ham_host::settings::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row as _;

struct Env {
    server: TestServer,
    fake: FakeStrava,
}

/// A host with the plugin pointed at a fresh fake; None when the backend is
/// unavailable (PostgreSQL outside CI).
async fn start(backend: Backend) -> Option<Env> {
    start_configured(backend, true, 2).await
}

/// `configured: false` leaves every `HAM_PLUGIN_STRAVA_SYNC_*` variable unset;
/// `workers` job workers run the plugin's jobs.
async fn start_configured(backend: Backend, configured: bool, workers: usize) -> Option<Env> {
    let fake = FakeStrava::start().await;
    let server = TestServer::builder(backend)
        .with(|s| {
            s.open_registration = true;
            s.job_backoff_ms = 50;
            s.job_workers = workers;
            if configured {
                for (name, value) in fake.plugin_env() {
                    s.plugin_env.insert(name, Secret::new(value));
                }
            }
        })
        .start()
        .await?;
    Some(Env { server, fake })
}

/// Registers alice and connects her through the fake's OAuth; returns her
/// session and id.
async fn connect(env: &Env) -> (Session, String) {
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    env.fake
        .connect(&server.url, alice.cookie.as_deref().unwrap())
        .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_verification_echoes_the_challenge_only_for_the_right_token() {
    let env = start(Backend::Sqlite).await.unwrap();
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
    // An unknown athlete or subscription: acknowledged like any event, dropped.
    // (tests/strava_forged_events.rs compares the answers with a known athlete's.)
    let answer = post_event_answer(&server.url, &event("activity", "create", 1, json!({}))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"status":"received"}"#);
    let mut foreign = event("activity", "create", 1, json!({}));
    foreign["subscription_id"] = json!(1);
    assert_eq!(post_event_answer(&server.url, &foreign).await, answer);
    assert_eq!(pending_jobs(server).await, 0);
    server_stop(env).await;
}

async fn server_stop(env: Env) {
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_seals_the_tokens_and_status_shows_no_token_on_sqlite() {
    connecting_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_seals_the_tokens_and_status_shows_no_token_on_postgres() {
    connecting_story(Backend::Postgres).await;
}

async fn connecting_story(backend: Backend) {
    let Some(env) = start(backend).await else {
        return;
    };
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
async fn events_create_update_delete_and_deauthorize_each_have_their_effect_on_sqlite() {
    events_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_create_update_delete_and_deauthorize_each_have_their_effect_on_postgres() {
    events_story(Backend::Postgres).await;
}

async fn events_story(backend: Backend) {
    let Some(env) = start(backend).await else {
        return;
    };
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

    // PATCH a rule; delete an activity (Strava confirms: 404): its check-ins go.
    // (A delete Strava does not confirm: tests/strava_forged_events.rs.)
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

    // deauthorization (Strava refuses the tokens from now on): the connection and
    // tokens are gone; later events are ignored.
    env.fake.revoke_athlete(ATHLETE_ID);
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
    // The deauthorization job may still be finishing after its effect shows: let it settle
    // so the count below measures only what the next event queues.
    until(Duration::from_secs(20), "the queue to drain", || async {
        (pending_jobs(server).await == 0).then_some(())
    })
    .await;
    post_event(&server.url, &event("activity", "create", 1003, json!({}))).await;
    assert_eq!(
        pending_jobs(server).await,
        0,
        "an unknown athlete queues nothing"
    );
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_one_day_processed_at_once_all_count_in_the_day_s_sum_on_sqlite() {
    one_day_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_one_day_processed_at_once_all_count_in_the_day_s_sum_on_postgres() {
    one_day_story(Backend::Postgres).await;
}

/// Each job writes the day's sum from the activities it lists: without care, one
/// that listed before another job stored its run, but wrote last, drops that run.
async fn one_day_story(backend: Backend) {
    const DAYS: u64 = 2;
    // 40 events at once: within the 50 one athlete may have pending (more are
    // dropped: tests/strava_forged_events.rs).
    const RUNS: u64 = 20;
    let Some(env) = start_configured(backend, true, 6).await else {
        return;
    };
    let server = &env.server;
    let (mut alice, _user) = connect(&env).await;
    let km_habit = habit(
        server,
        &mut alice,
        json!({"name": "Distance", "kind": "measurable", "unit": "km", "target": {"value": 5.0, "type": "at_least"}, "frequency": {"times": 1, "days": 1}}),
    )
    .await;
    rule(
        server,
        &mut alice,
        json!({"habit_id": km_habit, "sport_types": ["Run"], "measure": "distance_km"}),
    )
    .await;
    // Run i of day d is i + 1 km long; the events arrive all at once, days mixed.
    let id = |d: u64, i: u64| 5000 + d * 100 + i;
    for d in 0..DAYS {
        for i in 0..RUNS {
            let date = format!("2026-03-{:02}", 10 + d);
            env.fake
                .put_activity(run(id(d, i), "Lap", &date, 1000.0 * (i + 1) as f64));
        }
    }
    let posts = (0..RUNS)
        .flat_map(|i| (0..DAYS).map(move |d| id(d, i)))
        .map(|object| {
            let url = server.url.clone();
            async move { post_event(&url, &event("activity", "create", object, json!({}))).await }
        });
    for (status, _) in futures::future::join_all(posts).await {
        assert_eq!(status, 200);
    }
    until(Duration::from_secs(60), "every event processed", || async {
        (pending_jobs(server).await == 0).then_some(())
    })
    .await;
    let kms = entries(server, &km_habit).await;
    let by_day: Vec<(String, Option<f64>)> =
        kms.iter().map(|e| (e.date.clone(), e.value)).collect();
    let expected: Vec<(String, Option<f64>)> = (0..DAYS)
        .map(|d| {
            (
                format!("2026-03-{:02}", 10 + d),
                Some((RUNS * (RUNS + 1) / 2) as f64),
            )
        })
        .collect();
    assert_eq!(by_day, expected, "every run counted once in its day's sum");
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_delay_the_job_and_the_webhook_answers_at_once() {
    let _machine = common::machine::timed().await;
    let env = start(Backend::Sqlite).await.unwrap();
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
    assert!(took < Duration::from_secs(2), "acknowledged in {took:?}");
    // The job writes the activity, then the check-in: wait for both.
    until(
        Duration::from_secs(20),
        "the activity and check-in after 429 and 500",
        || async {
            (activities(server, &user).await.len() == 1
                && entries(server, &run_habit).await.len() == 1)
                .then_some(())
        },
    )
    .await;
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

    // A stalled Strava does not slow the webhook: every ack stays inside Strava's 2 s
    // deadline, which the 3 s stall would break if the answer waited on the API.
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
    assert!(slowest < Duration::from_secs(2), "slowest ack {slowest:?}");
    env.fake.stall(None);
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_of_the_sync_plugin_while_events_arrive_loses_none() {
    let env = start(Backend::Sqlite).await.unwrap();
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
            "version = \"0.2.0\"",
            &format!("version = \"0.2.{}\"", n + 1),
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
        "0.2.3",
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

async fn status_of(server: &TestServer, session: &Session) -> Value {
    let (status, body) = session
        .clone()
        .json(server, Method::GET, "/api/strava/status", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_pages_through_the_athlete_s_activities_and_each_arrives_once() {
    let env = start(Backend::Sqlite).await.unwrap();
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
    // Five runs before `since`, then 230 from it, three a day: three pages of 100.
    for i in 0..5u64 {
        env.fake.put_activity(run(
            5000 + i,
            &format!("Old {i}"),
            &format!("2025-12-2{i}"),
            5000.0,
        ));
    }
    let first_day = jiff::civil::date(2026, 1, 1);
    for i in 0..230u64 {
        let day = first_day
            .checked_add(jiff::Span::new().days(i64::try_from(i / 3).unwrap()))
            .unwrap();
        env.fake
            .put_activity(run(6000 + i, &format!("Run {i}"), &day.to_string(), 5000.0));
    }
    // A bad `since` is refused, naming the field.
    let (status, body) = alice
        .json(
            server,
            Method::POST,
            "/api/strava/backfill",
            Some(json!({"since": "last year"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("since"),
        "{body}"
    );
    let (status, body) = alice
        .json(
            server,
            Method::POST,
            "/api/strava/backfill",
            Some(json!({"since": "2026-01-01"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(body["job_id"].is_string(), "{body}");
    until(Duration::from_secs(60), "the backfill", || async {
        (pending_jobs(server).await == 0 && activities(server, &user).await.len() == 230)
            .then_some(())
    })
    .await;
    let acts = activities(server, &user).await;
    let mut ids: Vec<&str> = acts.iter().map(|a| a.external_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        230,
        "every activity once, none from before since"
    );
    assert!(acts.iter().all(|a| a.start_local.as_str() >= "2026-01-01"));
    let runs = entries(server, &run_habit).await;
    assert_eq!(runs.len(), 77, "one check-in per day with runs");
    assert!(runs.iter().all(|e| e.source == "strava"));
    // The fake saw each page once, with `after`, `page` and `per_page`.
    let pages: Vec<String> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.contains("/athlete/activities"))
        .collect();
    assert_eq!(
        pages,
        (1..=3)
            .map(|page| format!(
                "GET /api/v3/athlete/activities?after=1767225600&page={page}&per_page=100"
            ))
            .collect::<Vec<_>>()
    );
    let backfills: Vec<Value> = admin_jobs(server)
        .await
        .into_iter()
        .filter(|j| j["kind"] == "backfill")
        .collect();
    assert_eq!(backfills.len(), 3, "a job per page: {backfills:?}");
    assert!(
        backfills
            .iter()
            .all(|j| j["state"] == "done" && j["attempts"] == 1),
        "{backfills:?}"
    );
    assert!(status_of(server, &alice).await["last_sync"].is_number());
    server_stop(env).await;
}

/// Posts a create event for `id` and waits until the user has `arrived` activities.
async fn deliver(server: &TestServer, user: &str, id: u64, arrived: usize) {
    let (status, _) = post_event(&server.url, &event("activity", "create", id, json!({}))).await;
    assert_eq!(status, 200);
    until(Duration::from_secs(20), "the activity", || async {
        (activities(server, user).await.len() == arrived).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_about_to_expire_is_refreshed_first_and_the_new_refresh_token_replaces_the_old() {
    let env = start(Backend::Sqlite).await.unwrap();
    let server = &env.server;
    // Tokens that expire in two minutes: within the five-minute margin.
    env.fake.expire_tokens_in(120);
    let (_, user) = connect(&env).await;
    for id in 4001..=4004 {
        env.fake
            .put_activity(run(id, &format!("Run {id}"), "2026-03-10", 5000.0));
    }
    deliver(server, &user, 4001, 1).await;
    let refreshes = env.fake.refreshes();
    assert_eq!(refreshes.len(), 1, "refreshed before use: {refreshes:?}");
    assert!(refreshes[0].issued.is_some(), "the fake accepted it");
    let log = env.fake.requests();
    let fetch = log
        .iter()
        .position(|r| r == "GET /api/v3/activities/4001")
        .unwrap();
    assert_eq!(
        log[fetch - 1],
        "POST /oauth/token grant_type=refresh_token",
        "the refresh comes before the call: {log:?}"
    );

    // The new tokens expire soon too: the next call refreshes with the new refresh
    // token (the fake takes a refresh token once, so the old one would fail).
    deliver(server, &user, 4002, 2).await;
    let refreshes = env.fake.refreshes();
    assert_eq!(refreshes.len(), 2, "{refreshes:?}");
    assert_eq!(Some(&refreshes[1].presented), refreshes[0].issued.as_ref());
    assert!(refreshes[1].issued.is_some());

    // Tokens good for hours are used as they are.
    env.fake.expire_tokens_in(6 * 3600);
    deliver(server, &user, 4003, 3).await;
    deliver(server, &user, 4004, 4).await;
    let refreshes = env.fake.refreshes();
    assert_eq!(
        refreshes.len(),
        3,
        "no refresh for a fresh token: {refreshes:?}"
    );
    assert_eq!(Some(&refreshes[2].presented), refreshes[1].issued.as_ref());
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_once_then_the_connection_needs_a_reconnect() {
    let env = start(Backend::Sqlite).await.unwrap();
    let server = &env.server;
    let (alice, user) = connect(&env).await;
    env.fake
        .put_activity(run(4101, "Tempo", "2026-03-11", 6000.0));
    env.fake
        .put_activity(run(4102, "Long", "2026-03-12", 20000.0));

    // One 401: a refresh and one more try, which works.
    env.fake.script(&[401]);
    post_event(&server.url, &event("activity", "create", 4101, json!({}))).await;
    until(
        Duration::from_secs(20),
        "the activity after a 401",
        || async { (activities(server, &user).await.len() == 1).then_some(()) },
    )
    .await;
    assert_eq!(env.fake.refreshes().len(), 1);
    assert_eq!(calls(&env.fake, "/activities/4101"), 2);
    let status = status_of(server, &alice).await;
    assert_eq!(status["needs_reconnect"], false, "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");

    // A 401 after the refresh too: no more tries, the user must reconnect.
    env.fake.script(&[401, 401]);
    let (code, _) = post_event(&server.url, &event("activity", "create", 4102, json!({}))).await;
    assert_eq!(code, 200);
    let status = until(Duration::from_secs(20), "needs_reconnect", || async {
        let status = status_of(server, &alice).await;
        (status["needs_reconnect"] == true).then_some(status)
    })
    .await;
    assert_eq!(status["connected"], true, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("reconnect"),
        "{status}"
    );
    assert_eq!(env.fake.refreshes().len(), 2, "one refresh for that call");
    assert_eq!(calls(&env.fake, "/activities/4102"), 2, "no third try");
    until(Duration::from_secs(20), "the job to fail", || async {
        (pending_jobs(server).await == 0).then_some(())
    })
    .await;
    let dead: Vec<Value> = admin_jobs(server)
        .await
        .into_iter()
        .filter(|j| j["state"] == "dead")
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["attempts"], 1, "not retried: {dead:?}");
    assert_eq!(activities(server, &user).await.len(), 1);
    server_stop(env).await;
}

/// The end of the 15-minute window `now_ms` is in.
fn next_quarter_hour(now_ms: i64) -> i64 {
    (now_ms.div_euclid(900_000) + 1) * 900_000
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_at_the_limit_delays_the_next_call_to_the_next_window_instead_of_failing() {
    let _machine = common::machine::timed().await;
    let env = start(Backend::Sqlite).await.unwrap();
    let server = &env.server;
    let (_, user) = connect(&env).await;
    env.fake
        .put_activity(run(4201, "Spent", "2026-03-13", 5000.0));
    env.fake
        .put_activity(run(4202, "Later", "2026-03-13", 5000.0));
    // A 200 that spends the 15-minute limit (100 of 100): this answer counts.
    env.fake.rate_usage(Some("100,150"));
    let before = now_ms();
    post_event(&server.url, &event("activity", "create", 4201, json!({}))).await;
    until(Duration::from_secs(20), "the first activity", || async {
        (activities(server, &user).await.len() == 1).then_some(())
    })
    .await;
    let after = now_ms();
    // The next event waits for the next window, without calling Strava.
    let (status, took) =
        post_event(&server.url, &event("activity", "create", 4202, json!({}))).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "acknowledged in {took:?}");
    let delayed = until(Duration::from_secs(20), "the job to be delayed", || async {
        admin_jobs(server)
            .await
            .into_iter()
            .find(|j| j["state"] == "queued" && j["last_error"].is_string())
    })
    .await;
    assert_eq!(delayed["kind"], "event");
    assert_eq!(
        delayed["attempts"], 0,
        "the wait uses no attempt: {delayed}"
    );
    assert!(
        delayed["last_error"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{delayed}"
    );
    let run_after = delayed["run_after"].as_i64().unwrap();
    assert!(
        [next_quarter_hour(before), next_quarter_hour(after)]
            .iter()
            .any(|window| (run_after - window).abs() < 2000),
        "run_after {run_after} is not the next quarter hour after {before}..{after}"
    );
    assert_eq!(calls(&env.fake, "/activities/4202"), 0);
    assert_eq!(activities(server, &user).await.len(), 1);
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_the_routes_answer_503_naming_the_variable_to_set() {
    let env = start_configured(Backend::Sqlite, false, 2).await.unwrap();
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let status = status_of(server, &alice).await;
    assert_eq!(status["configured"], false, "{status}");
    assert_eq!(status["connected"], false, "{status}");
    let rule_body = json!({"habit_id": "h", "sport_types": ["Run"], "measure": "done"});
    for (method, path, body) in [
        (Method::GET, "/api/strava/connect", None),
        (Method::GET, "/api/strava/callback?state=ab&code=c", None),
        (Method::DELETE, "/api/strava/connection", None),
        (
            Method::POST,
            "/api/strava/backfill",
            Some(json!({"since": "2026-01-01"})),
        ),
        (Method::GET, "/api/strava/rules", None),
        (Method::POST, "/api/strava/rules", Some(rule_body)),
        (
            Method::GET,
            "/api/strava/webhook?hub.mode=subscribe&hub.verify_token=x&hub.challenge=y",
            None,
        ),
        (
            Method::POST,
            "/api/strava/webhook",
            Some(event("activity", "create", 1, json!({}))),
        ),
    ] {
        let (status, body) = alice.json(server, method.clone(), path, body).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_configured", "{method} {path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID"),
            "{method} {path}: {body}"
        );
    }
    assert_eq!(pending_jobs(server).await, 0);
    server_stop(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_at_once_near_token_expiry_share_one_refresh_and_none_is_lost() {
    let env = start(Backend::Sqlite).await.unwrap();
    let server = &env.server;
    env.fake.expire_tokens_in(120);
    let (alice, user) = connect(&env).await;
    for id in 4301..=4306 {
        env.fake
            .put_activity(run(id, &format!("Run {id}"), "2026-03-14", 5000.0));
    }
    // Both job workers refresh at once with the same refresh token; Strava takes
    // it once, so one of them is refused and must use the other's new tokens.
    let posts: Vec<_> = (4301..=4306u64)
        .map(|id| {
            let url = server.url.clone();
            tokio::spawn(async move {
                post_event(&url, &event("activity", "create", id, json!({}))).await
            })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap().0, 200);
    }
    until(Duration::from_secs(30), "every event", || async {
        (pending_jobs(server).await == 0).then_some(())
    })
    .await;
    let jobs = admin_jobs(server).await;
    assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:?}");
    assert_eq!(activities(server, &user).await.len(), 6);
    let status = status_of(server, &alice).await;
    assert_eq!(status["needs_reconnect"], false, "{status}");
    server_stop(env).await;
}
