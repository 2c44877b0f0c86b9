//! A test guest that does what a request asks, so tests can drive the host's
//! limits and interfaces through one component:
//!
//! - `/loop`: spins forever (deadline test); `/alloc?mb=N`: allocates and touches N MiB
//! - `/count`: how many requests this instance has served, itself included (a
//!   static: 1 on a fresh instance, more on a reused one)
//! - `/trap`: panics; `/sleep?ms=N`: waits on a wasi clock, then answers `label`
//! - `/label`: the `label` variable (500 when it is `fail`: a version that fails
//!   every request, for rollouts); `/config/NAME`: any variable, or its error
//! - `/fetch?url=U`: GET U, following up to 3 redirects itself; 502 with the error
//! - `/habits`: the acting user's habit names; `/habits/checkin?habit=ID&date=D`
//!   records done; `/habits/run?id=X&km=N&date=D` upserts an activity; `/habits/activities`
//!   lists activity names
//! - `/jobs/enqueue?kind=K&payload=P`: queues a job for this plugin (see `handle`)
//! - `/echo`: streams the request body back
//! - `/stream?n=N&ms=M`: writes N lines, M ms apart, flushing each
//! - `/kv/{plugin|user}/KEY`: GET, PUT (body), DELETE; `POST …?cas=REV|none` is
//!   compare-and-swap; `GET /kv/{scope}?prefix=P&cursor=C&limit=N` lists keys

use std::io::{Read as _, Write as _};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:probe;
        world probe {
            include ham:plugin/imports@0.1.0;
            export ham:plugin/job-handler@0.1.0;
        }
    ",
    world: "test:probe/probe",
    generate_all,
});

use exports::ham::plugin::job_handler::{self, Job, JobError, RetryLater};
use ham::plugin::{config, habits, jobs, storage};

export!(Probe);

/// Jobs by kind: `count` adds one to `count/<payload>` (and marks the user scope
/// when it runs for a user); `slow` sleeps `<payload>` ms, then adds one to
/// `count/slow<payload>`; `flaky` fails until its third attempt; `broken`
/// always asks for a retry; `fatal` gives up; `later` asks once to wait 300 ms.
impl job_handler::Guest for Probe {
    fn handle(job: Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            "count" => {
                let key = format!("count/{}", String::from_utf8_lossy(&job.payload));
                loop {
                    let current = storage::get(storage::Scope::Plugin, &key)
                        .map_err(|e| JobError::Retry(format!("{e:?}")))?;
                    let (n, expected) = match current {
                        Some(e) => (
                            String::from_utf8_lossy(&e.value)
                                .parse::<u64>()
                                .unwrap_or(0)
                                + 1,
                            Some(e.revision),
                        ),
                        None => (1, None),
                    };
                    match storage::compare_and_swap(
                        storage::Scope::Plugin,
                        &key,
                        expected,
                        n.to_string().as_bytes(),
                    ) {
                        Ok(_) => break,
                        Err(storage::Error::Conflict) => continue,
                        Err(e) => return Err(JobError::Retry(format!("{e:?}"))),
                    }
                }
                if job.user_id.is_some() {
                    storage::set(storage::Scope::User, "job-ran", b"yes")
                        .map_err(|e| JobError::Retry(format!("{e:?}")))?;
                }
                Ok(())
            }
            "slow" => {
                // Sleeps for the payload's milliseconds, then counts like `count`:
                // a host killed meanwhile leaves it running until its lease ends.
                let ms: u64 = String::from_utf8_lossy(&job.payload)
                    .parse()
                    .unwrap_or(1000);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                let key = format!("count/slow{ms}");
                let current = storage::get(storage::Scope::Plugin, &key)
                    .map_err(|e| JobError::Retry(format!("{e:?}")))?;
                let n = current.map_or(0, |e| {
                    String::from_utf8_lossy(&e.value)
                        .parse::<u64>()
                        .unwrap_or(0)
                }) + 1;
                storage::set(storage::Scope::Plugin, &key, n.to_string().as_bytes())
                    .map_err(|e| JobError::Retry(format!("{e:?}")))?;
                Ok(())
            }
            "flaky" if job.attempt < 3 => {
                Err(JobError::Retry(format!("flaky attempt {}", job.attempt)))
            }
            "flaky" => Ok(()),
            "broken" => Err(JobError::Retry("boom".into())),
            "fatal" => Err(JobError::Fail("nope".into())),
            "later"
                if job.attempt == 1
                    && storage::get(storage::Scope::Plugin, "later-waited")
                        .ok()
                        .flatten()
                        .is_none() =>
            {
                let _ = storage::set(storage::Scope::Plugin, "later-waited", b"1");
                Err(JobError::RetryAfter(RetryLater {
                    reason: "rate limited".into(),
                    after_ms: 300,
                }))
            }
            "later" => Ok(()),
            other => Err(JobError::Fail(format!("unknown kind {other}"))),
        }
    }
}

