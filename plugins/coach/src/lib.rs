//! `coach`: the bundled AI coach. A chat that streams the model's reply as
//! server-sent events, grounded in the user's habits and activities, with the
//! conversations kept in the plugin's user-scoped storage.
//!
//! Routes (claimed in `plugin.toml`, all for a signed-in user):
//! - `POST /api/coach/chat {"conversation_id"?, "message"}` -> `text/event-stream`:
//!   `event: token` `{"text"}` as the model sends them, then `event: done`
//!   `{"conversation_id", "usage": {"input_tokens", "output_tokens"}}`, or
//!   `event: error` `{"code", "message", "conversation_id"}`. Each piece is
//!   written and flushed as soon as it arrives: nothing buffers.
//! - `GET /api/coach/conversations` -> `{"conversations": [{"id", "title", "updated_at"}]}`,
//!   newest first; `GET /api/coach/conversations/{id}` -> the conversation with its
//!   messages; `DELETE` -> 204.
//!
//! The weekly review (`weekly-review` job, one per user, scheduled in the manifest)
//! writes a short review into a new conversation of that user.
//!
//! A chat is checked before anything is stored: the message's length, the size
//! the conversation would grow to ([`MAX_CONVERSATION_BYTES`]), then the model
//! call itself, which reserves the user's token budget. A chat refused for size or
//! budget stores nothing; the user's message is stored only once the model has
//! accepted the call (or failed for another reason: not configured, busy, down),
//! and a chat whose message does not fit the user's storage quota cancels the
//! call before any reply is generated.

mod prompt;

use guest_http::{
    MAX_BODY, error, new_id, now_ms, read_body, respond, respond_json, write_flushed,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

#[allow(unsafe_code, reason = "wit-bindgen's generated export glue")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package ham:coach;
            world coach {
                include ham:plugin/imports@0.1.0;
                export ham:plugin/job-handler@0.1.0;
            }
        ",
        world: "ham:coach/coach",
        generate_all,
    });

    use super::Coach;
    export!(Coach with_types_in self);
}

use bindings::exports::ham::plugin::job_handler::{self, Job, JobError, RetryLater};
use bindings::ham::plugin::llm::{self, Chunk, Role};
use bindings::ham::plugin::storage::{self, Scope};
use bindings::ham::plugin::types::Error as HostError;
use bindings::ham::plugin::{config, log};

/// Longest chat message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 8_000;
/// Largest stored conversation (its JSON, with the new message), in bytes: about
/// thirty long exchanges, or hundreds of short ones. A longer chat starts anew.
pub const MAX_CONVERSATION_BYTES: usize = 256 * 1024;
/// Where conversations are stored: `conversations/{id}` in the user's scope.
const PREFIX: &str = "conversations/";

struct Coach;

