//! `strava-sync`: Strava workouts become activities and habit check-ins
//! (docs/strava.md).
//!
//! Routes (claimed in `plugin.toml`):
//! - `GET /api/strava/webhook` (no auth): Strava's subscription check; echoes
//!   `hub.challenge` when `hub.verify_token` matches, else 403.
//! - `POST /api/strava/webhook` (no auth): an event. Validated (a malformed one
//!   is a 400), then, for a connected athlete and the configured subscription,
//!   queued as a job acting for the athlete's user (`jobs.enqueue-granted` with
//!   the grant stored when the user connected), at most one pending per object
//!   and [`pending::MAX_PER_ATHLETE`] per athlete. Every well-formed event gets the
//!   same answer, 200 `{"status":"received"}`, whether it was queued, folded into
//!   a pending job, or dropped: the answer tells an outsider nothing about which
//!   athletes use this server. Never waits on Strava; the job row is the durable
//!   record of the event.
//! - `GET /api/strava/connect` -> 302 to Strava's authorize page, with a
//!   single-use `state` kept in the user's storage; `GET /api/strava/callback`
//!   checks it, exchanges the code, seals the tokens, and redirects to `/strava`.
//! - `GET /api/strava/status`, `DELETE /api/strava/connection`,
//!   `POST /api/strava/backfill {"since"}`, `GET|POST /api/strava/rules`,
//!   `PATCH|DELETE /api/strava/rules/{id}`.
//!
//! Storage: user scope `connection` (sealed tokens), `status`, `rules`,
//! `activity/<id>` (its local date), `day/<date>` (see `sync::recompute`),
//! `oauth-state/<nonce>` (expiry, ms), `event-budget` (see [`budget`]); plugin
//! scope `athlete/<id>` (the grant for that athlete's user), `ratelimit/until`,
//! `pending/<athlete>/<type>/<id>` and `swept/<athlete>` (see [`pending`]).

mod budget;
mod dates;
mod http;
mod pending;
mod rules;
mod strava;
mod sync;

use serde_json::{Value, json};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

#[allow(unsafe_code, reason = "wit-bindgen's generated export glue")]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package ham:strava-sync;
            world strava-sync {
                include ham:plugin/imports@0.1.0;
                export ham:plugin/job-handler@0.1.0;
            }
        ",
        world: "ham:strava-sync/strava-sync",
        generate_all,
    });

    use super::StravaSync;
    export!(StravaSync with_types_in self);
}

use bindings::exports::ham::plugin::job_handler::{self, Job, JobError};
use bindings::ham::plugin::storage::{self, Scope};
use bindings::ham::plugin::types::Error as HostError;
use bindings::ham::plugin::{jobs, log};
use guest_http::new_id;
pub use guest_http::now_ms;
use http::{error, param, respond_json};
use strava::{Config, Connection, Status};

/// The source of everything this plugin writes.
pub const SOURCE: &str = "strava";
/// How long a connect `state` stays valid.
const STATE_TTL_MS: i64 = 10 * 60_000;
const STATE_PREFIX: &str = "oauth-state/";
/// Most connect attempts one user may have open (states not yet expired).
const MAX_OPEN_STATES: usize = 20;
/// The webhook's answer to every well-formed event.
const RECEIVED: &str = r#"{"status":"received"}"#;

struct StravaSync;

wasip2::http::proxy::export!(StravaSync);

