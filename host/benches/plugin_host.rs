//! `cargo bench -p ham-host --bench plugin_host`: figures for docs/benchmarks.md.
//!
//! 1. instantiate + call of a trivial export (`job-handler.handle`) with a fresh
//!    instance each time: median and p99, pooling allocator vs on-demand.
//! 2. HTTP, same load generator (on a thread of its own, like `wrk -t1`), same
//!    run: a native axum route of the same server (`/healthz`, body `ok\n`) and
//!    of a bare axum server, against the bundled `hello` answering the same
//!    body (`greeting = "ok"`) with a fresh instance per request
//!    (`reuse_requests = 1`) and with instance reuse, and `examples/wasi-proxy`
//!    (the component to compare with `wasmtime serve`) both ways, `hello` by
//!    `reuse_requests`, and `wasmtime serve` on `wasi-proxy` when
//!    `HAM_BENCH_WASMTIME` names its CLI. Every route is loaded in turn, round
//!    after round, and each ratio is the median of the rounds' own ratios. Then
//!    the resident memory of the process under that load and after idle
//!    instances are released.
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

const CONNECTIONS: usize = 16;
/// The HTTP comparison loads every route in turn, this many times, so each
/// ratio is the median of ratios taken seconds apart: a drift in this shared
/// machine's speed moves both sides of a round alike. `HAM_BENCH_ROUNDS`
/// asks for more, to narrow the medians on a noisy machine.
fn rounds_count() -> usize {
    std::env::var("HAM_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(7)
}
const ROUND: Duration = Duration::from_secs(1);
const WARM_UP: Duration = Duration::from_millis(300);

/// A `/proc/self/status` figure in KiB (`VmRSS`, `VmHWM`); 0 where there is none.
fn memory(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
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
async fn load(url: &str, expect: &str, warm_up: Duration, measured: Duration) -> f64 {
    let (url, expect) = (url.to_string(), expect.to_string());
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(generate(&url, &expect, warm_up, measured))
    })
    .await
    .unwrap()
}

async fn generate(url: &str, expect: &str, warm_up: Duration, measured: Duration) -> f64 {
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
    tokio::time::sleep(warm_up).await;
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measured).await;
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

/// A route the HTTP comparison loads: its URL and the body it must answer.
struct Route {
    label: &'static str,
    url: String,
    expect: &'static str,
}

/// Requests per second of each route in each round (`[route][round]`): every
/// round loads each route in turn.
async fn rounds(routes: &[Route], count: usize) -> Vec<Vec<f64>> {
    let mut rates = vec![Vec::with_capacity(count); routes.len()];
    for _ in 0..count {
        for (route, rates) in routes.iter().zip(&mut rates) {
            rates.push(load(&route.url, route.expect, WARM_UP, ROUND).await);
        }
    }
    rates
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Each round's `a / b`, sorted; each round's figures were taken seconds apart.
fn round_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// The median over rounds of `a / b`.
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    percentile(&round_ratios(a, b), 0.5)
}

/// The lower and upper quartiles over rounds of `a / b`: how far the rounds
/// agree on a target ratio.
fn quartiles(a: &[f64], b: &[f64]) -> (f64, f64) {
    let ratios = round_ratios(a, b);
    (percentile(&ratios, 0.25), percentile(&ratios, 0.75))
}

