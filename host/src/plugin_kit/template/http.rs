//! A HAM plugin that serves HTTP: a JSON hello that reads a variable (`config`)
//! and counts visits in the plugin's storage.
//!
//! - `GET /plugins/<name>/` and `GET /api/<name>/hello` (the route `plugin.toml`
//!   claims) answer `{"plugin", "greeting", "visits", "user"}`;
//! - anything else answers 404 in the host's error shape.
//!
//! HTTP comes from the `wasip2` crate (a standard `wasi:http` proxy export); HAM's
//! own interfaces from wit-bindgen over `wit/`.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    path: "wit",
    world: "ham:plugin/imports",
    generate_all,
});

use ham::plugin::{config, log, storage};

const PLUGIN: &str = env!("CARGO_PKG_NAME");

struct Plugin;

wasip2::http::proxy::export!(Plugin);

impl wasip2::exports::http::incoming_handler::Guest for Plugin {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let hello = format!("/api/{PLUGIN}/hello");
        match (request.method(), path) {
            (Method::Get, "/" | "") => hello_json(out),
            (Method::Get, p) if p == hello => hello_json(out),
            _ => respond(
                out,
                404,
                &format!(
                    "{{\"error\":{{\"code\":\"not_found\",\"message\":{}}}}}",
                    json_string(&format!("no route for {path}"))
                ),
            ),
        }
    }
}

fn hello_json(out: ResponseOutparam) {
    let greeting = match config::get("greeting") {
        Ok(Some(text)) => text,
        Ok(None) => "Hello".to_string(),
        Err(e) => {
            log::log(
                log::Level::Warn,
                "no greeting",
                &[("error".into(), format!("{e:?}"))],
            );
            "Hello".to_string()
        }
    };
    let visits = match count_visit() {
        Ok(n) => n,
        Err(e) => {
            log::log(
                log::Level::Error,
                "storage failed",
                &[("error".into(), format!("{e:?}"))],
            );
            let body = "{\"error\":{\"code\":\"storage_failed\",\"message\":\"could not count the visit\"}}";
            return respond(out, 500, body);
        }
    };
    // The user scope exists only when the request acts for a signed-in user.
    let user = match storage::get(storage::Scope::User, "seen") {
        Ok(_) => "signed in",
        Err(_) => "anonymous",
    };
    log::log(
        log::Level::Info,
        "hello",
        &[("visits".into(), visits.to_string())],
    );
    let body = format!(
        "{{\"plugin\":{},\"greeting\":{},\"visits\":{visits},\"user\":{}}}",
        json_string(PLUGIN),
        json_string(&greeting),
        json_string(user),
    );
    respond(out, 200, &body);
}

/// Adds one to the plugin-wide `visits` counter; compare-and-swap, so two
/// requests at once never lose a count.
fn count_visit() -> Result<u64, storage::Error> {
    loop {
        let current = storage::get(storage::Scope::Plugin, "visits")?;
        let (count, expected) = match &current {
            Some(entry) => {
                let n = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                (n + 1, Some(entry.revision))
            }
            None => (1, None),
        };
        let value = count.to_string().into_bytes();
        match storage::compare_and_swap(storage::Scope::Plugin, "visits", expected, &value) {
            Ok(_) => return Ok(count),
            Err(storage::Error::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn respond(out: ResponseOutparam, status: u16, json: &str) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
        .unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(json.as_bytes());
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}
