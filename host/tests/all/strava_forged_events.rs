//! Forged Strava webhook events, played against a real `ham` over loopback with
//! the bundled `strava-sync` and the fake Strava (common/fake_strava.rs).
//!
//! The webhook needs no credentials: anyone can post an event naming any athlete
//! and any object. These tests check that such events change nothing Strava does
//! not confirm (a delete, a deauthorization), that the answer says nothing about
//! which athletes use this server, and that a flood cannot fill the queue or spend
//! the app's Strava rate limit (docs/strava.md, "Forged events").

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_strava::{
    ATHLETE_ID, Answer, FakeStrava, SUBSCRIPTION_ID, activities, admin_jobs, calls, entries, event,
    pending_jobs, post_event_answer, run,
};
use common::llm::user_id;
use common::log::{capture_logs, logged};
use common::process::until;
use common::session::Session;
use common::{Backend, TestServer};
use ham_host::settings::{Secret, Settings};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row as _;

/// What the webhook answers every well-formed event.
const RECEIVED: &[u8] = br#"{"status":"received"}"#;
/// `pending::MAX_PER_ATHLETE` in the plugin.
const MAX_PENDING: usize = 50;
/// `budget::BURST` in the plugin.
const BUDGET_BURST: usize = 60;

/// The made-up activities in `ids` whose events were dropped for the cap.
fn dropped_for_the_cap(ids: std::ops::Range<u64>) -> usize {
    logged(&["WARN", "too many events pending for this athlete"])
        .iter()
        .filter_map(|line| {
            let (_, rest) = line.split_once("object=activity/")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .filter(|id| ids.contains(id))
        .count()
}

struct Env {
    server: TestServer,
    fake: FakeStrava,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// A host with the plugin pointed at a fresh fake; its job workers run from the
/// start, or (`paused`) only once [`Env::start_workers`] is called, so a test can
/// count what a burst queued before anything runs. None when the backend is
/// unavailable (PostgreSQL outside CI).
async fn start(backend: Backend, paused: bool) -> Option<Env> {
    capture_logs();
    let fake = FakeStrava::start().await;
    let server = TestServer::builder(backend)
        .with(|s| {
            s.open_registration = true;
            s.job_backoff_ms = 50;
            s.job_workers = if paused { 0 } else { 2 };
            for (name, value) in fake.plugin_env() {
                s.plugin_env.insert(name, Secret::new(value));
            }
        })
        .start()
        .await?;
    Some(Env {
        server,
        fake,
        workers: Vec::new(),
    })
}

impl Env {
    /// Starts two job workers on a host started paused.
    fn start_workers(&mut self) {
        let mut workers = self.server.state.job_workers();
        workers.settings = Arc::new(Settings {
            job_workers: 2,
            ..(*workers.settings).clone()
        });
        self.workers = ham_host::jobs::spawn_workers(&workers);
    }

    async fn stop(self) {
        for worker in &self.workers {
            worker.abort();
        }
        self.server.stop().await;
    }

    /// Registers alice and connects her through the fake's OAuth; returns her
    /// session and id.
    async fn connect(&self) -> (Session, String) {
        let mut alice = Session::register(&self.server, "alice").await;
        self.fake
            .connect(&self.server.url, alice.cookie.as_deref().unwrap())
            .await;
        let id = user_id(&self.server, &mut alice).await;
        (alice, id)
    }

    /// Posts an event and checks the answer is the one every event gets.
    async fn post(&self, body: &Value) {
        let answer = post_event_answer(&self.server.url, body).await;
        assert_eq!(answer, received(), "{body}");
    }

    /// Waits until every job of the plugin has finished.
    async fn drain(&self) {
        until(Duration::from_secs(30), "the queue to drain", || async {
            (pending_jobs(&self.server).await == 0).then_some(())
        })
        .await;
    }

    /// The plugin's `event` jobs with their events, oldest first.
    async fn event_jobs(&self) -> Vec<(ham_host::store::jobs::JobRow, Value)> {
        let mut jobs: Vec<_> = self
            .server
            .state
            .db
            .list_jobs(None, 500)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.plugin == "strava-sync" && j.kind == "event")
            .map(|j| {
                let event = serde_json::from_slice(&j.payload).unwrap();
                (j, event)
            })
            .collect();
        jobs.reverse();
        jobs
    }

    /// The id of the one `event` job for `aspect` of `object_id`.
    async fn job_for(&self, aspect: &str, object_id: u64) -> String {
        let jobs: Vec<String> = self
            .event_jobs()
            .await
            .into_iter()
            .filter(|(_, e)| e["aspect_type"] == aspect && e["object_id"] == object_id)
            .map(|(j, _)| j.id)
            .collect();
        assert_eq!(jobs.len(), 1, "one {aspect} job for {object_id}: {jobs:?}");
        jobs[0].clone()
    }

    /// The plugin-scope markers of pending events for the fake's athlete.
    async fn pending_markers(&self) -> i64 {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM plugin_kv WHERE plugin = 'strava-sync' AND key LIKE $1",
        )
        .bind(format!("pending/{ATHLETE_ID}/%"))
        .fetch_one(self.server.state.db.pool())
        .await
        .unwrap();
        row.get::<i64, _>(0)
    }

    async fn status(&self, session: &Session) -> Value {
        let (status, body) = session
            .clone()
            .json(&self.server, Method::GET, "/api/strava/status", None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Alice's "Run" habit with a rule that checks it for every run.
    async fn run_habit(&self, alice: &mut Session) -> String {
        let (status, habit) = alice
            .json(
                &self.server,
                Method::POST,
                "/api/habits",
                Some(
                    json!({"name": "Run", "kind": "boolean", "frequency": {"times": 1, "days": 1}}),
                ),
            )
            .await;
        assert!(status.is_success(), "{habit}");
        let id = habit["id"].as_str().unwrap().to_string();
        let (status, rule) = alice
            .json(
                &self.server,
                Method::POST,
                "/api/strava/rules",
                Some(json!({"habit_id": id, "sport_types": ["Run"], "measure": "done"})),
            )
            .await;
        assert_eq!(status, 201, "{rule}");
        id
    }
}

fn received() -> Answer {
    Answer {
        status: 200,
        content_type: Some("application/json".into()),
        body: RECEIVED.to_vec(),
    }
}

/// Activity ids of their own per backend: the two halves of a story run at once
/// and share the log.
fn base(backend: Backend) -> u64 {
    match backend {
        Backend::Sqlite => 100_000,
        Backend::Postgres => 200_000,
    }
}

/// How many times the fake was asked for exactly `line`.
fn asked(fake: &FakeStrava, line: &str) -> usize {
    fake.requests().iter().filter(|r| *r == line).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delete_changes_nothing_and_a_confirmed_one_removes_the_activity_on_sqlite() {
    delete_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delete_changes_nothing_and_a_confirmed_one_removes_the_activity_on_postgres() {
    delete_story(Backend::Postgres).await;
}

async fn delete_story(backend: Backend) {
    let Some(env) = start(backend, false).await else {
        return;
    };
    let server = &env.server;
    let (mut alice, user) = env.connect().await;
    let habit = env.run_habit(&mut alice).await;
    let (kept, gone, hidden, foreign) = (
        base(backend) + 1,
        base(backend) + 2,
        base(backend) + 3,
        base(backend) + 4,
    );
    for id in [kept, gone, hidden] {
        env.fake.put_activity(run(id, "Run", "2026-03-02", 5200.0));
        env.post(&event("activity", "create", id, json!({}))).await;
    }
    env.drain().await;
    let before = format!("{:?}", activities(server, &user).await);
    let checked = format!("{:?}", entries(server, &habit).await);
    assert_eq!(activities(server, &user).await.len(), 3, "{before}");
    assert!(checked.contains("2026-03-02"), "{checked}");

    // A delete Strava does not confirm: the activity is still there, so is the
    // check-in, and the job logged a warning.
    let fetches = asked(&env.fake, &format!("GET /api/v3/activities/{kept}"));
    env.post(&event("activity", "delete", kept, json!({})))
        .await;
    env.drain().await;
    assert_eq!(
        asked(&env.fake, &format!("GET /api/v3/activities/{kept}")),
        fetches + 1,
        "the job asked Strava"
    );
    assert_eq!(format!("{:?}", activities(server, &user).await), before);
    assert_eq!(format!("{:?}", entries(server, &habit).await), checked);
    let job = env.job_for("delete", kept).await;
    let warned = logged(&[
        "WARN",
        "delete event not confirmed",
        &format!("job={job}"),
        &format!("activity={kept}"),
    ]);
    assert_eq!(warned.len(), 1, "{warned:?}");

    // Deleted at Strava (404), then made private to the app (403): each goes here
    // too. The check-in stays while one run is left on the day.
    env.fake.remove_activity(gone);
    env.post(&event("activity", "delete", gone, json!({})))
        .await;
    env.fake.hide_activity(hidden);
    env.post(&event(
        "activity",
        "update",
        hidden,
        json!({"private": "true"}),
    ))
    .await;
    env.drain().await;
    let left: Vec<String> = activities(server, &user)
        .await
        .into_iter()
        .map(|a| a.external_id)
        .collect();
    assert_eq!(left, vec![kept.to_string()]);
    assert_eq!(entries(server, &habit).await.len(), 1);
    env.fake.remove_activity(kept);
    env.post(&event("activity", "delete", kept, json!({})))
        .await;
    env.drain().await;
    assert!(activities(server, &user).await.is_empty());
    assert!(
        entries(server, &habit).await.is_empty(),
        "the check-in went with the last run"
    );

    // Another athlete's public activity, named in an event for this one: not taken.
    let mut theirs = run(foreign, "Not yours", "2026-03-03", 9000.0);
    theirs["athlete"]["id"] = json!(ATHLETE_ID + 1);
    env.fake.put_activity(theirs);
    env.post(&event("activity", "create", foreign, json!({})))
        .await;
    env.drain().await;
    assert_eq!(
        asked(&env.fake, &format!("GET /api/v3/activities/{foreign}")),
        1
    );
    assert!(activities(server, &user).await.is_empty());
    assert!(entries(server, &habit).await.is_empty());
    let job = env.job_for("create", foreign).await;
    assert_eq!(
        logged(&["WARN", "not this athlete's", &format!("job={job}")]).len(),
        1
    );
    let jobs = admin_jobs(server).await;
    assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_deauthorization_changes_nothing_and_a_confirmed_one_disconnects_on_sqlite() {
    deauthorization_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_deauthorization_changes_nothing_and_a_confirmed_one_disconnects_on_postgres() {
    deauthorization_story(Backend::Postgres).await;
}

async fn deauthorization_story(backend: Backend) {
    let Some(env) = start(backend, false).await else {
        return;
    };
    let server = &env.server;
    let (alice, user) = env.connect().await;
    let deauthorize = event(
        "athlete",
        "update",
        ATHLETE_ID,
        json!({"authorized": "false"}),
    );

    // Strava still accepts the tokens: the connection stays, with a warning.
    env.post(&deauthorize).await;
    env.drain().await;
    assert_eq!(
        asked(&env.fake, "GET /api/v3/athlete"),
        1,
        "the job asked Strava"
    );
    let status = env.status(&alice).await;
    assert_eq!(status["connected"], true, "{status}");
    assert_eq!(status["needs_reconnect"], false, "{status}");
    let job = env.job_for("update", ATHLETE_ID).await;
    assert_eq!(
        logged(&[
            "WARN",
            "deauthorization event not confirmed",
            &format!("job={job}")
        ])
        .len(),
        1
    );
    // The connection still works: an event afterwards is processed.
    let id = base(backend) + 10;
    env.fake
        .put_activity(run(id, "Still here", "2026-03-04", 5000.0));
    env.post(&event("activity", "create", id, json!({}))).await;
    env.drain().await;
    assert_eq!(activities(server, &user).await.len(), 1);

    // The athlete revoked access at Strava: the access token is refused, then the
    // refresh. The connection and the athlete's mapping go.
    env.fake.revoke_athlete(ATHLETE_ID);
    env.post(&deauthorize).await;
    env.drain().await;
    let status = env.status(&alice).await;
    assert_eq!(status["connected"], false, "{status}");
    let rows = sqlx::query(
        "SELECT COUNT(*) FROM plugin_kv WHERE plugin = 'strava-sync' AND (key = 'connection' OR key LIKE 'athlete/%')",
    )
    .fetch_one(server.state.db.pool())
    .await
    .unwrap();
    assert_eq!(rows.get::<i64, _>(0), 0);
    let refreshes = env.fake.refreshes();
    assert_eq!(refreshes.len(), 1, "one refresh, refused: {refreshes:?}");
    assert!(refreshes[0].issued.is_none());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_gets_the_same_answer_and_another_subscription_s_reaches_nothing_on_sqlite() {
    answer_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_gets_the_same_answer_and_another_subscription_s_reaches_nothing_on_postgres() {
    answer_story(Backend::Postgres).await;
}

async fn answer_story(backend: Backend) {
    let Some(mut env) = start(backend, true).await else {
        return;
    };
    let server = &env.server;
    let (_, user) = env.connect().await;
    let (known, other_subscription, later) =
        (base(backend) + 20, base(backend) + 21, base(backend) + 22);
    for id in [known, other_subscription, later] {
        env.fake.put_activity(run(id, "Run", "2026-03-05", 5000.0));
    }

    // A connected athlete's event, which is queued.
    let first =
        post_event_answer(&server.url, &event("activity", "create", known, json!({}))).await;
    assert_eq!(first, received());
    assert_eq!(
        String::from_utf8_lossy(&first.body),
        r#"{"status":"received"}"#
    );
    assert_eq!(env.event_jobs().await.len(), 1);
    // Every other well-formed event gets the very same bytes, queued or not.
    let mut unknown = event("activity", "create", known, json!({}));
    unknown["owner_id"] = json!(ATHLETE_ID + 1);
    let mut unknown_deauthorization = event(
        "athlete",
        "update",
        ATHLETE_ID + 1,
        json!({"authorized": "false"}),
    );
    unknown_deauthorization["owner_id"] = json!(ATHLETE_ID + 1);
    let mut foreign = event("activity", "create", other_subscription, json!({}));
    foreign["subscription_id"] = json!(SUBSCRIPTION_ID + 1);
    for body in [
        unknown,
        unknown_deauthorization,
        foreign,
        // The same activity again: folded into the pending job.
        event("activity", "update", known, json!({"title": "Renamed"})),
        // An athlete update that is not a deauthorization: nothing to do.
        event("athlete", "update", ATHLETE_ID, json!({"firstname": "Al"})),
    ] {
        let answer = post_event_answer(&server.url, &body).await;
        assert_eq!(answer, first, "{body}");
    }
    assert_eq!(
        env.event_jobs().await.len(),
        1,
        "none of those queued a job"
    );
    // A malformed body is still refused.
    let bad = post_event_answer(&server.url, &json!({"object_type": "activity"})).await;
    assert_eq!(bad.status, 400);

    // Run the queue, then one more event: had the other subscription's event
    // queued anything, it would have run before this one.
    env.start_workers();
    env.post(&event("activity", "create", later, json!({})))
        .await;
    env.drain().await;
    let server = &env.server;
    assert_eq!(activities(server, &user).await.len(), 2);
    assert_eq!(
        asked(&env.fake, &format!("GET /api/v3/activities/{known}")),
        1
    );
    assert_eq!(
        calls(&env.fake, &other_subscription.to_string()),
        0,
        "another subscription's event reaches no one: {:?}",
        env.fake.requests()
    );
    let jobs = env.event_jobs().await;
    assert_eq!(
        jobs.len(),
        2,
        "{:?}",
        jobs.iter().map(|j| &j.1).collect::<Vec<_>>()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_for_one_athlete_queues_a_bounded_number_of_jobs_on_sqlite() {
    flood_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_for_one_athlete_queues_a_bounded_number_of_jobs_on_postgres() {
    flood_story(Backend::Postgres).await;
}

/// Requests of a flood in flight at once: fewer than the plugin's 100 instances,
/// so none is turned away as `plugin_busy` (the host's own bound, tested apart).
const FLOOD_IN_FLIGHT: usize = 40;

/// Posts `bodies`, [`FLOOD_IN_FLIGHT`] at a time; checks every answer.
async fn flood(env: &Env, bodies: Vec<Value>) {
    use futures::StreamExt as _;
    let posts = bodies.into_iter().map(|body| {
        let url = env.server.url.clone();
        async move { (post_event_answer(&url, &body).await, body) }
    });
    let answers: Vec<_> = futures::stream::iter(posts)
        .buffer_unordered(FLOOD_IN_FLIGHT)
        .collect()
        .await;
    for (answer, body) in answers {
        assert_eq!(answer, received(), "{body}");
    }
}

async fn flood_story(backend: Backend) {
    let Some(mut env) = start(backend, true).await else {
        return;
    };
    let (_, user) = env.connect().await;
    let real = base(backend) + 30;
    env.fake
        .put_activity(run(real, "Real", "2026-03-06", 5000.0));

    // 200 events for one activity at once: one job.
    flood(
        &env,
        (0..200)
            .map(|_| event("activity", "update", real, json!({"title": "x"})))
            .collect(),
    )
    .await;
    assert_eq!(env.event_jobs().await.len(), 1);

    // 200 made-up activities of the athlete at once: no more than the cap pending.
    let forged = base(backend) + 1_000;
    flood(
        &env,
        (forged..forged + 200)
            .map(|id| event("activity", "create", id, json!({})))
            .collect(),
    )
    .await;
    // The real activity's pending job counts too. (Concurrent events at the cap
    // may all give way, so the cap is a ceiling, not a count to reach.)
    let queued = env.event_jobs().await.len();
    assert!(
        (2..=MAX_PENDING).contains(&queued),
        "{queued} jobs pending for one athlete"
    );
    assert_eq!(env.pending_markers().await, i64::try_from(queued).unwrap());
    assert_eq!(
        dropped_for_the_cap(forged..forged + 200),
        200 - (queued - 1),
        "every other event was dropped, with a warning"
    );

    // The jobs run, each asks Strava once, and the pending count comes back down.
    env.start_workers();
    env.drain().await;
    assert_eq!(
        asked(&env.fake, &format!("GET /api/v3/activities/{real}")),
        1
    );
    let fetched = env
        .fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v3/activities/"))
        .count();
    assert_eq!(fetched, queued, "one call per queued job");
    assert_eq!(env.pending_markers().await, 0);
    let jobs = admin_jobs(&env.server).await;
    assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:?}");

    // The athlete's real workout afterwards arrives as usual.
    let next = base(backend) + 31;
    env.fake
        .put_activity(run(next, "Next", "2026-03-07", 5000.0));
    env.post(&event("activity", "create", next, json!({})))
        .await;
    until(Duration::from_secs(20), "the real workout", || async {
        (activities(&env.server, &user).await.len() == 2).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_arriving_while_its_job_asks_strava_queues_one_more_job() {
    let env = start(Backend::Sqlite, false).await.unwrap();
    let (_, user) = env.connect().await;
    let id = base(Backend::Sqlite) + 40;
    env.fake.put_activity(run(id, "Slow", "2026-03-08", 5000.0));
    env.fake.stall(Some(Duration::from_secs(3)));
    env.post(&event("activity", "create", id, json!({}))).await;
    let line = format!("GET /api/v3/activities/{id}");
    until(Duration::from_secs(20), "the job to ask Strava", || async {
        (asked(&env.fake, &line) == 1).then_some(())
    })
    .await;
    // Strava may have answered the first job before the activity changed: the
    // events that arrive meanwhile queue one more job, not one each.
    env.fake
        .put_activity(run(id, "Slow, renamed", "2026-03-08", 5000.0));
    flood(
        &env,
        (0..50)
            .map(|_| event("activity", "update", id, json!({"title": "Slow, renamed"})))
            .collect(),
    )
    .await;
    env.fake.stall(None);
    env.drain().await;
    let jobs = env.event_jobs().await.len();
    assert!((2..=3).contains(&jobs), "{jobs} jobs for one activity");
    assert_eq!(asked(&env.fake, &line), jobs);
    let acts = activities(&env.server, &user).await;
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0].name, "Slow, renamed");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_athlete_s_budget_waits_instead_of_spending_the_rate_limit() {
    let env = start(Backend::Sqlite, false).await.unwrap();
    env.connect().await;
    let started = jiff::Timestamp::now().as_millisecond();
    // Waves of 200 made-up activities, each let to run or wait, until more jobs
    // were queued than the budget allows calls.
    let mut next = base(Backend::Sqlite) + 10_000;
    let mut waves = 0;
    let (total, waiting) = loop {
        flood(
            &env,
            (next..next + 200)
                .map(|id| event("activity", "create", id, json!({})))
                .collect(),
        )
        .await;
        next += 200;
        waves += 1;
        let (total, waiting) = until(
            Duration::from_secs(30),
            "every job to run or wait",
            || async {
                let jobs = env.event_jobs().await;
                let total = jobs.len();
                let done = jobs.iter().filter(|(j, _)| j.state == "done").count();
                let waiting: Vec<_> = jobs
                    .into_iter()
                    .map(|(j, _)| j)
                    .filter(|j| {
                        j.state == "queued"
                            && j.last_error
                                .as_deref()
                                .is_some_and(|e| e.contains("budget"))
                    })
                    .collect();
                (done + waiting.len() == total).then_some((total, waiting))
            },
        )
        .await;
        if total > BUDGET_BURST + 5 || waves == 6 {
            break (total, waiting);
        }
    };
    assert!(total > BUDGET_BURST + 5, "{total} jobs in {waves} waves");
    let fetched = env
        .fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v3/activities/"))
        .count();
    // The bucket also refills by one every five minutes while the test runs.
    assert!(
        (BUDGET_BURST..=BUDGET_BURST + 1).contains(&fetched),
        "{fetched} calls to Strava for {total} queued forged events"
    );
    assert_eq!(waiting.len(), total - fetched);
    for job in &waiting {
        assert_eq!(job.attempts, 0, "waiting uses no attempt: {job:?}");
        assert!(
            job.run_after > started + 60_000,
            "waits for the budget to refill: {job:?}"
        );
    }
    // Waiting jobs still stand for their activities: they count as pending.
    assert_eq!(
        env.pending_markers().await,
        i64::try_from(waiting.len()).unwrap()
    );
    assert!(waiting.len() <= MAX_PENDING);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_connect_states_are_deleted_and_open_ones_are_bounded() {
    let env = start(Backend::Sqlite, false).await.unwrap();
    let server = &env.server;
    let alice = Session::register(server, "alice").await;
    let cookie = alice.cookie.clone().unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let connect = || async {
        browser
            .get(server.url("/api/strava/connect"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
    };
    let states = || async {
        sqlx::query(
            "SELECT COUNT(*) FROM plugin_kv WHERE plugin = 'strava-sync' AND key LIKE 'oauth-state/%'",
        )
        .fetch_one(server.state.db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
    };
    for _ in 0..20 {
        assert_eq!(connect().await.status(), 302);
    }
    assert_eq!(states().await, 20);
    let refused = common::error_of(connect().await).await;
    assert_eq!((refused.0, refused.1.as_str()), (429, "too_many_attempts"));
    assert_eq!(states().await, 20);
    // Ten minutes later (the states' expiry moved into the past, same length):
    // the next connect deletes them all.
    sqlx::query(
        "UPDATE plugin_kv SET value = $1 WHERE plugin = 'strava-sync' AND key LIKE 'oauth-state/%'",
    )
    .bind(b"1000000000000".to_vec())
    .execute(server.state.db.pool())
    .await
    .unwrap();
    assert_eq!(connect().await.status(), 302);
    assert_eq!(states().await, 1);
    // And connecting works as ever (its own state is used and gone).
    env.fake.connect(&server.url, &cookie).await;
    assert_eq!(states().await, 1);
    env.stop().await;
}