impl wasip2::exports::http::incoming_handler::Guest for StravaSync {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (path, query) = http::path_and_query(&request);
        let path = path.trim_end_matches('/');
        let method = request.method();
        if matches!((&method, path), (Method::Get, "/api/strava/status")) {
            return status(out);
        }
        let cfg = match Config::load() {
            Ok(cfg) => cfg,
            Err(why) => {
                return error(
                    out,
                    503,
                    "not_configured",
                    &format!("the Strava sync is not configured: {why}"),
                );
            }
        };
        match (method, path) {
            (Method::Get, "/api/strava/webhook") => verify(&cfg, &query, out),
            (Method::Post, "/api/strava/webhook") => event(&cfg, &request, out),
            (Method::Get, "/api/strava/connect") => connect(&cfg, &request, out),
            (Method::Get, "/api/strava/callback") => callback(&cfg, &query, out),
            (Method::Delete, "/api/strava/connection") => disconnect(&cfg, out),
            (Method::Post, "/api/strava/backfill") => backfill(&request, out),
            (Method::Get, "/api/strava/rules") => list_rules(out),
            (Method::Post, "/api/strava/rules") => create_rule(&request, out),
            (method, p) => match p.strip_prefix("/api/strava/rules/") {
                Some(id) if matches!(method, Method::Patch) => update_rule(id, &request, out),
                Some(id) if matches!(method, Method::Delete) => delete_rule(id, out),
                _ => error(out, 404, "not_found", "no such Strava route"),
            },
        }
    }
}

fn host_error(out: ResponseOutparam, e: &HostError) {
    log::log(
        log::Level::Error,
        "host call failed",
        &[("error".into(), format!("{e:?}"))],
    );
    match e {
        HostError::AccessDenied(why) => error(out, 401, "unauthorized", why),
        HostError::QuotaExceeded => error(out, 507, "storage_full", "the plugin's storage is full"),
        _ => error(
            out,
            500,
            "internal",
            "the Strava sync failed; see the server log",
        ),
    }
}

/// Compares without an early exit, so the time taken says nothing of the token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn verify(cfg: &Config, query: &[(String, String)], out: ResponseOutparam) {
    let mode = param(query, "hub.mode");
    let token = param(query, "hub.verify_token").unwrap_or_default();
    match param(query, "hub.challenge") {
        Some(challenge) if mode == Some("subscribe") && same(token, &cfg.verify_token) => {
            respond_json(out, 200, &json!({ "hub.challenge": challenge }))
        }
        _ => {
            log::log(log::Level::Warn, "webhook verification refused", &[]);
            error(out, 403, "forbidden", "the verify token does not match")
        }
    }
}

/// A webhook event. Whatever happens to a well-formed event, the answer is
/// [`RECEIVED`]: known or unknown athlete, queued, coalesced or dropped.
fn event(cfg: &Config, request: &IncomingRequest, out: ResponseOutparam) {
    let Some(body) = http::read_body(request) else {
        return error(out, 413, "too_large", "the event is too large");
    };
    let event = match sync::Event::parse(&body) {
        Ok(event) => event,
        Err(why) => return error(out, 400, "invalid_event", &why),
    };
    match intake(cfg, &event, &body) {
        Ok(()) => http::respond(
            out,
            200,
            &[("content-type", "application/json")],
            RECEIVED.as_bytes(),
        ),
        Err(e) => host_error(out, &e),
    }
}

/// Queues a job for an event when it should have one; `Ok` when it was queued,
/// folded into a pending job or dropped (each logged).
fn intake(cfg: &Config, event: &sync::Event, body: &[u8]) -> Result<(), HostError> {
    let dropped = |level: log::Level, why: &str| {
        log::log(
            level,
            "webhook event dropped",
            &[
                ("why".into(), why.to_string()),
                ("owner".into(), event.owner_id.to_string()),
                (
                    "object".into(),
                    format!("{}/{}", event.object_type, event.object_id),
                ),
                ("subscription".into(), event.subscription_id.to_string()),
            ],
        );
    };
    if let Some(expected) = &cfg.subscription_id
        && *expected != event.subscription_id.to_string()
    {
        dropped(log::Level::Info, "another subscription");
        return Ok(());
    }
    let Some(grant) = storage::get(Scope::Plugin, &format!("athlete/{}", event.owner_id))? else {
        dropped(log::Level::Info, "no user connected this athlete");
        return Ok(());
    };
    let grant = String::from_utf8_lossy(&grant.value).into_owned();
    if !event.actionable() {
        dropped(log::Level::Info, "nothing to do for this event");
        return Ok(());
    }
    let marker = event.marker();
    match marker.admit()? {
        pending::Admission::Queue => {}
        pending::Admission::Coalesced => return Ok(()),
        pending::Admission::Full => {
            dropped(log::Level::Warn, "too many events pending for this athlete");
            return Ok(());
        }
    }
    let run_after = now_ms() + pending::COALESCE_MS;
    match jobs::enqueue_granted(&grant, "event", body, Some(run_after)) {
        Ok(_) => Ok(()),
        Err(e) => {
            marker.release();
            match e {
                // A grant from another host secret: that connection cannot be served.
                HostError::AccessDenied(_) => {
                    dropped(log::Level::Warn, "stale grant; the user must reconnect");
                    Ok(())
                }
                e => Err(e),
            }
        }
    }
}

