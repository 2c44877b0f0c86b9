//! Instance reuse for HTTP plugins never lets state cross users, versions or
//! failures: the probe's `/count` answers how many requests its instance has
//! served (a static), so a fresh instance answers 1 and a reused one more.
//!
//! Each step waits until the instance of the previous request is back in its
//! version's idle pool (or dropped), so every count below is exact.

use crate::common;

use std::time::{Duration, Instant};

use common::session::{Session, credentials};
use common::{Backend, TestServer, guest, probe_manifest, rebuilt};
use reqwest::Method;

/// Waits until the active `probe` version holds `n` idle instances.
async fn idle_is(server: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let idle = server.state.registry.get("probe").unwrap().pool.idle();
        if idle == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the probe kept {idle} idle instances, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `GET path` as `who`, then waits for `idle` instances to be idle.
async fn get(server: &TestServer, who: &mut Session, path: &str, idle: usize) -> (u16, String) {
    let response = who
        .send(server, Method::GET, &format!("/plugins/probe{path}"), None)
        .await;
    let answer = (response.status().as_u16(), response.text().await.unwrap());
    idle_is(server, idle).await;
    answer
}

async fn count(server: &TestServer, who: &mut Session, idle: usize) -> String {
    let (status, body) = get(server, who, "/count", idle).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn signed_in(server: &TestServer, name: &str) -> Session {
    let mut session = Session::default();
    let response = session
        .send(
            server,
            Method::POST,
            "/api/auth/register",
            credentials(name),
        )
        .await;
    assert_eq!(response.status(), 201);
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_serves_one_user_and_never_after_a_failure() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| s.open_registration = true)
        .start()
        .await
        .unwrap();
    let limits = "[limits]\ntimeout_ms = 300\nmemory_mb = 16\n";
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", limits),
            guest("probe"),
        )
        .await;
    let mut alice = signed_in(&server, "alice").await;
    let mut bob = signed_in(&server, "bob").await;
    let mut anonymous = Session::default();

    // Alice's requests share one instance.
    assert_eq!(count(&server, &mut alice, 1).await, "1");
    assert_eq!(count(&server, &mut alice, 1).await, "2");
    assert_eq!(count(&server, &mut alice, 1).await, "3");
    // Bob's first request, with Alice's instance idle, gets a fresh one; and
    // so does an anonymous visitor's.
    assert_eq!(count(&server, &mut bob, 2).await, "1");
    assert_eq!(count(&server, &mut anonymous, 3).await, "1");
    // Interleaved, each lands on their own.
    assert_eq!(count(&server, &mut alice, 3).await, "4");
    assert_eq!(count(&server, &mut bob, 3).await, "2");
    assert_eq!(count(&server, &mut anonymous, 3).await, "2");
    assert_eq!(count(&server, &mut alice, 3).await, "5");

    // A trap, a timeout and a memory failure each drop the instance: the next
    // request of the same user starts fresh.
    let (status, _) = get(&server, &mut alice, "/trap", 2).await;
    assert_eq!(status, 500);
    assert_eq!(count(&server, &mut alice, 3).await, "1");
    assert_eq!(count(&server, &mut alice, 3).await, "2");
    let (status, _) = get(&server, &mut alice, "/loop", 2).await;
    assert_eq!(status, 504);
    assert_eq!(count(&server, &mut alice, 3).await, "1");
    let (status, _) = get(&server, &mut bob, "/alloc?mb=64", 2).await;
    assert_eq!(status, 500);
    assert_eq!(count(&server, &mut bob, 3).await, "1");
    // Bob's and the visitor's instances were untouched by Alice's failures.
    assert_eq!(count(&server, &mut anonymous, 3).await, "3");

    // A new version never runs on the old one's instances, and a rollback
    // brings back a version whose instances start fresh too.
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.2.0", "v2", limits),
            rebuilt(&guest("probe"), "v2"),
        )
        .await;
    idle_is(&server, 0).await;
    assert_eq!(count(&server, &mut anonymous, 1).await, "1");
    assert_eq!(count(&server, &mut anonymous, 1).await, "2");
    let response = common::client()
        .post(server.url("/api/admin/plugins/probe/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.get_text("/plugins/probe/label").await.1, "v1");
    idle_is(&server, 1).await;
    assert_eq!(count(&server, &mut alice, 2).await, "1");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_stops_after_its_request_count_and_idle_time() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let limits = "[limits]\nreuse_requests = 3\nreuse_idle_ms = 400\n";
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", limits),
            guest("probe"),
        )
        .await;
    let mut visitor = Session::default();

    // Three requests, then a fresh instance.
    let mut counts = Vec::new();
    for i in 0..7 {
        // The third request's instance is done: nothing is left idle.
        let idle = usize::from(i % 3 != 2);
        counts.push(count(&server, &mut visitor, idle).await);
    }
    assert_eq!(counts, ["1", "2", "3", "1", "2", "3", "1"]);

    // Idle past `reuse_idle_ms`, the instance is released (the sweeper drops it),
    // and the next request starts fresh.
    let idle_since = Instant::now();
    idle_is(&server, 0).await;
    let released = idle_since.elapsed();
    assert!(
        released >= Duration::from_millis(350) && released < Duration::from_secs(2),
        "released after {released:?}"
    );
    assert_eq!(server.state.runtime.idle.idle(), 0);
    assert_eq!(count(&server, &mut visitor, 1).await, "1");
    assert_eq!(count(&server, &mut visitor, 1).await, "2");

    // `reuse_requests = 1`: every request gets a fresh instance, none is kept.
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.2.0", "v2", "[limits]\nreuse_requests = 1\n"),
            rebuilt(&guest("probe"), "v2"),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(count(&server, &mut visitor, 0).await, "1");
    }

    server.stop().await;
}

/// Storage's user scope answers each user's own value on a reused instance:
/// the acting user is rebound for every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_act_for_each_request_user_on_a_reused_instance() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| s.open_registration = true)
        .start()
        .await
        .unwrap();
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    let mut alice = signed_in(&server, "alice").await;
    let mut bob = signed_in(&server, "bob").await;
    let put = |who: &Session, value: &'static str| {
        let mut request = common::client()
            .put(server.url("/plugins/probe/kv/user/note"))
            .body(value);
        if let Some(cookie) = &who.cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    assert_eq!(put(&alice, "alice's").await.unwrap().status(), 200);
    idle_is(&server, 1).await;
    assert_eq!(put(&bob, "bob's").await.unwrap().status(), 200);
    idle_is(&server, 2).await;

    let reused_before = server
        .state
        .runtime
        .idle
        .reused
        .load(std::sync::atomic::Ordering::Relaxed);
    for round in 0..5 {
        let (status, body) = get(&server, &mut alice, "/kv/user/note", 2).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "1\nalice's"),
            "round {round}"
        );
        let (status, body) = get(&server, &mut bob, "/kv/user/note", 2).await;
        assert_eq!((status, body.as_str()), (200, "1\nbob's"), "round {round}");
    }
    // Every one of those ran on a reused instance: Alice's was on its
    // third request by the end, Bob's too.
    let reused = server
        .state
        .runtime
        .idle
        .reused
        .load(std::sync::atomic::Ordering::Relaxed)
        - reused_before;
    assert_eq!(reused, 10);
    assert_eq!(count(&server, &mut alice, 2).await, "7");
    assert_eq!(count(&server, &mut bob, 2).await, "7");

    server.stop().await;
}
