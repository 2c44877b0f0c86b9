//! The seam between [`super::Llm`] and one provider's wire format.
//!
//! [`super::Llm`] owns everything providers share: validating a request, the
//! budget reservation, retries with backoff, timeouts, cutting a stream into
//! server-sent events, usage records and metrics. A provider ([`LlmProvider`])
//! owns only what differs between APIs: its name, its default model, the request
//! body, the HTTP request with its key, and reading a whole reply or one stream
//! event. It is chosen once, in [`super::Llm::new`], from `HAM_LLM_PROVIDER`; a
//! provider whose settings are incomplete (no key, no URL) is chosen as
//! [`Unconfigured`] instead, which refuses every call saying what to set.
//!
//! # Adding a provider
//!
//! Say HAM should speak to Mistral's API. Read [`super::openai`] (the shorter of
//! the two real providers), then:
//!
//! 1. `host/src/llm/mistral.rs`: a struct holding its settings (base URL, key as
//!    a [`crate::settings::Secret`]), a `from_settings` that returns
//!    [`Unconfigured`] with the reason when one is missing, and
//!    `impl LlmProvider`. Stream events become [`Piece`]s: text, token counts
//!    (cumulative), the stop reason, and [`Piece::End`] when the reply is complete
//!    (a stream that closes without `End` is an upstream error).
//! 2. `host/src/llm/mod.rs`: a [`super::ProviderKind`] variant with its name, and
//!    one arm in [`super::Llm::new`]'s `match`; the settings it needs in
//!    [`super::LlmSettings`] (and their keys in `settings.rs`).
//! 3. A fake that speaks it ([`super::fake`]) and a case in
//!    `host/tests/llm_providers.rs`.
//!
//! Keys are sent only as request headers to the configured host; error messages
//! name the provider and the upstream status, never a key or URL.

use serde_json::Value;

use super::{LlmError, Piece, SseEvent};
use crate::wit::ham::plugin::llm::{Request, Response};

/// One language-model API, as [`super::Llm`] uses it. Implementations hold their
/// own settings (URL, key), built once at start; they keep no per-call state.
pub trait LlmProvider: Send + Sync {
    /// Its name as `HAM_LLM_PROVIDER` spells it: what `GET /api/llm/status`,
    /// `llm_usage` rows, the `ham_llm_tokens_total` metric and error messages say.
    fn name(&self) -> &'static str;

    /// The model a request that names none gets, unless `HAM_LLM_MODEL` is set.
    fn default_model(&self) -> &'static str;

    /// Why no call can be made, if none can: every call is then refused as
    /// `not-configured` with this message, before anything is reserved or sent.
    fn not_configured(&self) -> Option<&str> {
        None
    }

    /// The JSON body asking for `request` from `model`, streamed or whole.
    fn request_body(&self, request: &Request, model: &str, stream: bool) -> Value;

    /// The HTTP request carrying `body`, with the provider's URL and key headers.
    /// [`super::Llm`] adds `Accept: text/event-stream` for streams, sends it, and
    /// retries it (so this may be called more than once per call).
    fn http_request(
        &self,
        client: &reqwest::Client,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, LlmError>;

    /// A whole (not streamed) reply's body, read. An empty `model` in the answer
    /// means the model asked for.
    fn parse_response(&self, text: &str) -> Result<Response, LlmError>;

    /// The pieces one server-sent event of a streamed reply carries (none for
    /// events to ignore); `Err` with a message (no key, at most a short excerpt of
    /// the provider's own words) when the event reports a failure or is unreadable.
    fn decode_event(&self, event: &SseEvent) -> Result<Vec<Piece>, String>;
}

/// The provider chosen when none can answer: `HAM_LLM_PROVIDER=none`, or a
/// provider whose key or URL is missing. It keeps the chosen provider's name and
/// default model (for `GET /api/llm/status`) and refuses every call with `why`.
#[derive(Debug, Clone)]
pub struct Unconfigured {
    pub name: &'static str,
    pub default_model: &'static str,
    pub why: String,
}

impl Unconfigured {
    /// `HAM_LLM_PROVIDER=none` (the default).
    pub fn none() -> Self {
        Self {
            name: "none",
            default_model: "",
            why: "no language model is configured: set HAM_LLM_PROVIDER=anthropic with \
                  ANTHROPIC_API_KEY, or HAM_LLM_PROVIDER=openai with HAM_LLM_BASE_URL \
                  (for example http://127.0.0.1:11434/v1 for Ollama), and restart HAM"
                .into(),
        }
    }

    fn refuse(&self) -> LlmError {
        LlmError::NotConfigured(self.why.clone())
    }
}

impl LlmProvider for Unconfigured {
    fn name(&self) -> &'static str {
        self.name
    }

    fn default_model(&self) -> &'static str {
        self.default_model
    }

    fn not_configured(&self) -> Option<&str> {
        Some(&self.why)
    }

    fn request_body(&self, _request: &Request, _model: &str, _stream: bool) -> Value {
        Value::Null
    }

    fn http_request(
        &self,
        _client: &reqwest::Client,
        _body: &Value,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        Err(self.refuse())
    }

    fn parse_response(&self, _text: &str) -> Result<Response, LlmError> {
        Err(self.refuse())
    }

    fn decode_event(&self, _event: &SseEvent) -> Result<Vec<Piece>, String> {
        Err(self.why.clone())
    }
}
