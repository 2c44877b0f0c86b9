//! Gemini through its OpenAI-compatible endpoint, with the settings
//! docs/coach.md gives (`HAM_LLM_PROVIDER=openai`, the base URL
//! `…/v1beta/openai/` with its trailing slash, the key as a bearer token,
//! `gemini-2.5-flash`), against a fake over loopback that speaks that dialect:
//! only `POST /v1beta/openai/chat/completions`, the key in `Authorization`,
//! unknown request fields refused as Google refuses them; whole replies with
//! `"finish_reason": "stop"` and `usage`; streamed replies whose last text
//! chunk also carries the stop reason and the usage, then `data: [DONE]`;
//! thinking tokens counted in `total_tokens` only; errors as a JSON list.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use ham_host::llm::{Llm, LlmError};
use ham_host::settings::Settings;
use ham_host::store::Db;
use ham_host::wit::ham::plugin::llm::{Chunk, Message, Request, Role};
use serde_json::{Value, json};

const KEY: &str = "AIza-test-key-never-shown";
const MODEL: &str = "gemini-2.5-flash";
const PATH: &str = "/v1beta/openai/chat/completions";
/// Tokens the fake model "thinks" per reply: billed as output, reported only in
/// `total_tokens`.
const THOUGHTS: u64 = 21;

/// Fields Gemini's OpenAI compatibility accepts in a chat completions request;
/// any other is refused with 400 ("Unknown name").
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "stream",
    "stream_options",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "tools",
    "tool_choice",
    "reasoning_effort",
];

/// One request the fake got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    /// Error answers to give before the next reply: (status, error status, message).
    errors: Mutex<VecDeque<(u16, &'static str, &'static str)>>,
    reply: Mutex<String>,
}

/// A Gemini error: a list holding one `{"error": …}`.
fn gemini_error(status: u16, kind: &str, message: &str) -> Response {
    let body = json!([{"error": {"code": status, "message": message, "status": kind}}]);
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

async fn chat(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorization = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    if authorization.as_deref() != Some(&format!("Bearer {KEY}")) {
        return gemini_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        );
    }
    if let Some(unknown) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())))
    {
        let message = format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
        );
        return gemini_error(400, "INVALID_ARGUMENT", &message);
    }
    let roles_ok = body["messages"].as_array().is_some_and(|m| {
        m.iter()
            .all(|m| matches!(m["role"].as_str(), Some("system" | "user" | "assistant")))
    });
    if body["model"] != MODEL || !roles_ok {
        return gemini_error(
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
        );
    }
    if let Some((status, kind, message)) = fake.errors.lock().unwrap().pop_front() {
        return gemini_error(status, kind, message);
    }
    let words: Vec<String> = fake
        .reply
        .lock()
        .unwrap()
        .split_inclusive(' ')
        .map(str::to_string)
        .collect();
    let prompt = u64::try_from(body["messages"].to_string().len() / 4).unwrap();
    let completion = u64::try_from(words.len()).unwrap();
    let usage = json!({
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion + THOUGHTS,
    });
    if body["stream"] != true {
        let whole = json!({
            "choices": [{
                "finish_reason": "stop",
                "index": 0,
                "message": {"content": words.concat(), "role": "assistant"},
            }],
            "created": 1_750_000_000,
            "id": "gemini-reply-1",
            "model": MODEL,
            "object": "chat.completion",
            "usage": usage,
        });
        return (
            [("content-type", "application/json; charset=UTF-8")],
            whole.to_string(),
        )
            .into_response();
    }
    // Usage only when asked, as the OpenAI dialect has it.
    let with_usage = body["stream_options"]["include_usage"] == true;
    let last = words.len().saturating_sub(1);
    let mut frames: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let mut chunk = json!({
                "choices": [{"delta": {"content": word, "role": "assistant"}, "index": 0}],
                "created": 1_750_000_000,
                "id": "gemini-reply-2",
                "model": MODEL,
                "object": "chat.completion.chunk",
            });
            if i == last {
                chunk["choices"][0]["finish_reason"] = json!("stop");
                if with_usage {
                    chunk["usage"] = usage.clone();
                }
            }
            format!("data: {chunk}\n\n")
        })
        .collect();
    frames.push("data: [DONE]\n\n".into());
    let stream = futures::stream::iter(frames).then(|frame| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, std::convert::Infallible>(frame)
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Any other path: recorded, and Google's plain 404.
async fn elsewhere(State(fake): State<Arc<Fake>>, uri: Uri) -> Response {
    fake.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        authorization: None,
        body: Value::Null,
    });
    (StatusCode::NOT_FOUND, "404. That’s an error.").into_response()
}

async fn start_fake() -> (Arc<Fake>, SocketAddr) {
    let fake = Arc::new(Fake::default());
    *fake.reply.lock().unwrap() = "one two three four".into();
    let app = Router::new()
        .route(PATH, post(chat))
        .fallback(elsewhere)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, addr)
}

