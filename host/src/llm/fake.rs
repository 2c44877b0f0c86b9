//! Fake language-model providers for tests and demos: small HTTP servers that speak
//! Anthropic's Messages API or the OpenAI chat completions format, with scripted
//! replies and delays, recording every request they get.
//!
//! ```text
//! ham fake-llm --addr 127.0.0.1:8089 --provider anthropic --reply "Keep going!" --delay-ms 100
//! ```
//!
//! Replies come from a script (a queue: [`FakeLlm::push`]) and, when it is empty,
//! from the default reply. A reply is text sent in pieces `delay` apart (streamed
//! or whole, as the request asks), text that fails part-way (an `error` event), or
//! an HTTP error status (429 with `retry-after`, 529, 500). Anthropic streams also
//! carry `ping` events. The fake notices a client that goes away mid-stream
//! ([`FakeLlm::closed_early`]): that is how tests see cancellation reach upstream.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Which API the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeProvider {
    Anthropic,
    OpenAi,
}

impl std::str::FromStr for FakeProvider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "anthropic" => Ok(Self::Anthropic),
            "openai" => Ok(Self::OpenAi),
            other => Err(format!("`{other}` is not anthropic or openai")),
        }
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This text, in these pieces, each sent `delay` after the one before.
    Text {
        chunks: Vec<String>,
        delay: Duration,
    },
    /// These pieces, then a failure mid-stream with this message (a streamed
    /// request only; a whole one gets a 500).
    FailMidway {
        chunks: Vec<String>,
        delay: Duration,
        message: String,
    },
    /// An HTTP error: 429 (with `retry-after` seconds), 529, 500...
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
}

impl Reply {
    /// `text` split after each space, `delay` apart.
    pub fn text(text: &str, delay: Duration) -> Self {
        Reply::Text {
            chunks: split_words(text),
            delay,
        }
    }

    pub fn fail_midway(text: &str, delay: Duration, message: &str) -> Self {
        Reply::FailMidway {
            chunks: split_words(text),
            delay,
            message: message.into(),
        }
    }

    pub fn status(status: u16, retry_after: Option<u64>) -> Self {
        Reply::Status {
            status,
            retry_after,
        }
    }
}

fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl Recorded {
    /// The whole prompt as one text: system prompt and every message.
    pub fn prompt_text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = self.body["system"].as_str() {
            out.push_str(s);
            out.push('\n');
        }
        for m in self.body["messages"].as_array().into_iter().flatten() {
            out.push_str(m["content"].as_str().unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// The system prompt (Anthropic's `system`, or OpenAI's first `system` message).
    pub fn system(&self) -> Option<String> {
        if let Some(s) = self.body["system"].as_str() {
            return Some(s.to_string());
        }
        self.body["messages"]
            .as_array()?
            .iter()
            .find(|m| m["role"] == "system")
            .and_then(|m| m["content"].as_str())
            .map(str::to_string)
    }
}

struct Shared {
    provider: FakeProvider,
    default_reply: Mutex<Reply>,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    chunks_sent: AtomicU64,
    closed_early: AtomicU64,
    finished: AtomicU64,
    changed: tokio::sync::Notify,
}

/// A running fake provider; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeLlm {
    /// Starts on `127.0.0.1:0` with a short default reply.
    pub async fn start(provider: FakeProvider) -> std::io::Result<Self> {
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            provider,
            Reply::text("Hello from the fake model.", Duration::ZERO),
        )
        .await
    }

    pub async fn start_on(
        addr: SocketAddr,
        provider: FakeProvider,
        default_reply: Reply,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            provider,
            default_reply: Mutex::new(default_reply),
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            chunks_sent: AtomicU64::new(0),
            closed_early: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake llm stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The base URL to configure: `ANTHROPIC_BASE_URL` for Anthropic,
    /// `HAM_LLM_BASE_URL` (ending in `/v1`) for OpenAI.
    pub fn url(&self) -> String {
        match self.shared.provider {
            FakeProvider::Anthropic => format!("http://{}", self.addr),
            FakeProvider::OpenAi => format!("http://{}/v1", self.addr),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    /// The reply for requests when the script is empty.
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.shared.default_reply) = reply;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Text pieces sent so far over all streams.
    pub fn chunks_sent(&self) -> u64 {
        self.shared.chunks_sent.load(Ordering::SeqCst)
    }

    /// Streams whose client went away before the reply ended.
    pub fn closed_early(&self) -> u64 {
        self.shared.closed_early.load(Ordering::SeqCst)
    }

    /// Streams sent to the end.
    pub fn finished(&self) -> u64 {
        self.shared.finished.load(Ordering::SeqCst)
    }

    /// Waits until `check` holds, or `timeout` passes; returns whether it held.
    pub async fn wait_for(&self, timeout: Duration, check: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            if check(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return check(self);
            }
        }
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    lock(&shared.requests).push(Recorded {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        body: body.clone(),
    });
    shared.changed.notify_waiters();
    let reply = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.default_reply).clone());
    let input_tokens = u64::try_from(body.to_string().len() / 4).unwrap_or(0);
    let model = body["model"].as_str().unwrap_or("fake-model").to_string();
    match reply {
        Reply::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = match status {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            let mut response = (
                code,
                axum::Json(json!({"type": "error", "error": {"type": kind, "message": format!("fake {status}")}})),
            )
                .into_response();
            if let Some(secs) = retry_after
                && let Ok(v) = http::HeaderValue::from_str(&secs.to_string())
            {
                response.headers_mut().insert("retry-after", v);
            }
            response
        }
        Reply::Text { chunks, delay } if !stream => {
            tokio::time::sleep(delay * u32::try_from(chunks.len()).unwrap_or(1)).await;
            let text: String = chunks.concat();
            let output = u64::try_from(chunks.len()).unwrap_or(0);
            shared.finished.fetch_add(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
            axum::Json(whole(shared.provider, &model, &text, input_tokens, output)).into_response()
        }
        Reply::FailMidway { .. } if !stream => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"type": "error", "error": {"type": "api_error", "message": "fake failure"}}),
            ),
        )
            .into_response(),
        Reply::Text { chunks, delay } => streamed(shared, model, chunks, delay, None, input_tokens),
        Reply::FailMidway {
            chunks,
            delay,
            message,
        } => streamed(shared, model, chunks, delay, Some(message), input_tokens),
    }
}

