//! HTTP both ways: reading requests and writing responses for the routes, and
//! calling out (`wasi:http/outgoing-handler`) to Strava.

use std::io::{Read as _, Write as _};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, ResponseOutparam, Scheme,
};

pub use guest_http::{error, read_body, respond, respond_json};
/// Longest response body read from Strava.
const MAX_UPSTREAM_BODY: u64 = 8 * 1024 * 1024;

/// The first value of a request header.
pub fn header(request: &IncomingRequest, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Percent-decodes a query or form value (`+` is a space).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query or form value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=1&b=2` as pairs, decoded.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The value of `name` in decoded pairs.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Pairs as a query string or form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn redirect(out: ResponseOutparam, location: &str) {
    respond(
        out,
        302,
        &[("location", location), ("cache-control", "no-store")],
        b"",
    );
}

/// An answer from Strava.
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
    if let Ok(mut stream) = outgoing.write() {
        if let Some(body) = body {
            for chunk in body.chunks(4096) {
                stream
                    .write_all(chunk)
                    .map_err(|e| format!("sending the body: {e}"))?;
            }
        }
        let _ = stream.flush();
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

/// The path of a request without its query, and its decoded query pairs.
pub fn path_and_query(request: &IncomingRequest) -> (String, Vec<(String, String)>) {
    let full = request.path_with_query().unwrap_or_default();
    match full.split_once('?') {
        Some((path, query)) => (path.to_string(), parse_query(query)),
        None => (full, Vec::new()),
    }
}