/// The settings docs/coach.md gives for Gemini, with the fake in place of
/// `https://generativelanguage.googleapis.com`.
fn gemini_settings(addr: SocketAddr, key: &str) -> Settings {
    let env = [
        ("HAM_LLM_PROVIDER", "openai".to_string()),
        ("HAM_LLM_BASE_URL", format!("http://{addr}/v1beta/openai/")),
        ("HAM_LLM_API_KEY", key.to_string()),
        ("HAM_LLM_MODEL", MODEL.to_string()),
        ("HAM_LLM_RETRY_BASE_MS", "20".to_string()),
    ];
    Settings::load_from(None, env.map(|(k, v)| (k.to_string(), v))).unwrap()
}

fn request(text: &str) -> Request {
    Request {
        system: Some("You are a coach.".into()),
        messages: vec![
            Message {
                role: Role::User,
                text: "Hello".into(),
            },
            Message {
                role: Role::Assistant,
                text: "Hi! How are your habits?".into(),
            },
            Message {
                role: Role::User,
                text: text.into(),
            },
        ],
        max_tokens: 512,
        temperature: Some(0.7),
        model: None,
    }
}

async fn llm_for(settings: &Settings) -> (Llm, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("ham.db").display()))
        .await
        .unwrap();
    let llm = Llm::new(&settings.llm, db.clone()).unwrap();
    (llm, db, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_streams_and_completes_with_the_documented_settings() {
    let (fake, addr) = start_fake().await;
    let (llm, db, _dir) = llm_for(&gemini_settings(addr, KEY)).await;
    let status = llm.status();
    assert_eq!(
        (status.provider.as_str(), status.model.as_str()),
        ("openai", MODEL)
    );

    let mut stream = llm
        .stream(Some("u1"), &request("Did I run enough?"))
        .await
        .unwrap();
    let mut text = String::new();
    let finish = loop {
        match stream.next().await.unwrap().unwrap() {
            Chunk::Text(t) => text.push_str(&t),
            Chunk::Finish(f) => break f,
        }
    };
    assert!(stream.next().await.unwrap().is_none());
    assert_eq!(text, "one two three four");
    assert_eq!(finish.stop_reason, "stop");
    assert!(finish.usage.input_tokens > 0);
    assert_eq!(
        u64::from(finish.usage.output_tokens),
        4 + THOUGHTS,
        "thinking tokens are output"
    );

    let whole = llm
        .complete(Some("u1"), &request("And now?"))
        .await
        .unwrap();
    assert_eq!(whole.text, "one two three four");
    assert_eq!(
        (whole.stop_reason.as_str(), whole.model.as_str()),
        ("stop", MODEL)
    );
    assert_eq!(u64::from(whole.usage.output_tokens), 4 + THOUGHTS);

    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(
            request.path, PATH,
            "one slash between the base URL and the path"
        );
        assert_eq!(
            request.authorization.as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );
        assert_eq!(request.body["model"], MODEL);
        assert_eq!(request.body["max_tokens"], 512);
        let roles: Vec<&str> = request.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
    }
    assert_eq!(seen[0].body["stream"], true);
    assert_eq!(
        seen[0].body["stream_options"],
        json!({"include_usage": true})
    );
    assert!(seen[1].body.get("stream").is_none());

    // The budget counts what Gemini bills: the thinking too.
    let usage = db.llm_usage_of("u1").await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].calls, 2);
    assert_eq!(
        usage[0].output_tokens,
        2 * (4 + i64::try_from(THOUGHTS).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geminis_errors_reach_the_plugin_with_its_words() {
    let (fake, addr) = start_fake().await;

    // A wrong key: Google's message, and no retry of a client error.
    let (llm, _db, _dir) = llm_for(&gemini_settings(addr, "AIza-wrong")).await;
    match llm.complete(None, &request("hi")).await {
        Err(LlmError::Upstream(m)) => assert_eq!(
            m,
            "openai answered 400 (INVALID_ARGUMENT: API key not valid. Please pass a valid API key.)"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.seen.lock().unwrap().len(), 1);

    let (llm, _db, _dir) = llm_for(&gemini_settings(addr, KEY)).await;
    // A quota answer: rate-limited, after the retries.
    for _ in 0..4 {
        fake.errors.lock().unwrap().push_back((
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        ));
    }
    assert!(matches!(
        llm.complete(None, &request("hi")).await,
        Err(LlmError::RateLimited(_))
    ));
    // Overloaded once, then the reply: retried.
    fake.errors.lock().unwrap().push_back((
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
    ));
    let reply = llm.complete(None, &request("hi")).await.unwrap();
    assert_eq!(reply.text, "one two three four");
    // Overloaded to the last retry: its words.
    for _ in 0..4 {
        fake.errors.lock().unwrap().push_back((
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ));
    }
    match llm.stream(None, &request("hi")).await {
        Err(LlmError::Upstream(m)) => assert!(
            m.contains("503") && m.contains("UNAVAILABLE: The model is overloaded"),
            "{m}"
        ),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a stream out of an overloaded model"),
    }
    // Nothing went anywhere but the one path.
    let paths: Vec<String> = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(paths.iter().all(|p| p == PATH), "{paths:?}");
}
