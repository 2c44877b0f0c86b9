//! Language-model calls for plugins: the host side of `ham:plugin/llm`.
//!
//! The host owns the provider, the API key, the budget and the stream; a plugin
//! only sends a request (system prompt, messages, limits) and reads text chunks.
//! Keys never leave this module: they are [`crate::settings::Secret`]s, sent only as request
//! headers to the configured provider, and no error or log line carries them.
//!
//! - Providers ([`ProviderKind`], `HAM_LLM_PROVIDER`): `anthropic` (the Messages
//!   API, [`anthropic`]), `openai` (any OpenAI-compatible chat completions server:
//!   Ollama, llama.cpp, vLLM, OpenAI itself, [`openai`]), `none` (the default:
//!   every call is `not-configured` with a message saying how to configure one).
//!   Each is an [`LlmProvider`], chosen once in [`Llm::new`] (the one `match` on
//!   the kind); [`Llm`] asks it for what differs between APIs and does the rest
//!   itself. [`provider`] says how to add one; [`fake`] serves both wire formats
//!   for tests and demos.
//! - Retries: 429, 529 and 5xx answers (and connection failures) are retried with
//!   exponential backoff, honouring `retry-after`; only before the first byte of a
//!   reply, never in the middle of a stream.
//! - Cancellation: a [`CompletionStream`] owns the upstream response. Dropping it
//!   (the guest drops the resource, or the invocation ends because the browser went
//!   away, timed out or trapped) drops the connection, so the provider stops.
//! - Redirects: the provider client follows none. A 3xx answer is an upstream
//!   error, so a key header is never sent on to another host (reqwest's own
//!   redirect policy would keep `x-api-key` on a cross-host hop).
//! - Usage: every call records its input and output tokens per user, UTC day,
//!   provider and model (`llm_usage`), including the part of a stream read before
//!   it was cancelled.
//! - Budgets, reserved before spending ([`Reservation`], table `llm_budget`):
//!   with `HAM_LLM_DAILY_TOKENS` each user has a daily budget, and calls made for
//!   no user (a job acting for nobody, an anonymous route) share one of their own,
//!   `HAM_LLM_NO_USER_DAILY_TOKENS` (default: the same number). A call reserves
//!   its estimate (prompt bytes + `max-tokens`: a prompt has no more tokens than
//!   bytes) in the statement that checks the budget, and is refused
//!   (`quota-exceeded`) when the tokens used plus those reserved already reach the
//!   budget. After the call the reservation is settled: the estimate is taken
//!   back and the real usage counted: nothing for a call that failed before the
//!   provider answered, the estimate for one it answered without reporting
//!   usage (or cut off before it could count). So parallel calls at the edge of
//!   a budget overshoot it by at most one reservation, across replicas too.

pub mod anthropic;
pub mod fake;
pub mod openai;
pub mod provider;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use bytes::BytesMut;
use serde_json::json;
use sqlx::Row;

use crate::auth::CurrentUser;

pub use crate::settings::{LlmSettings, ProviderKind};
use crate::store::{Db, now_ms};
use crate::wit::ham::plugin::llm::{Chunk, Finish, Request, Response, Usage};
use crate::wit::ham::plugin::types::Error as GuestError;
pub use provider::{LlmProvider, Unconfigured};

/// Largest `max-tokens` a plugin may ask for.
pub const MAX_TOKENS: u32 = 32_000;
/// Longest system prompt plus messages a plugin may send, in bytes.
pub const MAX_PROMPT_BYTES: usize = 512 * 1024;
/// The longest `retry-after` the host waits out itself; a longer one is handed to
/// the plugin as `rate-limited`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why a call was refused or failed. Messages never carry keys.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("today's token budget of {0} is spent; it renews at 00:00 UTC")]
    BudgetSpent(u64),
    #[error("the provider is rate limiting; retry in {0} ms")]
    RateLimited(u64),
    #[error("{0}")]
    Upstream(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<LlmError> for GuestError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::NotConfigured(m) => GuestError::NotConfigured(m),
            LlmError::InvalidRequest(m) => GuestError::InvalidArgument(m),
            LlmError::BudgetSpent(_) => GuestError::QuotaExceeded,
            LlmError::RateLimited(ms) => GuestError::RateLimited(ms),
            LlmError::Upstream(m) => GuestError::Upstream(m),
            LlmError::Internal(m) => {
                tracing::error!(error = %m, "llm call failed in the host");
                GuestError::Internal
            }
        }
    }
}

