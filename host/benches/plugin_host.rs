//! `cargo bench -p ham-host --bench plugin_host`: figures for docs/benchmarks.md.
//!
//! 1. instantiate + call of a trivial export (`job-handler.handle`) with a fresh
//!    instance each time: median and p99, pooling allocator vs on-demand.
//! 2. `/plugins/hello/` (a fresh instance per request) vs the same handler in
//!    native axum, same load generator, same run: requests/s and the ratio.
//! 3. Swap latency: upload of a rebuilt `hello` until the first response from the
//!    new version, under load, with and without the compiled cache; failed requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

#[path = "../tests/all/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Backend, TestDb, TestServer, guest, rebuilt, settings};
use ham_host::wit::exports::ham::plugin::job_handler::Job;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

const LOAD_SECONDS: u64 = 5;
const CONNECTIONS: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn instantiate_and_call(server: &TestServer, label: &str) -> (Duration, Duration) {
    let plugin = server.state.registry.get("trivial").unwrap();
    let job = Job {
        id: "1".into(),
        kind: "noop".into(),
        payload: Vec::new(),
        attempt: 1,
        user_id: None,
    };
    for _ in 0..2000 {
        server
            .state
            .runtime
            .run_job(plugin.clone(), None, &job)
            .await
            .unwrap()
            .unwrap();
    }
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let started = Instant::now();
        server
            .state
            .runtime
            .run_job(plugin.clone(), None, &job)
            .await
            .unwrap()
            .unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let (median, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "instantiate+call ({label}): median {median:?}, p99 {p99:?} over {} calls",
        samples.len()
    );
    (median, p99)
}

/// Requests per second against `url` from CONNECTIONS keep-alive connections.
async fn load(url: &str, expect: &str, seconds: u64) -> f64 {
    let uri: hyper::Uri = url.parse().unwrap();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap());
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (addr, uri, done, stop, expect) = (
            addr.clone(),
            uri.clone(),
            done.clone(),
            stop.clone(),
            expect.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let request = hyper::Request::get(uri.clone())
                    .header("host", "127.0.0.1")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, expect.as_bytes());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / elapsed.as_secs_f64()
}

async fn native_hello() -> String {
    let app = axum::Router::new().route(
        "/plugins/hello/",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Hello from HAM\n",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/plugins/hello/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Time from the start of an upload until a client loop sees the new greeting.
async fn swap(
    server: &Arc<TestServer>,
    version: &str,
    greeting: &str,
    component: Vec<u8>,
) -> (Duration, Duration, u64) {
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let first_new = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (server, failures, stop, first_new, want) = (
            server.clone(),
            failures.clone(),
            stop.clone(),
            first_new.clone(),
            format!("{greeting}\n"),
        );
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = server.get_text("/plugins/hello/").await;
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                } else if body == want {
                    let mut first = first_new.lock().unwrap();
                    first.get_or_insert_with(Instant::now);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let manifest = format!(
        "name = \"hello\"\nversion = \"{version}\"\n[variables]\ngreeting = {{ default = \"{greeting}\" }}\n"
    );
    let started = Instant::now();
    server.install("hello", &manifest, component).await;
    let upload = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let first = first_new
        .lock()
        .unwrap()
        .expect("the new version never answered");
    (upload, first - started, failures.load(Ordering::Relaxed))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let server = Arc::new(TestServer::start(settings(dir.path(), &db)).await);
    server
        .install(
            "trivial",
            "name = \"trivial\"\nversion = \"0.1.0\"\n",
            guest("trivial-job"),
        )
        .await;

    println!("## instantiate + call (fresh instance per call)");
    let (pooled_median, _) = instantiate_and_call(&server, "pooling allocator").await;

    println!(
        "\n## HTTP: plugin route vs native axum ({CONNECTIONS} connections, {LOAD_SECONDS} s each)"
    );
    let native_url = native_hello().await;
    let native = load(&native_url, "Hello from HAM\n", LOAD_SECONDS).await;
    let plugin = load(
        &server.url("/plugins/hello/"),
        "Hello from HAM\n",
        LOAD_SECONDS,
    )
    .await;
    // The host's own route through the same connection loop and middleware as the
    // plugin route: what the host adds around a handler, apart from the plugin.
    let host_route = load(&server.url("/healthz"), "ok\n", LOAD_SECONDS).await;
    println!("native axum:        {native:>9.0} req/s");
    println!("ham /healthz:       {host_route:>9.0} req/s");
    println!("/plugins/hello/:    {plugin:>9.0} req/s");
    println!("plugin / native:    {:>9.1} %", plugin / native * 100.0);
    println!(
        "ham /healthz / native: {:>6.1} %",
        host_route / native * 100.0
    );

    println!("\n## swap latency under load (4 client loops)");
    let hello = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "hello")
        .unwrap()
        .component;
    let fresh = rebuilt(hello, "bench-fresh");
    let (upload, first, failures) = swap(&server, "0.2.0", "Hello v2", fresh.clone()).await;
    println!(
        "rebuilt component (compile): upload {upload:?}, first new response {first:?}, failed requests {failures}"
    );
    let (upload, first, failures) = swap(&server, "0.3.0", "Hello v3", fresh).await;
    println!(
        "same component (cache hit):  upload {upload:?}, first new response {first:?}, failed requests {failures}"
    );

    println!("\n## summary");
    println!("instantiate+call median {pooled_median:?} (target < 30 us)");
    println!(
        "plugin route {:.1} % of native (target >= 35 %)",
        plugin / native * 100.0
    );
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}
