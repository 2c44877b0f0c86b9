//! Fair shares (issue 14): no user, job or anonymous caller can spend what others
//! rely on. Played against a real `ham` over loopback, storage stories on SQLite
//! and on PostgreSQL:
//!
//! - plugin storage: a quota per scope (each user's, the plugin's own) and a total
//!   per plugin; one user at their quota leaves the others writing; concurrent
//!   writers cannot overshoot either quota;
//! - the LLM budget is reserved before a call: parallel coach chats at the edge
//!   overshoot by at most one reservation; a chat refused for budget stores
//!   nothing; calls for no user have a budget of their own;
//! - a provider that redirects never gets the key carried to another host.
//!
//! The stats cache's byte bound and the plugin-name collision check are unit
//! tests (`rules::tests`, `capabilities::config::tests`).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::llm::{API_KEY, CoachServer, Sse, chat, user_id};
use common::session::Session;
use common::{Backend, TestDb, TestServer, client, guest, probe_manifest};
use ham_host::llm::fake::{FakeLlm, FakeProvider, Reply};
use ham_host::llm::{Llm, LlmError, utc_day};
use ham_host::plugins::manifest::Manifest;
use ham_host::store::kv::KvScope;
use ham_host::store::now_ms;
use ham_host::wit::ham::plugin::llm::{Message, Request, Role};
use reqwest::Method;
use serde_json::{Value, json};

const KIB: usize = 1024;
const MIB: i64 = 1024 * 1024;

// ---- storage ----

