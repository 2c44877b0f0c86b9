//! `cargo bench -p ham-host --bench plugin_host`: figures for docs/benchmarks.md.
//!
//! 1. instantiate + call of a trivial export (`job-handler.handle`) with a fresh
//!    instance each time: median and p99, pooling allocator vs on-demand.
//! 2. HTTP, same load generator (on a thread of its own, like `wrk -t1`), same
//!    run: a native axum route of the same server (`/healthz`, body `ok\n`) and
//!    of a bare axum server, against the bundled `hello` answering the same
//!    body (`greeting = "ok"`) with a fresh instance per request
//!    (`reuse_requests = 1`) and with instance reuse, and `examples/wasi-proxy`
//!    (the component to compare with `wasmtime serve`) both ways; then
//!    throughput by `reuse_requests`, and the resident memory of the process
//!    under that load and after idle instances are released.
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

/// A `/proc/self/status` figure in KiB (`VmRSS`, `VmHWM`); 0 where there is none.
fn memory(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

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

/// Requests per second against `url` from CONNECTIONS keep-alive connections,
/// sent from a thread of its own (like `wrk -t1`): the generator never runs on
/// the server's two workers, so a plugin route and a native one, here or in
/// `wasmtime serve`'s process, share the machine with it alike.
async fn load(url: &str, expect: &str, seconds: u64) -> f64 {
    let (url, expect) = (url.to_string(), expect.to_string());
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(generate(&url, &expect, seconds))
    })
    .await
    .unwrap()
}

async fn generate(url: &str, expect: &str, seconds: u64) -> f64 {
    let uri: hyper::Uri = url.parse().unwrap();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap());
    let done = Arc::new(AtomicU64::new(0));
    let reopened = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (addr, uri, done, reopened, stop, expect) = (
            addr.clone(),
            uri.clone(),
            done.clone(),
            reopened.clone(),
            stop.clone(),
            expect.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            'connection: while !stop.load(Ordering::Relaxed) {
                let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                while !stop.load(Ordering::Relaxed) {
                    let request = hyper::Request::get(uri.clone())
                        .header("host", "127.0.0.1")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    // A server may close a keep-alive connection between two
                    // requests (`wasmtime serve` does, now and then): open
                    // another, as wrk does, and say how often.
                    let Ok(response) = sender.send_request(request).await else {
                        reopened.fetch_add(1, Ordering::Relaxed);
                        continue 'connection;
                    };
                    assert_eq!(response.status(), 200);
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, expect.as_bytes());
                    done.fetch_add(1, Ordering::Relaxed);
                }
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
    let reopened = reopened.load(Ordering::Relaxed);
    if reopened > 0 {
        println!("  ({url}: the server closed {reopened} connections, reopened)");
    }
    count as f64 / elapsed.as_secs_f64()
}

async fn native_hello() -> String {
    let app = axum::Router::new().route(
        "/plugins/hello/",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "ok\n",
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

/// `wasmtime serve` on the same component (`examples/wasi-proxy`), loaded by the
/// same generator in this run: fresh instances, then `--max-instance-reuse-count
/// 1000`, with the pooling allocator as HAM uses it. Needs the wasmtime CLI of the
/// wasmtime HAM links (48.0.8: `cargo install wasmtime-cli --version 48.0.8
/// --locked`) named by `HAM_BENCH_WASMTIME`; skipped, saying so, without it.
async fn wasmtime_serve(component: &[u8], ham_reused: f64, ham_native: f64) {
    let Some(wasmtime) = std::env::var_os("HAM_BENCH_WASMTIME") else {
        println!(
            "\n(wasmtime serve: not measured; set HAM_BENCH_WASMTIME to a wasmtime 48.0.8 CLI)"
        );
        return;
    };
    println!(
        "\n## wasmtime serve, same component, same generator ({CONNECTIONS} connections, {LOAD_SECONDS} s each)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wasi_proxy.wasm");
    std::fs::write(&file, component).unwrap();
    let mut fastest: f64 = 0.0;
    for (label, reuse) in [("fresh instance", "1"), ("reuse 1000", "1000")] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // -Scli: the component (Rust std) imports wasi:cli/environment.
        let mut child = tokio::process::Command::new(&wasmtime)
            .args(["serve", "-Scli", "-O", "pooling-allocator=y"])
            .args(["--max-instance-reuse-count", reuse])
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "wasmtime serve did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rate = load(
            &format!("http://127.0.0.1:{port}/"),
            "wasi-proxy saw GET /\n",
            LOAD_SECONDS,
        )
        .await;
        child.kill().await.unwrap();
        fastest = fastest.max(rate);
        println!("wasmtime serve, {label:<15} {rate:>9.0} req/s");
    }
    println!(
        "ham wasi-proxy reused / wasmtime serve fastest: {:>6.2} x",
        ham_reused / fastest
    );
    println!(
        "wasmtime serve fastest / ham native:            {:>6.1} %",
        fastest / ham_native * 100.0
    );
}

