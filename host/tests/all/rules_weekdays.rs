//! Weekday schedules ("gym on Monday, Wednesday and Friday") through the real API
//! and the real bundled `habit-rules` component: the frequency's two shapes and
//! their refusals, eight weeks of every due day scoring over 0.9 with one streak
//! across them, a habit never done under 0.1, and a rule set built against the
//! first `rules` contract still loading and judging every habit.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer, guest};
use jiff::ToSpan as _;
use jiff::civil::{Date, Weekday};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn today_utc() -> Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
}

/// Imports a habit created on `created` with these done dates and returns its id.
async fn import_habit(
    server: &TestServer,
    session: &mut Session,
    name: &str,
    frequency: Value,
    created: Date,
    done: &[Date],
) -> String {
    let entries: Vec<Value> = done
        .iter()
        .map(|d| json!({"date": d.to_string(), "status": "done", "value": null, "note": null, "source": "manual"}))
        .collect();
    let document = json!({
        "format": "ham-export", "version": 1, "time_zone": "UTC", "activities": [],
        "habits": [{
            "id": "h", "name": name, "description": "", "color": "#4f46e5",
            "kind": "boolean", "unit": null, "target": null, "frequency": frequency,
            "reminders": [], "archived": false, "position": 0,
            "created": created.to_string(), "entries": entries,
        }],
    });
    let (status, body) = session
        .json(server, Method::POST, "/api/import", Some(document))
        .await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    let (_, list) = session.json(server, Method::GET, "/api/habits", None).await;
    let habit = list["habits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap()
        .clone();
    assert_eq!(habit["frequency"], frequency, "kept as imported");
    habit["id"].as_str().unwrap().to_string()
}

async fn stats(
    server: &TestServer,
    session: &mut Session,
    id: &str,
    from: Date,
    to: Date,
) -> Value {
    let path = format!("/api/habits/{id}/stats?from={from}&to={to}");
    let (status, body) = session.json(server, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The Monday seven weeks before this week's, and every Monday, Wednesday and
/// Friday from it to today: eight weeks of a Mon/Wed/Fri habit done every time.
fn eight_weeks_of_mon_wed_fri(today: Date) -> (Date, Vec<Date>) {
    let this_monday = today
        .checked_sub(i64::from(today.weekday().to_monday_zero_offset()).days())
        .unwrap();
    let first = this_monday.checked_sub(49.days()).unwrap();
    let done = first
        .series(1.day())
        .take_while(|d| *d <= today)
        .filter(|d| {
            matches!(
                d.weekday(),
                Weekday::Monday | Weekday::Wednesday | Weekday::Friday
            )
        })
        .collect();
    (first, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frequency_is_times_in_days_or_weekdays() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut ada = Session::register(&server, "ada").await;
    let (status, gym) = ada
        .json(
            &server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Gym", "kind": "boolean", "frequency": {"weekdays": [5, 1, 3]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gym}");
    assert_eq!(gym["frequency"], json!({"weekdays": [1, 3, 5]}), "sorted");
    let id = gym["id"].as_str().unwrap();

    // Back to three times a week, and to weekdays again.
    let path = format!("/api/habits/{id}");
    let (status, body) = ada
        .json(
            &server,
            Method::PATCH,
            &path,
            Some(json!({"frequency": {"times": 3, "days": 7}})),
        )
        .await;
    assert_eq!(
        (status, &body["frequency"]),
        (StatusCode::OK, &json!({"times": 3, "days": 7}))
    );
    let (status, body) = ada
        .json(
            &server,
            Method::PATCH,
            &path,
            Some(json!({"frequency": {"weekdays": [6, 7]}})),
        )
        .await;
    assert_eq!(
        (status, &body["frequency"]),
        (StatusCode::OK, &json!({"weekdays": [6, 7]}))
    );

    // Refusals name the field and change nothing.
    for (frequency, says) in [
        (json!({"weekdays": []}), "frequency.weekdays"),
        (json!({"weekdays": [1, 8]}), "frequency.weekdays"),
        (json!({"weekdays": [1], "times": 1, "days": 1}), "either"),
        (json!({"times": 3}), "either"),
    ] {
        let (status, body) = ada
            .json(
                &server,
                Method::PATCH,
                &path,
                Some(json!({"frequency": frequency})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{frequency}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
        assert!(body.to_string().contains(says), "{frequency}: {body}");
    }
    let (_, body) = ada.json(&server, Method::GET, &path, None).await;
    assert_eq!(body["frequency"], json!({"weekdays": [6, 7]}));
    server.stop().await;
}

/// Eight weeks of every Monday, Wednesday and Friday: a score of at least 0.9 and
/// a current streak over all eight weeks, counted in calendar days from the first
/// Monday to today; never done: under 0.1 and no streak. Both backends' stored
/// schedule is the one the plugin judges.
async fn eight_weeks(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let mut ada = Session::register(&server, "ada").await;
    let today = today_utc();
    let (first, done) = eight_weeks_of_mon_wed_fri(today);
    assert!(done.len() >= 22, "{} due days", done.len());
    let mwf = json!({"weekdays": [1, 3, 5]});
    let gym = import_habit(&server, &mut ada, "Gym", mwf.clone(), first, &done).await;
    let never = import_habit(&server, &mut ada, "Swim", mwf, first, &[]).await;

    let s = stats(&server, &mut ada, &gym, first, today).await;
    assert!(s["score"].as_f64().unwrap() >= 0.9, "{}", s["score"]);
    let calendar_days = (today - first).get_days() + 1;
    assert_eq!(s["current_streak"], calendar_days, "first Monday to today");
    assert_eq!(s["best_streaks"][0]["start"], first.to_string());
    // A day off leaves the score where the due day before it put it.
    let scores = s["scores"].as_array().unwrap();
    for (i, day) in first.series(1.day()).take(scores.len()).enumerate().skip(1) {
        if matches!(
            day.weekday(),
            Weekday::Tuesday | Weekday::Thursday | Weekday::Saturday | Weekday::Sunday
        ) {
            assert_eq!(scores[i]["value"], scores[i - 1]["value"], "{day}");
        }
    }

    let s = stats(&server, &mut ada, &never, first, today).await;
    assert!(s["score"].as_f64().unwrap() < 0.1, "{}", s["score"]);
    assert_eq!(s["current_streak"], 0);
    assert_eq!(s["best_streaks"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_weeks_of_every_due_day_on_sqlite() {
    eight_weeks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_weeks_of_every_due_day_on_postgres() {
    eight_weeks(Backend::Postgres).await;
}

/// `examples/rules-strict-streaks` is built against the first contract
/// (`ham:plugin/rules`, no schedules). Uploaded in place of the bundled rule set,
/// it loads, and judges a weekday habit as its count of weekdays in 7 days; a
/// rollback brings the schedule-aware answers back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_set_built_against_the_first_contract_still_loads_and_judges() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut ada = Session::register(&server, "ada").await;
    let today = today_utc();
    let (first, done) = eight_weeks_of_mon_wed_fri(today);
    let gym = import_habit(
        &server,
        &mut ada,
        "Gym",
        json!({"weekdays": [1, 3, 5]}),
        first,
        &done,
    )
    .await;
    let scheduled = stats(&server, &mut ada, &gym, first, today).await;

    let exports = |plugins: &Value| -> Value {
        plugins
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "habit-rules")
            .unwrap()["exports"]
            .clone()
    };
    let admin = || {
        common::client()
            .get(server.url("/api/admin/plugins"))
            .bearer_auth(common::ADMIN_TOKEN)
    };
    let bundled: Value = admin().send().await.unwrap().json().await.unwrap();
    assert_eq!(exports(&bundled), json!(["ham:plugin/scheduled-rules"]));

    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/rules-strict-streaks/plugin.toml"
    ))
    .unwrap();
    server
        .install("habit-rules", &manifest, guest("rules-strict-streaks"))
        .await;
    let old: Value = admin().send().await.unwrap().json().await.unwrap();
    assert_eq!(exports(&old), json!(["ham:plugin/rules"]));
    let judged = stats(&server, &mut ada, &gym, first, today).await;
    // Three times in every seven days, done three times a week: a streak too.
    assert!(judged["score"].as_f64().unwrap() > 0.5, "{judged}");
    assert!(judged["current_streak"].as_u64().unwrap() > 0, "{judged}");
    assert_eq!(
        judged["window"],
        json!({"done": judged["window"]["done"], "target": 3.0, "days": 7})
    );
    assert_ne!(judged, scheduled);

    let response = common::client()
        .post(server.url("/api/admin/plugins/habit-rules/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        stats(&server, &mut ada, &gym, first, today).await,
        scheduled
    );
    server.stop().await;
}
