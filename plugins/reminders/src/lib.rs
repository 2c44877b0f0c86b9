//! `reminders`: delivers the reminders of every user's habits to their ntfy
//! topics and webhooks (docs/api.md, "Reminders").
//!
//! Three job kinds, each acting for no user (the host's `notifications`
//! interface names the user instead):
//!
//! - `tick` (scheduled every minute): takes the window from the cursor (the end
//!   of the last window; `now - 2 min` at first, at most an hour back after a
//!   pause) to now, claims it by moving the cursor with compare-and-swap (a
//!   second tick that read the same cursor finds a conflict and stops), and
//!   queues one `remind` per reminder due in it. Then it prunes old markers.
//! - `remind`: if the habit is still due that day (no entry, not archived),
//!   queues one `send` per channel, so a failing channel retries alone.
//! - `send`: delivers to one channel and records the outcome; a failure is
//!   retried with the queue's backoff, a host the policy refuses is not.
//!
//! Once per due time per channel: before sending, a `send` job claims the
//! marker `sent/{due ms, 13 digits}/{user}/{habit}/{channel}` in plugin storage
//! by writing its own job id with compare-and-swap (expected: absent). Whatever
//! queued it twice (a tick retried after a partial window, two replicas racing
//! for one window), only the job holding the marker sends; its own retries find
//! their id there and go on. Markers sort by due time, so the tick deletes
//! those older than two days from the front.
//!
//! Job payloads are stored in plaintext, so they carry ids and times only:
//! channel URLs and tokens are read from the host at send time.

use serde::{Deserialize, Serialize};

#[allow(unsafe_code, reason = "wit-bindgen's generated export glue")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package ham:reminders;
            world reminders {
                include ham:plugin/imports@0.1.0;
                export ham:plugin/job-handler@0.1.0;
            }
        ",
        world: "ham:reminders/reminders",
        generate_all,
    });

    use super::Reminders;
    export!(Reminders with_types_in self);
}

use bindings::exports::ham::plugin::job_handler::{self, Job, JobError};
use bindings::ham::plugin::notifications::{self, Channel, ChannelKind};
use bindings::ham::plugin::storage::{self, Scope};
use bindings::ham::plugin::types::Error as HostError;
use bindings::ham::plugin::{jobs, log};
use guest_http::now_ms;
use wasip2::http::types::Method;

/// Where the end of the last window is kept (plugin scope), as decimal ms.
const CURSOR: &str = "cursor";
/// The first window reaches this far back.
const FIRST_LOOKBACK_MS: i64 = 2 * 60_000;
/// A window never starts earlier than this before now: after the server was
/// down, reminders more than an hour late are dropped, not sent in a burst.
const MAX_CATCH_UP_MS: i64 = 60 * 60_000;
const MARKER_PREFIX: &str = "sent/";
/// Markers are kept this long after their due time.
const MARKER_TTL_MS: i64 = 2 * 24 * 3600 * 1000;
/// Markers pruned per tick at most.
const PRUNE_PAGE: u32 = 100;

struct Reminders;

/// One reminder at one due time: the payload of `remind`, and with a channel of
/// `send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Due {
    user: String,
    user_name: String,
    habit: String,
    habit_name: String,
    /// Local `YYYY-MM-DDTHH:MM`.
    due_local: String,
    /// Milliseconds since the epoch.
    due: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
}

impl Due {
    /// The local date, `YYYY-MM-DD`.
    fn date(&self) -> &str {
        self.due_local.split('T').next().unwrap_or(&self.due_local)
    }

    /// The local time, `HH:MM`.
    fn time(&self) -> &str {
        self.due_local.split('T').nth(1).unwrap_or_default()
    }
}

impl job_handler::Guest for Reminders {
    fn handle(job: Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            "tick" => tick(),
            "remind" => remind(&payload(&job)?),
            "send" => send(&job.id, &payload(&job)?),
            "test" => test(&job),
            other => Err(JobError::Fail(format!("unknown job kind `{other}`"))),
        }
    }
}