/// A piece of a reply, as a provider's stream decoder yields it.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// Input tokens, as soon as the provider says (Anthropic: `message_start`).
    InputTokens(u32),
    /// Output tokens so far (cumulative).
    OutputTokens(u32),
    StopReason(String),
    /// The reply is complete.
    End,
}

/// The configured provider, its HTTP client, and the usage table.
pub struct Llm {
    settings: LlmSettings,
    /// Chosen once, from `settings.provider`.
    provider: Arc<dyn LlmProvider>,
    /// `HAM_LLM_MODEL`, else the provider's default.
    default_model: String,
    client: reqwest::Client,
    db: Db,
    /// Where token counts go for `/metrics` (`ham_llm_tokens_total`).
    pub metrics: std::sync::Arc<crate::telemetry::Metrics>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

/// The answer of `GET /api/llm/status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Status {
    pub provider: String,
    pub model: String,
    pub configured: bool,
}

impl Llm {
    /// The client for `settings`: the provider is chosen here, once. One whose
    /// key or URL is missing is [`Unconfigured`]: calls are refused saying so.
    pub fn new(settings: &LlmSettings, db: Db) -> anyhow::Result<Self> {
        let chosen: Result<Arc<dyn LlmProvider>, Unconfigured> = match settings.provider {
            ProviderKind::None => Err(Unconfigured::none()),
            ProviderKind::Anthropic => {
                anthropic::Anthropic::from_settings(settings).map(|p| Arc::new(p) as _)
            }
            ProviderKind::OpenAi => {
                openai::OpenAi::from_settings(settings).map(|p| Arc::new(p) as _)
            }
        };
        let provider = chosen.unwrap_or_else(|unconfigured| Arc::new(unconfigured));
        let default_model = settings
            .model
            .clone()
            .unwrap_or_else(|| provider.default_model().to_string());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            // A redirect would carry the key header to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            settings: settings.clone(),
            provider,
            default_model,
            client,
            db,
            metrics: Default::default(),
        })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    pub fn status(&self) -> Status {
        Status {
            provider: self.provider.name().into(),
            model: self.default_model.clone(),
            configured: self.provider.not_configured().is_none(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.timeout_ms.max(1))
    }

    /// Checks the request and reserves its estimate from the budget; returns the
    /// model to use and the reservation to settle (none without a budget).
    async fn admit(
        &self,
        user: Option<&str>,
        request: &Request,
    ) -> Result<(String, Option<Reservation>), LlmError> {
        if let Some(why) = self.provider.not_configured() {
            return Err(LlmError::NotConfigured(why.to_string()));
        }
        if request.messages.is_empty() {
            return Err(LlmError::InvalidRequest(
                "messages: at least one message is needed".into(),
            ));
        }
        if !(1..=MAX_TOKENS).contains(&request.max_tokens) {
            return Err(LlmError::InvalidRequest(format!(
                "max-tokens: {} is not within 1..={MAX_TOKENS}",
                request.max_tokens
            )));
        }
        if let Some(t) = request.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(LlmError::InvalidRequest(format!(
                "temperature: {t} is not within 0..=2"
            )));
        }
        let size = request.system.as_ref().map_or(0, String::len)
            + request.messages.iter().map(|m| m.text.len()).sum::<usize>();
        if size > MAX_PROMPT_BYTES {
            return Err(LlmError::InvalidRequest(format!(
                "the prompt is {size} bytes; at most {MAX_PROMPT_BYTES}"
            )));
        }
        let model = match &request.model {
            None => self.default_model.clone(),
            Some(m) if *m == self.default_model => m.clone(),
            Some(m) if self.settings.allowed_models.contains(m) => m.clone(),
            Some(m) => {
                return Err(LlmError::InvalidRequest(format!(
                    "model: `{m}` is not allowed (allowed: the default{}{})",
                    if self.settings.allowed_models.is_empty() {
                        ""
                    } else {
                        ", "
                    },
                    self.settings.allowed_models.join(", ")
                )));
            }
        };
        let Some(budget) = self.settings.budget_for(user) else {
            return Ok((model, None));
        };
        let estimate = estimate(size, request.max_tokens);
        let who = user.unwrap_or_default();
        let day = utc_day(now_ms());
        let reserved = self
            .db
            .llm_reserve(who, &day, estimate, budget)
            .await
            .map_err(|e| LlmError::Internal(e.to_string()))?;
        if !reserved {
            return Err(LlmError::BudgetSpent(budget));
        }
        Ok((
            model,
            Some(Reservation {
                held: Some(Held {
                    db: self.db.clone(),
                    who: who.to_string(),
                    day,
                    tokens: estimate,
                }),
            }),
        ))
    }

    /// One whole completion.
    pub async fn complete(
        &self,
        user: Option<&str>,
        request: &Request,
    ) -> Result<Response, LlmError> {
        let (model, reservation) = self.admit(user, request).await?;
        let provider = &self.provider;
        let body = provider.request_body(request, &model, false);
        let work = async {
            let response = self.send(&body, false).await?;
            let text = response
                .text()
                .await
                .map_err(|e| LlmError::Upstream(describe(&e)))?;
            provider.parse_response(&text)
        };
        let answer = tokio::time::timeout(self.timeout(), work)
            .await
            .map_err(|_| LlmError::Upstream(format!("{} timed out", provider.name())))
            .and_then(|answer| answer);
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                // Nothing came back: nothing to count.
                settle(reservation, 0).await;
                return Err(e);
            }
        };
        let response = Response {
            model: if answer.model.is_empty() {
                model
            } else {
                answer.model
            },
            ..answer
        };
        self.record(user, &response.model, &response.usage).await;
        let used = charge(&response.usage, &reservation);
        settle(reservation, used).await;
        Ok(response)
    }

    /// Starts a streamed completion.
    pub async fn stream(
        &self,
        user: Option<&str>,
        request: &Request,
    ) -> Result<CompletionStream, LlmError> {
        let (model, reservation) = self.admit(user, request).await?;
        let body = self.provider.request_body(request, &model, true);
        let response = tokio::time::timeout(self.timeout(), self.send(&body, true))
            .await
            .map_err(|_| LlmError::Upstream(format!("{} timed out", self.provider.name())))
            .and_then(|response| response);
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                settle(reservation, 0).await;
                return Err(e);
            }
        };
        Ok(CompletionStream {
            provider: self.provider.clone(),
            model,
            user: user.map(str::to_string),
            db: self.db.clone(),
            metrics: self.metrics.clone(),
            idle_timeout: self.timeout(),
            response: Some(response),
            buffer: BytesMut::new(),
            pending: VecDeque::new(),
            usage: Usage {
                input_tokens: 0,
                output_tokens: 0,
            },
            stop_reason: None,
            finished: false,
            recorded: false,
            reservation,
        })
    }

    /// Sends, retrying 429, 529, 5xx and connection failures with backoff.
    async fn send(
        &self,
        body: &serde_json::Value,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let provider = self.provider.name();
        let mut attempt = 0u32;
        loop {
            let request = self.provider.http_request(&self.client, body)?;
            let request = match stream {
                true => request.header(http::header::ACCEPT, "text/event-stream"),
                false => request,
            };
            let retries_left = attempt < self.settings.max_retries;
            let delay = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(response.headers());
                    let retryable = status == 429 || status == 529 || status >= 500;
                    if !retryable
                        || !retries_left
                        || retry_after.is_some_and(|d| d > MAX_RETRY_AFTER)
                    {
                        let text = response.text().await.unwrap_or_default();
                        return Err(upstream_status(provider, status, &text, retry_after));
                    }
                    tracing::warn!(provider, status, attempt, "llm provider busy; retrying");
                    retry_after.unwrap_or_else(|| self.backoff(attempt))
                }
                Err(e) if retries_left && (e.is_connect() || e.is_timeout()) => {
                    tracing::warn!(provider, error = %describe(&e), attempt, "llm provider unreachable; retrying");
                    self.backoff(attempt)
                }
                Err(e) => {
                    return Err(LlmError::Upstream(format!("{provider}: {}", describe(&e))));
                }
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .settings
            .retry_base_ms
            .saturating_mul(1 << attempt.min(10));
        let jitter = u64::from(crate::auth::new_id().as_bytes()[0]) % (base / 4 + 1);
        Duration::from_millis(base + jitter)
    }

    async fn record(&self, user: Option<&str>, model: &str, usage: &Usage) {
        record_usage(
            &self.db,
            &self.metrics,
            user,
            self.provider.name(),
            model,
            usage.input_tokens,
            usage.output_tokens,
        )
        .await;
    }
}