/// `https://host` of the request, as the browser sees it.
fn public_base(request: &IncomingRequest) -> String {
    let host = http::header(request, "x-forwarded-host")
        .or_else(|| request.authority())
        .or_else(|| http::header(request, "host"))
        .unwrap_or_else(|| "localhost".into());
    let proto = http::header(request, "x-forwarded-proto").unwrap_or_else(|| "http".into());
    format!("{proto}://{host}")
}

/// Deletes the user's expired connect states; returns how many are still open.
fn sweep_states(now: i64) -> Result<usize, HostError> {
    let mut open = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = storage::list_keys(Scope::User, STATE_PREFIX, cursor.as_deref(), 100)?;
        for key in page.keys {
            let until = storage::get(Scope::User, &key)?
                .and_then(|e| String::from_utf8_lossy(&e.value).parse::<i64>().ok());
            if until.is_some_and(|until| until >= now) {
                open += 1;
            } else {
                storage::delete(Scope::User, &key)?;
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(open),
        }
    }
}

fn connect(cfg: &Config, request: &IncomingRequest, out: ResponseOutparam) {
    let now = now_ms();
    // States never used do not pile up: each connect deletes the expired ones, and
    // a user has at most MAX_OPEN_STATES open at once.
    match sweep_states(now) {
        Ok(open) if open >= MAX_OPEN_STATES => {
            return error(
                out,
                429,
                "too_many_attempts",
                "too many connect attempts in the last 10 minutes; try again later",
            );
        }
        Ok(_) => {}
        Err(e) => return host_error(out, &e),
    }
    let state = new_id();
    let until = (now + STATE_TTL_MS).to_string();
    if let Err(e) = storage::set(
        Scope::User,
        &format!("{STATE_PREFIX}{state}"),
        until.as_bytes(),
    ) {
        return host_error(out, &e);
    }
    let redirect_uri = format!("{}/api/strava/callback", public_base(request));
    let query = http::form(&[
        ("client_id", &cfg.client_id),
        ("redirect_uri", &redirect_uri),
        ("response_type", "code"),
        ("approval_prompt", "auto"),
        ("scope", "read,activity:read_all"),
        ("state", &state),
    ]);
    http::redirect(out, &format!("{}/authorize?{query}", cfg.oauth));
}

