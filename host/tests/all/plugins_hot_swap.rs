//! Upload, call, swap under load, rollback: on SQLite and on PostgreSQL.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestServer, client, guest, probe_manifest, rebuilt};

async fn swap_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let server = Arc::new(server);

    let v1 = server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    assert_eq!(v1["version"], "0.1.0");
    assert_eq!(v1["active"], true);
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".to_string())
    );

    // A request that is running when the swap happens finishes on the old version.
    let slow = tokio::spawn({
        let server = server.clone();
        async move { server.get_text("/plugins/probe/sleep?ms=1500").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Clients calling in a loop while the new version goes live.
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (server, stop) = (server.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client()
                    .get(server.url("/plugins/probe/label"))
                    .send()
                    .await;
                let outcome = match response {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                seen.push((started, outcome));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v2_component = rebuilt(&guest("probe"), "v2");
    let v2 = server
        .install(
            "probe",
            &probe_manifest("probe", "0.2.0", "v2", ""),
            v2_component,
        )
        .await;
    let swapped = Instant::now();
    assert_eq!(v2["version"], "0.2.0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for handle in loops {
        for (started, (status, body)) in handle.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "a request failed during the swap: {body}");
            assert!(body == "v1" || body == "v2", "unexpected body {body}");
            if started > swapped {
                assert_eq!(
                    body, "v2",
                    "a request started after the swap was served by v1"
                );
            }
        }
    }
    assert!(total > 20, "the load loop made only {total} requests");
    // The load ran with instance reuse on (the default): requests landed on warm
    // instances, and none of them failed or saw the wrong version.
    assert!(
        server.state.runtime.idle.reused.load(Ordering::Relaxed) > 0,
        "no request ran on a reused instance"
    );
    assert_eq!(
        slow.await.unwrap(),
        (200, "v1".to_string()),
        "the in-flight request must finish on v1"
    );

    // Rollback reactivates v1.
    let response = client()
        .post(server.url("/api/admin/plugins/probe/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["version"], "0.1.0");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".to_string())
    );

    let versions: serde_json::Value = client()
        .get(server.url("/api/admin/plugins/probe/versions"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let active: Vec<_> = versions
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(active, vec![serde_json::json!("0.1.0")]);

    // Rolling back again undoes the rollback.
    let response = client()
        .post(server.url("/api/admin/plugins/probe/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v2".to_string())
    );

    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_under_load_then_rollback_on_sqlite() {
    swap_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_under_load_then_rollback_on_postgres() {
    swap_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_upload_reuses_the_stored_version() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let manifest = probe_manifest("probe", "0.1.0", "v1", "");
    assert_eq!(
        server
            .upload("probe", &manifest, guest("probe"))
            .await
            .status(),
        201
    );
    let again = server.upload("probe", &manifest, guest("probe")).await;
    assert_eq!(
        again.status(),
        200,
        "an identical upload is not a new version"
    );
    let response = client()
        .post(server.url("/api/admin/plugins/probe/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, code, _) = common::error_of(response).await;
    assert_eq!((status, code.as_str()), (409, "no_previous_version"));
    server.stop().await;
}