fn whole(provider: FakeProvider, model: &str, text: &str, input: u64, output: u64) -> Value {
    match provider {
        FakeProvider::Anthropic => json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        }),
        FakeProvider::OpenAi => json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
        }),
    }
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(name) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// The events of a streamed reply: (is a text piece, bytes), in order.
fn script_events(
    provider: FakeProvider,
    model: &str,
    chunks: &[String],
    failure: Option<&str>,
    input: u64,
) -> (Vec<Bytes>, Vec<Bytes>, Vec<Bytes>) {
    let output = u64::try_from(chunks.len()).unwrap_or(0);
    match provider {
        FakeProvider::Anthropic => {
            let head = vec![
                sse(
                    Some("message_start"),
                    &json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
                ),
                sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                sse(Some("ping"), &json!({"type": "ping"})),
            ];
            let pieces = chunks
                .iter()
                .map(|c| {
                    sse(
                        Some("content_block_delta"),
                        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}}),
                    )
                })
                .collect();
            let tail = match failure {
                Some(message) => vec![sse(
                    Some("error"),
                    &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
                )],
                None => vec![
                    sse(
                        Some("content_block_stop"),
                        &json!({"type": "content_block_stop", "index": 0}),
                    ),
                    sse(
                        Some("message_delta"),
                        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}}),
                    ),
                    sse(Some("message_stop"), &json!({"type": "message_stop"})),
                ],
            };
            (head, pieces, tail)
        }
        FakeProvider::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            let head = vec![sse(
                None,
                &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            )];
            let pieces = chunks
                .iter()
                .map(|c| sse(None, &chunk(json!({"content": c}), Value::Null)))
                .collect();
            let tail = match failure {
                Some(message) => vec![sse(
                    None,
                    &json!({"error": {"message": message, "type": "server_error"}}),
                )],
                None => vec![
                    sse(None, &chunk(json!({}), json!("stop"))),
                    sse(
                        None,
                        &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                                "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}}),
                    ),
                    Bytes::from_static(b"data: [DONE]\n\n"),
                ],
            };
            (head, pieces, tail)
        }
    }
}

fn streamed(
    shared: Arc<Shared>,
    model: String,
    chunks: Vec<String>,
    delay: Duration,
    failure: Option<String>,
    input: u64,
) -> Response {
    let (head, pieces, tail) =
        script_events(shared.provider, &model, &chunks, failure.as_deref(), input);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
    tokio::spawn(async move {
        let gone = |shared: &Shared| {
            shared.closed_early.fetch_add(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
        };
        for bytes in head {
            if tx.send(Ok(bytes)).await.is_err() {
                return gone(&shared);
            }
        }
        for (i, bytes) in pieces.into_iter().enumerate() {
            if i > 0 || !delay.is_zero() {
                tokio::select! {
                    () = tx.closed() => return gone(&shared),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            if tx.send(Ok(bytes)).await.is_err() {
                return gone(&shared);
            }
            shared.chunks_sent.fetch_add(1, Ordering::SeqCst);
            shared.changed.notify_waiters();
            if i == 0 && shared.provider == FakeProvider::Anthropic {
                let ping = sse(Some("ping"), &json!({"type": "ping"}));
                if tx.send(Ok(ping)).await.is_err() {
                    return gone(&shared);
                }
            }
        }
        for bytes in tail {
            if tx.send(Ok(bytes)).await.is_err() {
                return gone(&shared);
            }
        }
        shared.finished.fetch_add(1, Ordering::SeqCst);
        shared.changed.notify_waiters();
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
