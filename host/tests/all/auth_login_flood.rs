//! Password guessing against `HAM_AUTH=local`, played against a real `ham` over
//! loopback: a flood of wrong logins verifies at most the limit, in bounded memory,
//! and locks nobody out of their own device; budgets per (username, address) and
//! per address; over-long credentials refused before any hashing; X-Forwarded-For
//! believed only from trusted proxies; the `__Host-` session cookie over https.
//!
//! Other addresses are loopback ones (`127.0.0.2`, …): Linux routes all of
//! `127.0.0.0/8` to loopback, so a client bound to one is a second source address.

use crate::common;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::process::HamProcess;
use common::{ADMIN_TOKEN, Backend, TestDb, TestServer};
use serde_json::json;

/// A client whose connections come from `ip` (a loopback address).
fn from(ip: [u8; 4]) -> reqwest::Client {
    let _ = common::client(); // installs the TLS provider every reqwest client needs
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
}

/// The status, the error code (empty on success) and whether `Retry-After` came.
async fn outcome(response: reqwest::Response) -> (u16, String, bool) {
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code, retry_after)
}

/// The server's resident memory, from its own `/metrics` (on the metrics
/// listener at `metrics_base`).
async fn resident_bytes(client: &reqwest::Client, metrics_base: &str) -> u64 {
    let text = client
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ham_process_resident_memory_bytes"))
        .unwrap_or_else(|| panic!("no resident memory gauge in /metrics:\n{text}"));
    let value: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a byte count"
    )]
    let bytes = value as u64;
    bytes
}

const MB: u64 = 1024 * 1024;
/// Wrong logins sent at once.
const FLOOD: usize = 400;
/// Failed logins one (username, address) may have in the window.
const LIMIT: usize = 5;
/// What a flood may add to the server's resident memory with `concurrent`
/// password checks at once: 19 MiB of argon2 working memory each, and 64 MB for
/// everything else (hundreds of connections, the allocator's slack): 140 MB on a
/// 2-core machine (4 permits). Before the bound, 400 parallel wrong logins added
/// 954 to 7537 MB.
fn max_growth(concurrent: usize) -> u64 {
    u64::try_from(concurrent).unwrap() * 19 * MB + 64 * MB
}

/// Password checks the server runs at once (the child computes the same).
fn permits() -> usize {
    ham_host::auth::password_work_permits()
}

