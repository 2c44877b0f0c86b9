//! `cargo bench -p ham-host --bench strava_webhook`: how fast HAM acknowledges
//! Strava webhook events while Strava's API hangs, for docs/benchmarks.md.
//!
//! A real `ham` with the bundled `strava-sync` pointed at the fake Strava
//! (tests/all/common/fake_strava.rs), one user connected through the fake's OAuth. The
//! fake's API then stalls every call, so the job workers hang on their first
//! fetches, and 8 clients post 500 `activity create` events between them, each
//! waiting for its answer before sending the next. Every event must be answered
//! 200; being for one athlete, they leave at most the plugin's cap of pending jobs
//! per athlete (50) queued. On SQLite, then on PostgreSQL when one is reachable
//! (`HAM_TEST_DATABASE_URL`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

#[path = "../tests/all/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::fake_strava::{FakeStrava, event, post_event};
use common::session::Session;
use common::{Backend, TestDb, TestServer, settings};
use ham_host::settings::Secret;
use serde_json::json;
use sqlx::Row as _;

const EVENTS: usize = 500;
const CLIENTS: usize = 8;
const WARM_UP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn event_jobs(server: &TestServer) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM jobs WHERE plugin = 'strava-sync' AND kind = 'event'")
        .fetch_one(server.state.db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn bench(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = TestDb::new(backend, dir.path()).await else {
        return;
    };
    let fake = FakeStrava::start().await;
    let mut s = settings(dir.path(), &db);
    s.open_registration = true;
    for (name, value) in fake.plugin_env() {
        s.plugin_env.insert(name, Secret::new(value));
    }
    let server = TestServer::start(s).await;
    let ada = Session::register(&server, "ada").await;
    fake.connect(&server.url, ada.cookie.as_deref().unwrap())
        .await;

    // Strava hangs for longer than the run: no job can finish.
    fake.stall(Some(Duration::from_secs(600)));
    for i in 0..WARM_UP {
        let id = 1_000_000 + i as u64;
        let (status, _) =
            post_event(&server.url, &event("activity", "create", id, json!({}))).await;
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let mut answers = Vec::with_capacity(EVENTS / CLIENTS);
                for i in (c..EVENTS).step_by(CLIENTS) {
                    let body = event("activity", "create", 2_000_000 + i as u64, json!({}));
                    answers.push(post_event(&url, &body).await);
                }
                answers
            })
        })
        .collect();
    let mut took = Vec::with_capacity(EVENTS);
    let mut acknowledged = 0;
    for client in clients {
        for (status, elapsed) in client.await.unwrap() {
            acknowledged += usize::from(status == 200);
            took.push(elapsed);
        }
    }
    let wall = started.elapsed();
    took.sort();
    let queued = event_jobs(&server).await;
    let stalled = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v3/activities/"))
        .count();
    println!("## {backend:?}: {EVENTS} events, {CLIENTS} clients, Strava's API stalled");
    println!(
        "ack latency   median {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        ms(took[took.len() - 1]),
    );
    println!(
        "acknowledged  {acknowledged}/{EVENTS} (200)   {:.0} events/s   jobs pending {queued} (cap 50 per athlete)   API calls hanging {stalled}",
        EVENTS as f64 / wall.as_secs_f64()
    );
    assert_eq!(acknowledged, EVENTS, "every event acknowledged");
    // One athlete's events fold into at most 50 pending jobs (docs/strava.md).
    assert!(
        (1..=50).contains(&queued),
        "{queued} jobs queued; the cap per athlete is 50"
    );
    // The workers hang in their calls until the fake answers; stop without them.
    server.stop().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    bench(Backend::Sqlite).await;
    println!();
    bench(Backend::Postgres).await;
}
