//! Two devices checking in one day: the later tap wins, whichever reaches the
//! server first (`tapped_at` on `PUT /api/habits/{id}/entries/{date}`), on SQLite
//! and on PostgreSQL.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

async fn later_tap_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let mut alice = Session::register(&server, "alice").await;
    let water = json!({"name": "Water", "kind": "measurable", "unit": "l", "target": {"value": 2.0, "type": "at_least"}, "frequency": {"times": 1, "days": 1}});
    let (status, water) = alice
        .json(&server, Method::POST, "/api/habits", Some(water))
        .await;
    assert_eq!(status, 201, "{water}");
    let path = format!(
        "/api/habits/{}/entries/2026-03-01",
        water["id"].as_str().unwrap()
    );
    let list_path = format!("/api/habits/{}/entries", water["id"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (t1, t2, t3) = (now - 60_000, now - 40_000, now - 20_000);

    // The phone taps 1.5 at t2; the first check-in of the day replaces nothing.
    let (status, stored) = alice
        .json(
            &server,
            Method::PUT,
            &path,
            Some(json!({"value": 1.5, "tapped_at": t2})),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        (
            stored["value"].as_f64(),
            stored["updated_at"].as_i64(),
            &stored["replaced"]
        ),
        (Some(1.5), Some(t2), &Value::Null)
    );

    // The stats of the day (read once, so the rules keep its entries).
    let stats_path = format!(
        "/api/habits/{}/stats?from=2026-03-01&to=2026-03-01",
        water["id"].as_str().unwrap()
    );
    let (status, before) = alice.json(&server, Method::GET, &stats_path, None).await;
    assert_eq!(status, 200, "{before}");

    // The laptop was offline and tapped 0.5 earlier, at t1: the phone's later
    // tap is kept, the answer says so and carries it, and nothing changed.
    let (status, body) = alice
        .json(
            &server,
            Method::PUT,
            &path,
            Some(json!({"value": 0.5, "tapped_at": t1})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "newer_entry");
    assert_eq!(
        (
            body["kept"]["value"].as_f64(),
            body["kept"]["updated_at"].as_i64()
        ),
        (Some(1.5), Some(t2))
    );
    let (_, after) = alice.json(&server, Method::GET, &stats_path, None).await;
    assert_eq!(after, before);
    let (_, list) = alice.json(&server, Method::GET, &list_path, None).await;
    assert_eq!(
        list["entries"],
        json!([{"habit_id": water["id"], "date": "2026-03-01", "status": "value", "value": 1.5, "note": null, "source": "manual"}])
    );

    // A later tap (t3) replaces it and reports what it replaced.
    let (status, stored) = alice
        .json(
            &server,
            Method::PUT,
            &path,
            Some(json!({"value": 2.5, "tapped_at": t3})),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["value"].as_f64(), Some(2.5));
    assert_eq!(
        (
            stored["replaced"]["value"].as_f64(),
            stored["replaced"]["updated_at"].as_i64()
        ),
        (Some(1.5), Some(t2))
    );
    let (_, after) = alice.json(&server, Method::GET, &stats_path, None).await;
    assert_ne!(after, before, "the stats follow the written entry");

    // The same tap sent again (a retry) is no conflict and replaces nothing.
    let (status, stored) = alice
        .json(
            &server,
            Method::PUT,
            &path,
            Some(json!({"value": 2.5, "tapped_at": t3})),
        )
        .await;
    assert_eq!((status.as_u16(), &stored["replaced"]), (200, &Value::Null));

    // A tap from a clock in the future counts as now: it does not lock the day
    // against every later tap.
    let (status, stored) = alice
        .json(
            &server,
            Method::PUT,
            &path,
            Some(json!({"value": 3.0, "tapped_at": now + 3_600_000})),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    let clamped = stored["updated_at"].as_i64().unwrap();
    assert!((now..now + 60_000).contains(&clamped), "{clamped}");
    let (status, stored) = alice
        .json(&server, Method::PUT, &path, Some(json!({"value": 3.5})))
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["replaced"]["value"].as_f64(), Some(3.0));
    let (_, list) = alice.json(&server, Method::GET, &list_path, None).await;
    assert_eq!(list["entries"][0]["value"].as_f64(), Some(3.5));

    // A negative tap time is refused, naming the field.
    let (status, body) = alice
        .json(
            &server,
            Method::PUT,
            &path,
            Some(json!({"value": 1.0, "tapped_at": -1})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tapped_at"),
        "{body}"
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_tap_wins_on_sqlite() {
    later_tap_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_tap_wins_on_postgres() {
    later_tap_story(Backend::Postgres).await;
}
