//! Several reminders per habit, on SQLite and on PostgreSQL: the single
//! `reminder` of a database at migration 0010 comes back as a list after 0011;
//! reminders are checked (422 naming the field), sorted and deduplicated, kept
//! through a PATCH, an export and an import, and an old export's `reminder` is
//! still read.

use crate::common;

use common::session::Session;
use common::{Backend, TestDb, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

const EVERY_DAY: [u8; 7] = [1, 2, 3, 4, 5, 6, 7];

/// Applies the migrations up to `last` (inclusive) of this backend's folder.
async fn migrate_up_to(url: &str, backend: Backend, last: i64) {
    sqlx::any::install_default_drivers();
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(folder);
    let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let url = match backend {
        Backend::Sqlite => format!("{url}?mode=rwc"),
        Backend::Postgres => url.to_string(),
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    migrator.run(&pool).await.unwrap();
    // A user of migration 0010's schema with a session, and two habits: one with
    // the single reminder of those days, one without.
    for statement in [
        "INSERT INTO users (id, username, is_admin, time_zone, created_at) \
         VALUES ('u1', 'ada', 1, 'UTC', 0)",
        "INSERT INTO habits (id, user_id, name, description, color, kind, frequency_times, \
         frequency_days, reminder, archived, position, created, created_at) \
         VALUES ('h1', 'u1', 'Run', '', '#4f46e5', 'boolean', 1, 1, '07:30', 0, 0, '2026-01-01', 0)",
        "INSERT INTO habits (id, user_id, name, description, color, kind, frequency_times, \
         frequency_days, reminder, archived, position, created, created_at) \
         VALUES ('h2', 'u1', 'Read', '', '#4f46e5', 'boolean', 1, 1, NULL, 0, 1, '2026-01-01', 0)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, 'u1', 0, $2)")
        .bind(ham_host::auth::token_hash("old-session"))
        .bind(i64::MAX / 2)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn old_reminders_migrate(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = TestDb::new(backend, dir.path()).await else {
        return;
    };
    migrate_up_to(&db.url, backend, 10).await;
    let server = TestServer::start(common::settings(dir.path(), &db)).await;
    let mut ada = Session {
        cookie: Some("ham_session=old-session".into()),
    };
    let (status, list) = ada.json(&server, Method::GET, "/api/habits", None).await;
    assert_eq!(status, 200, "{list}");
    let reminders: Vec<(Value, Value)> = list["habits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].clone(), h["reminders"].clone()))
        .collect();
    assert_eq!(
        reminders,
        [
            (json!("Run"), json!([{"time": "07:30", "days": EVERY_DAY}])),
            (json!("Read"), json!([])),
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_reminder_becomes_a_list_on_sqlite() {
    old_reminders_migrate(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_reminder_becomes_a_list_on_postgres() {
    old_reminders_migrate(Backend::Postgres).await;
}

async fn reminders_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend)
        .with(|s| s.open_registration = true)
        .start()
        .await
    else {
        return;
    };
    let mut ada = Session::register(&server, "ada").await;

    // Refused, naming the field; nothing is created.
    let eleven: Vec<Value> = (0..11)
        .map(|h| json!({"time": format!("{h:02}:00")}))
        .collect();
    for (reminders, field) in [
        (json!([{"time": "24:00"}]), "reminders[0].time"),
        (json!([{"time": "7:30"}]), "reminders[0].time"),
        (
            json!([{"time": "07:30"}, {"time": "07:60"}]),
            "reminders[1].time",
        ),
        (json!([{"time": "07:30", "days": []}]), "reminders[0].days"),
        (json!([{"time": "07:30", "days": [8]}]), "reminders[0].days"),
        (
            json!([{"time": "07:30", "days": [1, 2]}, {"time": "07:30", "days": [2]}]),
            "reminders[1].time",
        ),
        (
            json!([{"time": "07:30"}, {"time": "07:30", "days": [7]}]),
            "reminders[1].time",
        ),
        (json!(eleven), "reminders"),
    ] {
        let (status, body) = ada
            .json(
                &server,
                Method::POST,
                "/api/habits",
                Some(json!({"name": "Run", "kind": "boolean", "reminders": reminders})),
            )
            .await;
        assert_eq!(
            (status.as_u16(), body["error"]["code"].as_str()),
            (422, Some("invalid_field")),
            "{reminders}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{reminders}: {message}"
        );
    }
    let (_, list) = ada.json(&server, Method::GET, "/api/habits", None).await;
    assert_eq!(list["habits"], json!([]));

    // Accepted: days sorted and deduplicated, every day when left out; the same
    // time on other days is fine.
    let (status, run) = ada
        .json(
            &server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Run", "kind": "boolean", "reminders": [
                {"time": "07:30", "days": [5, 1, 1, 3]},
                {"time": "07:30", "days": [6, 7]},
                {"time": "21:00"},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let expected = json!([
        {"time": "07:30", "days": [1, 3, 5]},
        {"time": "07:30", "days": [6, 7]},
        {"time": "21:00", "days": EVERY_DAY},
    ]);
    assert_eq!(run["reminders"], expected);
    let id = run["id"].as_str().unwrap().to_string();
    let (_, read) = ada
        .json(&server, Method::GET, &format!("/api/habits/{id}"), None)
        .await;
    assert_eq!(read["reminders"], expected);

    // A PATCH without `reminders` keeps them; with, replaces them.
    let (_, patched) = ada
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{id}"),
            Some(json!({"name": "Morning run"})),
        )
        .await;
    assert_eq!(patched["reminders"], expected);
    let (status, patched) = ada
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{id}"),
            Some(json!({"reminders": [{"time": "06:00", "days": [2]}]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        patched["reminders"],
        json!([{"time": "06:00", "days": [2]}])
    );
    // A refused PATCH leaves them.
    let (status, _) = ada
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{id}"),
            Some(json!({"reminders": [{"time": "06:00", "days": []}]})),
        )
        .await;
    assert_eq!(status, 422);
    let (_, read) = ada
        .json(&server, Method::GET, &format!("/api/habits/{id}"), None)
        .await;
    assert_eq!(read["reminders"], json!([{"time": "06:00", "days": [2]}]));

    // Export carries them (JSON and CSV), import keeps them.
    let (_, doc) = ada.json(&server, Method::GET, "/api/export", None).await;
    assert_eq!(
        doc["habits"][0]["reminders"],
        json!([{"time": "06:00", "days": [2]}])
    );
    assert!(doc["habits"][0].get("reminder").is_none(), "{doc}");
    let mut bob = Session::register(&server, "bob").await;
    let (status, body) = bob
        .json(&server, Method::POST, "/api/import", Some(doc))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = bob.json(&server, Method::GET, "/api/habits", None).await;
    assert_eq!(
        list["habits"][0]["reminders"],
        json!([{"time": "06:00", "days": [2]}])
    );
    let csv = ada
        .send(&server, Method::GET, "/api/export?format=csv", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains("06:00=2"), "{csv}");

    // An export of the days of a single reminder still imports.
    let mut cy = Session::register(&server, "cyd").await;
    let old = json!({
        "format": "ham-export", "version": 1, "time_zone": "UTC", "activities": [],
        "habits": [{
            "id": "h", "name": "Old", "description": "", "color": "#4f46e5",
            "kind": "boolean", "unit": null, "target": null,
            "frequency": {"times": 1, "days": 1}, "reminder": "07:30", "archived": false,
            "position": 0, "created": "2025-01-01", "entries": [],
        }],
    });
    let (status, body) = cy
        .json(&server, Method::POST, "/api/import", Some(old))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = cy.json(&server, Method::GET, "/api/habits", None).await;
    assert_eq!(
        list["habits"][0]["reminders"],
        json!([{"time": "07:30", "days": EVERY_DAY}])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_are_checked_kept_and_exported_on_sqlite() {
    reminders_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_are_checked_kept_and_exported_on_postgres() {
    reminders_story(Backend::Postgres).await;
}
