//! Helpers for the LLM and coach tests: a server wired to a fake provider, and a
//! reader of server-sent events.

use std::time::Duration;

use ham_host::llm::fake::{FakeLlm, FakeProvider};
use ham_host::llm::{LlmSettings, ProviderKind};
use ham_host::settings::{Secret, Settings};
use serde_json::Value;

use super::session::Session;
use super::{Backend, TestServer, client};

pub const API_KEY: &str = "sk-test-never-shown";

/// LLM settings pointing at a fake, with fast retries.
pub fn llm_settings(fake: &FakeLlm, provider: FakeProvider) -> LlmSettings {
    let mut s = LlmSettings {
        retry_base_ms: 20,
        timeout_ms: 10_000,
        ..LlmSettings::default()
    };
    match provider {
        FakeProvider::Anthropic => {
            s.provider = ProviderKind::Anthropic;
            s.anthropic_base_url = fake.url();
            s.anthropic_api_key = Some(Secret::new(API_KEY));
        }
        FakeProvider::OpenAi => {
            s.provider = ProviderKind::OpenAi;
            s.base_url = Some(fake.url());
            s.api_key = Some(Secret::new(API_KEY));
        }
    }
    s
}

/// A running host whose LLM is a fake provider.
pub struct CoachServer {
    pub server: TestServer,
    pub fake: FakeLlm,
}

impl CoachServer {
    /// None when the backend is unavailable (PostgreSQL outside CI).
    pub async fn start(
        provider: FakeProvider,
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        let fake = FakeLlm::start(provider).await.unwrap();
        let server = TestServer::builder(backend)
            .with(|s| {
                s.open_registration = true;
                s.job_backoff_ms = 50;
                s.llm = llm_settings(&fake, provider);
            })
            .with(tweak)
            .start()
            .await?;
        Some(Self { server, fake })
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// The signed-in user's id.
pub async fn user_id(server: &TestServer, session: &mut Session) -> String {
    let (_, me) = session
        .json(server, reqwest::Method::GET, "/api/me", None)
        .await;
    me["id"]
        .as_str()
        .or(me["user"]["id"].as_str())
        .unwrap_or_else(|| panic!("no id in {me}"))
        .to_string()
}

/// `POST /api/coach/chat` for a session.
pub async fn chat(server: &TestServer, session: &Session, body: Value) -> reqwest::Response {
    client()
        .post(server.url("/api/coach/chat"))
        .header("cookie", session.cookie.clone().unwrap())
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Reads server-sent events off a response as they arrive.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's name and JSON data; none at the end of the stream.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        assert!(data.is_empty(), "one data line per event: {block}");
                        data = v.to_string();
                    }
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("the stream stalled")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Every remaining event.
    pub async fn rest(&mut self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }

    /// Drops the connection.
    pub fn close(self) {
        drop(self.response);
    }
}

/// The text of the `token` events, joined.
pub fn tokens(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "token")
        .map(|(_, d)| d["text"].as_str().unwrap().to_string())
        .collect()
}
