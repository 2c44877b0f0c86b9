//! The host's LLM providers against fake servers over loopback: streaming and
//! whole replies, retries, mid-stream errors, refusals.

use crate::common;

use std::time::{Duration, Instant};

use common::llm::{API_KEY, llm_settings};
use ham_host::llm::fake::{FakeLlm, FakeProvider, Reply};
use ham_host::llm::{Llm, LlmError};
use ham_host::store::Db;
use ham_host::wit::ham::plugin::llm::{Chunk, Message, Request, Role};

fn request(text: &str) -> Request {
    Request {
        system: Some("You are a test.".into()),
        messages: vec![Message {
            role: Role::User,
            text: text.into(),
        }],
        max_tokens: 100,
        temperature: Some(0.5),
        model: None,
    }
}

async fn setup(provider: FakeProvider) -> (FakeLlm, Llm, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("ham.db").display()))
        .await
        .unwrap();
    let fake = FakeLlm::start(provider).await.unwrap();
    let mut settings = llm_settings(&fake, provider);
    settings.allowed_models = vec!["big-model".into()];
    let llm = Llm::new(&settings, db.clone()).unwrap();
    (fake, llm, db, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_providers_stream_and_complete() {
    for provider in [FakeProvider::Anthropic, FakeProvider::OpenAi] {
        let (fake, llm, db, _dir) = setup(provider).await;
        fake.set_default(Reply::text(
            "one two three four",
            Duration::from_millis(100),
        ));
        let started = Instant::now();
        let mut stream = llm.stream(Some("u1"), &request("hi")).await.unwrap();
        let mut texts = Vec::new();
        let mut first_at = None;
        let finish = loop {
            match stream.next().await.unwrap().unwrap() {
                Chunk::Text(t) => {
                    if first_at.is_none() {
                        first_at = Some(fake.chunks_sent());
                    }
                    texts.push(t);
                }
                Chunk::Finish(f) => break f,
            }
        };
        assert!(stream.next().await.unwrap().is_none());
        assert_eq!(texts.concat(), "one two three four", "{provider:?}");
        assert!(first_at.unwrap() < 4, "{provider:?}: not incremental");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(finish.usage.output_tokens, 4, "{provider:?}");
        assert!(finish.usage.input_tokens > 0);
        let stop = if provider == FakeProvider::Anthropic {
            "end_turn"
        } else {
            "stop"
        };
        assert_eq!(finish.stop_reason, stop);

        let whole = llm.complete(Some("u1"), &request("again")).await.unwrap();
        assert_eq!(whole.text, "one two three four");
        assert_eq!(whole.usage.output_tokens, 4);
        // Tokens are counted for `/metrics` where usage is recorded.
        let provider_label = llm.status().provider;
        let tokens = |direction| {
            llm.metrics.get(
                "ham_llm_tokens_total",
                &[
                    ("provider", provider_label.as_str()),
                    ("model", whole.model.as_str()),
                    ("direction", direction),
                ],
            )
        };
        assert!(tokens("output") >= 4, "{provider:?}");
        assert!(tokens("input") > 0, "{provider:?}");
        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].body["stream"], true);
        assert!(requests[1].body.get("stream").is_none());
        assert_eq!(requests[0].system().unwrap(), "You are a test.");
        assert_eq!(requests[1].body["temperature"], 0.5);
        match provider {
            FakeProvider::Anthropic => {
                assert_eq!(requests[0].path, "/v1/messages");
                assert_eq!(requests[0].headers["x-api-key"], API_KEY);
            }
            FakeProvider::OpenAi => {
                assert_eq!(requests[0].path, "/v1/chat/completions");
                assert_eq!(
                    requests[0].headers["authorization"],
                    format!("Bearer {API_KEY}")
                );
            }
        }
        let usage = db.llm_usage_of("u1").await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].calls, 2);
        assert_eq!(usage[0].output_tokens, 8);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_are_retried_honouring_retry_after() {
    let (fake, llm, _db, _dir) = setup(FakeProvider::Anthropic).await;
    fake.push(Reply::status(429, Some(1)));
    fake.push(Reply::status(529, None));
    fake.push(Reply::status(503, None));
    let started = Instant::now();
    let mut stream = llm.stream(None, &request("hi")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after was not honoured"
    );
    assert_eq!(fake.requests().len(), 4);
    assert!(matches!(stream.next().await.unwrap(), Some(Chunk::Text(_))));

    // Out of retries: the last answer decides.
    for _ in 0..4 {
        fake.push(Reply::status(529, None));
    }
    match llm.complete(None, &request("hi")).await {
        Err(LlmError::Upstream(m)) => assert!(m.contains("529") && m.contains("overloaded"), "{m}"),
        other => panic!("{other:?}"),
    }
    for _ in 0..4 {
        fake.push(Reply::status(429, Some(0)));
    }
    assert!(matches!(
        llm.complete(None, &request("hi")).await,
        Err(LlmError::RateLimited(_))
    ));
    // A client error is not retried.
    let before = fake.requests().len();
    fake.push(Reply::status(400, None));
    assert!(llm.complete(None, &request("hi")).await.is_err());
    assert_eq!(fake.requests().len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_stream_error_ends_the_stream_with_upstream() {
    for provider in [FakeProvider::Anthropic, FakeProvider::OpenAi] {
        let (fake, llm, _db, _dir) = setup(provider).await;
        fake.push(Reply::fail_midway(
            "partial text",
            Duration::ZERO,
            "Overloaded",
        ));
        let mut stream = llm.stream(None, &request("hi")).await.unwrap();
        let mut text = String::new();
        let err = loop {
            match stream.next().await {
                Ok(Some(Chunk::Text(t))) => text.push_str(&t),
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(text, "partial text");
        assert!(
            matches!(&err, LlmError::Upstream(m) if m.contains("Overloaded")),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_closes_the_upstream_connection() {
    let (fake, llm, db, _dir) = setup(FakeProvider::OpenAi).await;
    fake.set_default(Reply::text(&"word ".repeat(50), Duration::from_millis(50)));
    let mut stream = llm.stream(Some("u2"), &request("hi")).await.unwrap();
    assert!(matches!(stream.next().await.unwrap(), Some(Chunk::Text(_))));
    drop(stream);
    assert!(
        fake.wait_for(Duration::from_secs(5), |f| f.closed_early() == 1)
            .await
    );
    assert!(fake.chunks_sent() < 50);
    // Nothing was reported for a cancelled OpenAI stream (usage comes last), so
    // nothing is recorded.
    assert!(db.llm_usage_of("u2").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_models_are_refused_before_any_call() {
    let (fake, llm, _db, _dir) = setup(FakeProvider::Anthropic).await;
    let mut r = request("hi");
    r.model = Some("other-model".into());
    let err = llm.complete(None, &r).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::InvalidRequest(m) if m.contains("big-model")),
        "{err:?}"
    );
    r.model = Some("big-model".into());
    assert_eq!(llm.complete(None, &r).await.unwrap().model, "big-model");
    let mut r = request("hi");
    r.max_tokens = 0;
    assert!(matches!(
        llm.complete(None, &r).await,
        Err(LlmError::InvalidRequest(_))
    ));
    let mut r = request("hi");
    r.messages.clear();
    assert!(matches!(
        llm.stream(None, &r).await,
        Err(LlmError::InvalidRequest(_))
    ));
    assert_eq!(fake.requests().len(), 1);
    assert!(!format!("{llm:?}").contains(API_KEY));
}
