//! OpenAI-compatible chat completions (`POST {HAM_LLM_BASE_URL}/chat/completions`):
//! OpenAI itself, Ollama (`http://127.0.0.1:11434/v1`), llama.cpp's server
//! (`http://127.0.0.1:8080/v1`), vLLM and others.
//!
//! The key, if any, goes as `Authorization: Bearer`. A streamed reply is `data:`
//! lines of `chat.completion.chunk` objects ending with `data: [DONE]`; usage comes
//! in a last chunk because the request asks `stream_options.include_usage` (servers
//! that ignore it leave the usage at 0).
//!
//! Google's Gemini answers this dialect too, at
//! `https://generativelanguage.googleapis.com/v1beta/openai/` (docs/coach.md),
//! with three differences this module allows for: usage comes in the chunk that
//! carries the last text and `finish_reason` (not a chunk of its own); its
//! thinking models leave their thinking tokens out of `completion_tokens` while
//! counting them in `total_tokens` (and billing them as output), so output is
//! read as `total_tokens - prompt_tokens` when that is more; and its errors are
//! a JSON list around the usual `{"error": …}` (read in `super::upstream_status`).

use serde_json::{Value, json};

use super::provider::{LlmProvider, Unconfigured};
use super::{LlmError, LlmSettings, Piece, SseEvent};
use crate::settings::Secret;
use crate::wit::ham::plugin::llm::{Request, Response, Role, Usage};

/// `HAM_LLM_PROVIDER=openai`.
pub const NAME: &str = "openai";
/// The model a request that names none gets, without `HAM_LLM_MODEL`.
pub const DEFAULT_MODEL: &str = "llama3.2";

/// An OpenAI-compatible server at `HAM_LLM_BASE_URL`, with `HAM_LLM_API_KEY` if set.
pub struct OpenAi {
    base_url: String,
    key: Option<Secret>,
}

impl OpenAi {
    /// The provider, or [`Unconfigured`] when `HAM_LLM_BASE_URL` is not set.
    pub fn from_settings(settings: &LlmSettings) -> Result<Self, Unconfigured> {
        match &settings.base_url {
            // The URL is joined with `/chat/completions`: a base given with its
            // trailing slash (as Gemini's documentation writes it) gets one.
            Some(base_url) => Ok(Self {
                base_url: base_url.trim_end_matches('/').to_string(),
                key: settings.api_key.clone(),
            }),
            None => Err(Unconfigured {
                name: NAME,
                default_model: DEFAULT_MODEL,
                why: "HAM_LLM_PROVIDER is openai but HAM_LLM_BASE_URL is not set \
                      (for example http://127.0.0.1:11434/v1 for Ollama)"
                    .into(),
            }),
        }
    }
}

impl LlmProvider for OpenAi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn default_model(&self) -> &'static str {
        DEFAULT_MODEL
    }

    fn request_body(&self, request: &Request, model: &str, stream: bool) -> Value {
        request_body(request, model, stream)
    }

    fn http_request(
        &self,
        client: &reqwest::Client,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let request = client
            .post(format!("{}/chat/completions", self.base_url))
            .json(body);
        Ok(match &self.key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        })
    }

    fn parse_response(&self, text: &str) -> Result<Response, LlmError> {
        parse_response(text)
    }

    fn decode_event(&self, event: &SseEvent) -> Result<Vec<Piece>, String> {
        decode_event(event)
    }
}