fn assert_growth(growth: u64, concurrent: usize) {
    let bound = max_growth(concurrent);
    assert!(
        growth < bound,
        "the flood grew resident memory by {} MB (bound: {} MB)",
        growth / MB,
        bound / MB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_logins_verifies_at_most_the_limit_in_bounded_memory() {
    let _machine = common::machine::flood().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let data_dir = dir.path().display().to_string();
    let ham = HamProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("HAM_DATA_DIR", data_dir.as_str()),
        ("HAM_ADMIN_TOKEN", ADMIN_TOKEN),
    ]);
    let attacker = from([127, 0, 0, 1]);
    let owner = from([127, 0, 0, 2]);
    let password = "alice-secret-pw";
    let registered = attacker
        .post(ham.url("/api/auth/register"))
        .json(&json!({ "username": "alice", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let before = resident_bytes(&attacker, &ham.metrics_url).await;

    // The peak, sampled while the flood runs.
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (peak, done, base) = (peak.clone(), done.clone(), ham.metrics_url.clone());
        let client = from([127, 0, 0, 3]);
        async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(&client, &base).await, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let flood =
        futures::future::join_all((0..FLOOD).map(|i| {
            let (attacker, base) = (attacker.clone(), ham.url.clone());
            async move {
                outcome(login(&attacker, &base, "alice", &format!("guess-{i}-wrong")).await).await
            }
        }));
    // The owner signs in from their own address while the flood is on.
    let own_login = async { outcome(login(&owner, &ham.url, "alice", password).await).await };
    let (answers, own) = tokio::join!(flood, own_login);
    // Memory a moment after (buffers freed or kept by the allocator).
    tokio::time::sleep(Duration::from_millis(200)).await;
    peak.fetch_max(
        resident_bytes(&attacker, &ham.metrics_url).await,
        Ordering::Relaxed,
    );
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    let count = |status: u16, code: &str| {
        answers
            .iter()
            .filter(|(s, c, _)| *s == status && c == code)
            .count()
    };
    let verified = count(401, "bad_credentials");
    let limited = count(429, "too_many_attempts");
    let busy = count(503, "busy");
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "flood of {FLOOD}: {verified} verified (401), {limited} limited (429), {busy} busy (503); \
         resident memory {} MB before, peak growth {} MB; owner from 127.0.0.2: {}",
        before / MB,
        growth / MB,
        own.0
    );
    assert_eq!(
        verified + limited + busy,
        FLOOD,
        "every answer is one of 401, 429, 503: {answers:?}"
    );
    assert!(
        (1..=LIMIT).contains(&verified),
        "{verified} wrong passwords were verified; the limit is {LIMIT}"
    );
    assert!(
        answers.iter().all(|(s, _, retry)| *s == 401 || *retry),
        "every 429 and 503 says when to come back"
    );
    assert_growth(growth, permits().min(LIMIT));
    assert_eq!(
        own.0, 200,
        "the owner was locked out of their own device: {own:?}"
    );

    // Afterwards too: the owner's address is untouched, the flooding one is locked.
    let (status, ..) = outcome(login(&owner, &ham.url, "alice", password).await).await;
    assert_eq!(status, 200);
    let (status, code, retry) = outcome(login(&attacker, &ham.url, "alice", password).await).await;
    assert_eq!(
        (status, code.as_str(), retry),
        (429, "too_many_attempts", true)
    );
    ham.kill();
}

/// Usernames each address of a distributed flood tries: within its budgets, so
/// only the bound on password work holds them back. There are 10 addresses per
/// permit (40 on 2 cores: 800 logins at once), enough to keep every permit busy
/// for longer than a request waits for one.
const NAMES_PER_SOURCE: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_flood_waits_for_password_work_permits_in_bounded_memory() {
    let _machine = common::machine::flood().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let data_dir = dir.path().display().to_string();
    let ham = HamProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("HAM_DATA_DIR", data_dir.as_str()),
        ("HAM_ADMIN_TOKEN", ADMIN_TOKEN),
    ]);
    let owner = from([127, 0, 0, 2]);
    let registered = owner
        .post(ham.url("/api/auth/register"))
        .json(&json!({ "username": "alice", "password": "alice-secret-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let before = resident_bytes(&owner, &ham.metrics_url).await;
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (peak, done, base) = (peak.clone(), done.clone(), ham.metrics_url.clone());
        let client = from([127, 0, 0, 3]);
        async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(&client, &base).await, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let started = std::time::Instant::now();
    let sources = u8::try_from(permits() * 10).unwrap();
    let flood = (1..=sources).flat_map(|source| {
        let client = from([127, 0, 1, source]);
        let base = ham.url.clone();
        (0..NAMES_PER_SOURCE).map(move |n| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    outcome(login(&client, &base, &format!("user{n}"), "guess-wrong").await).await
                }
            })
    });
    let answers = futures::future::join_all(flood).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    peak.fetch_max(
        resident_bytes(&owner, &ham.metrics_url).await,
        Ordering::Relaxed,
    );
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    let count = |status: u16, code: &str| {
        answers
            .iter()
            .filter(|(s, c, _)| *s == status && c == code)
            .count()
    };
    let (verified, busy) = (count(401, "bad_credentials"), count(503, "busy"));
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "distributed flood of {}: {verified} verified (401), {busy} busy (503) in {took:?}; \
         resident memory {} MB before, peak growth {} MB",
        answers.len(),
        before / MB,
        growth / MB
    );
    assert_eq!(verified + busy, answers.len(), "{answers:?}");
    assert!(
        busy > 0,
        "{} logins at once were all verified in {took:?} with {} permits",
        answers.len(),
        permits()
    );
    assert!(
        answers.iter().all(|(s, _, retry)| *s == 401 || *retry),
        "every 503 says when to come back"
    );
    assert!(
        took < Duration::from_secs(10),
        "nobody waits long for a permit: {took:?}"
    );
    assert_growth(growth, permits());
    // Once it is over, the owner is served at once.
    let (status, ..) = outcome(login(&owner, &ham.url, "alice", "alice-secret-pw").await).await;
    assert_eq!(status, 200);
    ham.kill();
}

