//! `ham backup` while a writer adds entries gives a snapshot that opens, passes
//! `PRAGMA integrity_check`, and restores (`ham restore`) into a data dir that a
//! new server serves; PostgreSQL URLs and files that are not HAM databases are
//! refused with a reason.

use crate::common;

use common::process::run_ham as ham;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::session::{Session, credentials};
use common::{Backend, TestDb, TestServer, settings};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection as _, Row as _};

fn date(i: usize) -> String {
    format!(
        "20{:02}-{:02}-{:02}",
        10 + i / 336,
        i / 28 % 12 + 1,
        i % 28 + 1
    )
}

async fn sqlite_count(file: &Path, sql: &str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", file.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>(0);
    conn.close().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_into_a_served_data_dir() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut session = Session::register(&server, "writer").await;
    let (status, habit) = session
        .json(
            &server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Run", "kind": "boolean", "frequency": {"times": 1, "days": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{habit}");
    let habit = habit["id"].as_str().unwrap().to_string();

    // A writer adding one entry after another until told to stop.
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, stop, mut session) = (written.clone(), stop.clone(), session.clone());
        let server_url = server.url.clone();
        let habit = habit.clone();
        tokio::spawn(async move {
            let server = common::client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let response = server
                    .put(format!(
                        "{server_url}/api/habits/{habit}/entries/{}",
                        date(i)
                    ))
                    .header("cookie", session.cookie.clone().unwrap())
                    .json(&json!({"status": "done"}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                i += 1;
                written.store(i, Ordering::SeqCst);
            }
            session.cookie.take();
        })
    };
    common::process::until(
        std::time::Duration::from_secs(20),
        "the writer to get going",
        || async { (written.load(Ordering::SeqCst) >= 20).then_some(()) },
    )
    .await;

    let snapshot = dir_b.path().join("snapshot.db");
    let url_a = server.db().url.clone();
    let data_a = server.data_dir.display().to_string();
    let before = written.load(Ordering::SeqCst);
    let (ok, out) = ham(
        &["backup", &snapshot.display().to_string()],
        &[("DATABASE_URL", &url_a), ("HAM_DATA_DIR", &data_a)],
    )
    .await;
    let after = written.load(Ordering::SeqCst);
    assert!(ok, "{out}");
    assert!(out.contains("integrity check ok"), "{out}");
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        written.load(Ordering::SeqCst) > after,
        "the writer kept writing during and after the backup"
    );

    // The snapshot is sound and holds a prefix of the writes.
    let integrity = {
        let url = format!("sqlite://{}?mode=ro", snapshot.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let v: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        conn.close().await.unwrap();
        v
    };
    assert_eq!(integrity, "ok");
    let entries = sqlite_count(&snapshot, "SELECT COUNT(*) FROM entries").await;
    let entries = usize::try_from(entries).unwrap();
    assert!(
        (before..=after + 1).contains(&entries),
        "{entries} entries, expected between {before} and {after}"
    );

    // A backup onto an existing file is refused.
    let (ok, out) = ham(
        &["backup", &snapshot.display().to_string()],
        &[("DATABASE_URL", &url_a), ("HAM_DATA_DIR", &data_a)],
    )
    .await;
    assert!(!ok && out.contains("already exists"), "{out}");
    server.stop().await;

    // Restored into a fresh data dir, a new server serves it.
    let data_b = dir_b.path().join("data");
    let url_b = format!("sqlite://{}", data_b.join("ham.db").display());
    let (ok, out) = ham(
        &["restore", &snapshot.display().to_string()],
        &[
            ("DATABASE_URL", &url_b),
            ("HAM_DATA_DIR", &data_b.display().to_string()),
        ],
    )
    .await;
    assert!(ok, "{out}");
    let db_b = TestDb::new(Backend::Sqlite, &data_b).await.unwrap();
    let restored = TestServer::start(settings(&data_b, &db_b)).await;
    let mut session = Session::default();
    let (status, body) = session
        .json(
            &restored,
            Method::POST,
            "/api/auth/login",
            credentials("writer"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, list) = session
        .json(
            &restored,
            Method::GET,
            &format!("/api/habits/{habit}/entries"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["entries"].as_array().unwrap().len(), entries);
    restored.stop().await;
}

#[tokio::test]
async fn backup_refuses_postgres_and_restore_refuses_a_file_that_is_not_ham() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("b.db").display().to_string();
    let (ok, out) = ham(
        &["backup", &target],
        &[("DATABASE_URL", "postgres://ham:secret@db.example/ham")],
    )
    .await;
    assert!(!ok && out.contains("pg_dump"), "{out}");
    assert!(!out.contains("secret"), "the password never shows: {out}");

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let url = format!("sqlite://{}", dir.path().join("ham.db").display());
    let (ok, out) = ham(
        &["restore", &junk.display().to_string()],
        &[("DATABASE_URL", &url)],
    )
    .await;
    assert!(!ok && out.contains("not a usable HAM snapshot"), "{out}");
    assert!(
        !dir.path().join("ham.db").exists(),
        "nothing was put in place"
    );
}
