//! Slow and heavy clients starve no one: a thousand connections that send a body
//! a byte at a time, headers trickled a byte at a time, one plugin at its share of
//! instances, and a job that finds its plugin busy. Each plays the attack against a
//! real server over loopback and asserts that everyone else is served.

use crate::common;

use std::time::{Duration, Instant};

use common::session::Session;
use common::{Backend, TestServer, client, error_of, guest, probe_manifest};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections that each send headers announcing a body, then one byte of it.
async fn open_slow_body(addr: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// The status of the first response on a connection, or None when it closed first.
async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_slow_bodies_on_public_plugin_routes_starve_no_one() {
    let _machine = common::machine::flood().await;
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.body_timeout = Duration::from_secs(8);
        })
        .start()
        .await
        .unwrap();
    let mut alice = Session::register(&server, "alice").await;
    let addr = server.url.trim_start_matches("http://").to_string();

    // 1,100 connections, no login, each one byte into a 1,000-byte body: half on a
    // public plugin route, half on the public Strava webhook.
    let opened = Instant::now();
    let mut slow = Vec::new();
    for i in 0..1100 {
        let path = if i % 2 == 0 {
            "/plugins/coach/chat"
        } else {
            "/api/strava/webhook"
        };
        slow.push(open_slow_body(&addr, path).await);
    }
    println!("1100 slow connections open in {:?}", opened.elapsed());

    // Everyone else is served while they hang: another plugin, the host API,
    // a write, and the very route under attack with a complete body.
    let served = Instant::now();
    let (status, body) = server.get_text("/plugins/hello/").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = alice.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(status, 200);
    let (status, habit) = alice
        .json(
            &server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Stretch", "kind": "boolean"})),
        )
        .await;
    assert_eq!(status, 201, "{habit}");
    let response = client()
        .post(server.url("/api/strava/webhook"))
        .json(&json!({"not": "an event"}))
        .send()
        .await
        .unwrap();
    // The plugin itself answered (this server has no Strava credentials set).
    let (status, code, message) = error_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (503, "not_configured"),
        "{message}"
    );
    println!(
        "4 requests of others served in {:?} while 1100 slow bodies were held",
        served.elapsed()
    );

    // The body deadline then answers each slow client 408 and closes it.
    let statuses = futures::future::join_all(slow.iter_mut().map(read_status)).await;
    let timed_out = statuses.iter().filter(|s| **s == Some(408)).count();
    assert_eq!(timed_out, 1100, "{:?}", &statuses[..10]);
    println!(
        "all 1100 answered 408 and closed {:?} after they opened (body deadline 8 s)",
        opened.elapsed()
    );
    assert!(opened.elapsed() < Duration::from_secs(60));
    server.stop().await;
}

#[tokio::test]
async fn headers_trickled_a_byte_at_a_time_are_cut_off_by_the_header_timeout() {
    let _machine = common::machine::timed().await;
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.header_timeout = Duration::from_secs(2);
        })
        .start()
        .await
        .unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
    let mut closed_at = None;
    for byte in head.bytes().chain(std::iter::repeat(b'a')) {
        if stream.write_all(&[byte]).await.is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        // A closed connection reads as end of stream or a reset.
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_at = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => panic!(
                "no complete request was sent, yet the server answered {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still connected after 15 s"
        );
    }
    let closed_at = closed_at.unwrap();
    assert!(
        closed_at >= Duration::from_millis(1500) && closed_at < Duration::from_secs(8),
        "closed after {closed_at:?}, the header timeout is 2 s"
    );
    // Everyone else is still served.
    assert_eq!(server.get_text("/healthz").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_body_on_a_host_route_gets_408() {
    let _machine = common::machine::timed().await;
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.body_timeout = Duration::from_secs(1);
        })
        .start()
        .await
        .unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let mut stream = open_slow_body(&addr, "/api/auth/login").await;
    assert_eq!(read_status(&mut stream).await, Some(408));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.stop().await;
}

#[tokio::test]
async fn one_plugin_at_its_share_of_instances_leaves_the_others_serving() {
    let _machine = common::machine::timed().await;
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    server
        .install(
            "probe",
            &probe_manifest(
                "probe",
                "0.1.0",
                "x",
                "[limits]\nmax_concurrency = 2\ntimeout_ms = 20000",
            ),
            guest("probe"),
        )
        .await;

    // Two long requests take the probe's two slots.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/plugins/probe/sleep?ms=4000");
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    // A third waits a second for a slot, then is told to come back.
    let busy = common::process::until(Duration::from_secs(10), "the probe is busy", || async {
        let response = client()
            .get(server.url("/plugins/probe/label"))
            .send()
            .await
            .unwrap();
        (response.status() == 503).then_some(response)
    })
    .await;
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (_, code, message) = error_of(busy).await;
    assert_eq!(code, "plugin_busy", "{message}");
    // Another plugin and the host answer at once meanwhile.
    let started = Instant::now();
    assert_eq!(server.get_text("/plugins/hello/").await.0, 200);
    assert_eq!(server.get_text("/healthz").await.0, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap(), 200);
    }
    // With its slots free the probe serves again.
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "x".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn a_job_that_finds_its_plugin_busy_waits_without_spending_an_attempt() {
    use ham_host::store::jobs::NewJob;
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            // One attempt: a busy plugin that cost an attempt would kill the job.
            s.job_max_attempts = 1;
            s.job_workers = 2;
        })
        .start()
        .await
        .unwrap();
    server
        .install(
            "probe",
            &probe_manifest(
                "probe",
                "0.1.0",
                "x",
                "[limits]\nmax_concurrency = 1\ntimeout_ms = 20000",
            ),
            guest("probe"),
        )
        .await;
    let enqueue = |id: &'static str, kind: &'static str, payload: &'static str| {
        let db = server.state.db.clone();
        async move {
            db.enqueue_job(&NewJob {
                id,
                plugin: "probe",
                user_id: None,
                kind,
                payload: payload.as_bytes(),
                run_after: 0,
                max_attempts: 1,
            })
            .await
            .unwrap();
        }
    };
    // A slow job takes the probe's only slot for 4 s...
    enqueue("slow-job", "slow", "4000").await;
    common::process::until(Duration::from_secs(10), "the slow job runs", || async {
        let job = server.state.db.get_job("slow-job").await.unwrap().unwrap();
        (job.state == "running").then_some(())
    })
    .await;
    // ...so the next one finds the plugin busy, waits, and then runs.
    enqueue("count-job", "count", "busy").await;
    let job = common::process::until(Duration::from_secs(30), "the count job is done", || async {
        let job = server.state.db.get_job("count-job").await.unwrap().unwrap();
        (job.state != "queued" && job.state != "running").then_some(job)
    })
    .await;
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(job.attempts, 1, "{job:?}");
    assert!(
        job.last_error.as_deref().unwrap_or("").contains("busy"),
        "{job:?}"
    );
    server.stop().await;
}