/// `PUT /plugins/{plugin}/kv/{scope}/{key}` as `session` (none: no user), through
/// the probe component: (status, body).
async fn put(
    server: &TestServer,
    session: Option<&Session>,
    plugin: &str,
    scope: &str,
    key: &str,
    value: Vec<u8>,
) -> (u16, String) {
    let mut request = client()
        .put(server.url(&format!("/plugins/{plugin}/kv/{scope}/{key}")))
        .body(value);
    if let Some(cookie) = session.and_then(|s| s.cookie.clone()) {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn get(
    server: &TestServer,
    session: Option<&Session>,
    plugin: &str,
    scope: &str,
    key: &str,
) -> String {
    let mut request = client().get(server.url(&format!("/plugins/{plugin}/kv/{scope}/{key}")));
    if let Some(cookie) = session.and_then(|s| s.cookie.clone()) {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap().text().await.unwrap()
}

async fn delete(server: &TestServer, session: &Session, plugin: &str, key: &str) -> u16 {
    client()
        .delete(server.url(&format!("/plugins/{plugin}/kv/user/{key}")))
        .header("cookie", session.cookie.clone().unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A server with the probe installed as `vault`: 1 MiB per scope, `total_mb` in all.
async fn vault_server(backend: Backend, total_mb: u32) -> Option<TestServer> {
    let server = TestServer::builder(backend)
        .with(|s| {
            s.open_registration = true;
        })
        .start()
        .await?;
    let limits = format!(
        "[limits]\nstorage_quota_mb = 1\nstorage_total_mb = {total_mb}\nrequest_body_kb = 1024\n"
    );
    server
        .install(
            "vault",
            &probe_manifest("vault", "0.1.0", "v", &limits),
            guest("probe"),
        )
        .await;
    Some(server)
}

async fn one_user_at_the_quota_leaves_the_others_writing(backend: Backend) {
    let Some(server) = vault_server(backend, 3).await else {
        return;
    };
    let alice = Session::register(&server, "alice").await;
    let bob = Session::register(&server, "bob").await;
    let carol = Session::register(&server, "carol").await;
    let dave = Session::register(&server, "dave").await;
    let big = || vec![b'x'; 700 * KIB];

    // Alice fills her share: the next write is refused and changes nothing.
    assert_eq!(
        put(&server, Some(&alice), "vault", "user", "a1", big())
            .await
            .0,
        200
    );
    assert_eq!(
        put(
            &server,
            Some(&alice),
            "vault",
            "user",
            "a2",
            vec![b'y'; 400 * KIB]
        )
        .await,
        (507, "quota-exceeded".into())
    );
    assert_eq!(
        get(&server, Some(&alice), "vault", "user", "a2").await,
        "absent"
    );
    // Replacing a value with one no bigger is never refused.
    assert_eq!(
        put(
            &server,
            Some(&alice),
            "vault",
            "user",
            "a1",
            vec![b'z'; 600 * KIB]
        )
        .await,
        (200, "2".into())
    );
    assert_eq!(
        put(&server, Some(&alice), "vault", "user", "a1", big())
            .await
            .0,
        200
    );

    // Bob is not stopped by alice's full share.
    assert_eq!(
        put(&server, Some(&bob), "vault", "user", "b1", big())
            .await
            .0,
        200
    );
    // The plugin's own scope (anonymous routes write it) has one share too.
    assert_eq!(
        put(&server, None, "vault", "plugin", "p1", big()).await.0,
        200
    );
    assert_eq!(
        put(
            &server,
            None,
            "vault",
            "plugin",
            "p2",
            vec![b'p'; 400 * KIB]
        )
        .await,
        (507, "quota-exceeded".into())
    );
    // Carol still fits the total (4 x 700 KiB of 3 MiB)...
    assert_eq!(
        put(&server, Some(&carol), "vault", "user", "c1", big())
            .await
            .0,
        200
    );
    // ...dave does not, though his own share is empty.
    assert_eq!(
        put(&server, Some(&dave), "vault", "user", "d1", big()).await,
        (507, "quota-exceeded".into())
    );
    assert_eq!(
        get(&server, Some(&dave), "vault", "user", "d1").await,
        "absent"
    );
    // A delete frees room in the total.
    assert_eq!(delete(&server, &alice, "vault", "a1").await, 200);
    assert_eq!(
        put(&server, Some(&dave), "vault", "user", "d1", big())
            .await
            .0,
        200
    );

    // The counted total matches the rows.
    let db = &server.state.db;
    let expected = 4 * (700 * KIB as i64 + 2);
    assert_eq!(db.kv_usage("vault").await.unwrap(), expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_at_the_quota_leaves_the_others_writing_on_sqlite() {
    one_user_at_the_quota_leaves_the_others_writing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_at_the_quota_leaves_the_others_writing_on_postgres() {
    one_user_at_the_quota_leaves_the_others_writing(Backend::Postgres).await;
}

async fn concurrent_writers_cannot_overshoot(backend: Backend) {
    let Some(server) = vault_server(backend, 2).await else {
        return;
    };
    let server = Arc::new(server);
    let mut users = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        let mut session = Session::register(&server, name).await;
        let id = user_id(&server, &mut session).await;
        users.push((session, id));
    }
    // 4 users x 8 writes of 200 KiB at once: each user's share fits 5, the total 10.
    let value = 200 * KIB;
    let mut tasks = Vec::new();
    for (session, _) in &users {
        for i in 0..8 {
            let (server, session) = (server.clone(), session.clone());
            tasks.push(tokio::spawn(async move {
                put(
                    &server,
                    Some(&session),
                    "vault",
                    "user",
                    &format!("k{i}"),
                    vec![b'w'; value],
                )
                .await
            }));
        }
    }
    let mut written = 0;
    for task in tasks {
        match task.await.unwrap() {
            (200, _) => written += 1,
            (507, body) => assert_eq!(body, "quota-exceeded"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let db = &server.state.db;
    let row = i64::try_from(value).unwrap() + 2;
    for (_, id) in &users {
        let used = db
            .kv_scope_usage(KvScope {
                plugin: "vault",
                owner: id,
            })
            .await
            .unwrap();
        assert!(used <= MIB, "a user holds {used} bytes of a 1 MiB share");
    }
    let total = db.kv_usage("vault").await.unwrap();
    assert!(total <= 2 * MIB, "the plugin holds {total} bytes of 2 MiB");
    assert_eq!(
        total,
        written * row,
        "every accepted write and nothing else"
    );
    assert_eq!(written, 10, "the total is used up, not overshot");
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_cannot_overshoot_on_sqlite() {
    concurrent_writers_cannot_overshoot(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_cannot_overshoot_on_postgres() {
    concurrent_writers_cannot_overshoot(Backend::Postgres).await;
}

#[test]
fn storage_limits_in_the_manifest() {
    let limits = |extra: &str| {
        Manifest::parse(&format!(
            "name = \"x\"\nversion = \"0.1.0\"\n[limits]\n{extra}"
        ))
        .map(|m| m.limits)
    };
    let l = limits("storage_quota_mb = 10").unwrap();
    assert_eq!(l.storage_total_mb(), 100, "ten times the share by default");
    let l = limits("storage_quota_mb = 1024").unwrap();
    assert_eq!(l.storage_total_mb(), 10240, "capped");
    let l = limits("storage_quota_mb = 5\nstorage_total_mb = 5").unwrap();
    assert_eq!(l.storage_total_mb(), 5);
    for bad in [
        "storage_quota_mb = 5\nstorage_total_mb = 4",
        "storage_total_mb = 20000",
    ] {
        let err = limits(bad).unwrap_err().to_string();
        assert!(err.contains("limits.storage_total_mb"), "{err}");
    }
}

// ---- the LLM budget ----

/// Every reservation the fake saw asked for: the prompt's bytes plus `max_tokens`.
fn reservations(fake: &FakeLlm) -> Vec<i64> {
    fake.requests()
        .iter()
        .map(|r| {
            let system = r.body["system"].as_str().map_or(0, str::len);
            let messages: usize = r.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum();
            i64::try_from(system + messages).unwrap() + r.body["max_tokens"].as_i64().unwrap()
        })
        .collect()
}

async fn conversations(server: &TestServer, session: &mut Session) -> Vec<Value> {
    let (status, body) = session
        .json(server, Method::GET, "/api/coach/conversations", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["conversations"].as_array().unwrap().clone()
}

/// Polls until no reservation of `user` today is outstanding: (used, reserved).
async fn settled(db: &ham_host::store::Db, user: &str) -> (i64, i64) {
    let day = utc_day(now_ms());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (used, reserved) = db.llm_budget_of(user, &day).await.unwrap();
        if reserved == 0 || tokio::time::Instant::now() > deadline {
            return (used, reserved);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const BUDGET: u64 = 1_000_000;

async fn parallel_chats_at_the_budget_edge(backend: Backend) {
    let Some(env) = CoachServer::start(FakeProvider::Anthropic, backend, |s| {
        s.llm.daily_tokens = Some(BUDGET);
    })
    .await
    else {
        return;
    };
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let alice_id = user_id(server, &mut alice).await;
    // Alice is one token short of her budget today.
    let day = utc_day(now_ms());
    server
        .state
        .db
        .llm_usage_add(
            &alice_id,
            &day,
            "anthropic",
            "claude-sonnet-4-5",
            i64::try_from(BUDGET).unwrap() - 1,
            0,
        )
        .await
        .unwrap();
    // Long enough replies that all the chats are in flight together.
    let words = "steady ".repeat(200);
    env.fake
        .set_default(Reply::text(&words, Duration::from_millis(5)));

    let chats: Vec<_> = (0..8)
        .map(|i| {
            let (url, cookie) = (server.url("/api/coach/chat"), alice.cookie.clone().unwrap());
            tokio::spawn(async move {
                let response = client()
                    .post(url)
                    .header("cookie", cookie)
                    .json(&json!({"message": format!("chat {i}: how am I doing?")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                Sse::new(response).rest().await
            })
        })
        .collect();
    let (mut done, mut refused) = (0, 0);
    for chat in chats {
        let events = chat.await.unwrap();
        let (name, data) = events.last().unwrap();
        match name.as_str() {
            "done" => done += 1,
            "error" => {
                assert_eq!(data["code"], "budget_exceeded", "{data}");
                assert!(data["conversation_id"].is_null(), "nothing stored: {data}");
                refused += 1;
            }
            other => panic!("unexpected last event {other}: {data}"),
        }
    }
    assert_eq!((done, refused), (1, 7), "one call fits before the edge");

    // What the provider was asked for and what alice used: at most one
    // reservation past the budget.
    let asked = reservations(&env.fake);
    assert_eq!(asked.len(), done, "refused chats never reach the provider");
    let largest = asked.iter().copied().max().unwrap();
    let (counted, reserved) = settled(&server.state.db, &alice_id).await;
    assert_eq!(reserved, 0, "every reservation settled");
    let used = i64::try_from(
        server
            .state
            .db
            .llm_tokens_on(&alice_id, &day)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        counted, used,
        "the budget counts what the provider reported"
    );
    let over = used - i64::try_from(BUDGET).unwrap();
    assert!(
        over <= largest,
        "overshot by {over}, a reservation is {largest}"
    );
    // Refused chats stored nothing: one conversation, from the chat that ran.
    assert_eq!(conversations(server, &mut alice).await.len(), done);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_chats_at_the_budget_edge_overshoot_by_at_most_one_reservation_on_sqlite() {
    parallel_chats_at_the_budget_edge(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_chats_at_the_budget_edge_overshoot_by_at_most_one_reservation_on_postgres() {
    parallel_chats_at_the_budget_edge(Backend::Postgres).await;
}

async fn a_chat_refused_for_budget_stores_nothing(backend: Backend) {
    let Some(env) = CoachServer::start(FakeProvider::OpenAi, backend, |s| {
        s.llm.daily_tokens = Some(100);
    })
    .await
    else {
        return;
    };
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let events = Sse::new(chat(server, &alice, json!({"message": "hi"})).await)
        .rest()
        .await;
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done", "{events:?}");
    let id = done["conversation_id"].as_str().unwrap().to_string();
    let path = format!("/api/coach/conversations/{id}");
    let (_, before) = alice.json(server, Method::GET, &path, None).await;
    assert_eq!(before["messages"].as_array().unwrap().len(), 2);

    // The budget is spent: a chat in the conversation changes nothing...
    let asked = env.fake.requests().len();
    let events = Sse::new(
        chat(
            server,
            &alice,
            json!({"conversation_id": id, "message": "and now?"}),
        )
        .await,
    )
    .rest()
    .await;
    let (name, error) = events.last().unwrap();
    assert_eq!(
        (name.as_str(), &error["code"]),
        ("error", &json!("budget_exceeded"))
    );
    assert_eq!(error["conversation_id"], json!(id));
    let (_, after) = alice.json(server, Method::GET, &path, None).await;
    assert_eq!(after, before, "the refused message was not stored");
    // ...and a new chat creates no conversation.
    let events = Sse::new(chat(server, &alice, json!({"message": "a new topic"})).await)
        .rest()
        .await;
    let (_, error) = events.last().unwrap();
    assert_eq!(error["code"], "budget_exceeded");
    assert!(error["conversation_id"].is_null(), "{error}");
    assert_eq!(conversations(server, &mut alice).await.len(), 1);
    assert_eq!(
        env.fake.requests().len(),
        asked,
        "the provider was not called"
    );
    // Bob's budget is his own.
    let bob = Session::register(server, "bob").await;
    let events = Sse::new(chat(server, &bob, json!({"message": "hi"})).await)
        .rest()
        .await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_refused_for_budget_stores_nothing_on_sqlite() {
    a_chat_refused_for_budget_stores_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_refused_for_budget_stores_nothing_on_postgres() {
    a_chat_refused_for_budget_stores_nothing(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_past_the_conversation_limit_is_413_and_stores_nothing() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let alice_id = user_id(server, &mut alice).await;
    // A conversation already at the limit, as the coach stores it.
    let id = "0123456789abcdef";
    let stored = json!({
        "id": id, "title": "long", "created_at": 1, "updated_at": 1,
        "messages": [{"role": "user", "text": "a".repeat(256 * KIB), "incomplete": false, "at": 1}],
    });
    let scope = KvScope {
        plugin: "coach",
        owner: &alice_id,
    };
    let quota = ham_host::store::kv::Quota {
        scope: MIB,
        total: MIB,
    };
    let key = format!("conversations/{id}");
    let value = serde_json::to_vec(&stored).unwrap();
    server
        .state
        .db
        .kv_set(scope, &key, &value, quota)
        .await
        .unwrap();

    let response = chat(
        server,
        &alice,
        json!({"conversation_id": id, "message": "more?"}),
    )
    .await;
    let (status, code, message) = common::error_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (413, "conversation_too_long"),
        "{message}"
    );
    assert!(message.contains("start a new one"), "{message}");
    let (kept, _) = server.state.db.kv_get(scope, &key).await.unwrap().unwrap();
    assert_eq!(kept, value, "nothing stored");
    assert!(
        env.fake.requests().is_empty(),
        "the provider was not called"
    );
    env.stop().await;
}

fn request(text: &str) -> Request {
    Request {
        system: None,
        messages: vec![Message {
            role: Role::User,
            text: text.into(),
        }],
        max_tokens: 100,
        temperature: None,
        model: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_for_no_user_have_a_budget_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let db = ham_host::store::Db::connect(&test_db.url).await.unwrap();
    let fake = FakeLlm::start(FakeProvider::Anthropic).await.unwrap();
    let mut settings = common::llm::llm_settings(&fake, FakeProvider::Anthropic);
    settings.daily_tokens = Some(10_000);
    settings.no_user_daily_tokens = Some(20);
    let llm = Llm::new(&settings, db.clone()).unwrap();

    // The first call for no user fits (its reservation may cross the edge)...
    llm.complete(None, &request("weekly job")).await.unwrap();
    // ...the next is refused without reaching the provider...
    let asked = fake.requests().len();
    let refused = llm.complete(None, &request("again")).await.unwrap_err();
    assert!(matches!(refused, LlmError::BudgetSpent(20)), "{refused:?}");
    assert_eq!(fake.requests().len(), asked);
    // ...and a user's budget is untouched by it.
    llm.complete(Some("u1"), &request("hello")).await.unwrap();
    let day = utc_day(now_ms());
    let (no_user, _) = db.llm_budget_of("", &day).await.unwrap();
    let (user, _) = db.llm_budget_of("u1", &day).await.unwrap();
    assert!(no_user > 0 && user > 0, "{no_user} {user}");

    // 0 refuses calls for no user; unset, they take the users' number.
    let mut off = settings.clone();
    off.no_user_daily_tokens = Some(0);
    let llm = Llm::new(&off, db.clone()).unwrap();
    assert!(matches!(
        llm.complete(None, &request("x")).await,
        Err(LlmError::BudgetSpent(0))
    ));
    let from_env = |vars: &[(&str, &str)]| {
        let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        ham_host::settings::Settings::load_from(None, env).map(|s| s.llm)
    };
    let s = from_env(&[("HAM_LLM_NO_USER_DAILY_TOKENS", "5000")]).unwrap();
    assert_eq!(s.budget_for(None), Some(5000));
    assert_eq!(s.budget_for(Some("u")), None);
    let s = from_env(&[
        ("HAM_LLM_NO_USER_DAILY_TOKENS", ""),
        ("HAM_LLM_DAILY_TOKENS", "700"),
    ])
    .unwrap();
    assert_eq!(s.budget_for(None), Some(700));
    assert!(from_env(&[("HAM_LLM_NO_USER_DAILY_TOKENS", "lots")]).is_err());
    db.close().await;
}

// ---- redirects ----

/// A provider that answers every request with a 307 to the same path on `to`
/// (set once the other server runs), and counts them.
struct Redirector {
    url: String,
    to: Arc<std::sync::Mutex<String>>,
    hits: Arc<std::sync::atomic::AtomicU64>,
}

impl Redirector {
    async fn start() -> Self {
        let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let to = Arc::new(std::sync::Mutex::new(String::new()));
        let (counted, target) = (hits.clone(), to.clone());
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (counted, target) = (counted.clone(), target.clone());
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let to = target.lock().unwrap().clone();
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, format!("{to}{}", uri.path()))],
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, to, hits }
    }

    /// Sends every request on to the fake (another loopback port: another host).
    fn to(&self, fake: &FakeLlm) {
        *self.to.lock().unwrap() = format!("http://{}", fake.addr());
    }

    fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_redirect_never_carries_the_key_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let db = ham_host::store::Db::connect(&test_db.url).await.unwrap();
    for provider in [FakeProvider::Anthropic, FakeProvider::OpenAi] {
        // The fake plays the other host: it records the headers of anything
        // that reaches it.
        let fake = FakeLlm::start(provider).await.unwrap();
        let redirector = Redirector::start().await;
        redirector.to(&fake);
        let mut s = common::llm::llm_settings(&fake, provider);
        s.daily_tokens = Some(10_000);
        match provider {
            FakeProvider::Anthropic => s.anthropic_base_url = redirector.url.clone(),
            FakeProvider::OpenAi => s.base_url = Some(format!("{}/v1", redirector.url)),
        }
        let llm = Llm::new(&s, db.clone()).unwrap();
        let err = llm.complete(Some("u1"), &request("hi")).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Upstream(m) if m.contains("307")),
            "{provider:?}: {err:?}"
        );
        assert!(!format!("{err:?}").contains(API_KEY));
        assert!(
            llm.stream(Some("u1"), &request("hi")).await.is_err(),
            "a redirected stream fails too"
        );
        assert_eq!(redirector.hits(), 2, "{provider:?}");
        assert!(
            fake.requests().is_empty(),
            "{provider:?}: the other host got a request: {:?}",
            fake.requests().first().map(|r| &r.headers)
        );
        // The reservations were given back: a failed call counts nothing.
        assert_eq!(settled(&db, "u1").await, (0, 0), "{provider:?}");
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coach_behind_a_redirecting_provider_answers_upstream_and_sends_no_key_on() {
    let redirector = Redirector::start().await;
    let url = redirector.url.clone();
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |s| {
        s.llm.anthropic_base_url = url;
    })
    .await
    .unwrap();
    redirector.to(&env.fake);
    let server = &env.server;
    let alice = Session::register(server, "alice").await;
    let events = Sse::new(chat(server, &alice, json!({"message": "hi"})).await)
        .rest()
        .await;
    let (name, error) = events.last().unwrap();
    assert_eq!(
        (name.as_str(), &error["code"]),
        ("error", &json!("upstream")),
        "{events:?}"
    );
    assert!(redirector.hits() >= 1);
    assert!(
        env.fake.requests().is_empty(),
        "the key went across the redirect"
    );
    env.stop().await;
}