/// An in-process server in local mode with open registration and `trusted`
/// proxies, and accounts `alice` and `bob` (passwords `<name>-secret-pw`).
async fn server(trusted: &[&str]) -> TestServer {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            s.open_registration = true;
            s.trusted_proxies = trusted.iter().map(|c| c.parse().unwrap()).collect();
        })
        .start()
        .await
        .unwrap();
    for name in ["alice", "bob"] {
        let response = from([127, 0, 0, 1])
            .post(server.url("/api/auth/register"))
            .json(&json!({ "username": name, "password": format!("{name}-secret-pw") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registering {name}");
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_do_not_lock_the_user_out_of_another() {
    let server = server(&[]).await;
    let (home, attacker, roamer) = (
        from([127, 0, 0, 1]),
        from([127, 0, 0, 2]),
        from([127, 0, 0, 3]),
    );

    // Five wrong passwords for alice from 127.0.0.2 use up that address's budget
    // for alice, even for the right password.
    for n in 0..LIMIT {
        let answer = outcome(login(&attacker, &server.url, "alice", &format!("wrong-{n}")).await);
        assert_eq!(answer.await.0, 401);
    }
    let (status, code, retry) =
        outcome(login(&attacker, &server.url, "alice", "alice-secret-pw").await).await;
    assert_eq!(
        (status, code.as_str(), retry),
        (429, "too_many_attempts", true)
    );
    // Alice at home is not locked out.
    let (status, ..) = outcome(login(&home, &server.url, "alice", "alice-secret-pw").await).await;
    assert_eq!(status, 200);

    // One address has 20 failures across usernames (5 each for 4 names, some
    // without an account); then nothing more from it, not even bob's right
    // password, while bob elsewhere signs in.
    for name in ["alice", "bob", "carol", "dave"] {
        for n in 0..LIMIT {
            let (status, ..) =
                outcome(login(&roamer, &server.url, name, &format!("wrong-{n}")).await).await;
            assert_eq!(status, 401, "{name} #{n}");
        }
    }
    for (name, password) in [("erin", "anything-at-all"), ("bob", "bob-secret-pw")] {
        let (status, code, retry) =
            outcome(login(&roamer, &server.url, name, password).await).await;
        assert_eq!(
            (status, code.as_str(), retry),
            (429, "too_many_attempts", true),
            "{name}"
        );
    }
    let (status, ..) = outcome(login(&home, &server.url, "bob", "bob-secret-pw").await).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_credentials_are_refused_before_any_hashing() {
    let server = server(&[]).await;
    let client = from([127, 0, 0, 1]);
    let limiter = server.state.login_limiter.clone();
    let runs = limiter.passwords().runs();
    let long_name = "a".repeat(65);
    let long_password = "p".repeat(1025);
    let cases = [
        (
            "/api/auth/login",
            long_name.as_str(),
            "alice-secret-pw",
            "username",
        ),
        (
            "/api/auth/login",
            "alice",
            long_password.as_str(),
            "password",
        ),
        (
            "/api/auth/register",
            long_name.as_str(),
            "a-fine-password",
            "username",
        ),
        (
            "/api/auth/register",
            "newcomer",
            long_password.as_str(),
            "password",
        ),
    ];
    // Many more than any budget: none of them is counted either.
    for _ in 0..10 {
        for (path, username, password, field) in cases {
            let response = client
                .post(server.url(path))
                .json(&json!({ "username": username, "password": password }))
                .send()
                .await
                .unwrap();
            let (status, code, message) = common::error_of(response).await;
            assert_eq!(
                (status, code.as_str()),
                (422, "invalid_field"),
                "{path} {field}"
            );
            assert!(
                message.starts_with(&format!("{field}: at most")),
                "{message}"
            );
        }
    }
    assert_eq!(
        limiter.passwords().runs(),
        runs,
        "no password was hashed or verified"
    );
    assert_eq!(limiter.tracked_keys(), 0, "no attempt was counted");

    // At the bounds, the credentials are considered (and verified) as usual.
    let (status, code, _) =
        outcome(login(&client, &server.url, &"a".repeat(64), &"p".repeat(1024)).await).await;
    assert_eq!((status, code.as_str()), (401, "bad_credentials"));
    assert_eq!(limiter.passwords().runs(), runs + 1);
    let (status, ..) = outcome(login(&client, &server.url, "alice", "alice-secret-pw").await).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_names_the_client_only_from_a_trusted_proxy() {
    // 127.0.0.1 is the proxy; 127.0.0.2 is a client that talks to ham directly.
    let server = server(&["127.0.0.1/32"]).await;
    let (proxy, direct) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let via_proxy = |forwarded: &str, password: &str| {
        proxy
            .post(server.url("/api/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "username": "alice", "password": password }))
            .send()
    };

    // Behind the proxy, 203.0.113.7 uses up its budget for alice...
    for n in 0..LIMIT {
        let response = via_proxy("203.0.113.7", &format!("wrong-{n}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // ...and stays the key however it decorates the header (the proxy appends
    // the address it saw; entries left of it are the client's claims).
    for forwarded in [
        "203.0.113.8, 203.0.113.7",
        "198.51.100.1,203.0.113.7, 127.0.0.1",
    ] {
        let (status, code, _) =
            outcome(via_proxy(forwarded, "alice-secret-pw").await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (429, "too_many_attempts"),
            "{forwarded}"
        );
    }
    // Another client behind the same proxy signs in.
    let (status, ..) = outcome(via_proxy("203.0.113.8", "alice-secret-pw").await.unwrap()).await;
    assert_eq!(status, 200);

    // From a peer that is not a trusted proxy, X-Forwarded-For is ignored: a new
    // made-up address on every try does not buy more tries.
    for n in 0..=LIMIT {
        let response = direct
            .post(server.url("/api/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .json(&json!({ "username": "alice", "password": format!("wrong-{n}") }))
            .send()
            .await
            .unwrap();
        let expected = if n < LIMIT { 401 } else { 429 };
        assert_eq!(response.status(), expected, "try {n}");
    }
    let (status, ..) = outcome(login(&direct, &server.url, "alice", "alice-secret-pw").await).await;
    assert_eq!(status, 429, "127.0.0.2 itself is the key");
    server.stop().await;
}

/// The `name=value` of a `Set-Cookie` and its attributes.
fn set_cookie(response: &reqwest::Response) -> (String, Vec<String>) {
    let value = response
        .headers()
        .get("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {response:?}"))
        .to_str()
        .unwrap();
    let mut parts = value.split(';').map(|p| p.trim().to_string());
    let pair = parts.next().unwrap();
    (pair, parts.collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_host_prefixed_over_https_and_plain_over_http() {
    let server = server(&[]).await;
    let client = from([127, 0, 0, 1]);
    let sign_in = |https: bool| {
        let mut request = client
            .post(server.url("/api/auth/login"))
            .json(&json!({ "username": "alice", "password": "alice-secret-pw" }));
        if https {
            request = request.header("x-forwarded-proto", "https");
        }
        request.send()
    };
    let me = |cookie: String, https: bool| {
        let mut request = client.get(server.url("/api/me")).header("cookie", cookie);
        if https {
            request = request.header("x-forwarded-proto", "https");
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // Plain http (the browser app on a LAN, the e2e run): `ham_session`.
    let response = sign_in(false).await.unwrap();
    assert_eq!(response.status(), 200);
    let (pair, attributes) = set_cookie(&response);
    let token = pair.strip_prefix("ham_session=").unwrap().to_string();
    assert!(!attributes.iter().any(|a| a == "Secure"), "{attributes:?}");
    assert_eq!(me(format!("ham_session={token}"), false).await, 200);

    // Over https: `__Host-ham_session`, Secure, Path=/, no Domain.
    let response = sign_in(true).await.unwrap();
    assert_eq!(response.status(), 200);
    let (pair, attributes) = set_cookie(&response);
    let token = pair
        .strip_prefix("__Host-ham_session=")
        .unwrap()
        .to_string();
    for expected in ["Secure", "Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected}: {attributes:?}"
        );
    }
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain"))
    );
    assert_eq!(me(format!("__Host-ham_session={token}"), true).await, 200);
    // Each scheme reads its own name only.
    assert_eq!(me(format!("ham_session={token}"), true).await, 401);
    assert_eq!(me(format!("__Host-ham_session={token}"), false).await, 401);

    // Logging out over https clears `__Host-ham_session` and revokes the session.
    let response = client
        .post(server.url("/api/auth/logout"))
        .header("x-forwarded-proto", "https")
        .header("cookie", format!("__Host-ham_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (pair, attributes) = set_cookie(&response);
    assert_eq!(pair, "__Host-ham_session=");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0") && attributes.iter().any(|a| a == "Secure")
    );
    assert_eq!(me(format!("__Host-ham_session={token}"), true).await, 401);
    server.stop().await;
}
