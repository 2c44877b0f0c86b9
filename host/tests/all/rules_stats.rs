//! Habit stats come from the rules plugin: Loop Habit Tracker's published scores
//! through the real `habit-rules` component and the real HTTP API, properties of
//! the scores, answers that survive a restart, a live swap to another rule set and
//! back, and what a broken rule set gets.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer, guest};
use jiff::ToSpan as _;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Loop's expected values, written as day offsets from today (see the habit-rules
/// crate's `testdata/`).
fn loop_cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/habit-rules-engine/testdata/loop_scores.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(crate) fn day(today: Date, offset: i64) -> String {
    today.checked_add(offset.days()).unwrap().to_string()
}

/// Adds a habit with entries in one import (the way a user restores a backup) and
/// returns its id. Entries are `{"day": offset, "status"|"value"}`.
pub(crate) async fn add_habit(
    server: &TestServer,
    session: &mut Session,
    today: Date,
    name: &str,
    habit: &Value,
    entries: &[Value],
) -> String {
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            let date = day(today, e["day"].as_i64().unwrap());
            match e.get("value") {
                Some(v) => json!({"date": date, "status": "value", "value": v, "note": null, "source": "manual"}),
                None => json!({"date": date, "status": e["status"], "value": null, "note": null, "source": "manual"}),
            }
        })
        .collect();
    let document = json!({
        "format": "ham-export", "version": 1, "time_zone": "UTC", "activities": [],
        "habits": [{
            "id": "h", "name": name, "description": "", "color": "#4f46e5",
            "kind": habit["kind"], "unit": null, "target": habit["target"],
            "frequency": habit["frequency"], "reminders": [], "archived": false,
            "position": 0, "created": today.to_string(), "entries": entries,
        }],
    });
    let (status, body) = session
        .json(server, Method::POST, "/api/import", Some(document))
        .await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    let (_, list) = session.json(server, Method::GET, "/api/habits", None).await;
    list["habits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) async fn stats(
    server: &TestServer,
    session: &mut Session,
    id: &str,
    from: &str,
    to: &str,
) -> Value {
    let (status, body) = session
        .json(
            server,
            Method::GET,
            &format!("/api/habits/{id}/stats?from={from}&to={to}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub(crate) fn today_utc() -> Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
}

/// A server on `backend` with ada signed in; None when the backend is unavailable
/// (PostgreSQL outside CI).
async fn start(backend: Backend) -> Option<(TestServer, Session)> {
    let server = TestServer::builder(backend).start().await?;
    let session = Session::register(&server, "ada").await;
    Some((server, session))
}

/// Every expected value of Loop's `ScoreListTest`, within 1e-6, through the bundled
/// component and the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_scores_are_reproduced() {
    let (server, mut ada) = start(Backend::Sqlite).await.unwrap();
    let today = today_utc();
    let mut checked = 0;
    for (i, case) in loop_cases().iter().enumerate() {
        let name = format!("case {i}");
        let entries = case["entries"].as_array().unwrap();
        let id = add_habit(&server, &mut ada, today, &name, &case["habit"], entries).await;
        let expected = case["expected"].as_array().unwrap();
        let earliest = expected
            .iter()
            .map(|e| e["day"].as_i64().unwrap())
            .min()
            .unwrap_or(0);
        let body = stats(
            &server,
            &mut ada,
            &id,
            &day(today, earliest),
            &today.to_string(),
        )
        .await;
        let scores = body["scores"].as_array().unwrap();
        for e in expected {
            let date = day(today, e["day"].as_i64().unwrap());
            let got = scores.iter().find(|s| s["date"] == date.as_str()).unwrap()["value"]
                .as_f64()
                .unwrap();
            let want = e["value"].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-6,
                "{} ({}): {date}: got {got}, Loop has {want}",
                case["name"],
                name
            );
            checked += 1;
        }
        if expected.iter().any(|e| e["day"] == 0) {
            let want = expected.iter().find(|e| e["day"] == 0).unwrap()["value"]
                .as_f64()
                .unwrap();
            assert!((body["score"].as_f64().unwrap() - want).abs() < 1e-6);
        }
    }
    assert!(checked > 100, "only {checked} values checked");
    server.stop().await;
}