wasip2::http::proxy::export!(Coach);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Conversation {
    id: String,
    title: String,
    created_at: i64,
    updated_at: i64,
    messages: Vec<StoredMessage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMessage {
    /// `user` or `assistant`.
    role: String,
    text: String,
    /// The reply broke off (a provider error, or the client went away).
    #[serde(default)]
    incomplete: bool,
    /// Milliseconds since the epoch.
    at: i64,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    conversation_id: Option<String>,
    message: String,
}

impl wasip2::exports::http::incoming_handler::Guest for Coach {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let full = request.path_with_query().unwrap_or_default();
        let path = full.split('?').next().unwrap_or_default();
        let path = path.strip_prefix("/api/coach").unwrap_or(path);
        let path = path.trim_end_matches('/');
        match (request.method(), path) {
            (Method::Post, "/chat") => chat(&request, out),
            (Method::Get, "/conversations") => list(out),
            (method, rest) => match rest.strip_prefix("/conversations/") {
                Some(id) if matches!(method, Method::Get) => show(id, out),
                Some(id) if matches!(method, Method::Delete) => remove(id, out),
                Some(_) => error(out, 405, "method_not_allowed", "use GET or DELETE"),
                None => error(out, 404, "not_found", "no such coach route"),
            },
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn load(id: &str) -> Result<Option<Conversation>, HostError> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(storage::get(Scope::User, &format!("{PREFIX}{id}"))?
        .and_then(|e| serde_json::from_slice(&e.value).ok()))
}

fn save(c: &Conversation) -> Result<(), HostError> {
    let bytes = serde_json::to_vec(c).unwrap_or_default();
    storage::set(Scope::User, &format!("{PREFIX}{}", c.id), &bytes)?;
    Ok(())
}

fn all_conversations() -> Result<Vec<Conversation>, HostError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = storage::list_keys(Scope::User, PREFIX, cursor.as_deref(), 1000)?;
        for key in &page.keys {
            if let Some(entry) = storage::get(Scope::User, key)?
                && let Ok(c) = serde_json::from_slice::<Conversation>(&entry.value)
            {
                out.push(c);
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
    Ok(out)
}

fn list(out: ResponseOutparam) {
    match all_conversations() {
        Ok(list) => {
            let items: Vec<_> = list
                .iter()
                .map(|c| json!({"id": c.id, "title": c.title, "updated_at": c.updated_at}))
                .collect();
            respond_json(out, 200, &json!({ "conversations": items }));
        }
        Err(e) => host_error(out, &e),
    }
}

fn show(id: &str, out: ResponseOutparam) {
    match load(id) {
        Ok(Some(c)) => respond_json(
            out,
            200,
            &json!({"id": c.id, "title": c.title, "messages": c.messages}),
        ),
        Ok(None) => error(out, 404, "not_found", "no such conversation"),
        Err(e) => host_error(out, &e),
    }
}

fn remove(id: &str, out: ResponseOutparam) {
    if !valid_id(id) {
        return error(out, 404, "not_found", "no such conversation");
    }
    match storage::delete(Scope::User, &format!("{PREFIX}{id}")) {
        Ok(true) => respond(out, 204, &[], b""),
        Ok(false) => error(out, 404, "not_found", "no such conversation"),
        Err(e) => host_error(out, &e),
    }
}

fn title_of(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

fn max_tokens() -> u32 {
    config::get("max_tokens")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn system_prompt_override() -> Option<String> {
    config::get("system_prompt").ok().flatten()
}

fn chat(request: &IncomingRequest, out: ResponseOutparam) {
    let Some(body) = read_body(request) else {
        return error(
            out,
            413,
            "too_large",
            &format!("the body exceeds {MAX_BODY} bytes"),
        );
    };
    let Ok(input) = serde_json::from_slice::<ChatRequest>(&body) else {
        return error(
            out,
            400,
            "invalid_json",
            "expected {\"conversation_id\"?: string, \"message\": string}",
        );
    };
    let message = input.message.trim();
    if message.is_empty() {
        return error(out, 400, "empty_message", "message: write something first");
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return error(
            out,
            400,
            "message_too_long",
            &format!("message: at most {MAX_MESSAGE_CHARS} characters"),
        );
    }
    let now = now_ms();
    let existing = input.conversation_id.is_some();
    let mut conversation = match input.conversation_id.as_deref() {
        Some(id) => match load(id) {
            Ok(Some(c)) => c,
            Ok(None) => return error(out, 404, "not_found", "no such conversation"),
            Err(e) => return host_error(out, &e),
        },
        None => Conversation {
            id: new_id(),
            title: title_of(message),
            created_at: now,
            updated_at: now,
            messages: Vec::new(),
        },
    };
    conversation.messages.push(StoredMessage {
        role: "user".into(),
        text: message.to_string(),
        incomplete: false,
        at: now,
    });
    conversation.updated_at = now;
    // Checked with the new message; its reply may take the conversation past the
    // limit once, and the next message is refused.
    let size = serde_json::to_vec(&conversation).map_or(usize::MAX, |v| v.len());
    if size > MAX_CONVERSATION_BYTES {
        return error(
            out,
            413,
            "conversation_too_long",
            &format!(
                "this conversation is at its {} KiB limit; start a new one",
                MAX_CONVERSATION_BYTES / 1024
            ),
        );
    }

    let turns: Vec<(Role, String)> = conversation
        .messages
        .iter()
        .map(|m| {
            let role = if m.role == "assistant" {
                Role::Assistant
            } else {
                Role::User
            };
            (role, m.text.clone())
        })
        .collect();
    let request = llm::Request {
        system: Some(prompt::system(system_prompt_override(), now)),
        messages: prompt::history(&turns),
        max_tokens: max_tokens(),
        temperature: None,
        model: None,
    };

    // The call reserves the budget before anything is stored.
    let started = llm::stream(&request);
    let refused_for_budget = matches!(started, Err(HostError::QuotaExceeded));
    if !refused_for_budget && let Err(e) = save(&conversation) {
        // Dropping the stream cancels the call before a reply is generated.
        drop(started);
        return host_error(out, &e);
    }

    // From here on the answer is a stream of events.
    let response = OutgoingResponse::new(sse_headers());
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    let Ok(stream) = body.write() else { return };
    let id = conversation.id.clone();
    let mut reply = String::new();
    let mut client_gone = false;
    let outcome = match started {
        Err(e) => Err(e),
        Ok(completion) => loop {
            match completion.next() {
                Ok(Some(Chunk::Text(text))) => {
                    reply.push_str(&text);
                    if send(&stream, "token", &json!({ "text": text })).is_err() {
                        // The browser went away: stop reading, which drops the
                        // stream and cancels the upstream request.
                        client_gone = true;
                        break Ok(None);
                    }
                }
                Ok(Some(Chunk::Finish(finish))) => break Ok(Some(finish.usage)),
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            }
        },
    };
    let complete = matches!(outcome, Ok(Some(_)));
    if !reply.is_empty() || complete {
        conversation.messages.push(StoredMessage {
            role: "assistant".into(),
            text: reply,
            incomplete: !complete,
            at: now_ms(),
        });
    }
    conversation.updated_at = now_ms();
    if !refused_for_budget && let Err(e) = save(&conversation) {
        log::log(
            log::Level::Error,
            "could not store the reply",
            &[("error".into(), format!("{e:?}"))],
        );
    }
    // A refused new conversation was never stored: name none.
    let id = (existing || !refused_for_budget).then_some(id);
    if !client_gone {
        let _ = match outcome {
            Ok(usage) => {
                let (input_tokens, output_tokens) =
                    usage.map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
                send(
                    &stream,
                    "done",
                    &json!({
                        "conversation_id": id,
                        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                    }),
                )
            }
            Err(e) => {
                let (code, message) = describe(&e);
                send(
                    &stream,
                    "error",
                    &json!({"code": code, "message": message, "conversation_id": id}),
                )
            }
        };
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

/// An error from the model call as the browser sees it.
fn describe(e: &HostError) -> (&'static str, String) {
    match e {
        HostError::NotConfigured(why) => (
            "not_configured",
            format!("The coach has no language model yet. {why}"),
        ),
        HostError::QuotaExceeded => (
            "budget_exceeded",
            "Today's coach budget is spent; it renews at midnight UTC.".into(),
        ),
        HostError::RateLimited(ms) => (
            "rate_limited",
            format!(
                "The model is busy; try again in {} seconds.",
                ms.div_ceil(1000)
            ),
        ),
        HostError::Upstream(why) => ("upstream", format!("The model failed: {why}")),
        HostError::InvalidArgument(why) => ("invalid_request", why.clone()),
        HostError::AccessDenied(why) => ("access_denied", why.clone()),
        _ => ("internal", "The coach failed; see the server log.".into()),
    }
}

fn sse_headers() -> Fields {
    let fields = Fields::new();
    for (name, value) in [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
    ] {
        let _ = fields.append(name, value.as_bytes());
    }
    fields
}

/// Writes one event and flushes it to the client.
fn send(
    stream: &wasip2::io::streams::OutputStream,
    event: &str,
    data: &serde_json::Value,
) -> Result<(), wasip2::io::streams::StreamError> {
    let text = format!("event: {event}\ndata: {data}\n\n");
    write_flushed(stream, text.as_bytes())
}

fn host_error(out: ResponseOutparam, e: &HostError) {
    log::log(
        log::Level::Error,
        "host call failed",
        &[("error".into(), format!("{e:?}"))],
    );
    match e {
        HostError::AccessDenied(why) => error(out, 401, "unauthorized", why),
        HostError::QuotaExceeded => error(out, 507, "storage_full", "the coach's storage is full"),
        _ => error(out, 500, "internal", "the coach failed; see the server log"),
    }
}

/// `weekly-review`: for the user the job runs for, a short review of the past
/// week in a new conversation.
impl job_handler::Guest for Coach {
    fn handle(job: Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            "weekly-review" if job.user_id.is_some() => weekly_review(),
            "weekly-review" => Err(JobError::Fail(
                "weekly-review runs per user (schedule per_user = true)".into(),
            )),
            other => Err(JobError::Fail(format!("unknown job kind `{other}`"))),
        }
    }
}

fn weekly_review() -> Result<(), JobError> {
    let now = now_ms();
    let request = llm::Request {
        system: Some(prompt::system(system_prompt_override(), now)),
        messages: vec![llm::Message {
            role: Role::User,
            text: prompt::WEEKLY_REVIEW_PROMPT.into(),
        }],
        max_tokens: max_tokens().min(600),
        temperature: None,
        model: None,
    };
    let response = match llm::complete(&request) {
        Ok(r) => r,
        Err(HostError::NotConfigured(why)) => {
            log::log(
                log::Level::Info,
                "no weekly review: no language model",
                &[("why".into(), why)],
            );
            return Ok(());
        }
        Err(HostError::RateLimited(ms)) => {
            return Err(JobError::RetryAfter(RetryLater {
                reason: "the model is rate limiting".into(),
                after_ms: ms,
            }));
        }
        Err(HostError::QuotaExceeded) => {
            return Err(JobError::RetryAfter(RetryLater {
                reason: "today's token budget is spent".into(),
                after_ms: 6 * 3_600_000,
            }));
        }
        Err(e) => return Err(JobError::Retry(format!("{e:?}"))),
    };
    let day = civil_day::format(now.div_euclid(86_400_000));
    let conversation = Conversation {
        id: new_id(),
        title: format!("Weekly review, {day}"),
        created_at: now,
        updated_at: now,
        messages: vec![StoredMessage {
            role: "assistant".into(),
            text: response.text,
            incomplete: response.stop_reason == "max_tokens",
            at: now,
        }],
    };
    save(&conversation).map_err(|e| JobError::Retry(format!("storing the review: {e:?}")))
}
