//! Export then import into a fresh database gives identical data, as JSON and as
//! CSV, on SQLite and on PostgreSQL; a bad import writes nothing.

use crate::common;

use common::{Backend, TestServer, client};
use ham_host::habits::Activity;
use serde_json::{Value, json};

/// A fresh server with one signed-in user; returns the session cookie too.
async fn fresh(backend: Backend) -> Option<(TestServer, String, String)> {
    let server = TestServer::builder(backend).start().await?;
    let response = client()
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "alice", "password": "alice-secret-pw"}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let user: Value = response.json().await.unwrap();
    Some((server, cookie, user["id"].as_str().unwrap().to_string()))
}

async fn call(
    server: &TestServer,
    cookie: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = client()
        .request(method, server.url(path))
        .header("cookie", cookie);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

/// The document with habit ids replaced by names: ids are new after an import.
fn normalized(mut doc: Value) -> Value {
    for habit in doc["habits"].as_array_mut().unwrap() {
        habit["id"] = habit["name"].clone();
    }
    doc
}

async fn import(
    server: &TestServer,
    cookie: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    client()
        .post(server.url("/api/import"))
        .header("cookie", cookie)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn round_trip(backend: Backend) {
    let Some((server, cookie, user_id)) = fresh(backend).await else {
        return;
    };
    use reqwest::Method;
    call(
        &server,
        &cookie,
        Method::PATCH,
        "/api/me",
        Some(json!({"time_zone": "Europe/Berlin"})),
    )
    .await;
    let run = call(&server, &cookie, Method::POST, "/api/habits", Some(json!({"name": "Run, outside", "kind": "boolean", "frequency": {"times": 3, "days": 7}, "reminders": [{"time": "07:30", "days": [5, 1, 3]}, {"time": "18:00"}]}))).await;
    assert_eq!(
        run["reminders"],
        json!([{"time": "07:30", "days": [1, 3, 5]}, {"time": "18:00", "days": [1, 2, 3, 4, 5, 6, 7]}])
    );
    let water = call(&server, &cookie, Method::POST, "/api/habits", Some(json!({"name": "Water", "description": "glasses \"big\"", "kind": "measurable", "unit": "l", "target": {"value": 2.0, "type": "at_most"}}))).await;
    let (run, water) = (run["id"].as_str().unwrap(), water["id"].as_str().unwrap());
    call(
        &server,
        &cookie,
        Method::PUT,
        &format!("/api/habits/{run}/entries/2026-11-20"),
        Some(json!({"status": "done"})),
    )
    .await;
    call(
        &server,
        &cookie,
        Method::PUT,
        &format!("/api/habits/{run}/entries/2026-11-21"),
        Some(json!({"status": "skipped", "note": "rain,\nwind"})),
    )
    .await;
    call(
        &server,
        &cookie,
        Method::PUT,
        &format!("/api/habits/{water}/entries/2026-11-20"),
        Some(json!({"value": 1.5})),
    )
    .await;
    call(
        &server,
        &cookie,
        Method::PATCH,
        &format!("/api/habits/{water}"),
        Some(json!({"archived": true})),
    )
    .await;
    let activity = Activity {
        source: "strava".into(),
        external_id: "123".into(),
        sport_type: "Run".into(),
        name: "Morning Run".into(),
        start_utc: 1_795_420_800_000,
        start_local: "2026-11-20T07:00:00".into(),
        distance_m: Some(5210.5),
        moving_time_s: Some(1800),
        elapsed_time_s: None,
        elevation_gain_m: Some(12.0),
        average_heartrate: None,
    };
    server
        .state
        .db
        .upsert_activity(&user_id, &activity)
        .await
        .unwrap();

    let original = call(
        &server,
        &cookie,
        Method::GET,
        "/api/export?format=json",
        None,
    )
    .await;
    assert_eq!(original["habits"].as_array().unwrap().len(), 2);
    assert_eq!(original["time_zone"], "Europe/Berlin");
    let csv = client()
        .get(server.url("/api/export?format=csv"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("record,"), "{csv}");

    for (content_type, body) in [
        ("application/json", original.to_string()),
        ("text/csv", csv),
    ] {
        let (fresh_server, fresh_cookie, _) = fresh(backend).await.unwrap();
        let response = import(&fresh_server, &fresh_cookie, content_type, body).await;
        assert_eq!(response.status(), 200, "{content_type}");
        let counts: Value = response.json().await.unwrap();
        assert_eq!(
            counts,
            json!({"habits": 2, "entries": 3, "activities": 1, "dropped_notes": 0})
        );
        let copy = call(
            &fresh_server,
            &fresh_cookie,
            Method::GET,
            "/api/export?format=json",
            None,
        )
        .await;
        assert_eq!(
            normalized(copy),
            normalized(original.clone()),
            "{content_type} round trip"
        );
        fresh_server.stop().await;
    }

    // A bad import says what is wrong and writes nothing.
    let (target, target_cookie, _) = fresh(backend).await.unwrap();
    let mut bad = original.clone();
    bad["habits"][0]["entries"][0]["date"] = json!("2026-02-30");
    let response = import(&target, &target_cookie, "application/json", bad.to_string()).await;
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("date"),
        "{error}"
    );
    let response = import(
        &target,
        &target_cookie,
        "text/csv",
        "record,habit\nsomething,x\n".into(),
    )
    .await;
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{error}"
    );
    assert_eq!(
        import(&target, &target_cookie, "text/plain", "x".into())
            .await
            .status(),
        415
    );
    assert_eq!(
        import(&target, &target_cookie, "application/json", "{nope".into())
            .await
            .status(),
        400
    );
    let untouched = call(
        &target,
        &target_cookie,
        Method::GET,
        "/api/export?format=json",
        None,
    )
    .await;
    assert_eq!(untouched["habits"], json!([]));
    assert_eq!(untouched["activities"], json!([]));
    target.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_on_sqlite() {
    round_trip(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_on_postgres() {
    round_trip(Backend::Postgres).await;
}