async fn record_usage(
    db: &Db,
    metrics: &crate::telemetry::Metrics,
    user: Option<&str>,
    provider: &str,
    model: &str,
    input: u32,
    output: u32,
) {
    for (direction, tokens) in [("input", input), ("output", output)] {
        metrics.add(
            "ham_llm_tokens_total",
            &[
                ("provider", provider),
                ("model", model),
                ("direction", direction),
            ],
            u64::from(tokens),
        );
    }
    let day = utc_day(now_ms());
    let added = db
        .llm_usage_add(
            user.unwrap_or(""),
            &day,
            provider,
            model,
            i64::from(input),
            i64::from(output),
        )
        .await;
    if let Err(e) = added {
        tracing::error!(error = %e, "recording llm usage failed");
    }
}

/// What a call reserves before it is made: its prompt's bytes (no prompt has more
/// tokens than bytes) plus the most tokens it may answer with.
fn estimate(prompt_bytes: usize, max_tokens: u32) -> i64 {
    i64::try_from(prompt_bytes)
        .unwrap_or(i64::MAX)
        .saturating_add(i64::from(max_tokens))
}

/// The tokens a call the provider accepted counts against its budget: the usage
/// the provider reported, or the reservation's estimate when it reported none
/// (servers that ignore `stream_options.include_usage`, a stream dropped before
/// any usage arrived), so that no way of ending a call makes it free.
fn charge(usage: &Usage, reservation: &Option<Reservation>) -> i64 {
    let reported = i64::from(usage.input_tokens) + i64::from(usage.output_tokens);
    match reservation.as_ref().and_then(|r| r.held.as_ref()) {
        Some(held) if reported == 0 => held.tokens,
        _ => reported,
    }
}