/// `wasmtime serve` on the same component (`examples/wasi-proxy`), fresh
/// instances and `--max-instance-reuse-count 1000`, with the pooling allocator
/// as HAM uses it: two processes, loaded in the same rounds as HAM's routes.
/// Needs the wasmtime CLI of the wasmtime HAM links (48.0.8: `cargo install
/// wasmtime-cli --version 48.0.8 --locked`) named by `HAM_BENCH_WASMTIME`;
/// without it, none (and the bench says so).
async fn wasmtime_serve(
    dir: &std::path::Path,
    component: &[u8],
) -> Vec<(Route, tokio::process::Child)> {
    let Some(wasmtime) = std::env::var_os("HAM_BENCH_WASMTIME") else {
        return Vec::new();
    };
    let file = dir.join("wasi_proxy.wasm");
    std::fs::write(&file, component).unwrap();
    let mut servers = Vec::new();
    for (label, reuse) in [
        ("wasmtime serve, fresh instance", "1"),
        ("wasmtime serve, reuse 1000", "1000"),
    ] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // -Scli: the component (Rust std) imports wasi:cli/environment.
        let child = tokio::process::Command::new(&wasmtime)
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
        let route = Route {
            label,
            url: format!("http://127.0.0.1:{port}/"),
            expect: "wasi-proxy saw GET /\n",
        };
        servers.push((route, child));
    }
    servers
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

    let count = rounds_count();
    println!(
        "\n## HTTP: plugin route vs native axum ({CONNECTIONS} connections; {count} rounds, each loading every route in turn for {ROUND:?} after {WARM_UP:?} of warm-up; body `ok\\n`)"
    );
    let rss_before = memory("VmRSS");
    // A native route of the same server (`/healthz`): the same connection loop
    // and middleware as the plugin routes, and the same body.
    let mut routes = vec![
        Route {
            label: "bare axum (own server)",
            url: native_hello().await,
            expect: "ok\n",
        },
        Route {
            label: "ham /healthz (native route)",
            url: server.url("/healthz"),
            expect: "ok\n",
        },
        Route {
            label: "hello, fresh instance",
            url: server.url("/plugins/okfresh/"),
            expect: "ok\n",
        },
        Route {
            label: "hello, reused instances",
            url: server.url("/plugins/okreuse/"),
            expect: "ok\n",
        },
        Route {
            label: "wasi-proxy, fresh instance",
            url: server.url("/plugins/proxy-fresh/"),
            expect: "wasi-proxy saw GET /\n",
        },
        Route {
            label: "wasi-proxy, reused instances",
            url: server.url("/plugins/proxy-reuse/"),
            expect: "wasi-proxy saw GET /\n",
        },
    ];
    // Throughput by `reuse_requests`, in the same rounds.
    const REUSE_LEVELS: [u32; 4] = [4, 16, 100, 10_000];
    let first_level = routes.len();
    for reuse in REUSE_LEVELS {
        let name = format!("okr{reuse}");
        server
            .install(&name, &manifest(&name, reuse), hello.to_vec())
            .await;
        routes.push(Route {
            label: "hello, reuse_requests",
            url: server.url(&format!("/plugins/{name}/")),
            expect: "ok\n",
        });
    }
    let first_wasmtime = routes.len();
    let wasmtime = wasmtime_serve(dir.path(), &proxy).await;
    let (wasmtime_routes, wasmtime_children): (Vec<_>, Vec<_>) = wasmtime.into_iter().unzip();
    routes.extend(wasmtime_routes);
    let rates = rounds(&routes, count).await;
    drop(wasmtime_children);
    // The rounds end on other routes: load the reused `hello` once more, so the
    // memory figures below are taken with its instances warm.
    load(&routes[3].url, routes[3].expect, WARM_UP, ROUND).await;
    let rss_under_load = memory("VmRSS");
    let idle_under_load = server.state.runtime.idle.idle();
    for (route, rates) in routes.iter().zip(&rates).take(first_level) {
        println!(
            "{:<31} {:>9.0} req/s (mean; rounds {:.0}-{:.0})",
            format!("{}:", route.label),
            mean(rates),
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max),
        );
    }
    let [native, host_route, fresh, reused, proxy_fresh, proxy_reused] =
        [0, 1, 2, 3, 4, 5].map(|i| rates[i].as_slice());
    println!("ratios (median over rounds of each round's ratio):");
    let pct = |a: &[f64], b: &[f64]| ratio(a, b) * 100.0;
    println!(
        "hello fresh / ham native:      {:>9.1} %",
        pct(fresh, host_route)
    );
    let pct_quartiles = |a: &[f64], b: &[f64]| {
        let (low, high) = quartiles(a, b);
        format!("(quartiles {:.1}-{:.1})", low * 100.0, high * 100.0)
    };
    println!(
        "hello reused / ham native:     {:>9.1} % {}",
        pct(reused, host_route),
        pct_quartiles(reused, host_route)
    );
    println!(
        "hello reused / bare axum:      {:>9.1} %",
        pct(reused, native)
    );
    println!(
        "wasi-proxy reused / ham native:{:>9.1} % {}",
        pct(proxy_reused, host_route),
        pct_quartiles(proxy_reused, host_route)
    );
    println!(
        "hello reused / fresh:          {:>9.2} x",
        ratio(reused, fresh)
    );
    println!(
        "wasi-proxy reused / fresh:     {:>9.2} x",
        ratio(proxy_reused, proxy_fresh)
    );
    println!(
        "ham /healthz / bare axum:      {:>9.1} %",
        pct(host_route, native)
    );
    let wasmtime_rates = &rates[first_wasmtime..];
    if let [wasmtime_fresh, wasmtime_reused] = wasmtime_rates {
        for (route, rates) in routes[first_wasmtime..].iter().zip(wasmtime_rates) {
            println!(
                "{:<31} {:>9.0} req/s (mean)",
                format!("{}:", route.label),
                mean(rates)
            );
        }
        // Its fastest configuration in each round.
        let fastest: Vec<f64> = wasmtime_fresh
            .iter()
            .zip(wasmtime_reused)
            .map(|(a, b)| a.max(*b))
            .collect();
        let (low, high) = quartiles(proxy_reused, &fastest);
        println!(
            "ham wasi-proxy reused / wasmtime serve fastest: {:>6.2} x (quartiles {low:.2}-{high:.2})",
            ratio(proxy_reused, &fastest)
        );
        println!(
            "wasmtime serve fastest / ham native:            {:>6.1} %",
            pct(&fastest, host_route)
        );
    } else {
        println!("(wasmtime serve: not measured; set HAM_BENCH_WASMTIME to a wasmtime 48.0.8 CLI)");
    }

    println!("\n## hello by reuse_requests (in the same rounds)");
    for (reuse, rates) in REUSE_LEVELS.iter().zip(&rates[first_level..]) {
        println!(
            "reuse_requests = {reuse:>6}: {:>9.0} req/s ({:.1} % of ham native)",
            mean(rates),
            pct(rates, host_route)
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