/// A tiny deterministic generator: the same histories every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Scores stay in 0..1, a done day never lowers today's score of an at-least
/// habit, a skip leaves it as it was, and answers are identical across calls and
/// across a restart, on both backends.
async fn properties(backend: Backend) {
    let Some((server, mut ada)) = start(backend).await else {
        return;
    };
    let today = today_utc();
    let from = day(today, -59);
    let mut rng = Lcg(7);
    let mut answers = Vec::new();
    for h in 0..6 {
        let days = [1, 1, 2, 7, 7, 30][h];
        let times = [1, 1, 1, 3, 5, 10][h];
        let measurable = h == 1;
        let habit = if measurable {
            json!({"kind": "measurable", "frequency": {"times": 1, "days": 1}, "target": {"value": 10.0, "type": "at_least"}})
        } else {
            json!({"kind": "boolean", "frequency": {"times": times, "days": days}, "target": null})
        };
        let mut entries = Vec::new();
        for d in -60..=-1 {
            match rng.next() % 4 {
                0 | 1 if measurable => {
                    entries.push(json!({"day": d, "value": (rng.next() % 20) as f64}))
                }
                0 | 1 => entries.push(json!({"day": d, "status": "done"})),
                2 => entries.push(json!({"day": d, "status": "skipped"})),
                _ => {}
            }
        }
        let name = format!("habit {h}");
        let id = add_habit(&server, &mut ada, today, &name, &habit, &entries).await;
        let first = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
        for s in first["scores"].as_array().unwrap() {
            let v = s["value"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{name}: {s}");
        }
        assert_eq!(first["scores"].as_array().unwrap().len(), 60);
        let again = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
        assert_eq!(first, again, "{name}: same input, same answer");

        let score = first["score"].as_f64().unwrap();
        let today_path = format!("/api/habits/{id}/entries/{today}");
        let mark = if measurable {
            json!({"value": 12.0})
        } else {
            json!({"status": "done"})
        };
        let (status, _) = ada
            .json(
                &server,
                Method::PUT,
                &today_path,
                Some(json!({"status": "skipped"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let skipped = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
        assert!(
            (skipped["score"].as_f64().unwrap() - yesterday_score(&first)).abs() < 1e-12,
            "{name}: a skip today keeps yesterday's score"
        );
        let (status, _) = ada
            .json(&server, Method::PUT, &today_path, Some(mark))
            .await;
        assert_eq!(status, StatusCode::OK);
        let done = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
        assert!(
            done["score"].as_f64().unwrap() >= score - 1e-12,
            "{name}: done today never lowers the score ({score} -> {})",
            done["score"]
        );
        answers.push((id, done));
    }
    let url = server.db().url.clone();

    // A new process on the same data: the same answers, computed afresh.
    let server = server.restart().await;
    let (status, _) = ada.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session survives a restart ({url})"
    );
    for (id, before) in &answers {
        let after = stats(&server, &mut ada, id, &from, &today.to_string()).await;
        assert_eq!(*before, after);
    }
    server.stop().await;
}

/// The score of the day before the range's last, i.e. yesterday's.
fn yesterday_score(stats: &Value) -> f64 {
    let scores = stats["scores"].as_array().unwrap();
    scores[scores.len() - 2]["value"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_properties_on_sqlite() {
    properties(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_properties_on_postgres() {
    properties(Backend::Postgres).await;
}

/// Uploading the strict rule set changes every habit's stats live; rolling back
/// brings the Loop answers back; the all-habits route follows along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_rule_set_goes_live_and_rolls_back() {
    let (server, mut ada) = start(Backend::Sqlite).await.unwrap();
    let today = today_utc();
    let entries: Vec<Value> = (-20..=0)
        .map(|d| match d {
            -5 | -2 => json!({"day": d, "status": "skipped"}),
            _ => json!({"day": d, "status": "done"}),
        })
        .collect();
    let habit = json!({"kind": "boolean", "frequency": {"times": 1, "days": 1}, "target": null});
    let id = add_habit(&server, &mut ada, today, "Floss", &habit, &entries).await;
    let from = day(today, -20);
    let loop_answer = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
    assert_eq!(
        loop_answer["current_streak"], 21,
        "skips do not break Loop's streaks"
    );

    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/rules-strict-streaks/plugin.toml"
    ))
    .unwrap();
    server
        .install("habit-rules", &manifest, guest("rules-strict-streaks"))
        .await;
    let strict = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
    assert_eq!(strict["current_streak"], 2, "a skip breaks a strict streak");
    assert!(strict["score"].as_f64().unwrap() < loop_answer["score"].as_f64().unwrap());
    let (_, all) = ada
        .json(&server, Method::GET, "/api/habits/stats", None)
        .await;
    assert_eq!(all["stats"][0]["habit_id"], id.as_str());
    assert_eq!(all["stats"][0]["current_streak"], 2);

    let response = common::client()
        .post(server.url("/api/admin/plugins/habit-rules/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let back = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
    assert_eq!(back, loop_answer);
    let (_, all) = ada
        .json(&server, Method::GET, "/api/habits/stats", None)
        .await;
    assert_eq!(all["stats"][0]["current_streak"], 21);
    server.stop().await;
}

/// Each way a rule set can fail: 502 naming the plugin and version, counted in
/// `/metrics`, and the good answers cached before are served again after a
/// rollback, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_set_gets_502_and_changes_nothing() {
    let (server, mut ada) = start(Backend::Sqlite).await.unwrap();
    let today = today_utc();
    let habit = json!({"kind": "boolean", "frequency": {"times": 1, "days": 1}, "target": null});
    let entries = [
        json!({"day": -1, "status": "done"}),
        json!({"day": 0, "status": "done"}),
    ];
    let id = add_habit(&server, &mut ada, today, "Read", &habit, &entries).await;
    let from = day(today, -6);
    let good = stats(&server, &mut ada, &id, &from, &today.to_string()).await;

    let cases = [
        ("out-of-range", "rules_plugin_invalid", "outside 0..1", ""),
        (
            "wrong-days",
            "rules_plugin_invalid",
            "6 scores for 7 days",
            "",
        ),
        ("refuse", "rules_plugin_invalid", "refuses everything", ""),
        ("trap", "rules_plugin_failed", "trapped", ""),
        (
            "spin",
            "rules_plugin_failed",
            "ran out of fuel",
            "fuel = 50000000\n",
        ),
    ];
    for (i, (mode, code, words, limits)) in cases.iter().enumerate() {
        let version = format!("9.0.{i}");
        let manifest = format!(
            "name = \"habit-rules\"\nversion = \"{version}\"\n[limits]\ntimeout_ms = 5000\n{limits}[variables]\nmode = {{ default = \"{mode}\" }}\n"
        );
        server
            .install(
                "habit-rules",
                &manifest,
                common::rebuilt(&guest("bad-rules"), mode),
            )
            .await;
        let response = ada
            .send(
                &server,
                Method::GET,
                &format!("/api/habits/{id}/stats?from={from}&to={today}"),
                None,
            )
            .await;
        let (status, got_code, message) = common::error_of(response).await;
        assert_eq!(status, 502, "{mode}: {message}");
        assert_eq!(got_code, *code, "{mode}: {message}");
        assert!(
            message.contains("habit-rules")
                && message.contains(&version)
                && message.contains(words),
            "{mode}: {message}"
        );
        let response = ada
            .send(&server, Method::GET, "/api/habits/stats", None)
            .await;
        assert_eq!(response.status(), 502, "{mode}: the all-habits route too");
    }

    let metrics = server.metrics().await;
    for version in ["9.0.0", "9.0.1", "9.0.2"] {
        assert!(
            metrics.contains(&format!(
                "ham_rules_rejected_answers_total{{plugin=\"habit-rules\",version=\"{version}\"}} 2"
            )),
            "{metrics}"
        );
    }
    assert!(metrics.contains("ham_plugin_errors_total{plugin=\"habit-rules\",version=\"9.0.3\",export=\"rules\",kind=\"trap\"} 2"), "{metrics}");
    assert!(metrics.contains("ham_plugin_errors_total{plugin=\"habit-rules\",version=\"9.0.4\",export=\"rules\",kind=\"fuel\"} 2"), "{metrics}");

    // Back to the bundled rules, by uploading them again (the same stored version):
    // the answer cached before any of this is served as it was, without a call.
    let bundled = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "habit-rules")
        .unwrap();
    server
        .install("habit-rules", bundled.manifest, bundled.component.to_vec())
        .await;
    let calls = |m: &ham_host::telemetry::Metrics| {
        m.get(
            "ham_plugin_invocations_total",
            &[
                ("plugin", "habit-rules"),
                ("version", "0.1.0"),
                ("export", "rules"),
            ],
        )
    };
    let before = calls(&server.state.runtime.metrics);
    let after = stats(&server, &mut ada, &id, &from, &today.to_string()).await;
    assert_eq!(after, good);
    assert_eq!(
        calls(&server.state.runtime.metrics),
        before,
        "served from the cache"
    );
    server.stop().await;
}

/// A range the host will not score, and another user's habit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_requests_are_checked() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.open_registration = true;
        })
        .start()
        .await
        .unwrap();
    let mut ada = Session::register(&server, "ada").await;
    let mut bob = Session::register(&server, "bob").await;
    let today = today_utc();
    let habit = json!({"kind": "boolean", "frequency": {"times": 1, "days": 1}, "target": null});
    let id = add_habit(&server, &mut ada, today, "Walk", &habit, &[]).await;

    for (query, words) in [
        ("from=2026-02-30&to=2026-03-01", "from: `2026-02-30`"),
        ("from=2026-03-02&to=2026-03-01", "after"),
        ("from=2000-01-01&to=2026-03-01", "over 3660 days"),
    ] {
        let response = ada
            .send(
                &server,
                Method::GET,
                &format!("/api/habits/{id}/stats?{query}"),
                None,
            )
            .await;
        let (status, code, message) = common::error_of(response).await;
        assert_eq!((status, code.as_str()), (422, "invalid_field"), "{message}");
        assert!(message.contains(words), "{message}");
    }
    let response = bob
        .send(
            &server,
            Method::GET,
            &format!("/api/habits/{id}/stats"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (_, body) = bob
        .json(&server, Method::GET, "/api/habits/stats", None)
        .await;
    assert_eq!(body["stats"], json!([]), "bob sees none of ada's habits");

    // The default range: the 30 days ending today.
    let body = stats(&server, &mut ada, &id, &day(today, -29), &today.to_string()).await;
    let (_, default) = ada
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{id}/stats"),
            None,
        )
        .await;
    assert_eq!(body, default);
    server.stop().await;
}

/// The evaluator keeps a habit's entries between evaluations and patches them
/// after this process's own writes. Whatever the path of a write (the API, or a
/// write it did not see, as from another replica), the next stats must equal what
/// a fresh evaluator, reading every entry, computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_entries_follow_every_write() {
    let (server, mut ada) = start(Backend::Sqlite).await.unwrap();
    let today = today_utc();
    let habit = json!({"kind": "boolean", "target": null, "frequency": {"times": 3, "days": 7}});
    let history: Vec<Value> = (-60..=0)
        .filter(|d| d % 3 != 0)
        .map(|d| json!({"day": d, "status": if d % 5 == 0 { "skipped" } else { "done" }}))
        .collect();
    let id = add_habit(&server, &mut ada, today, "Kept", &habit, &history).await;
    let (from, to) = (day(today, -40), day(today, 0));
    let (_, me) = ada.json(&server, Method::GET, "/api/me", None).await;
    let user_id = me["id"].as_str().unwrap().to_string();

    // What a fresh evaluator (nothing kept) says for a range, as the API shows it.
    let fresh = |from: String, to: String| {
        let state = server.state.clone();
        let (user, id) = (user_id.clone(), id.clone());
        async move {
            let evaluator = ham_host::rules::Evaluator::new(
                std::sync::Arc::downgrade(&state.registry),
                std::sync::Arc::new(ham_host::habits::Tracker::new(state.db.clone())),
            );
            let habit = state
                .db
                .habit_with_revision(&user, &id)
                .await
                .unwrap()
                .unwrap();
            let range = ham_host::rules::Range::parse(&from, &to).unwrap();
            let stats = evaluator
                .evaluate(&user, &[habit], today, &range)
                .await
                .unwrap();
            // Through text, as the API's answer comes (serde_json's float parsing
            // is within an ulp, not exact).
            serde_json::from_str::<Value>(&serde_json::to_string(&*stats[0]).unwrap()).unwrap()
        }
    };

    // Entries kept by a first view; then a new day, a changed day, a deleted day,
    // each through the API, each followed by a view of another range.
    assert_eq!(
        stats(&server, &mut ada, &id, &from, &to).await,
        fresh(from.clone(), to.clone()).await
    );
    let writes = [
        (Method::PUT, -3, Some(json!({"status": "done"}))), // was missing
        (Method::PUT, -1, Some(json!({"status": "skipped"}))), // was done
        (Method::DELETE, -2, None),                         // was done
        (Method::PUT, -59, Some(json!({"status": "done"}))), // far back
    ];
    for (n, (method, offset, body)) in writes.into_iter().enumerate() {
        let path = format!("/api/habits/{id}/entries/{}", day(today, offset));
        let (status, answer) = ada.json(&server, method, &path, body).await;
        assert!(status.is_success(), "{answer}");
        let from = day(today, -30 - n as i64);
        assert_eq!(
            stats(&server, &mut ada, &id, &from, &to).await,
            fresh(from, to.clone()).await,
            "after write {n}"
        );
    }

    // A write this process's evaluator does not hear of (another replica's): the
    // revision moves on by one; the same is true of the API write that follows,
    // which must not be patched onto entries that miss the first one.
    server
        .state
        .db
        .upsert_entry(&ham_host::habits::Entry {
            habit_id: id.clone(),
            date: day(today, -6),
            status: ham_host::habits::EntryStatus::Done,
            value: None,
            note: None,
            source: "elsewhere".into(),
        })
        .await
        .unwrap();
    let path = format!("/api/habits/{id}/entries/{}", day(today, -9));
    let (status, answer) = ada
        .json(&server, Method::PUT, &path, Some(json!({"status": "done"})))
        .await;
    assert!(status.is_success(), "{answer}");
    let from = day(today, -50);
    let after = stats(&server, &mut ada, &id, &from, &to).await;
    assert_eq!(after, fresh(from.clone(), to.clone()).await);
    server.stop().await;
}