async fn settle(reservation: Option<Reservation>, used: i64) {
    if let Some(reservation) = reservation {
        reservation.settle(used).await;
    }
}

/// Tokens reserved from one day's budget for one call, until it is settled. One
/// dropped unsettled (the call's future was cancelled mid-flight) is settled in
/// the background as if the whole estimate was used.
#[derive(Debug)]
pub struct Reservation {
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    db: Db,
    /// The user id; `''` for calls made for no user.
    who: String,
    day: String,
    tokens: i64,
}

impl Reservation {
    /// Takes the reservation back and counts `used` tokens instead.
    async fn settle(mut self, used: i64) {
        if let Some(held) = self.held.take() {
            held.settle(used).await;
        }
    }
}

impl Held {
    async fn settle(self, used: i64) {
        let settled = self
            .db
            .llm_settle(&self.who, &self.day, self.tokens, used)
            .await;
        if let Err(e) = settled {
            tracing::error!(error = %e, "settling an llm budget reservation failed");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(held) = self.held.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let used = held.tokens;
            handle.spawn(held.settle(used));
        }
    }
}

/// A reqwest error without its URL (which may be an operator's private address).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() || e.is_body() {
        "the reply broke off"
    } else {
        "request failed"
    };
    kind.to_string()
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_millis((secs * 1000.0) as u64))
}

