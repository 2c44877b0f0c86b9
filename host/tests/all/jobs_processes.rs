//! Durable jobs across real `ham serve` processes on one PostgreSQL: a host killed
//! (SIGKILL) in the middle of a job, whose job another process runs once its lease
//! runs out; and two processes sharing one queue and one cron schedule, each job
//! and each slot run exactly once.

use crate::common;

use std::time::Duration;

use common::process::{HamProcess, until};
use common::{ADMIN_TOKEN, Backend, TestDb, client, guest, probe_manifest};
use serde_json::Value;

fn env<'a>(db: &'a TestDb, dir: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", db.url.as_str()),
        ("HAM_DATA_DIR", dir),
        ("HAM_ADMIN_TOKEN", ADMIN_TOKEN),
        ("HAM_JOB_LEASE_MS", "2000"),
        ("HAM_JOB_BACKOFF_MS", "50"),
    ]
}

async fn jobs(host: &HamProcess) -> Vec<Value> {
    common::admin_jobs(&host.url).await
}

async fn job(host: &HamProcess, id: &str) -> Value {
    jobs(host)
        .await
        .into_iter()
        .find(|j| j["id"] == id)
        .unwrap_or(Value::Null)
}

async fn enqueue(host: &HamProcess, kind: &str, payload: &str) -> String {
    let response = client()
        .get(host.url(&format!(
            "/plugins/probe/jobs/enqueue?kind={kind}&payload={payload}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn count(host: &HamProcess, key: &str) -> String {
    client()
        .get(host.url(&format!("/plugins/probe/kv/plugin/count/{key}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_host_s_job_runs_once_on_another_process() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Some(db) = TestDb::new(Backend::Postgres, dir_a.path()).await else {
        return;
    };
    let (path_a, path_b) = (
        dir_a.path().display().to_string(),
        dir_b.path().display().to_string(),
    );
    let a = HamProcess::spawn(&env(&db, &path_a));
    let every_minute =
        "schedule = [{ cron = \"* * * * *\", job = \"count\" }]\n[limits]\ntimeout_ms = 20000";
    let response = common::upload_plugin(
        &a.url,
        "probe",
        &probe_manifest("probe", "0.1.0", "p", every_minute),
        guest("probe"),
    )
    .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    // A takes a job that sleeps 4 s, and dies in the middle of it.
    let slow = enqueue(&a, "slow", "4000").await;
    until(Duration::from_secs(20), "the slow job to start", || async {
        (job(&a, &slow).await["state"] == "running").then_some(())
    })
    .await;
    a.kill();

    // B starts; once the lease is over it runs the job to the end, once.
    let b = HamProcess::spawn(&env(&db, &path_b));
    let done = until(
        Duration::from_secs(30),
        "the slow job to finish on B",
        || async {
            let j = job(&b, &slow).await;
            (j["state"] == "done").then_some(j)
        },
    )
    .await;
    assert_eq!(
        done["attempts"], 2,
        "the dead host's claim counts as an attempt"
    );
    assert_eq!(
        count(&b, "slow4000").await,
        "1\n1",
        "it ran to the end once"
    );

    // Two processes on one queue: every job exactly once, whoever queued it.
    let a = HamProcess::spawn(&env(&db, &path_a));
    let mut ids = Vec::new();
    for i in 0..30 {
        let host = if i % 2 == 0 { &a } else { &b };
        ids.push(enqueue(host, "count", &format!("p{i}")).await);
    }
    until(Duration::from_secs(30), "30 jobs done", || async {
        let all = jobs(&a).await;
        ids.iter()
            .all(|id| {
                all.iter()
                    .any(|j| j["id"] == id.as_str() && j["state"] == "done")
            })
            .then_some(())
    })
    .await;
    for i in 0..30 {
        assert_eq!(
            count(&a, &format!("p{i}")).await,
            "1\n1",
            "job p{i} ran once"
        );
    }

    // The cron slots both schedulers saw were queued once each and ran once each.
    let (slots, ran) = until(
        Duration::from_secs(30),
        "the minute slots to run",
        || async {
            let slots: Vec<Value> = jobs(&b)
                .await
                .into_iter()
                .filter(|j| {
                    j["id"]
                        .as_str()
                        .unwrap()
                        .starts_with("schedule:probe:count:")
                })
                .collect();
            let ran = count(&b, "").await;
            let all_done = !slots.is_empty() && slots.iter().all(|j| j["state"] == "done");
            (all_done && ran == format!("{0}\n{0}", slots.len())).then_some((slots, ran))
        },
    )
    .await;
    assert!(
        slots.len() <= 3,
        "one job per minute slot: {slots:?} ({ran})"
    );
    a.kill();
    b.kill();
}