fn callback(cfg: &Config, query: &[(String, String)], out: ResponseOutparam) {
    let state = param(query, "state").unwrap_or_default();
    let valid_state = !state.is_empty()
        && state.len() <= 64
        && state.bytes().all(|b| b.is_ascii_hexdigit())
        && match storage::get(Scope::User, &format!("{STATE_PREFIX}{state}")) {
            Ok(Some(e)) => {
                let until = String::from_utf8_lossy(&e.value)
                    .parse::<i64>()
                    .unwrap_or(0);
                // Single use: only the call that deletes it goes on.
                matches!(
                    storage::delete(Scope::User, &format!("{STATE_PREFIX}{state}")),
                    Ok(true)
                ) && until >= now_ms()
            }
            Ok(None) => false,
            Err(e) => return host_error(out, &e),
        };
    if !valid_state {
        return error(
            out,
            400,
            "invalid_state",
            "this sign-in link is stale or was used already; connect again",
        );
    }
    if param(query, "error").is_some() {
        return http::redirect(out, "/strava?error=denied");
    }
    let Some(code) = param(query, "code").filter(|c| !c.is_empty()) else {
        return error(out, 400, "invalid_request", "code: missing");
    };
    if let Some(scope) = param(query, "scope")
        && !scope.split(',').any(|s| s.starts_with("activity:read"))
    {
        return http::redirect(out, "/strava?error=scope");
    }
    let tokens =
        match strava::token_request(cfg, &[("code", code), ("grant_type", "authorization_code")]) {
            Ok(t) => t,
            Err(e) => {
                log::log(
                    log::Level::Warn,
                    "code exchange failed",
                    &[("error".into(), format!("{e:?}"))],
                );
                return error(out, 502, "upstream", "Strava did not accept the sign-in");
            }
        };
    let Some(athlete_id) = tokens
        .athlete
        .as_ref()
        .and_then(|a| a.get("id"))
        .and_then(Value::as_u64)
    else {
        return error(out, 502, "upstream", "Strava named no athlete");
    };
    let athlete = tokens.athlete.as_ref().map(|a| {
        json!({
            "id": athlete_id,
            "firstname": a.get("firstname").cloned().unwrap_or(Value::Null),
            "lastname": a.get("lastname").cloned().unwrap_or(Value::Null),
        })
    });
    let conn = Connection {
        athlete_id,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: tokens.expires_at,
    };
    let stored = (|| -> Result<(), HostError> {
        conn.save()?;
        let status = Status {
            athlete,
            ..Status::default()
        };
        status.save()?;
        let grant = jobs::grant()?;
        storage::set(
            Scope::Plugin,
            &format!("athlete/{athlete_id}"),
            grant.as_bytes(),
        )?;
        Ok(())
    })();
    match stored {
        Ok(()) => {
            log::log(
                log::Level::Info,
                "Strava connected",
                &[("athlete".into(), athlete_id.to_string())],
            );
            http::redirect(out, "/strava");
        }
        Err(e) => host_error(out, &e),
    }
}

fn status(out: ResponseOutparam) {
    let configured = Config::load().is_ok();
    let found = Connection::load().and_then(|c| Ok((c, Status::load()?)));
    match found {
        Ok((conn, status)) => respond_json(
            out,
            200,
            &json!({
                "configured": configured,
                "connected": conn.is_some(),
                "needs_reconnect": status.needs_reconnect,
                "athlete": status.athlete,
                "last_sync": status.last_sync,
                "last_error": status.last_error,
            }),
        ),
        Err(e) => host_error(out, &e),
    }
}

fn disconnect(cfg: &Config, out: ResponseOutparam) {
    let conn = match Connection::load() {
        Ok(c) => c,
        Err(e) => return host_error(out, &e),
    };
    if let Some(conn) = &conn {
        strava::deauthorize(cfg, conn);
        if let Err(e) = sync::forget_connection(conn.athlete_id) {
            return host_error(out, &e);
        }
    }
    http::respond(out, 204, &[], b"");
}

fn backfill(request: &IncomingRequest, out: ResponseOutparam) {
    let body = http::read_body(request).unwrap_or_default();
    let since = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("since").and_then(Value::as_str).map(str::to_string));
    let Some(day) = since.as_deref().and_then(dates::parse_day) else {
        return error(
            out,
            400,
            "invalid_request",
            "since: required, a date YYYY-MM-DD",
        );
    };
    match Connection::load() {
        Ok(Some(_)) => {}
        Ok(None) => return error(out, 409, "not_connected", "connect Strava first"),
        Err(e) => return host_error(out, &e),
    }
    let page = sync::BackfillPage {
        after: day * 86_400,
        page: 1,
    };
    let bytes = serde_json::to_vec(&page).unwrap_or_default();
    match jobs::enqueue("backfill", &bytes, None) {
        Ok(id) => respond_json(out, 202, &json!({"job_id": id})),
        Err(e) => host_error(out, &e),
    }
}