struct Probe;

wasip2::http::proxy::export!(Probe);

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        // Requests this instance has served, this one included: state that lives
        // as long as the instance, as a careless plugin's would.
        static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let full = request.path_with_query().unwrap_or_default();
        let (path, query) = full.split_once('?').unwrap_or((full.as_str(), ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                kv.strip_prefix(name)
                    .and_then(|v| v.strip_prefix('='))
                    .map(decode)
            })
        };
        let method = request.method();
        let (status, body): (u16, Vec<u8>) = match (method, path) {
            (_, "/loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            (_, "/alloc") => {
                let mb: usize = param("mb").and_then(|v| v.parse().ok()).unwrap_or(1);
                let mut v = vec![0u8; mb << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                (
                    200,
                    format!("allocated {} MiB\n", std::hint::black_box(v).len() >> 20).into_bytes(),
                )
            }
            (_, "/count") => (200, served.to_string().into_bytes()),
            (_, "/trap") => panic!("the probe was asked to trap"),
            (_, "/sleep") => {
                let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(100);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                (200, label().into_bytes())
            }
            (_, "/label") => match label() {
                label if label == "fail" => (500, label.into_bytes()),
                label => (200, label.into_bytes()),
            },
            (_, p) if p.starts_with("/config/") => match config::get(&p["/config/".len()..]) {
                Ok(v) => (200, format!("{v:?}").into_bytes()),
                Err(e) => (400, format!("{e:?}").into_bytes()),
            },
            (_, "/fetch") => match fetch(&param("url").unwrap_or_default(), 3) {
                Ok((status, body)) => (200, [format!("{status}\n").into_bytes(), body].concat()),
                Err(e) => (502, e.into_bytes()),
            },
            (_, "/echo") => (200, read_body(&request)),
            (_, "/headers") => {
                let lines: String = request
                    .headers()
                    .entries()
                    .into_iter()
                    .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(&value)))
                    .collect();
                (200, lines.into_bytes())
            }
            (_, p) if p.ends_with("/plant") => {
                // A page that tries to plant a cookie and run script on the app's origin.
                let headers = Fields::new();
                for (name, value) in [
                    ("set-cookie", "ham_session=planted; Path=/"),
                    ("set-cookie", "other=1; Path=/"),
                    ("content-type", "text/html"),
                    ("access-control-allow-credentials", "true"),
                ] {
                    let _ = headers.append(name, value.as_bytes());
                }
                let response = OutgoingResponse::new(headers);
                let _ = response.set_status_code(200);
                let outgoing = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let stream = outgoing.write().expect("stream");
                stream
                    .blocking_write_and_flush(b"<script>document.title = 'owned'</script>")
                    .expect("write");
                drop(stream);
                OutgoingBody::finish(outgoing, None).expect("finish");
                return;
            }
            (_, p) if p.starts_with("/habits") => habits_call(p, &param),
            (_, "/jobs/enqueue") => {
                let kind = param("kind").unwrap_or_default();
                let payload = param("payload").unwrap_or_default();
                match jobs::enqueue(&kind, payload.as_bytes(), None) {
                    Ok(id) => (200, id.into_bytes()),
                    Err(e) => (400, format!("{e:?}").into_bytes()),
                }
            }
            (_, "/short") => return short_body(out),
            (_, "/stream") => {
                let n: u32 = param("n").and_then(|v| v.parse().ok()).unwrap_or(3);
                let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(100);
                return stream_lines(out, n, ms);
            }
            (m, p) if p.starts_with("/kv/") => kv(m, &p["/kv/".len()..], &param, &request),
            _ => (404, b"no such probe\n".to_vec()),
        };
        respond(out, status, &body);
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn label() -> String {
    match config::get("label") {
        Ok(Some(v)) => v,
        other => format!("{other:?}"),
    }
}