fn payload(job: &Job) -> Result<Due, JobError> {
    serde_json::from_slice(&job.payload)
        .map_err(|e| JobError::Fail(format!("unreadable {} payload: {e}", job.kind)))
}

/// A host call that failed: retried with the queue's backoff.
fn retry(what: &str) -> impl Fn(HostError) -> JobError + '_ {
    move |e| JobError::Retry(format!("{what}: {e:?}"))
}

fn enqueue(kind: &str, due: &Due) -> Result<(), JobError> {
    let body = serde_json::to_vec(due).map_err(|e| JobError::Fail(e.to_string()))?;
    jobs::enqueue(kind, &body, None).map_err(retry("queueing a job"))?;
    Ok(())
}

fn tick() -> Result<(), JobError> {
    let now = now_ms();
    let cursor = storage::get(Scope::Plugin, CURSOR).map_err(retry("reading the cursor"))?;
    let (from, revision) = match &cursor {
        Some(entry) => {
            let end = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|text| text.parse::<i64>().ok())
                .unwrap_or(now - FIRST_LOOKBACK_MS);
            (end, Some(entry.revision))
        }
        None => (now - FIRST_LOOKBACK_MS, None),
    };
    let from = from.max(now - MAX_CATCH_UP_MS);
    if from < now {
        // Claim [from, now): a tick that read the same cursor loses here.
        let claimed =
            storage::compare_and_swap(Scope::Plugin, CURSOR, revision, now.to_string().as_bytes());
        let claimed = match claimed {
            Ok(revision) => revision,
            Err(HostError::Conflict) => return Ok(()),
            Err(e) => return Err(retry("moving the cursor")(e)),
        };
        if let Err(e) = queue_window(from, now) {
            // Give the window back so the retry takes it again; the markers keep
            // what was queued already from being sent twice.
            let back = cursor.as_ref().map_or_else(Vec::new, |c| c.value.clone());
            let _ = match cursor {
                Some(_) => storage::compare_and_swap(Scope::Plugin, CURSOR, Some(claimed), &back),
                None => storage::delete(Scope::Plugin, CURSOR).map(|_| claimed),
            };
            return Err(e);
        }
    }
    prune_markers(now);
    Ok(())
}

fn queue_window(from: i64, to: i64) -> Result<(), JobError> {
    let due = notifications::due_reminders(from, to).map_err(retry("listing due reminders"))?;
    for r in due {
        enqueue(
            "remind",
            &Due {
                user: r.user_id,
                user_name: r.user_name,
                habit: r.habit_id,
                habit_name: r.habit_name,
                due_local: r.due_local,
                due: r.due,
                channel: None,
            },
        )?;
    }
    Ok(())
}

/// Deletes markers whose due time is over [`MARKER_TTL_MS`] ago, oldest first.
fn prune_markers(now: i64) {
    let Ok(page) = storage::list_keys(Scope::Plugin, MARKER_PREFIX, None, PRUNE_PAGE) else {
        return;
    };
    let cutoff = now - MARKER_TTL_MS;
    for key in page.keys {
        let due = key
            .strip_prefix(MARKER_PREFIX)
            .and_then(|rest| rest.split('/').next())
            .and_then(|ms| ms.parse::<i64>().ok());
        match due {
            Some(due) if due >= cutoff => break,
            _ => {
                let _ = storage::delete(Scope::Plugin, &key);
            }
        }
    }
}

fn still_due(due: &Due) -> Result<bool, JobError> {
    notifications::still_due(&due.user, &due.habit, due.date()).map_err(retry("checking the habit"))
}