fn list_rules(out: ResponseOutparam) {
    match rules::load() {
        Ok(list) => respond_json(out, 200, &json!({ "rules": list })),
        Err(e) => host_error(out, &e),
    }
}

fn rule_body(request: &IncomingRequest) -> Result<serde_json::Map<String, Value>, String> {
    let body = http::read_body(request).ok_or("the body is too large")?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("expected a JSON object".into()),
    }
}

fn invalid(out: ResponseOutparam, e: rules::Invalid) {
    match e {
        rules::Invalid::Field(why) => error(out, 400, "invalid_rule", &why),
        rules::Invalid::Host(e) => host_error(out, &e),
    }
}

fn create_rule(request: &IncomingRequest, out: ResponseOutparam) {
    let body = match rule_body(request) {
        Ok(b) => b,
        Err(why) => return error(out, 400, "invalid_rule", &why),
    };
    let mut list = match rules::load() {
        Ok(l) => l,
        Err(e) => return host_error(out, &e),
    };
    if list.len() >= rules::MAX_RULES {
        return error(
            out,
            400,
            "invalid_rule",
            &format!("at most {} rules", rules::MAX_RULES),
        );
    }
    let rule = match rules::validate(&new_id(), &body) {
        Ok(r) => r,
        Err(e) => return invalid(out, e),
    };
    list.push(rule.clone());
    match rules::save(&list) {
        Ok(()) => respond_json(out, 201, &json!(rule)),
        Err(e) => host_error(out, &e),
    }
}

fn update_rule(id: &str, request: &IncomingRequest, out: ResponseOutparam) {
    let patch = match rule_body(request) {
        Ok(b) => b,
        Err(why) => return error(out, 400, "invalid_rule", &why),
    };
    let mut list = match rules::load() {
        Ok(l) => l,
        Err(e) => return host_error(out, &e),
    };
    let Some(i) = list.iter().position(|r| r.id == id) else {
        return error(out, 404, "not_found", "no such rule");
    };
    let mut merged = match serde_json::to_value(&list[i]) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in patch {
        if k != "id" {
            merged.insert(k, v);
        }
    }
    let rule = match rules::validate(id, &merged) {
        Ok(r) => r,
        Err(e) => return invalid(out, e),
    };
    list[i] = rule.clone();
    match rules::save(&list) {
        Ok(()) => respond_json(out, 200, &json!(rule)),
        Err(e) => host_error(out, &e),
    }
}

fn delete_rule(id: &str, out: ResponseOutparam) {
    let mut list = match rules::load() {
        Ok(l) => l,
        Err(e) => return host_error(out, &e),
    };
    let before = list.len();
    list.retain(|r| r.id != id);
    if list.len() == before {
        return error(out, 404, "not_found", "no such rule");
    }
    match rules::save(&list) {
        Ok(()) => http::respond(out, 204, &[], b""),
        Err(e) => host_error(out, &e),
    }
}

impl job_handler::Guest for StravaSync {
    fn handle(job: Job) -> Result<(), JobError> {
        if job.user_id.is_none() {
            return Err(JobError::Fail(format!(
                "{} jobs act for a connected user; this one acts for none",
                job.kind
            )));
        }
        match job.kind.as_str() {
            "event" => sync::run_event(&job.id, &job.payload),
            "backfill" => sync::run_backfill(&job.payload),
            other => Err(JobError::Fail(format!("unknown job kind `{other}`"))),
        }
    }
}