/// The allocator `ham` runs with (see `main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    let hello = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "hello")
        .unwrap()
        .component;
    let manifest = |name: &str, reuse: u32| {
        format!(
            "name = \"{name}\"\nversion = \"0.1.0\"\n[limits]\nreuse_requests = {reuse}\n[variables]\ngreeting = {{ default = \"ok\" }}\n"
        )
    };
    server
        .install("okfresh", &manifest("okfresh", 1), hello.to_vec())
        .await;
    server
        .install("okreuse", &manifest("okreuse", 1000), hello.to_vec())
        .await;
    let proxy = guest("wasi-proxy");
    for (name, reuse) in [("proxy-fresh", 1), ("proxy-reuse", 1000)] {
        let manifest =
            format!("name = \"{name}\"\nversion = \"0.1.0\"\n[limits]\nreuse_requests = {reuse}\n");
        server.install(name, &manifest, proxy.clone()).await;
    }

    println!(
        "\n## HTTP: plugin route vs native axum ({CONNECTIONS} connections, {LOAD_SECONDS} s each, body `ok\\n`)"
    );
    let rss_before = memory("VmRSS");
    let native_url = native_hello().await;
    let native = load(&native_url, "ok\n", LOAD_SECONDS).await;
    // A native route of the same server: the same connection loop and middleware
    // as the plugin routes, and the same body.
    let host_route = load(&server.url("/healthz"), "ok\n", LOAD_SECONDS).await;
    let fresh = load(&server.url("/plugins/okfresh/"), "ok\n", LOAD_SECONDS).await;
    let reused = load(&server.url("/plugins/okreuse/"), "ok\n", LOAD_SECONDS).await;
    let proxy_fresh = load(
        &server.url("/plugins/proxy-fresh/"),
        "wasi-proxy saw GET /\n",
        LOAD_SECONDS,
    )
    .await;
    let proxy_reused = load(
        &server.url("/plugins/proxy-reuse/"),
        "wasi-proxy saw GET /\n",
        LOAD_SECONDS,
    )
    .await;
    let rss_under_load = memory("VmRSS");
    let idle_under_load = server.state.runtime.idle.idle();
    println!("bare axum (own server):        {native:>9.0} req/s");
    println!("ham /healthz (native route):   {host_route:>9.0} req/s");
    println!("hello, fresh instance:         {fresh:>9.0} req/s");
    println!("hello, reused instances:       {reused:>9.0} req/s");
    println!("wasi-proxy, fresh instance:    {proxy_fresh:>9.0} req/s");
    println!("wasi-proxy, reused instances:  {proxy_reused:>9.0} req/s");
    let pct = |a: f64, b: f64| a / b * 100.0;
    println!(
        "hello fresh / ham native:      {:>9.1} %",
        pct(fresh, host_route)
    );
    println!(
        "hello reused / ham native:     {:>9.1} %",
        pct(reused, host_route)
    );
    println!(
        "hello reused / bare axum:      {:>9.1} %",
        pct(reused, native)
    );
    println!("hello reused / fresh:          {:>9.2} x", reused / fresh);
    println!(
        "wasi-proxy reused / fresh:     {:>9.2} x",
        proxy_reused / proxy_fresh
    );
    println!(
        "ham /healthz / bare axum:      {:>9.1} %",
        pct(host_route, native)
    );

    wasmtime_serve(&proxy, proxy_reused, host_route).await;

    println!("\n## hello by reuse_requests ({CONNECTIONS} connections, 3 s each)");
    for reuse in [4, 16, 100, 10_000] {
        let name = format!("okr{reuse}");
        server
            .install(&name, &manifest(&name, reuse), hello.to_vec())
            .await;
        let rate = load(&server.url(&format!("/plugins/{name}/")), "ok\n", 3).await;
        println!(
            "reuse_requests = {reuse:>6}: {rate:>9.0} req/s ({:.1} % of ham native)",
            pct(rate, host_route)
        );
    }

    println!("\n## memory (this process: server and load generator)");
    println!(
        "resident before the HTTP load: {:.1} MiB; after it: {:.1} MiB; peak: {:.1} MiB",
        rss_before / 1024.0,
        rss_under_load / 1024.0,
        memory("VmHWM") / 1024.0
    );
    println!(
        "idle instances kept right after the load: {idle_under_load} (host bound {})",
        ham_host::runtime::MAX_IDLE_INSTANCES
    );
    let waited = Instant::now();
    while server.state.runtime.idle.idle() > 0 && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "idle instances released after {:?} (reuse_idle_ms = 1000): {} left, resident {:.1} MiB",
        waited.elapsed(),
        server.state.runtime.idle.idle(),
        memory("VmRSS") / 1024.0
    );

    println!("\n## swap latency under load (4 client loops)");
    let rebuilt_hello = rebuilt(hello, "bench-fresh");
    let (upload, first, failures) = swap(&server, "0.2.0", "Hello v2", rebuilt_hello.clone()).await;
    println!(
        "rebuilt component (compile): upload {upload:?}, first new response {first:?}, failed requests {failures}"
    );
    let (upload, first, failures) = swap(&server, "0.3.0", "Hello v3", rebuilt_hello).await;
    println!(
        "same component (cache hit):  upload {upload:?}, first new response {first:?}, failed requests {failures}"
    );

    println!("\n## summary");
    println!("instantiate+call median {pooled_median:?} (target < 30 us)");
    println!(
        "plugin route with reuse {:.1} % of the same server's native route (target >= 50 %); fresh instances {:.1} %",
        pct(reused, host_route),
        pct(fresh, host_route)
    );
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}
