//! The coach end to end: a signed-in user chats over server-sent events with the
//! bundled coach component, which calls a fake provider through the host's `llm`.

use crate::common;

use std::time::Duration;

use common::llm::{API_KEY, CoachServer, Sse, chat, tokens, user_id};
use common::session::Session;
use common::{Backend, TestServer, error_of, guest};
use ham_host::llm::ProviderKind;
use ham_host::llm::fake::{FakeProvider, Reply};
use reqwest::Method;
use serde_json::json;

const REPLY: &str = "You ran twice this week: keep the streak going tomorrow!";

async fn alice_with_data(server: &TestServer) -> (Session, String) {
    let mut alice = Session::register(server, "alice").await;
    let (status, body) = alice
        .json(
            server,
            Method::POST,
            "/api/habits",
            Some(json!({"name": "Morning Run", "kind": "boolean", "frequency": {"times": 3, "days": 7}})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let id = user_id(server, &mut alice).await;
    let now = ham_host::store::now_ms();
    server
        .state
        .db
        .upsert_activity(
            &id,
            &ham_host::habits::Activity {
                source: "strava".into(),
                external_id: "1".into(),
                sport_type: "Run".into(),
                name: "Riverside tempo".into(),
                start_utc: now - 86_400_000,
                start_local: "2026-01-01T07:00:00".into(),
                distance_m: Some(5200.0),
                moving_time_s: Some(1700),
                elapsed_time_s: Some(1800),
                elevation_gain_m: Some(40.0),
                average_heartrate: None,
            },
        )
        .await
        .unwrap();
    (alice, id)
}

fn coach_component() -> (&'static str, &'static [u8]) {
    let coach = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "coach")
        .expect("coach is bundled");
    (coach.manifest, coach.component)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_tokens_as_they_arrive_grounded_in_the_users_data() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let mut bob = Session::register(server, "bob").await;
    bob.json(
        server,
        Method::POST,
        "/api/habits",
        Some(
            json!({"name": "Secret Swim", "kind": "boolean", "frequency": {"times": 1, "days": 1}}),
        ),
    )
    .await;
    let (mut alice, _) = alice_with_data(server).await;
    env.fake
        .set_default(Reply::text(REPLY, Duration::from_millis(150)));
    let pieces = REPLY.split_inclusive(' ').count() as u64;

    let response = chat(server, &alice, json!({"message": "How am I doing?"})).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    let mut sse = Sse::new(response);
    let (name, first) = sse.next().await.unwrap();
    assert_eq!(name, "token");
    let sent = env.fake.chunks_sent();
    assert!(
        sent < pieces,
        "the first token arrived only after {sent} of {pieces} were sent"
    );
    let mut events = vec![(name, first)];
    events.extend(sse.rest().await);
    assert_eq!(tokens(&events), REPLY, "tokens in order");
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done", "{events:?}");
    let conversation = done["conversation_id"].as_str().unwrap().to_string();
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(done["usage"]["output_tokens"].as_u64().unwrap(), pieces);

    // The provider got the key, a stream request, and alice's data, never bob's.
    let request = env.fake.requests().pop().unwrap();
    assert_eq!(request.headers["x-api-key"], API_KEY);
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(request.body["stream"], true);
    let prompt = request.prompt_text();
    for expected in [
        "Morning Run",
        "Riverside tempo",
        "5.2 km",
        "How am I doing?",
    ] {
        assert!(
            prompt.contains(expected),
            "`{expected}` missing from:\n{prompt}"
        );
    }
    assert!(!prompt.contains("Secret Swim"), "{prompt}");

    // The conversation is kept; the next message continues it.
    let (status, list) = alice
        .json(server, Method::GET, "/api/coach/conversations", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["conversations"][0]["id"], conversation.as_str());
    assert_eq!(list["conversations"][0]["title"], "How am I doing?");
    env.fake
        .set_default(Reply::text("Rest today.", Duration::ZERO));
    let response = chat(
        server,
        &alice,
        json!({"conversation_id": conversation, "message": "And tomorrow?"}),
    )
    .await;
    let events = Sse::new(response).rest().await;
    assert_eq!(tokens(&events), "Rest today.");
    let request = env.fake.requests().pop().unwrap();
    let roles: Vec<_> = request.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    let path = format!("/api/coach/conversations/{conversation}");
    let (status, c) = alice.json(server, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let messages = c["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{c}");
    assert_eq!(messages[1]["text"], REPLY);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["incomplete"], false);
    assert!(messages[1]["at"].as_i64().unwrap() > 0);

    // Bob cannot see it; unknown ids are 404; the key never shows.
    let (status, _) = bob.json(server, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, body) = bob
        .json(server, Method::GET, "/api/coach/conversations", None)
        .await;
    assert_eq!(
        (
            status.as_u16(),
            body["conversations"].as_array().unwrap().len()
        ),
        (200, 0)
    );
    let (status, code, _) = error_of(
        chat(
            server,
            &alice,
            json!({"conversation_id": "0123abcd", "message": "hi"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, status_body) = alice
        .json(server, Method::GET, "/api/llm/status", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(status_body["provider"], "anthropic");
    assert_eq!(status_body["configured"], true);
    assert!(!status_body.to_string().contains(API_KEY));
    assert_eq!(
        client_status(server, "/api/llm/status").await,
        401,
        "status is for signed-in users"
    );

    // Delete.
    let response = alice.send(server, Method::DELETE, &path, None).await;
    assert_eq!(response.status(), 204);
    let (status, _) = alice.json(server, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    env.stop().await;
}

async fn client_status(server: &TestServer, path: &str) -> u16 {
    common::client()
        .get(server.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_400_with_the_error_shape() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let alice = Session::register(server, "alice").await;
    for (body, code) in [
        (json!({"message": "   "}), "empty_message"),
        (json!({"message": "x".repeat(8001)}), "message_too_long"),
        (json!({"text": "hi"}), "invalid_json"),
    ] {
        let (status, got, message) = error_of(chat(server, &alice, body).await).await;
        assert_eq!((status, got.as_str()), (400, code), "{message}");
    }
    assert!(env.fake.requests().is_empty());
    // Signed out: 401 from the host.
    let response = common::client()
        .post(server.url("/api/coach/chat"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_stream_error_is_an_error_event_and_the_partial_reply_is_kept() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    env.fake.push(Reply::fail_midway(
        "Half a thought",
        Duration::from_millis(20),
        "Overloaded",
    ));
    let events = Sse::new(chat(server, &alice, json!({"message": "hi"})).await)
        .rest()
        .await;
    assert_eq!(tokens(&events), "Half a thought");
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(error["code"], "upstream");
    assert!(
        error["message"].as_str().unwrap().contains("Overloaded"),
        "{error}"
    );
    let id = error["conversation_id"].as_str().unwrap();
    let (_, c) = alice
        .json(
            server,
            Method::GET,
            &format!("/api/coach/conversations/{id}"),
            None,
        )
        .await;
    assert_eq!(c["messages"][1]["text"], "Half a thought");
    assert_eq!(c["messages"][1]["incomplete"], true);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let long = "word ".repeat(40);
    env.fake
        .set_default(Reply::text(&long, Duration::from_millis(100)));
    let mut sse = Sse::new(chat(server, &alice, json!({"message": "talk a lot"})).await);
    let (name, _) = sse.next().await.unwrap();
    assert_eq!(name, "token");
    sse.close();
    assert!(
        env.fake
            .wait_for(Duration::from_secs(10), |f| f.closed_early() == 1)
            .await,
        "the fake never saw the connection close"
    );
    assert!(env.fake.chunks_sent() < 40);
    assert_eq!(env.fake.finished(), 0);
    // The partial reply is kept, marked incomplete.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = alice
            .json(server, Method::GET, "/api/coach/conversations", None)
            .await;
        let id = list["conversations"][0]["id"].as_str().unwrap().to_string();
        let (_, c) = alice
            .json(
                server,
                Method::GET,
                &format!("/api/coach/conversations/{id}"),
                None,
            )
            .await;
        if c["messages"].as_array().unwrap().len() == 2 {
            assert_eq!(c["messages"][1]["incomplete"], true);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no partial reply: {c}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_the_coach_says_how_to_configure_one() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |s| {
        s.llm = Default::default();
    })
    .await
    .unwrap();
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let (_, status) = alice
        .json(server, Method::GET, "/api/llm/status", None)
        .await;
    assert_eq!(
        status,
        json!({"provider": "none", "model": "", "configured": false})
    );
    let events = Sse::new(chat(server, &alice, json!({"message": "hi"})).await)
        .rest()
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (name, error) = &events[0];
    assert_eq!(name, "error");
    assert_eq!(error["code"], "not_configured");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("HAM_LLM_PROVIDER"),
        "{error}"
    );
    assert!(error["conversation_id"].is_string());
    env.stop().await;
}

async fn budget_story(backend: Backend) {
    let Some(env) = CoachServer::start(FakeProvider::Anthropic, backend, |s| {
        s.llm.daily_tokens = Some(100);
    })
    .await
    else {
        return;
    };
    let server = &env.server;
    let (alice, id) = alice_with_data(server).await;
    let events = Sse::new(chat(server, &alice, json!({"message": "hi"})).await)
        .rest()
        .await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    let usage = server.state.db.llm_usage_of(&id).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].provider, "anthropic");
    assert_eq!(usage[0].model, "claude-sonnet-4-5");
    assert!(usage[0].input_tokens > 100, "{usage:?}");
    assert!(usage[0].output_tokens > 0);
    // Spent: refused without calling the provider.
    let before = env.fake.requests().len();
    let events = Sse::new(chat(server, &alice, json!({"message": "again"})).await)
        .rest()
        .await;
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(error["code"], "budget_exceeded");
    assert_eq!(env.fake.requests().len(), before);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_is_enforced_and_usage_recorded_on_sqlite() {
    budget_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_is_enforced_and_usage_recorded_on_postgres() {
    budget_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_coach_version_with_another_prompt_serves_the_next_chat() {
    let env = CoachServer::start(FakeProvider::OpenAi, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let alice = Session::register(server, "alice").await;
    Sse::new(chat(server, &alice, json!({"message": "hi"})).await)
        .rest()
        .await;
    let system = env.fake.requests().pop().unwrap().system().unwrap();
    assert!(system.starts_with("You are HAM's coach"), "{system}");

    let (manifest, component) = coach_component();
    let manifest = manifest
        .replace("version = \"0.2.0\"", "version = \"0.2.1\"")
        .replace(
            "system_prompt = { description",
            "system_prompt = { default = \"You are Coach Zed, terse and upbeat.\", description",
        );
    server.install("coach", &manifest, component.to_vec()).await;
    let events = Sse::new(chat(server, &alice, json!({"message": "hi again"})).await)
        .rest()
        .await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    let request = env.fake.requests().pop().unwrap();
    let system = request.system().unwrap();
    assert!(system.starts_with("You are Coach Zed"), "{system}");
    // OpenAI-compatible: bearer key, usage asked for.
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {API_KEY}")
    );
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    assert_eq!(request.path, "/v1/chat/completions");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coach_that_fails_is_500_for_that_chat_only() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let mut alice = Session::register(server, "alice").await;
    let (manifest, component) = coach_component();
    // 1 MiB of memory cannot even start the coach.
    let broken = manifest
        .replace("version = \"0.2.0\"", "version = \"0.2.1\"")
        .replace("memory_mb = 64", "memory_mb = 1");
    server.install("coach", &broken, component.to_vec()).await;
    let response = chat(server, &alice, json!({"message": "hi"})).await;
    assert_eq!(response.status(), 500);
    let (status, _) = alice
        .json(server, Method::GET, "/api/llm/status", None)
        .await;
    assert_eq!(status, 200, "the host keeps serving");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_review_writes_a_conversation_for_each_user() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let server = &env.server;
    let (mut alice, id) = alice_with_data(server).await;
    env.fake
        .set_default(Reply::text("A steady week: three runs.", Duration::ZERO));
    server
        .state
        .db
        .enqueue_job(&ham_host::store::jobs::NewJob {
            id: "review-1",
            plugin: "coach",
            user_id: Some(&id),
            kind: "weekly-review",
            payload: &[],
            run_after: 0,
            max_attempts: 3,
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list) = alice
            .json(server, Method::GET, "/api/coach/conversations", None)
            .await;
        if let Some(c) = list["conversations"].as_array().unwrap().first() {
            assert!(
                c["title"].as_str().unwrap().starts_with("Weekly review"),
                "{c}"
            );
            let path = format!("/api/coach/conversations/{}", c["id"].as_str().unwrap());
            let (_, c) = alice.json(server, Method::GET, &path, None).await;
            assert_eq!(c["messages"][0]["text"], "A steady week: three runs.");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no review written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let prompt = env.fake.requests().pop().unwrap().prompt_text();
    assert!(
        prompt.contains("Morning Run") && prompt.contains("weekly review"),
        "{prompt}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_route_claims_match_below_and_exact_claims_win() {
    let env = CoachServer::start(FakeProvider::Anthropic, Backend::Sqlite, |s| {
        s.llm.provider = ProviderKind::None;
    })
    .await
    .unwrap();
    let server = &env.server;
    let manifest = "name = \"rules\"\nversion = \"0.1.0\"\n\
        routes = [{ path = \"/api/rules/*\", methods = [\"GET\"], auth = \"none\" }, \
                  { path = \"/api/rules/special\", methods = [\"POST\"], auth = \"none\" }]\n";
    server.install("rules", manifest, guest("wasi-proxy")).await;
    for path in ["/api/rules", "/api/rules/1", "/api/rules/1/deep"] {
        assert_eq!(
            server.get_text(path).await,
            (200, format!("wasi-proxy saw GET {path}\n")),
            "{path}"
        );
    }
    // The exact claim wins over the prefix: it accepts only POST.
    let (status, code, _) = error_of(
        common::client()
            .get(server.url("/api/rules/special"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert_eq!(server.get_text("/api/rulesx").await.0, 404);
    // The same prefix cannot be claimed twice; a longer one can.
    let thief = "name = \"thief\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/rules/*\" }]\n";
    let (status, code, _) =
        error_of(server.upload("thief", thief, guest("wasi-proxy")).await).await;
    assert_eq!((status, code.as_str()), (409, "route_taken"));
    let deeper = "name = \"deeper\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/rules/deep/*\", auth = \"none\" }]\n";
    server.install("deeper", deeper, guest("wasi-proxy")).await;
    assert_eq!(server.get_text("/api/rules/deep/x").await.0, 200);
    let snapshot = server.state.registry.snapshot();
    assert_eq!(
        snapshot.route("/api/rules/deep/x").unwrap().0.manifest.name,
        "deeper"
    );
    assert_eq!(
        snapshot.route("/api/rules/other").unwrap().0.manifest.name,
        "rules"
    );
    // The coach's own claims.
    assert_eq!(
        snapshot
            .route("/api/coach/conversations/abc")
            .unwrap()
            .0
            .manifest
            .name,
        "coach"
    );
    env.stop().await;
}