/// An upstream HTTP error: status and the provider's own error type and message,
/// cut short (providers do not echo keys back).
fn upstream_status(
    provider: &str,
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> LlmError {
    if status == 429 {
        let ms = retry_after.map_or(60_000, |d| u64::try_from(d.as_millis()).unwrap_or(60_000));
        return LlmError::RateLimited(ms);
    }
    // `{"error": {"type", "message"}}` (Anthropic, OpenAI), or Gemini's
    // `[{"error": {"status", "message"}}]`.
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let error = openai::error_of(&v);
            error["message"].as_str().map(|m| {
                match error["type"].as_str().or(error["status"].as_str()) {
                    Some(t) => format!("{t}: {m}"),
                    None => m.to_string(),
                }
            })
        })
        .unwrap_or_default();
    let detail: String = detail.chars().take(200).collect();
    LlmError::Upstream(if detail.is_empty() {
        format!("{provider} answered {status}")
    } else {
        format!("{provider} answered {status} ({detail})")
    })
}

/// The UTC calendar day of a timestamp, `YYYY-MM-DD`.
pub fn utc_day(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .date()
                .to_string()
        })
        .unwrap_or_default()
}

/// A streamed completion in progress: owns the upstream response. Dropping it
/// closes the connection; tokens read until then are recorded.
pub struct CompletionStream {
    provider: Arc<dyn LlmProvider>,
    model: String,
    user: Option<String>,
    db: Db,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
    idle_timeout: Duration,
    response: Option<reqwest::Response>,
    buffer: BytesMut,
    pending: VecDeque<Chunk>,
    usage: Usage,
    stop_reason: Option<String>,
    finished: bool,
    recorded: bool,
    reservation: Option<Reservation>,
}

impl CompletionStream {
    /// The next chunk: text, then one `finish`, then none.
    pub async fn next(&mut self) -> Result<Option<Chunk>, LlmError> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Ok(Some(chunk));
            }
            if self.finished {
                return Ok(None);
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            let read = tokio::time::timeout(self.idle_timeout, response.chunk()).await;
            let bytes = match read {
                Err(_) => {
                    return Err(self.fail(format!("{} stopped sending", self.provider.name())));
                }
                Ok(Err(e)) => return Err(self.fail(describe(&e))),
                Ok(Ok(None)) => {
                    return Err(
                        self.fail(format!("{} ended the reply early", self.provider.name()))
                    );
                }
                Ok(Ok(Some(bytes))) => bytes,
            };
            self.buffer.extend_from_slice(&bytes);
            while let Some(event) = take_event(&mut self.buffer) {
                let pieces = self.provider.decode_event(&event);
                for piece in pieces.map_err(|m| self.fail(m))? {
                    match piece {
                        Piece::Text(t) if !t.is_empty() => self.pending.push_back(Chunk::Text(t)),
                        Piece::Text(_) => {}
                        Piece::InputTokens(n) => self.usage.input_tokens = n,
                        Piece::OutputTokens(n) => self.usage.output_tokens = n,
                        Piece::StopReason(r) => self.stop_reason = Some(r),
                        Piece::End => {
                            self.finished = true;
                            self.response = None;
                            self.pending.push_back(Chunk::Finish(Finish {
                                stop_reason: self
                                    .stop_reason
                                    .clone()
                                    .unwrap_or_else(|| "end_turn".into()),
                                usage: self.usage,
                            }));
                            self.record().await;
                        }
                    }
                }
                if self.finished {
                    break;
                }
            }
        }
    }

    /// Ends the stream after an upstream failure (the usage so far is recorded
    /// when the stream is dropped).
    fn fail(&mut self, message: String) -> LlmError {
        self.finished = true;
        self.response = None;
        LlmError::Upstream(message)
    }

    async fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        record_usage(
            &self.db,
            &self.metrics,
            self.user.as_deref(),
            self.provider.name(),
            &self.model,
            self.usage.input_tokens,
            self.usage.output_tokens,
        )
        .await;
        let used = charge(&self.usage, &self.reservation);
        settle(self.reservation.take(), used).await;
    }
}

