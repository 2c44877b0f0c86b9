//! What HAM's HTTP plugin components (the coach, the Strava sync) share, on
//! `wasi:http` through the `wasip2` crate: the request body with a size cap, a
//! response written whole, JSON answers and the host's error shape
//! (`{"error": {"code", "message"}}`), the wall clock and random ids.

use std::io::{Read as _, Write as _};

use serde_json::json;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The largest request body a plugin reads.
pub const MAX_BODY: usize = 64 * 1024;

/// The request body, or none when it is larger than [`MAX_BODY`].
pub fn read_body(request: &IncomingRequest) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(stream) = body.stream()
    {
        let limit = u64::try_from(MAX_BODY).unwrap_or(u64::MAX) + 1;
        let _ = stream.take(limit).read_to_end(&mut buf);
    }
    (buf.len() <= MAX_BODY).then_some(buf)
}

/// Answers with `status`, `headers` and the whole `body`.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        let _ = fields.append(name, value.as_bytes());
    }
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        for chunk in body.chunks(4096) {
            if stream.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

pub fn respond_json(out: ResponseOutparam, status: u16, value: &serde_json::Value) {
    respond(
        out,
        status,
        &[("content-type", "application/json")],
        value.to_string().as_bytes(),
    );
}

/// The host's error shape: `{"error": {"code", "message"}}`.
pub fn error(out: ResponseOutparam, status: u16, code: &str, message: &str) {
    respond_json(
        out,
        status,
        &json!({"error": {"code": code, "message": message}}),
    );
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = wasip2::clocks::wall_clock::now();
    i64::try_from(now.seconds)
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(i64::from(now.nanoseconds / 1_000_000))
}

/// A random 128-bit id in hex.
pub fn new_id() -> String {
    format!(
        "{:016x}{:016x}",
        wasip2::random::random::get_random_u64(),
        wasip2::random::random::get_random_u64()
    )
}
