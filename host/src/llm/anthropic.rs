//! Anthropic's Messages API (`POST {ANTHROPIC_BASE_URL}/v1/messages`).
//!
//! Headers `x-api-key` and `anthropic-version: 2023-06-01`. A streamed reply is
//! server-sent events: `message_start` (input tokens), `content_block_start`,
//! `content_block_delta` with `text_delta`, `content_block_stop`, `message_delta`
//! (stop reason, output tokens), `message_stop`, any number of `ping`, and `error`
//! (a failure mid-stream). Unknown events are ignored, as Anthropic asks.

use serde_json::{Value, json};

use super::provider::{LlmProvider, Unconfigured};
use super::{LlmError, LlmSettings, Piece, SseEvent};
use crate::settings::Secret;
use crate::wit::ham::plugin::llm::{Request, Response, Role, Usage};

pub const VERSION: &str = "2023-06-01";
/// `HAM_LLM_PROVIDER=anthropic`.
pub const NAME: &str = "anthropic";
/// The model a request that names none gets, without `HAM_LLM_MODEL`.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// Anthropic's Messages API at `ANTHROPIC_BASE_URL`, with `ANTHROPIC_API_KEY`.
pub struct Anthropic {
    base_url: String,
    key: Secret,
}

impl Anthropic {
    /// The provider, or [`Unconfigured`] when `ANTHROPIC_API_KEY` is not set.
    pub fn from_settings(settings: &LlmSettings) -> Result<Self, Unconfigured> {
        match &settings.anthropic_api_key {
            Some(key) => Ok(Self {
                base_url: settings.anthropic_base_url.clone(),
                key: key.clone(),
            }),
            None => Err(Unconfigured {
                name: NAME,
                default_model: DEFAULT_MODEL,
                why: "HAM_LLM_PROVIDER is anthropic but ANTHROPIC_API_KEY is not set".into(),
            }),
        }
    }
}

impl LlmProvider for Anthropic {
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
        Ok(client
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", VERSION)
            .json(body))
    }

    fn parse_response(&self, text: &str) -> Result<Response, LlmError> {
        parse_response(text)
    }

    fn decode_event(&self, event: &SseEvent) -> Result<Vec<Piece>, String> {
        decode_event(event)
    }
}

fn request_body(request: &Request, model: &str, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            json!({
                "role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
                "content": m.text,
            })
        })
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

fn parse_response(text: &str) -> Result<Response, LlmError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| LlmError::Upstream("anthropic answered something that is not JSON".into()))?;
    let content = v["content"]
        .as_array()
        .ok_or_else(|| LlmError::Upstream("anthropic's reply has no content".into()))?;
    let text = content
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<String>();
    Ok(Response {
        text,
        stop_reason: v["stop_reason"].as_str().unwrap_or("end_turn").to_string(),
        model: v["model"].as_str().unwrap_or_default().to_string(),
        usage: Usage {
            input_tokens: tokens(&v["usage"]["input_tokens"]),
            output_tokens: tokens(&v["usage"]["output_tokens"]),
        },
    })
}

fn tokens(v: &Value) -> u32 {
    v.as_u64()
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The pieces one event carries; an `error` event is an `Err` with its message.
fn decode_event(event: &SseEvent) -> Result<Vec<Piece>, String> {
    let name = event.event.as_deref().unwrap_or_default();
    if name == "ping" {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(&event.data)
        .map_err(|_| format!("anthropic sent an unreadable `{name}` event"))?;
    let kind = v["type"].as_str().unwrap_or(name);
    Ok(match kind {
        "message_start" => {
            let usage = &v["message"]["usage"];
            vec![
                Piece::InputTokens(tokens(&usage["input_tokens"])),
                Piece::OutputTokens(tokens(&usage["output_tokens"])),
            ]
        }
        "content_block_start" => match v["content_block"]["text"].as_str() {
            Some(t) if !t.is_empty() => vec![Piece::Text(t.to_string())],
            _ => Vec::new(),
        },
        "content_block_delta" if v["delta"]["type"] == "text_delta" => {
            vec![Piece::Text(
                v["delta"]["text"].as_str().unwrap_or_default().to_string(),
            )]
        }
        "message_delta" => {
            let mut pieces = Vec::new();
            if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                pieces.push(Piece::StopReason(reason.to_string()));
            }
            if v["usage"]["output_tokens"].is_u64() {
                pieces.push(Piece::OutputTokens(tokens(&v["usage"]["output_tokens"])));
            }
            if v["usage"]["input_tokens"].is_u64() {
                pieces.push(Piece::InputTokens(tokens(&v["usage"]["input_tokens"])));
            }
            pieces
        }
        "message_stop" => vec![Piece::End],
        "error" => {
            let kind = v["error"]["type"].as_str().unwrap_or("error");
            let message: String = v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            return Err(format!("anthropic failed mid-reply ({kind}: {message})"));
        }
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: data.to_string(),
        }
    }

    #[test]
    fn decodes_the_event_sequence() {
        let start = ev(
            "message_start",
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}}),
        );
        assert_eq!(
            decode_event(&start).unwrap(),
            [Piece::InputTokens(25), Piece::OutputTokens(1)]
        );
        let delta = ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        );
        assert_eq!(decode_event(&delta).unwrap(), [Piece::Text("Hi".into())]);
        assert!(
            decode_event(&ev("ping", json!({"type": "ping"})))
                .unwrap()
                .is_empty()
        );
        let end = ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
        );
        assert_eq!(
            decode_event(&end).unwrap(),
            [Piece::StopReason("end_turn".into()), Piece::OutputTokens(7)]
        );
        assert_eq!(
            decode_event(&ev("message_stop", json!({"type": "message_stop"}))).unwrap(),
            [Piece::End]
        );
        let err = decode_event(&ev(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ))
        .unwrap_err();
        assert!(err.contains("overloaded_error"), "{err}");
    }
}