fn kv(
    method: Method,
    rest: &str,
    param: &dyn Fn(&str) -> Option<String>,
    request: &IncomingRequest,
) -> (u16, Vec<u8>) {
    let (scope, key) = rest.split_once('/').unwrap_or((rest, ""));
    let scope = match scope {
        "plugin" => storage::Scope::Plugin,
        "user" => storage::Scope::User,
        _ => return (400, b"scope is plugin or user\n".to_vec()),
    };
    let result: Result<String, storage::Error> = match (method, key) {
        (Method::Get, "") => {
            let limit = param("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
            storage::list_keys(
                scope,
                &param("prefix").unwrap_or_default(),
                param("cursor").as_deref(),
                limit,
            )
            .map(|page| {
                format!(
                    "{}\n{}",
                    page.keys.join(","),
                    page.cursor.unwrap_or_default()
                )
            })
        }
        (Method::Get, key) => storage::get(scope, key).map(|e| match e {
            Some(e) => format!("{}\n{}", e.revision, String::from_utf8_lossy(&e.value)),
            None => "absent".to_string(),
        }),
        (Method::Put, key) => storage::set(scope, key, &read_body(request)).map(|r| r.to_string()),
        (Method::Delete, key) => storage::delete(scope, key).map(|d| d.to_string()),
        (Method::Post, key) => {
            let expected = match param("cas").as_deref() {
                Some("none") | None => None,
                Some(rev) => rev.parse().ok(),
            };
            storage::compare_and_swap(scope, key, expected, &read_body(request))
                .map(|r| r.to_string())
        }
        _ => return (405, Vec::new()),
    };
    match result {
        Ok(text) => (200, text.into_bytes()),
        Err(storage::Error::Conflict) => (409, b"conflict".to_vec()),
        Err(storage::Error::QuotaExceeded) => (507, b"quota-exceeded".to_vec()),
        Err(storage::Error::AccessDenied(why)) => (403, why.into_bytes()),
        Err(e) => (400, format!("{e:?}").into_bytes()),
    }
}

fn habits_call(path: &str, param: &dyn Fn(&str) -> Option<String>) -> (u16, Vec<u8>) {
    let result: Result<String, habits::Error> = match path {
        "/habits" => habits::list_habits()
            .map(|hs| hs.into_iter().map(|h| h.name).collect::<Vec<_>>().join(",")),
        "/habits/checkin" => habits::upsert_entry(&habits::Entry {
            habit_id: param("habit").unwrap_or_default(),
            date: param("date").unwrap_or_default(),
            value: habits::EntryValue::Done,
            note: Some("from the probe".into()),
            source: String::new(),
        })
        .map(|()| "ok".into()),
        "/habits/uncheck" => habits::delete_entry(
            &param("habit").unwrap_or_default(),
            &param("date").unwrap_or_default(),
        )
        .map(|deleted| deleted.to_string()),
        "/habits/run" => {
            let date = param("date").unwrap_or_default();
            habits::upsert_activity(&habits::Activity {
                source: "probe".into(),
                external_id: param("id").unwrap_or_default(),
                sport_type: "Run".into(),
                name: format!("Run {}", param("id").unwrap_or_default()),
                start: 0,
                start_local: format!("{date}T07:00:00"),
                distance_m: param("km")
                    .and_then(|k| k.parse::<f64>().ok())
                    .map(|k| k * 1000.0),
                moving_time_s: Some(1800),
                elapsed_time_s: None,
                elevation_gain_m: None,
                average_heartrate: None,
            })
            .map(|()| "ok".into())
        }
        "/habits/activities" => habits::list_activities(i64::MIN, i64::MAX).map(|acts| {
            acts.into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(",")
        }),
        "/habits/settings" => habits::get_settings().map(|s| s.time_zone),
        _ => return (404, Vec::new()),
    };
    match result {
        Ok(text) => (200, text.into_bytes()),
        Err(habits::Error::AccessDenied(why)) => (403, why.into_bytes()),
        Err(habits::Error::NotFound) => (404, b"not-found".to_vec()),
        Err(e) => (400, format!("{e:?}").into_bytes()),
    }
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut buf);
    }
    buf
}

fn fetch(url: &str, redirects_left: u32) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url.split_once("://").ok_or("url needs a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&if scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        }))
        .map_err(|_| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|_| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| "path")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("refused: {e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("failed: {e:?}"))?;
    let status = response.status();
    if (300..400).contains(&status) && redirects_left > 0 {
        let location = response
            .headers()
            .get("location")
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or("redirect without location")?;
        return fetch(&location, redirects_left - 1);
    }
    let mut buf = Vec::new();
    let body = response.consume().map_err(|_| "body")?;
    let mut stream = body.stream().map_err(|_| "stream")?;
    let _ = stream.read_to_end(&mut buf);
    Ok((status, buf))
}

fn stream_lines(out: ResponseOutparam, n: u32, ms: u64) {
    let response = OutgoingResponse::new(Fields::new());
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream");
    for i in 0..n {
        stream
            .write_all(format!("line {i}\n").as_bytes())
            .expect("write");
        stream.flush().expect("flush");
        wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish");
}

/// Promises ten bytes (`content-length`) and writes three: the host refuses to
/// end the body.
fn short_body(out: ResponseOutparam) {
    let headers =
        Fields::from_list(&[("content-length".to_string(), b"10".to_vec())]).expect("headers");
    let response = OutgoingResponse::new(headers);
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream");
    let _ = stream.blocking_write_and_flush(b"abc");
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(status);
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream");
    // Write in chunks: one write call may take at most 4096 bytes.
    for chunk in body.chunks(4096) {
        stream.write_all(chunk).expect("write");
    }
    stream.flush().expect("flush");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish");
}