fn request_body(request: &Request, model: &str, stream: bool) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &request.messages {
        messages.push(json!({
            "role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
            "content": m.text,
        }));
    }
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn tokens(v: &Value) -> u32 {
    v.as_u64()
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// A `usage` object's input and output tokens. Output is `completion_tokens`,
/// or `total_tokens - prompt_tokens` where that is more: Gemini's thinking
/// models count their thinking tokens (billed as output) only in the total.
fn usage(usage: &Value) -> Usage {
    let input = tokens(&usage["prompt_tokens"]);
    let completion = tokens(&usage["completion_tokens"]);
    let total = tokens(&usage["total_tokens"]);
    Usage {
        input_tokens: input,
        output_tokens: completion.max(total.saturating_sub(input)),
    }
}

/// An error object, bare (`{"error": …}`) or as Gemini sends it, in a list
/// (`[{"error": …}]`).
pub(super) fn error_of(v: &Value) -> &Value {
    match v.get(0) {
        Some(first) => &first["error"],
        None => &v["error"],
    }
}

fn parse_response(text: &str) -> Result<Response, LlmError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| LlmError::Upstream("openai answered something that is not JSON".into()))?;
    let choice = &v["choices"][0];
    if choice.is_null() {
        return Err(LlmError::Upstream("openai's reply has no choices".into()));
    }
    Ok(Response {
        text: choice["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        stop_reason: choice["finish_reason"]
            .as_str()
            .unwrap_or("stop")
            .to_string(),
        model: v["model"].as_str().unwrap_or_default().to_string(),
        usage: usage(&v["usage"]),
    })
}

/// The pieces one `data:` line carries.
fn decode_event(event: &SseEvent) -> Result<Vec<Piece>, String> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(vec![Piece::End]);
    }
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value =
        serde_json::from_str(data).map_err(|_| "openai sent an unreadable chunk".to_string())?;
    if let Some(message) = error_of(&v)["message"].as_str() {
        let message: String = message.chars().take(200).collect();
        return Err(format!("openai failed mid-reply ({message})"));
    }
    let mut pieces = Vec::new();
    if let Some(choice) = v["choices"].get(0) {
        if let Some(text) = choice["delta"]["content"].as_str() {
            pieces.push(Piece::Text(text.to_string()));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            pieces.push(Piece::StopReason(reason.to_string()));
        }
    }
    if v["usage"].is_object() {
        let usage = usage(&v["usage"]);
        pieces.push(Piece::InputTokens(usage.input_tokens));
        pieces.push(Piece::OutputTokens(usage.output_tokens));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: v.into(),
        }
    }

    #[test]
    fn decodes_chunks_usage_and_done() {
        let chunk =
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]});
        assert_eq!(
            decode_event(&data(&chunk.to_string())).unwrap(),
            [Piece::Text("Hel".into())]
        );
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}});
        assert_eq!(
            decode_event(&data(&usage.to_string())).unwrap(),
            [Piece::InputTokens(9), Piece::OutputTokens(3)]
        );
        assert_eq!(decode_event(&data("[DONE]")).unwrap(), [Piece::End]);
    }

    #[test]
    fn reads_geminis_last_chunk_thinking_tokens_and_listed_errors() {
        // The last text, the stop reason and the usage in one chunk; 20
        // thinking tokens only in the total.
        let last = json!({
            "choices": [{"delta": {"content": "four", "role": "assistant"},
                         "finish_reason": "stop", "index": 0}],
            "model": "gemini-2.5-flash", "object": "chat.completion.chunk",
            "usage": {"completion_tokens": 4, "prompt_tokens": 9, "total_tokens": 33}
        });
        assert_eq!(
            decode_event(&data(&last.to_string())).unwrap(),
            [
                Piece::Text("four".into()),
                Piece::StopReason("stop".into()),
                Piece::InputTokens(9),
                Piece::OutputTokens(24)
            ]
        );
        let whole = json!({
            "choices": [{"finish_reason": "stop", "index": 0,
                         "message": {"content": "Hi", "role": "assistant"}}],
            "usage": {"completion_tokens": 1, "prompt_tokens": 5, "total_tokens": 6}
        });
        let reply = parse_response(&whole.to_string()).unwrap();
        assert_eq!(
            (reply.usage.input_tokens, reply.usage.output_tokens),
            (5, 1)
        );
        let failed =
            json!([{"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}]);
        assert_eq!(
            decode_event(&data(&failed.to_string())).unwrap_err(),
            "openai failed mid-reply (Internal error)"
        );
    }
}
