//! Reminders that fire: the bundled `reminders` plugin delivers a due reminder to
//! a fake ntfy server and a fake webhook receiver over real HTTP on loopback.
//!
//! - it arrives once at each channel, with ntfy's headers and the webhook's JSON,
//!   and its links use `HAM_PUBLIC_URL`; a habit already done that day, and a
//!   reminder whose `days` leave today out, get nothing (SQLite and PostgreSQL);
//! - the ntfy Done action's URL checks the habit in once, then answers 410;
//! - a receiver that fails first is retried and delivered, and its error was
//!   recorded for the user to see;
//! - two hosts on one PostgreSQL, each ticking, deliver once;
//! - the fakes are loopback (private) addresses, reachable only because the test
//!   lists them in `HAM_PLUGIN_REMINDERS_ALLOWED_HOSTS`: without it the send is
//!   refused and the refusal recorded;
//! - a component importing `notifications` without `notifications = true` is
//!   refused at upload.
//!
//! The scheduler ticks the plugin every minute; to deliver a reminder due this
//! minute without waiting for the next one, a test clears the plugin's cursor (a
//! fresh deployment looks back two minutes) and queues a `tick` itself.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::process::until;
use common::session::Session;
use common::{Backend, TestServer, client, error_of};
use ham_host::settings::Secret;
use ham_host::store::jobs::NewJob;
use ham_host::store::kv::KvScope;
use reqwest::Method;
use serde_json::{Value, json};

const PUBLIC_URL: &str = "https://ham.example";
const TIME_ZONE: &str = "Asia/Kolkata";

/// What a fake receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

#[derive(Default)]
struct FakeState {
    received: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    failures_left: Mutex<usize>,
}

