//! A runaway, greedy or crashing plugin fails alone: its invocation gets a JSON
//! error naming the plugin, and the host answers the next request.

use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer, client, error_of, guest, probe_manifest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_memory_and_traps_fail_one_invocation_only() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let limits = "[limits]\ntimeout_ms = 300\nmemory_mb = 16\n";
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "alive", limits),
            guest("probe"),
        )
        .await;

    // An infinite loop is interrupted at its deadline.
    let started = Instant::now();
    let (status, code, message) = error_of(
        client()
            .get(server.url("/plugins/probe/loop"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let took = started.elapsed();
    assert_eq!((status, code.as_str()), (504, "plugin_timeout"));
    assert!(message.contains("probe 0.1.0"), "{message}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "stopped after {took:?}"
    );
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "alive".into())
    );

    // Allocation within the limit works; past it fails that request alone.
    assert_eq!(server.get_text("/plugins/probe/alloc?mb=4").await.0, 200);
    let (status, code, message) = error_of(
        client()
            .get(server.url("/plugins/probe/alloc?mb=64"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (500, "plugin_memory_limit"));
    assert!(message.contains("16 MiB"), "{message}");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "alive".into())
    );

    // A panic traps.
    let (status, code, message) = error_of(
        client()
            .get(server.url("/plugins/probe/trap"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (500, "plugin_trap"));
    assert!(message.contains("probe"), "{message}");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "alive".into())
    );

    // Several runaways at once do not stop the host from answering others.
    let runaways: Vec<_> = (0..3)
        .map(|_| tokio::spawn(client().get(server.url("/plugins/probe/loop")).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.get_text("/healthz").await.0, 200);
    for r in runaways {
        assert_eq!(r.await.unwrap().unwrap().status(), 504);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_wasi_http_component_serves_unmodified_and_bodies_stream() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    // A component written for `wasmtime serve`, with the smallest manifest.
    server
        .install(
            "wasi-proxy",
            "name = \"wasi-proxy\"\nversion = \"0.1.0\"\n",
            guest("wasi-proxy"),
        )
        .await;
    let (status, body) = server.get_text("/plugins/wasi-proxy/some/path?x=1").await;
    assert_eq!(status, 200);
    assert_eq!(body, "wasi-proxy saw GET /some/path?x=1\n");

    // A 3 MiB body goes in and comes back intact, under a manifest that raises
    // the request body limit (the default is 64 KiB).
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "x", "[limits]\nrequest_body_kb = 4096"),
            guest("probe"),
        )
        .await;
    let payload: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let response = client()
        .post(server.url("/plugins/probe/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().to_vec(), payload);
    // Under the default limit a 100 KiB body is refused before any instance runs.
    let response = client()
        .post(server.url("/plugins/wasi-proxy/echo"))
        .body(payload[..100 * 1024].to_vec())
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(response).await;
    assert_eq!((status, code.as_str()), (413, "too_large"), "{message}");
    assert!(message.contains("65536 bytes"), "{message}");

    // A response streams: the first line arrives long before the last is written.
    let started = Instant::now();
    let mut response = client()
        .get(server.url("/plugins/probe/stream?n=4&ms=400"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"line 0\n");
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let done_at = started.elapsed();
    assert_eq!(rest, b"line 1\nline 2\nline 3\n");
    assert!(
        done_at >= Duration::from_millis(1600),
        "finished after {done_at:?}"
    );
    assert!(
        first_at < done_at / 2,
        "first line after {first_at:?}, all after {done_at:?}"
    );

    // Unknown plugins and plugins without HTTP get JSON 404s.
    let (status, code, _) = error_of(
        client()
            .get(server.url("/plugins/nobody/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    server.stop().await;
}
