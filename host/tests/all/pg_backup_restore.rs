//! The PostgreSQL backup of the Kubernetes CronJob and its restore, run for real:
//! `manifests/base/backup/pg-backup.sh` (`pg_dump | gzip`) on a database HAM
//! populated over HTTP, `pg-restore.sh` into a fresh database, then every table
//! compared row for row, and a server started on the copy without migrating.
//! Also: a failing dump leaves no file, and a restore into a database that already
//! holds HAM is refused.

use crate::common;

use std::path::{Path, PathBuf};

use common::session::{Session, credentials};
use common::{Backend, TestDb, TestServer, settings};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/base/backup")
        .join(name)
}

/// libpq's variables for a `postgres://user[:password]@host:port/db` URL.
fn pg_env(url: &str) -> Vec<(&'static str, String)> {
    let url = reqwest::Url::parse(url).unwrap();
    let mut env = vec![
        ("PGHOST", url.host_str().unwrap().to_string()),
        ("PGPORT", url.port().unwrap_or(5432).to_string()),
        ("PGUSER", url.username().to_string()),
        ("PGDATABASE", url.path().trim_start_matches('/').to_string()),
    ];
    if let Some(password) = url.password() {
        env.push(("PGPASSWORD", password.to_string()));
    }
    env
}

/// Runs a script with sh; (success, stdout, stderr).
async fn run(script: &Path, args: &[&str], env: &[(&str, String)]) -> (bool, String, String) {
    let output = tokio::process::Command::new("sh")
        .arg(script)
        .args(args)
        .env_remove("PGHOST")
        .env_remove("PGDATABASE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every table of the database with its row count and a digest of its rows (each
/// row as text, sorted), so two databases compare equal only if every row does.
async fn table_digests(url: &str) -> Vec<(String, i64, String)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut digests = Vec::new();
    for table in tables {
        let (rows, digest): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*), COALESCE(md5(string_agg(CAST(t AS TEXT), '|' ORDER BY CAST(t AS TEXT))), '') \
             FROM \"{table}\" AS t"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        digests.push((table, rows, digest));
    }
    pool.close().await;
    digests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_of_a_populated_database_restores_into_a_fresh_one_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let Some(source) = TestDb::new(Backend::Postgres, dir.path()).await else {
        return;
    };

    // Populate through the API: accounts, habits of both kinds, entries, notes,
    // and the bundled plugins' versions (components stored as bytes).
    let server = TestServer::start(settings(dir.path(), &source)).await;
    let mut session = Session::register(&server, "backer").await;
    let mut habits = Vec::new();
    for (name, kind) in [("Run", "boolean"), ("Water", "measurable")] {
        let body = match kind {
            "boolean" => json!({"name": name, "kind": kind, "frequency": {"times": 3, "days": 7}}),
            _ => {
                json!({"name": name, "kind": kind, "unit": "glasses", "target": {"value": 8.0, "type": "at_least"}, "frequency": {"times": 1, "days": 1}})
            }
        };
        let (status, habit) = session
            .json(&server, Method::POST, "/api/habits", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{habit}");
        habits.push(habit["id"].as_str().unwrap().to_string());
    }
    for day in 1..=20 {
        let date = format!("2026-10-{day:02}");
        let (status, body) = session
            .json(
                &server,
                Method::PUT,
                &format!("/api/habits/{}/entries/{date}", habits[0]),
                Some(json!({"status": if day % 4 == 0 { "skipped" } else { "done" }, "note": format!("day {day}: it's \"fine\"")})),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let (status, body) = session
            .json(
                &server,
                Method::PUT,
                &format!("/api/habits/{}/entries/{date}", habits[1]),
                Some(json!({"value": f64::from(day) / 2.0})),
            )
            .await;
        assert!(status.is_success(), "{body}");
    }
    server.stop().await;
    let before = table_digests(&source.url).await;
    let rows = |t: &str| before.iter().find(|(n, ..)| n == t).unwrap().1;
    assert_eq!(rows("entries"), 40);
    assert!(rows("plugin_versions") >= 1, "{before:?}");

    // The CronJob's dump step.
    let backups = tempfile::tempdir().unwrap();
    let mut env = pg_env(&source.url);
    env.push(("BACKUP_DIR", backups.path().display().to_string()));
    let (ok, stdout, stderr) = run(&script("pg-backup.sh"), &[], &env).await;
    assert!(ok, "pg-backup.sh failed:\n{stdout}\n{stderr}");
    let file = PathBuf::from(stdout.lines().last().unwrap().trim());
    assert!(file.starts_with(backups.path()), "{stdout}");
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with("ham-") && name.ends_with("Z.sql.gz"),
        "{name}"
    );
    assert_eq!(
        std::fs::read_dir(backups.path()).unwrap().count(),
        1,
        "only the finished dump is left"
    );

    // Restored into a fresh database: the same rows in every table.
    let target = TestDb::new(Backend::Postgres, dir.path()).await.unwrap();
    let (ok, stdout, stderr) = run(
        &script("pg-restore.sh"),
        &[&file.display().to_string()],
        &pg_env(&target.url),
    )
    .await;
    assert!(ok, "pg-restore.sh failed:\n{stdout}\n{stderr}");
    assert_eq!(table_digests(&target.url).await, before);

    // A server on the copy, not allowed to migrate, finds the schema current and
    // serves the same data.
    let copy_dir = tempfile::tempdir().unwrap();
    let mut copy_settings = settings(copy_dir.path(), &target);
    copy_settings.migrate_on_start = false;
    let copy = TestServer::start(copy_settings).await;
    let mut session = Session::default();
    let (status, body) = session
        .json(
            &copy,
            Method::POST,
            "/api/auth/login",
            credentials("backer"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, list) = session
        .json(
            &copy,
            Method::GET,
            &format!("/api/habits/{}/entries", habits[0]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["entries"].as_array().unwrap().len(), 20);
    copy.stop().await;
    let served = table_digests(&target.url).await;

    // Restoring over a database that already holds HAM is refused, and changes
    // nothing.
    let (ok, stdout, stderr) = run(
        &script("pg-restore.sh"),
        &[&file.display().to_string()],
        &pg_env(&target.url),
    )
    .await;
    assert!(
        !ok,
        "a restore over existing data must be refused:\n{stdout}"
    );
    assert!(stderr.contains("--force"), "the refusal says how: {stderr}");
    assert_eq!(table_digests(&target.url).await, served);
}

#[tokio::test]
async fn a_failing_dump_leaves_no_backup_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = TestDb::new(Backend::Postgres, dir.path()).await else {
        return;
    };
    let backups = tempfile::tempdir().unwrap();
    let mut env = pg_env(&db.url);
    for (key, value) in &mut env {
        if *key == "PGDATABASE" {
            *value = format!("{value}_does_not_exist");
        }
    }
    env.push(("BACKUP_DIR", backups.path().display().to_string()));
    let (ok, stdout, stderr) = run(&script("pg-backup.sh"), &[], &env).await;
    assert!(!ok, "a dump of a missing database must fail:\n{stdout}");
    assert!(stderr.contains("does_not_exist"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(backups.path()).unwrap().collect();
    assert!(left.is_empty(), "no file, partial or final: {left:?}");
}