/// A receiver on 127.0.0.1 that records every request and answers 200 (after
/// `failures` answers of 500).
struct Fake {
    url: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start(failures: usize) -> Self {
        let state = Arc::new(FakeState {
            failures_left: Mutex::new(failures),
            ..FakeState::default()
        });
        async fn record(
            State(state): State<Arc<FakeState>>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            state.received.lock().unwrap().push(Received {
                path: uri.path().to_string(),
                headers,
                body,
            });
            let mut left = state.failures_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            StatusCode::OK
        }
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, task }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A user's habit, due at local `due_local` (`YYYY-MM-DDTHH:MM`, this minute).
struct Env {
    server: TestServer,
    ntfy: Fake,
    hook: Fake,
    session: Session,
    due_local: String,
}

/// A server whose reminders plugin may reach the fakes (when `allowed`), a user
/// in [`TIME_ZONE`] with an ntfy channel (token `tk-ntfy`) and a webhook
/// (token `tk-hook`), and the local time of this minute.
async fn env(backend: Backend, ntfy_failures: usize, allowed: bool) -> Option<Env> {
    let ntfy = Fake::start(ntfy_failures).await;
    let hook = Fake::start(0).await;
    let hosts = format!("{}, {}", ntfy.url, hook.url);
    let server = TestServer::builder(backend)
        .with(move |s| {
            s.public_url = PUBLIC_URL.into();
            s.job_backoff_ms = 50;
            if allowed {
                s.plugin_env.insert(
                    "HAM_PLUGIN_REMINDERS_ALLOWED_HOSTS".into(),
                    Secret::new(hosts),
                );
            }
        })
        .start()
        .await?;
    let mut session = Session::register(&server, "ada").await;
    let (status, body) = session
        .json(
            &server,
            Method::PATCH,
            "/api/me",
            Some(json!({"time_zone": TIME_ZONE})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let channels = json!({"channels": [
        {"kind": "ntfy", "url": format!("{}/ada-topic", ntfy.url), "token": "tk-ntfy"},
        {"kind": "webhook", "url": format!("{}/hook", hook.url), "token": "tk-hook"},
    ]});
    let (status, body) = session
        .json(
            &server,
            Method::PUT,
            "/api/me/notifications",
            Some(channels),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get(TIME_ZONE).unwrap());
    let due_local = now.strftime("%Y-%m-%dT%H:%M").to_string();
    Some(Env {
        server,
        ntfy,
        hook,
        session,
        due_local,
    })
}

impl Env {
    fn date(&self) -> &str {
        &self.due_local[..10]
    }

    fn time(&self) -> &str {
        &self.due_local[11..]
    }

    /// Today's ISO weekday in the user's time zone.
    fn weekday(&self) -> u8 {
        let date: jiff::civil::Date = self.date().parse().unwrap();
        u8::try_from(date.weekday().to_monday_one_offset()).unwrap()
    }

    /// A boolean habit reminded at this minute on `days`.
    async fn habit(&mut self, name: &str, days: &[u8]) -> String {
        let body = json!({"name": name, "kind": "boolean",
            "reminders": [{"time": self.time(), "days": days}]});
        let (status, habit) = self
            .session
            .json(&self.server, Method::POST, "/api/habits", Some(body))
            .await;
        assert_eq!(status, 201, "{habit}");
        habit["id"].as_str().unwrap().to_string()
    }

    async fn channels(&mut self) -> Vec<Value> {
        let (_, body) = self
            .session
            .json(&self.server, Method::GET, "/api/me/notifications", None)
            .await;
        body["channels"].as_array().unwrap().clone()
    }

    async fn entries(&mut self, habit: &str) -> Value {
        let (_, list) = self
            .session
            .json(
                &self.server,
                Method::GET,
                &format!("/api/habits/{habit}/entries"),
                None,
            )
            .await;
        list["entries"].clone()
    }
}

/// Clears the plugin's cursor (a fresh deployment looks back two minutes) and
/// queues `count` ticks at once, as the scheduler would.
async fn tick(server: &TestServer, count: usize) {
    let db = &server.state.db;
    let scope = KvScope {
        plugin: "reminders",
        owner: "",
    };
    db.kv_delete(scope, "cursor").await.unwrap();
    for _ in 0..count {
        let id = ham_host::store::new_id();
        db.enqueue_job(&NewJob {
            id: &id,
            plugin: "reminders",
            user_id: None,
            kind: "tick",
            payload: &[],
            run_after: ham_host::store::now_ms(),
            max_attempts: 5,
        })
        .await
        .unwrap();
    }
}

/// The reminders plugin's jobs, once none is queued or running.
async fn settled(server: &TestServer) -> Vec<ham_host::store::jobs::JobRow> {
    until(
        Duration::from_secs(30),
        "the reminders jobs to settle",
        || async {
            let jobs = server.state.db.list_jobs(None, 500).await.unwrap();
            let mine: Vec<_> = jobs
                .into_iter()
                .filter(|j| j.plugin == "reminders")
                .collect();
            let busy = mine
                .iter()
                .any(|j| matches!(j.state.as_str(), "queued" | "running"));
            (!busy).then_some(mine)
        },
    )
    .await
}

/// Waits until `fake` has `n` requests.
async fn arrived(fake: &Fake, n: usize, what: &str) -> Vec<Received> {
    until(Duration::from_secs(30), what, || async {
        let got = fake.received();
        (got.len() >= n).then_some(got)
    })
    .await
}

async fn delivery_story(backend: Backend) {
    let Some(mut env) = env(backend, 0, true).await else {
        return;
    };
    let all_days = [1, 2, 3, 4, 5, 6, 7];
    let stretch = env.habit("Stretch", &all_days).await;
    // Already done today: nothing to remind of.
    let read = env.habit("Read", &all_days).await;
    let path = format!("/api/habits/{read}/entries/{}", env.date());
    let (status, body) = env
        .session
        .json(
            &env.server,
            Method::PUT,
            &path,
            Some(json!({"status": "done"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    // Every day but today.
    let other_days: Vec<u8> = all_days
        .into_iter()
        .filter(|d| *d != env.weekday())
        .collect();
    env.habit("Swim", &other_days).await;

    tick(&env.server, 1).await;
    let ntfy = arrived(&env.ntfy, 1, "the ntfy message").await;
    let hook = arrived(&env.hook, 1, "the webhook").await;
    settled(&env.server).await;
    // Nothing more arrives: once per channel, and only Stretch.
    assert_eq!(env.ntfy.received().len(), 1, "{:?}", env.ntfy.received());
    assert_eq!(env.hook.received().len(), 1, "{:?}", env.hook.received());

    let n = &ntfy[0];
    assert_eq!(n.path, "/ada-topic");
    assert_eq!(n.body, format!("Time for Stretch ({})", env.time()));
    assert_eq!(n.header("title"), "Stretch");
    assert_eq!(n.header("tags"), "alarm_clock");
    assert_eq!(n.header("click"), format!("{PUBLIC_URL}/habits/{stretch}"));
    assert_eq!(n.header("authorization"), "Bearer tk-ntfy");
    let actions = n.header("actions");
    let done_url = actions
        .strip_prefix("http, Done, ")
        .and_then(|rest| rest.strip_suffix(", method=POST, clear=true"))
        .unwrap_or_else(|| panic!("Actions: {actions}"));
    assert!(
        done_url.starts_with(&format!("{PUBLIC_URL}/api/reminders/done/")),
        "{done_url}"
    );

    let w = &hook[0];
    assert_eq!(w.path, "/hook");
    assert_eq!(w.header("authorization"), "Bearer tk-hook");
    assert_eq!(w.header("content-type"), "application/json");
    let payload: Value = serde_json::from_str(&w.body).unwrap();
    assert_eq!(
        payload,
        json!({"habit_id": stretch, "habit_name": "Stretch", "user": "ada",
            "due": env.due_local, "done_url": done_url})
    );

    // Both deliveries are recorded for the user to see.
    for channel in env.channels().await {
        assert!(channel["last_success_at"].is_i64(), "{channel}");
        assert!(channel["last_error"].is_null(), "{channel}");
    }

    // The Done action checks Stretch in once (the URL's path on this server).
    let path = done_url.strip_prefix(PUBLIC_URL).unwrap();
    let http = client();
    let first = http.post(env.server.url(path)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        body,
        json!({"habit_id": stretch, "date": env.date(), "status": "done"})
    );
    let second = http.post(env.server.url(path)).send().await.unwrap();
    let (status, code, _) = error_of(second).await;
    assert_eq!((status, code.as_str()), (410, "link_used"));
    let entries = env.entries(&stretch).await;
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    assert_eq!(entries[0]["source"], "reminders");

    // Checked in: another pass over the same minute sends nothing more.
    tick(&env.server, 1).await;
    settled(&env.server).await;
    assert_eq!(env.ntfy.received().len(), 1);
    assert_eq!(env.hook.received().len(), 1);
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_reminder_arrives_once_at_each_channel_and_its_done_link_works_on_sqlite() {
    delivery_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_reminder_arrives_once_at_each_channel_and_its_done_link_works_on_postgres() {
    delivery_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_and_its_error_was_recorded() {
    let mut env = env(Backend::Sqlite, 1, true).await.unwrap();
    env.habit("Stretch", &[1, 2, 3, 4, 5, 6, 7]).await;
    tick(&env.server, 1).await;
    let ntfy = arrived(&env.ntfy, 2, "the retried ntfy message").await;
    arrived(&env.hook, 1, "the webhook").await;
    let jobs = settled(&env.server).await;
    assert_eq!(env.ntfy.received().len(), 2, "a 500, then the delivery");
    assert_eq!(ntfy[0].body, ntfy[1].body, "the same message twice");
    assert_eq!(
        env.hook.received().len(),
        1,
        "the other channel is not resent"
    );
    let sends: Vec<_> = jobs.iter().filter(|j| j.kind == "send").collect();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(
        sends.iter().all(|j| j.state.as_str() == "done"),
        "{sends:?}"
    );
    assert_eq!(
        sends.iter().map(|j| j.attempts).max(),
        Some(2),
        "the ntfy send took two attempts"
    );
    let channels = env.channels().await;
    let ntfy_channel = channels.iter().find(|c| c["kind"] == "ntfy").unwrap();
    let error = ntfy_channel["last_error"].as_str().unwrap();
    assert!(error.contains("answered 500"), "{error}");
    assert!(ntfy_channel["last_error_at"].is_i64());
    assert!(ntfy_channel["last_success_at"].as_i64() >= ntfy_channel["last_error_at"].as_i64());
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_allowed_hosts_a_private_receiver_is_refused_and_recorded() {
    let mut env = env(Backend::Sqlite, 0, false).await.unwrap();
    env.habit("Stretch", &[1, 2, 3, 4, 5, 6, 7]).await;
    tick(&env.server, 1).await;
    let jobs = until(Duration::from_secs(30), "both sends to give up", || async {
        let jobs = env.server.state.db.list_jobs(None, 500).await.unwrap();
        let dead: Vec<_> = jobs
            .into_iter()
            .filter(|j| j.kind == "send" && j.state.as_str() == "dead")
            .collect();
        (dead.len() == 2).then_some(dead)
    })
    .await;
    assert!(
        jobs.iter().all(|j| j.attempts == 1),
        "refused, not retried: {jobs:?}"
    );
    assert!(env.ntfy.received().is_empty());
    assert!(env.hook.received().is_empty());
    for channel in env.channels().await {
        let error = channel["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("is not allowed")
                && error.contains("HAM_PLUGIN_REMINDERS_ALLOWED_HOSTS"),
            "{channel}"
        );
        assert!(channel["last_success_at"].is_null());
    }
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_postgres_deliver_once() {
    let Some(mut env) = env(Backend::Postgres, 0, true).await else {
        return;
    };
    let hosts = format!("{}, {}", env.ntfy.url, env.hook.url);
    let second = TestServer::builder(Backend::Postgres)
        .sharing_database_of(&env.server)
        .with(move |s| {
            s.public_url = PUBLIC_URL.into();
            s.plugin_env.insert(
                "HAM_PLUGIN_REMINDERS_ALLOWED_HOSTS".into(),
                Secret::new(hosts),
            );
        })
        .start()
        .await
        .unwrap();
    env.habit("Stretch", &[1, 2, 3, 4, 5, 6, 7]).await;
    // Four ticks at once, claimed by the workers of both hosts.
    tick(&env.server, 4).await;
    arrived(&env.ntfy, 1, "the ntfy message").await;
    arrived(&env.hook, 1, "the webhook").await;
    let jobs = settled(&env.server).await;
    assert_eq!(env.ntfy.received().len(), 1, "{:?}", env.ntfy.received());
    assert_eq!(env.hook.received().len(), 1, "{:?}", env.hook.received());
    let ticks = jobs
        .iter()
        .filter(|j| j.kind == "tick" && !j.id.starts_with("schedule:"))
        .count();
    assert_eq!(ticks, 4, "{jobs:?}");

    // The same minute queued again (the cursor lost, as after a tick retried
    // mid-window): new remind and send jobs, but the markers hold.
    tick(&env.server, 2).await;
    let again = settled(&env.server).await;
    let sends = again.iter().filter(|j| j.kind == "send").count();
    assert!(sends >= 4, "the deliveries were queued again: {again:?}");
    assert_eq!(env.ntfy.received().len(), 1, "{:?}", env.ntfy.received());
    assert_eq!(env.hook.received().len(), 1, "{:?}", env.hook.received());
    second.stop().await;
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_notifications_needs_the_manifest_flag() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let component = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "reminders")
        .expect("reminders is bundled")
        .component
        .to_vec();
    let manifest = "name = \"notifier\"\nversion = \"0.1.0\"\n";
    let (status, code, message) =
        error_of(server.upload("notifier", manifest, component.clone()).await).await;
    assert_eq!((status, code.as_str()), (422, "contract_mismatch"));
    assert!(message.contains("`notifications = true`"), "{message}");
    assert!(server.state.registry.get("notifier").is_none());
    let granted = format!("{manifest}notifications = true\n");
    server.install("notifier", &granted, component).await;
    server.stop().await;
}

/// "Send a test" in Settings: one message to each channel in its format, each
/// answer reported (a failing channel is reported, not retried, and shows on the
/// channel), a second test within 10 s refused, and nothing for anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_message_reaches_each_channel_and_reports_each_answer() {
    let mut env = env(Backend::Sqlite, 1, true).await.unwrap();
    let (status, body) = env
        .session
        .json(
            &env.server,
            Method::POST,
            "/api/me/notifications/test",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(
        (&results[0]["kind"], &results[0]["ok"]),
        (&json!("ntfy"), &json!(false))
    );
    let error = results[0]["error"].as_str().unwrap();
    assert!(error.contains("answered 500"), "{error}");
    assert_eq!(
        (&results[1]["kind"], &results[1]["ok"], &results[1]["error"]),
        (&json!("webhook"), &json!(true), &Value::Null)
    );
    let ntfy = env.ntfy.received();
    assert_eq!(ntfy.len(), 1, "a test is not retried");
    assert_eq!(ntfy[0].path, "/ada-topic");
    assert_eq!(ntfy[0].header("title"), "HAM");
    assert_eq!(ntfy[0].header("authorization"), "Bearer tk-ntfy");
    assert!(ntfy[0].body.contains("A test from HAM"), "{}", ntfy[0].body);
    let hook = env.hook.received();
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].header("authorization"), "Bearer tk-hook");
    let sent: Value = serde_json::from_str(&hook[0].body).unwrap();
    assert_eq!(
        (&sent["test"], &sent["user"]),
        (&json!(true), &json!("ada"))
    );
    let channels = env.channels().await;
    let ntfy_channel = channels.iter().find(|c| c["kind"] == "ntfy").unwrap();
    assert!(
        ntfy_channel["last_error"]
            .as_str()
            .unwrap()
            .contains("answered 500")
    );

    // At once again: refused, and nothing more is sent.
    let response = env
        .session
        .send(
            &env.server,
            Method::POST,
            "/api/me/notifications/test",
            None,
        )
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "10");
    assert_eq!(
        (env.ntfy.received().len(), env.hook.received().len()),
        (1, 1)
    );

    // Without a session: 401. Another user with no channels: nothing to report,
    // nothing sent to ada's.
    let (status, _) = Session::default()
        .json(
            &env.server,
            Method::POST,
            "/api/me/notifications/test",
            None,
        )
        .await;
    assert_eq!(status, 401);
    env.session
        .send(
            &env.server,
            Method::POST,
            "/api/auth/register",
            common::session::credentials("bob"),
        )
        .await;
    let mut bo = Session::default();
    bo.send(
        &env.server,
        Method::POST,
        "/api/auth/login",
        common::session::credentials("bob"),
    )
    .await;
    let (status, body) = bo
        .json(
            &env.server,
            Method::POST,
            "/api/me/notifications/test",
            None,
        )
        .await;
    assert_eq!((status.as_u16(), &body["results"]), (200, &json!([])));
    assert_eq!(
        (env.ntfy.received().len(), env.hook.received().len()),
        (1, 1)
    );
    env.server.stop().await;
}
