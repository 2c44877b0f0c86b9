//! What HAM's HTTP plugin components (the coach, the Strava sync, reminders)
//! share, on `wasi:http` through the `wasip2` crate: the request body with a
//! size cap, a response written whole, JSON answers and the host's error shape
//! (`{"error": {"code", "message"}}`), one outgoing request ([`call`]), the wall
//! clock and random ids.

use std::io::Read as _;

use serde_json::json;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{OutputStream, StreamError};

/// Longest response body [`call`] reads.
const MAX_UPSTREAM_BODY: u64 = 8 * 1024 * 1024;

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
    // A new response is a 200: only another status costs a host call.
    if status != 200 {
        let _ = response.set_status_code(status);
    }
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        let _ = write_flushed(&stream, body);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Writes `bytes` and waits until they are flushed: one host call per 4 KiB,
/// the most `blocking-write-and-flush` takes, where `std::io::Write` makes three
/// (check, write, flush).
pub fn write_flushed(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    bytes
        .chunks(4096)
        .try_for_each(|chunk| stream.blocking_write_and_flush(chunk))
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

/// An answer to an outgoing request.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request to `url` (no redirects followed). `Err` when it could not be made
/// or got no answer: refused by the host's policy, or a network failure.
pub fn call(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Reply, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` has no scheme"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| format!("header {name}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_method(&method)
        .map_err(|()| "method".to_string())?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "scheme".to_string())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("authority `{authority}`"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path".to_string())?;
    let outgoing = request.body().map_err(|()| "request body".to_string())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("refused: {e:?}"))?;
    if let Some(body) = body
        && let Ok(stream) = outgoing.write()
    {
        write_flushed(&stream, body).map_err(|e| format!("sending the body: {e:?}"))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("finishing the body: {e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let mut buf = Vec::new();
    let body = response
        .consume()
        .map_err(|()| "response body".to_string())?;
    let stream = body.stream().map_err(|()| "response stream".to_string())?;
    let _ = stream.take(MAX_UPSTREAM_BODY).read_to_end(&mut buf);
    Ok(Reply {
        status,
        headers,
        body: buf,
    })
}