impl Drop for CompletionStream {
    fn drop(&mut self) {
        // Cancelled or failed: the connection closes with `response`; record the
        // tokens the provider reported so far, and settle the reservation.
        if self.recorded {
            return;
        }
        self.recorded = true;
        let reported = self.usage.input_tokens != 0 || self.usage.output_tokens != 0;
        let used = charge(&self.usage, &self.reservation);
        let reservation = self.reservation.take();
        let (db, metrics, user, provider, model, usage) = (
            self.db.clone(),
            self.metrics.clone(),
            self.user.clone(),
            self.provider.name(),
            std::mem::take(&mut self.model),
            self.usage,
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if reported {
                    record_usage(
                        &db,
                        &metrics,
                        user.as_deref(),
                        provider,
                        &model,
                        usage.input_tokens,
                        usage.output_tokens,
                    )
                    .await;
                }
                settle(reservation, used).await;
            });
        }
    }
}

/// One server-sent event: its `event:` name and its `data:` lines joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Takes one complete event (up to a blank line) off the front of `buffer`.
pub fn take_event(buffer: &mut BytesMut) -> Option<SseEvent> {
    loop {
        let text = buffer.as_ref();
        let (end, skip) = find_blank_line(text)?;
        let block = buffer.split_to(end + skip);
        let block = String::from_utf8_lossy(&block[..end]).into_owned();
        let mut event = SseEvent::default();
        let mut has_data = false;
        for line in block.lines() {
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => event.event = Some(value.to_string()),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        if has_data || event.event.is_some() {
            return Some(event);
        }
    }
}

/// The end of the first event in `text` and the length of its separator.
fn find_blank_line(text: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < text.len() {
        if text[i] == b'\n' && text[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if text[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

impl Db {
    /// Adds tokens to a user's usage of a day, provider and model.
    pub async fn llm_usage_add(
        &self,
        user: &str,
        day: &str,
        provider: &str,
        model: &str,
        input: i64,
        output: i64,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "INSERT INTO llm_usage (user_id, day, provider, model, input_tokens, output_tokens, calls, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
             ON CONFLICT (user_id, day, provider, model) DO UPDATE SET \
             input_tokens = llm_usage.input_tokens + excluded.input_tokens, \
             output_tokens = llm_usage.output_tokens + excluded.output_tokens, \
             calls = llm_usage.calls + 1, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(day)
        .bind(provider)
        .bind(model)
        .bind(input)
        .bind(output)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Reserves `tokens` of the budget of `user` (`''`: calls for no user) on
    /// `day`, unless the tokens used plus those already reserved reach `budget`;
    /// returns whether it did. One statement both checks and reserves, and
    /// concurrent reservations of one user and day take turns on its row, so
    /// they cannot all pass on the same reading. A day's first reservation starts
    /// from the usage `llm_usage` already holds.
    pub async fn llm_reserve(
        &self,
        user: &str,
        day: &str,
        tokens: i64,
        budget: u64,
    ) -> crate::store::Result<bool> {
        let row = sqlx::query(
            "INSERT INTO llm_budget (user_id, day, used_tokens, reserved_tokens, updated_at) \
             SELECT $1, $2, u.used, $3, $5 FROM (SELECT CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS used \
             FROM llm_usage WHERE user_id = $1 AND day = $2) u WHERE u.used < $4 \
             ON CONFLICT (user_id, day) DO UPDATE SET \
             reserved_tokens = llm_budget.reserved_tokens + excluded.reserved_tokens, \
             updated_at = excluded.updated_at \
             WHERE llm_budget.used_tokens + llm_budget.reserved_tokens < $4 \
             RETURNING reserved_tokens",
        )
        .bind(user)
        .bind(day)
        .bind(tokens)
        .bind(i64::try_from(budget).unwrap_or(i64::MAX))
        .bind(now_ms())
        .fetch_optional(self.writer())
        .await?;
        Ok(row.is_some())
    }

    /// Settles a reservation of `reserved` tokens: takes it back and counts `used`.
    pub async fn llm_settle(
        &self,
        user: &str,
        day: &str,
        reserved: i64,
        used: i64,
    ) -> crate::store::Result<()> {
        sqlx::query(
            "UPDATE llm_budget SET used_tokens = used_tokens + $4, \
             reserved_tokens = CASE WHEN reserved_tokens > $3 THEN reserved_tokens - $3 ELSE 0 END, \
             updated_at = $5 WHERE user_id = $1 AND day = $2",
        )
        .bind(user)
        .bind(day)
        .bind(reserved)
        .bind(used.max(0))
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Tokens counted against the budget of `user` (`''`: calls for no user) on
    /// `day`: (used by settled calls, reserved by calls in flight).
    pub async fn llm_budget_of(&self, user: &str, day: &str) -> crate::store::Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT used_tokens, reserved_tokens FROM llm_budget WHERE user_id = $1 AND day = $2",
        )
        .bind(user)
        .bind(day)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok((r.try_get("used_tokens")?, r.try_get("reserved_tokens")?)),
            None => Ok((0, 0)),
        }
    }

    /// Input plus output tokens a user used on a day, over all providers and models.
    pub async fn llm_tokens_on(&self, user: &str, day: &str) -> crate::store::Result<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS tokens \
             FROM llm_usage WHERE user_id = $1 AND day = $2",
        )
        .bind(user)
        .bind(day)
        .fetch_one(self.pool())
        .await?;
        let tokens: i64 = row.try_get("tokens")?;
        Ok(u64::try_from(tokens).unwrap_or(0))
    }

    /// A user's usage rows: (day, provider, model, input, output, calls), newest day first.
    pub async fn llm_usage_of(&self, user: &str) -> crate::store::Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT day, provider, model, input_tokens, output_tokens, calls FROM llm_usage \
             WHERE user_id = $1 ORDER BY day DESC, provider, model",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        let usage = rows.iter().map(|r| {
            Ok(UsageRow {
                day: r.try_get("day")?,
                provider: r.try_get("provider")?,
                model: r.try_get("model")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                calls: r.try_get("calls")?,
            })
        });
        usage.collect()
    }
}

