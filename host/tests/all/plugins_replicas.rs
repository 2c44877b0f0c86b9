//! Two real `ham serve` processes on one PostgreSQL: a version uploaded through one
//! is served by the other within 2 s (LISTEN/NOTIFY), and a rollback through the
//! second reaches the first the same way.

use crate::common;

use std::time::Duration;

use common::process::{HamProcess, until};
use common::{ADMIN_TOKEN, Backend, TestDb, client, guest, probe_manifest, rebuilt};

fn env<'a>(db: &'a TestDb, dir: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", db.url.as_str()),
        ("HAM_DATA_DIR", dir),
        ("HAM_ADMIN_TOKEN", ADMIN_TOKEN),
    ]
}

/// A fresh PostgreSQL database and a data dir for each of two replicas; none
/// when PostgreSQL is unreachable outside CI.
struct Replicas {
    db: TestDb,
    path_a: String,
    path_b: String,
    _dirs: [tempfile::TempDir; 2],
}

impl Replicas {
    async fn new() -> Option<Self> {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let db = TestDb::new(Backend::Postgres, dirs[0].path()).await?;
        Some(Self {
            db,
            path_a: dirs[0].path().display().to_string(),
            path_b: dirs[1].path().display().to_string(),
            _dirs: dirs,
        })
    }
}

async fn upload(host: &HamProcess, version: &str, label: &str) {
    let response = common::upload_plugin(
        &host.url,
        "probe",
        &probe_manifest("probe", version, label, ""),
        rebuilt(&guest("probe"), label),
    )
    .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn label(host: &HamProcess) -> Option<String> {
    let response = client()
        .get(host.url("/plugins/probe/label"))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.text().await.ok()
}

/// Polls `host` until it answers `expected`, for at most 2 s.
async fn serves(host: &HamProcess, expected: &str, what: &str) {
    until(Duration::from_secs(2), what, || async {
        (label(host).await.as_deref() == Some(expected)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_and_a_rollback_reach_the_other_replica_within_two_seconds() {
    let Some(Replicas {
        db,
        path_a,
        path_b,
        _dirs,
    }) = Replicas::new().await
    else {
        return;
    };
    let a = HamProcess::spawn(&env(&db, &path_a));
    let b = HamProcess::spawn(&env(&db, &path_b));

    // A plugin new to both: uploaded through A, B starts serving it.
    upload(&a, "0.1.0", "one").await;
    assert_eq!(label(&a).await.as_deref(), Some("one"));
    serves(&b, "one", "B to serve probe 0.1.0 uploaded through A").await;

    // A new version through A.
    upload(&a, "0.2.0", "two").await;
    assert_eq!(label(&a).await.as_deref(), Some("two"));
    serves(&b, "two", "B to serve probe 0.2.0 uploaded through A").await;

    // Rollback through B; A follows.
    let response = client()
        .post(b.url("/api/admin/plugins/probe/rollback"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(label(&b).await.as_deref(), Some("one"));
    serves(&a, "one", "A to follow the rollback made through B").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_was_down_serves_the_active_version_at_start() {
    let Some(Replicas {
        db,
        path_a,
        path_b,
        _dirs,
    }) = Replicas::new().await
    else {
        return;
    };
    let a = HamProcess::spawn(&env(&db, &path_a));
    upload(&a, "0.1.0", "one").await;
    let b = HamProcess::spawn(&env(&db, &path_b));
    assert_eq!(label(&b).await.as_deref(), Some("one"));
    b.kill();
    // B misses this one while it is down.
    upload(&a, "0.2.0", "two").await;
    let b = HamProcess::spawn(&env(&db, &path_b));
    assert_eq!(label(&b).await.as_deref(), Some("two"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_listener_dropped_converges_when_it_reconnects() {
    let Some(Replicas {
        db,
        path_a,
        path_b,
        _dirs,
    }) = Replicas::new().await
    else {
        return;
    };
    let a = HamProcess::spawn(&env(&db, &path_a));
    let b = HamProcess::spawn(&env(&db, &path_b));
    upload(&a, "0.1.0", "one").await;
    serves(&b, "one", "B to serve probe 0.1.0").await;

    // Cut both listening connections (as a PostgreSQL restart or a network blip
    // would), then activate a version while nobody listens: B misses the
    // notification.
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' \
         AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert_eq!(cut, 2, "one listening connection per process");
    upload(&a, "0.2.0", "two").await;

    // B reconnects (after 2 s) and converges then, long before its 30 s check.
    until(
        Duration::from_secs(8),
        "B to converge on 0.2.0 when its listener reconnects",
        || async { (label(&b).await.as_deref() == Some("two")).then_some(()) },
    )
    .await;
    // And it listens again: the next activation arrives as a notification.
    upload(&a, "0.3.0", "three").await;
    serves(
        &b,
        "three",
        "B to hear 0.3.0 on its new listening connection",
    )
    .await;
}
