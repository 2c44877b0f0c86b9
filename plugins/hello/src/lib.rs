//! `hello`: the smallest useful HAM plugin, bundled with the host.
//!
//! - `GET /plugins/hello/` answers with the `greeting` variable.
//! - `GET /plugins/hello/visits` counts visits in plugin-wide storage, with a
//!   compare-and-swap loop so concurrent requests never lose a count.
//!
//! HTTP comes from the `wasip2` crate (a standard `wasi:http` proxy export); HAM's
//! own interfaces from wit-bindgen over `wit/`.

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    path: "../../wit",
    world: "ham:plugin/imports",
    generate_all,
});

use ham::plugin::{config, log, storage};

struct Hello;

wasip2::http::proxy::export!(Hello);

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match (request.method(), path.as_str()) {
            (Method::Get, "/" | "") => (200, greeting()),
            (Method::Get, "/visits") => match count_visit() {
                Ok(n) => (200, format!("{n}\n")),
                Err(e) => (500, format!("storage failed: {e:?}\n")),
            },
            _ => (404, "not found\n".to_string()),
        };
        respond(response_out, status, &body);
    }
}

fn greeting() -> String {
    let text = match config::get("greeting") {
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
    format!("{text}\n")
}

fn count_visit() -> Result<u64, storage::Error> {
    loop {
        let current = storage::get(storage::Scope::Plugin, "visits")?;
        let (count, expected) = match &current {
            Some(entry) => (parse_count(&entry.value) + 1, Some(entry.revision)),
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

fn parse_count(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::from_list(&[(
        "content-type".to_string(),
        b"text/plain; charset=utf-8".to_vec(),
    )])
    .unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    // A new response is a 200: only another status costs a host call.
    if status != 200 {
        let _ = response.set_status_code(status);
    }
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        // One host call per 4 KiB, the most `blocking-write-and-flush` takes;
        // `std::io::Write` would make three (check, write, flush).
        for chunk in body.as_bytes().chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