/// One line of `llm_usage`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub day: String,
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub calls: i64,
}

/// `GET /api/llm/status`: which provider and model answer, and whether calls can
/// be made. Never shows keys or URLs.
pub async fn status(State(llm): State<Arc<Llm>>, _user: CurrentUser) -> Json<serde_json::Value> {
    let s = llm.status();
    Json(json!({ "provider": s.provider, "model": s.model, "configured": s.configured }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_on_blank_lines_across_reads() {
        let mut buffer = BytesMut::from(&b"event: ping\ndata: {}\n\nevent: content"[..]);
        assert_eq!(
            take_event(&mut buffer),
            Some(SseEvent {
                event: Some("ping".into()),
                data: "{}".into()
            })
        );
        assert_eq!(take_event(&mut buffer), None);
        buffer.extend_from_slice(b"_block_delta\r\ndata: a\r\ndata: b\r\n\r\n: comment\n\n");
        assert_eq!(
            take_event(&mut buffer),
            Some(SseEvent {
                event: Some("content_block_delta".into()),
                data: "a\nb".into()
            })
        );
        assert_eq!(take_event(&mut buffer), None);
        assert!(buffer.is_empty());
    }

    #[test]
    fn settings_parse_and_keys_stay_hidden() {
        let env = [
            ("HAM_LLM_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("HAM_LLM_ALLOWED_MODELS", "a, b,,c"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = crate::settings::Settings::load_from(None, env).unwrap().llm;
        assert_eq!(s.provider, ProviderKind::Anthropic);
        let bad = [("HAM_LLM_PROVIDER".to_string(), "gpt".to_string())];
        assert!(crate::settings::Settings::load_from(None, bad).is_err());
        assert_eq!(s.allowed_models, ["a", "b", "c"]);
        assert!(!format!("{s:?}").contains("sk-secret"));
        assert_eq!(utc_day(0), "1970-01-01");
    }
}