fn remind(due: &Due) -> Result<(), JobError> {
    if !still_due(due)? {
        return Ok(());
    }
    let delivery = match notifications::channels(&due.user, &due.habit, due.date()) {
        Ok(delivery) => delivery,
        Err(HostError::NotFound) => return Ok(()),
        Err(e) => return Err(retry("reading the channels")(e)),
    };
    for channel in delivery.channels {
        let one = Due {
            channel: Some(channel.id),
            ..due.clone()
        };
        enqueue("send", &one)?;
    }
    Ok(())
}

/// Claims the marker of this delivery for job `job`; false when another job
/// holds it (that one sends).
fn claim_marker(job: &str, due: &Due, channel: &str) -> Result<bool, JobError> {
    let key = format!(
        "{MARKER_PREFIX}{:013}/{}/{}/{channel}",
        due.due.max(0),
        due.user,
        due.habit
    );
    match storage::get(Scope::Plugin, &key).map_err(retry("reading the marker"))? {
        Some(entry) => Ok(entry.value == job.as_bytes()),
        None => match storage::compare_and_swap(Scope::Plugin, &key, None, job.as_bytes()) {
            Ok(_) => Ok(true),
            Err(HostError::Conflict) => Ok(false),
            Err(e) => Err(retry("writing the marker")(e)),
        },
    }
}

fn send(job: &str, due: &Due) -> Result<(), JobError> {
    let Some(channel_id) = due.channel.as_deref() else {
        return Err(JobError::Fail("a send job names its channel".into()));
    };
    if !claim_marker(job, due, channel_id)? {
        return Ok(());
    }
    // The user may have checked in since the reminder was queued (or between retries).
    if !still_due(due)? {
        return Ok(());
    }
    let delivery = match notifications::channels(&due.user, &due.habit, due.date()) {
        Ok(delivery) => delivery,
        Err(HostError::NotFound) => return Ok(()),
        Err(e) => return Err(retry("reading the channels")(e)),
    };
    let Some(channel) = delivery.channels.iter().find(|c| c.id == channel_id) else {
        // Removed since: nothing to send to.
        return Ok(());
    };
    let outcome = deliver(channel, due, &delivery);
    record(&due.user, channel_id, &outcome);
    match outcome {
        Ok(()) => Ok(()),
        Err(Failure::Refused(why)) => Err(JobError::Fail(why)),
        Err(Failure::Failed(why)) => Err(JobError::Retry(why)),
    }
}

/// The payload of `test`, queued by the host's `POST /api/me/notifications/test`.
#[derive(Debug, Deserialize)]
struct TestRequest {
    user: String,
    user_name: String,
    channel: String,
}

/// What a test says.
const TEST_MESSAGE: &str = "A test from HAM: your reminders will arrive here.";

/// Sends one test message to one of the user's channels, once: the user is
/// waiting for the answer, so a failure is reported, not retried.
fn test(job: &Job) -> Result<(), JobError> {
    let request: TestRequest = serde_json::from_slice(&job.payload)
        .map_err(|e| JobError::Fail(format!("unreadable test payload: {e}")))?;
    let channels = notifications::user_channels(&request.user)
        .map_err(|e| JobError::Fail(format!("reading the channels: {e:?}")))?;
    let Some(channel) = channels.iter().find(|c| c.id == request.channel) else {
        return Err(JobError::Fail("the channel was removed".into()));
    };
    let (headers, body) = match channel.kind {
        ChannelKind::Ntfy => (
            vec![
                ("Title", "HAM".to_string()),
                ("Tags", "white_check_mark".into()),
                ("Content-Type", "text/plain; charset=utf-8".into()),
            ],
            TEST_MESSAGE.as_bytes().to_vec(),
        ),
        ChannelKind::Webhook => (
            vec![("Content-Type", "application/json".to_string())],
            serde_json::json!({"test": true, "user": request.user_name, "message": TEST_MESSAGE})
                .to_string()
                .into_bytes(),
        ),
    };
    let outcome = post(channel, headers, &body);
    record(&request.user, &channel.id, &outcome);
    outcome.map_err(|failure| JobError::Fail(failure.message().to_string()))
}

/// Records a delivery's outcome on the channel (shown in the user's settings);
/// a failure to record is logged, never a reason to send again.
fn record(user: &str, channel: &str, outcome: &Result<(), Failure>) {
    let recorded = outcome.as_ref().map(|_| ()).map_err(Failure::message);
    if let Err(e) = notifications::record_delivery(user, channel, recorded) {
        log::log(
            log::Level::Warn,
            "recording a delivery failed",
            &[("error".into(), format!("{e:?}"))],
        );
    }
}

/// Why a delivery did not arrive.
enum Failure {
    /// The host's outbound policy refused the address: retrying cannot help.
    Refused(String),
    /// A network error or a non-2xx answer: worth retrying.
    Failed(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Refused(why) | Failure::Failed(why) => why,
        }
    }
}

/// The message's wording: the title is the habit, the body says when.
fn message(due: &Due) -> String {
    format!("Time for {} ({})", due.habit_name, due.time())
}

fn deliver(
    channel: &Channel,
    due: &Due,
    delivery: &notifications::Delivery,
) -> Result<(), Failure> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    let body = match channel.kind {
        ChannelKind::Ntfy => {
            headers.push(("Title", header_text(&due.habit_name)));
            headers.push(("Tags", "alarm_clock".into()));
            headers.push(("Click", delivery.habit_url.clone()));
            headers.push((
                "Actions",
                format!("http, Done, {}, method=POST, clear=true", delivery.done_url),
            ));
            headers.push(("Content-Type", "text/plain; charset=utf-8".into()));
            message(due).into_bytes()
        }
        ChannelKind::Webhook => {
            headers.push(("Content-Type", "application/json".into()));
            serde_json::json!({
                "habit_id": due.habit,
                "habit_name": due.habit_name,
                "user": due.user_name,
                "due": due.due_local,
                "done_url": delivery.done_url,
            })
            .to_string()
            .into_bytes()
        }
    };
    post(channel, headers, &body)
}

/// POSTs `body` to the channel with `headers` and its token, if any.
fn post(channel: &Channel, mut headers: Vec<(&str, String)>, body: &[u8]) -> Result<(), Failure> {
    if let Some(token) = &channel.token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host = channel
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(&channel.url);
    match guest_http::call(Method::Post, &channel.url, &headers, Some(body)) {
        Ok(reply) if (200..300).contains(&reply.status) => Ok(()),
        Ok(reply) => Err(Failure::Failed(format!("{host} answered {}", reply.status))),
        Err(why) if why.contains("HttpRequestDenied") => Err(Failure::Refused(format!(
            "{host} is not allowed: a private address must be listed in \
             HAM_PLUGIN_REMINDERS_ALLOWED_HOSTS"
        ))),
        Err(why) => Err(Failure::Failed(format!("sending to {host} failed: {why}"))),
    }
}

/// Header text: control characters become spaces, and text beyond ASCII is
/// sent as an RFC 2047 encoded word, which ntfy decodes (raw UTF-8 is not
/// reliably carried in headers).
fn header_text(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() {
        return clean;
    }
    format!("=?UTF-8?B?{}?=", base64(clean.as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_ascii_or_an_encoded_word() {
        assert_eq!(header_text("Stretch\r\nX-Evil: 1"), "Stretch  X-Evil: 1");
        assert_eq!(header_text("Dehnen ü"), "=?UTF-8?B?RGVobmVuIMO8?=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn the_message_names_the_habit_and_its_time() {
        let due = Due {
            user: "u".into(),
            user_name: "ann".into(),
            habit: "h".into(),
            habit_name: "Stretch".into(),
            due_local: "2026-12-01T07:30".into(),
            due: 0,
            channel: None,
        };
        assert_eq!(message(&due), "Time for Stretch (07:30)");
        assert_eq!(due.date(), "2026-12-01");
    }
}
