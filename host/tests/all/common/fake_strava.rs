//! A fake Strava on loopback: OAuth (authorize, token exchange and refresh,
//! deauthorize), the API (the athlete, athlete activities with paging, activity
//! detail: 404 once removed, 403 once hidden) with rate-limit headers (counted, or
//! fixed with [`FakeStrava::rate_usage`]), scripted failures (429, 500, 401, a
//! stall), short-lived tokens, an athlete revoking access
//! ([`FakeStrava::revoke_athlete`]), a log of every request and of every refresh
//! grant. Plus [`post_event`] and [`post_event_answer`], which post a webhook
//! event the way Strava does, [`FakeStrava::plugin_env`], the variables that
//! point the plugin here, and [`FakeStrava::connect`], a browser's walk through
//! the OAuth redirects.
//!
//! Base URLs: API `{url}/api/v3`, OAuth `{url}/oauth`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use sqlx::Row as _;

use super::TestServer;

pub const ATHLETE_ID: u64 = 4242;
pub const CLIENT_ID: &str = "12345";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const VERIFY_TOKEN: &str = "fake-verify-token";
pub const SUBSCRIPTION_ID: u64 = 777;

#[derive(Default)]
struct Inner {
    activities: BTreeMap<u64, Value>,
    /// Activities made private to the app: 403.
    hidden: std::collections::BTreeSet<u64>,
    codes: HashMap<String, u64>,
    /// access token -> athlete
    access: HashMap<String, u64>,
    /// refresh token -> athlete
    refresh: HashMap<String, u64>,
    /// Statuses to answer the next API calls with, before answering normally.
    script: VecDeque<u16>,
    stall: Option<Duration>,
    requests: Vec<String>,
    issued: u64,
    deauthorized: u64,
    /// `expires_at` handed out with new tokens, seconds from now.
    expires_in: i64,
    /// `X-RateLimit-Usage` on answers instead of the counted usage.
    usage: Option<String>,
    /// Every refresh-token grant: the token presented, the one issued (None when
    /// refused).
    refreshes: Vec<Refresh>,
}

/// One `grant_type=refresh_token` call at the token endpoint.
#[derive(Clone, Debug)]
pub struct Refresh {
    pub presented: String,
    pub issued: Option<String>,
}

/// The fake's handle: script it, read its log.
#[derive(Clone)]
pub struct FakeStrava {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeStrava {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            expires_in: 6 * 3600,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/token", post(token))
            .route("/oauth/deauthorize", post(deauthorize))
            .route("/api/v3/athlete", get(athlete))
            .route("/api/v3/activities/{id}", get(activity))
            .route("/api/v3/athlete/activities", get(athlete_activities))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    pub fn api_base(&self) -> String {
        format!("{}/api/v3", self.url)
    }

    pub fn oauth_base(&self) -> String {
        format!("{}/oauth", self.url)
    }

    /// Adds or replaces an activity of the athlete.
    pub fn put_activity(&self, activity: Value) {
        let id = activity["id"].as_u64().unwrap();
        self.inner.lock().unwrap().activities.insert(id, activity);
    }

    /// Deletes an activity: its detail answers 404 from now on.
    pub fn remove_activity(&self, id: u64) {
        self.inner.lock().unwrap().activities.remove(&id);
    }

    /// Makes an activity private to the app: its detail answers 403 from now on.
    pub fn hide_activity(&self, id: u64) {
        self.inner.lock().unwrap().hidden.insert(id);
    }

    /// The next API calls answer these statuses, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().script.extend(statuses);
    }

    /// Every API call waits this long first.
    pub fn stall(&self, delay: Option<Duration>) {
        self.inner.lock().unwrap().stall = delay;
    }

    /// New tokens expire this many seconds from now.
    pub fn expire_tokens_in(&self, seconds: i64) {
        self.inner.lock().unwrap().expires_in = seconds;
    }

    /// Answers carry this `X-RateLimit-Usage` (the limit is `100,1000`) instead of
    /// the counted usage; None goes back to counting.
    pub fn rate_usage(&self, usage: Option<&str>) {
        self.inner.lock().unwrap().usage = usage.map(str::to_string);
    }

    /// Every refresh-token grant so far, in order.
    pub fn refreshes(&self) -> Vec<Refresh> {
        self.inner.lock().unwrap().refreshes.clone()
    }

    /// The `HAM_PLUGIN_STRAVA_SYNC_*` variables that point the plugin at this fake.
    pub fn plugin_env(&self) -> Vec<(String, String)> {
        [
            ("CLIENT_ID", CLIENT_ID.to_string()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("VERIFY_TOKEN", VERIFY_TOKEN.to_string()),
            ("API_BASE_URL", self.api_base()),
            ("OAUTH_BASE_URL", self.oauth_base()),
            ("SUBSCRIPTION_ID", SUBSCRIPTION_ID.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (format!("HAM_PLUGIN_STRAVA_SYNC_{name}"), value))
        .collect()
    }

    /// Connects the signed-in user (`cookie`) of the HAM at `server_url` through
    /// this fake's OAuth, as a browser would, checking each step: HAM's redirect to
    /// the authorize page, the fake's redirect back, the callback's redirect to
    /// `/strava`, and that the `state` works once.
    pub async fn connect(&self, server_url: &str, cookie: &str) {
        let client = no_redirects();
        let to_strava = client
            .get(format!("{server_url}/api/strava/connect"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(to_strava.status(), 302);
        let authorize = location(&to_strava);
        assert!(
            authorize.starts_with(&format!("{}/authorize?", self.oauth_base())),
            "{authorize}"
        );
        for part in [
            "response_type=code",
            "approval_prompt=auto",
            "scope=read%2Cactivity%3Aread_all",
            "client_id=12345",
            "state=",
        ] {
            assert!(authorize.contains(part), "{part} missing in {authorize}");
        }
        let back = client.get(&authorize).send().await.unwrap();
        assert_eq!(back.status(), 303, "the fake redirects back");
        let callback = location(&back);
        assert!(
            callback.starts_with(&format!("{server_url}/api/strava/callback?")),
            "{callback}"
        );
        let done = client
            .get(&callback)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 302);
        assert_eq!(location(&done), "/strava");
        // The state is single use.
        let again = client
            .get(&callback)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 400);
    }

    /// Forgets every access token, as if Strava had revoked them.
    pub fn revoke_access_tokens(&self) {
        self.inner.lock().unwrap().access.clear();
    }

    /// The athlete revokes the app's access (what Strava's deauthorization
    /// event reports): every access and refresh token of theirs is refused from
    /// now on.
    pub fn revoke_athlete(&self, athlete: u64) {
        let mut g = self.inner.lock().unwrap();
        g.access.retain(|_, a| *a != athlete);
        g.refresh.retain(|_, a| *a != athlete);
    }

    /// `METHOD /path?query` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Every access and refresh token handed out.
    pub fn tokens(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .access
            .keys()
            .chain(inner.refresh.keys())
            .cloned()
            .collect()
    }

    pub fn deauthorized(&self) -> u64 {
        self.inner.lock().unwrap().deauthorized
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

/// A run of [`ATHLETE_ID`] as the API describes it, on `date` (local) at 07:00.
pub fn run(id: u64, name: &str, date: &str, distance_m: f64) -> Value {
    json!({
        "id": id,
        "athlete": {"id": ATHLETE_ID, "resource_state": 1},
        "name": name,
        "type": "Run",
        "sport_type": "Run",
        "start_date": format!("{date}T06:00:00Z"),
        "start_date_local": format!("{date}T07:00:00Z"),
        "timezone": "(GMT+01:00) Europe/Berlin",
        "distance": distance_m,
        "moving_time": 1800,
        "elapsed_time": 1900,
        "total_elevation_gain": 12.0,
        "private": false,
    })
}

/// A webhook event body.
pub fn event(object_type: &str, aspect: &str, object_id: u64, updates: Value) -> Value {
    json!({
        "aspect_type": aspect,
        "event_time": 1_700_000_000,
        "object_id": object_id,
        "object_type": object_type,
        "owner_id": ATHLETE_ID,
        "subscription_id": SUBSCRIPTION_ID,
        "updates": updates,
    })
}

/// Posts an event to HAM's webhook as Strava does (JSON, no auth); returns the
/// status and how long the answer took.
pub async fn post_event(server_url: &str, body: &Value) -> (u16, Duration) {
    let started = std::time::Instant::now();
    let answer = post_event_answer(server_url, body).await;
    (answer.status, started.elapsed())
}

/// What the webhook answered, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Posts an event like [`post_event`] and returns the whole answer.
pub async fn post_event_answer(server_url: &str, body: &Value) -> Answer {
    let response = super::client()
        .post(format!("{server_url}/api/strava/webhook"))
        .header("user-agent", "Strava Webhook")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

fn log(inner: &Arc<Mutex<Inner>>, line: String) {
    inner.lock().unwrap().requests.push(line);
}

fn query_string(q: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join("&")
}

async fn authorize(State(inner): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    log(&inner, format!("GET /oauth/authorize?{}", query_string(&q)));
    let code = format!("code-{}", rand_hex());
    inner.lock().unwrap().codes.insert(code.clone(), ATHLETE_ID);
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    Redirect::to(&format!(
        "{redirect}?state={state}&code={code}&scope=read,activity:read_all"
    ))
    .into_response()
}

fn rand_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}

async fn token(State(inner): Shared, Form(f): Form<HashMap<String, String>>) -> Response {
    log(
        &inner,
        format!(
            "POST /oauth/token grant_type={}",
            f.get("grant_type").cloned().unwrap_or_default()
        ),
    );
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad Request"})),
        )
            .into_response();
    }
    let mut g = inner.lock().unwrap();
    let grant = f.get("grant_type").map(String::as_str);
    let athlete = match grant {
        Some("authorization_code") => f.get("code").and_then(|c| g.codes.remove(c)),
        Some("refresh_token") => f.get("refresh_token").and_then(|t| g.refresh.remove(t)),
        _ => None,
    };
    if grant == Some("refresh_token") {
        g.refreshes.push(Refresh {
            presented: f.get("refresh_token").cloned().unwrap_or_default(),
            issued: None,
        });
    }
    let Some(athlete) = athlete else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "Bad Request"})),
        )
            .into_response();
    };
    g.issued += 1;
    let access = format!("access-{}-{}", g.issued, rand_hex());
    let refresh = format!("refresh-{}-{}", g.issued, rand_hex());
    g.access.insert(access.clone(), athlete);
    g.refresh.insert(refresh.clone(), athlete);
    if grant == Some("refresh_token")
        && let Some(last) = g.refreshes.last_mut()
    {
        last.issued = Some(refresh.clone());
    }
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    Json(json!({
        "token_type": "Bearer",
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": now + g.expires_in,
        "expires_in": g.expires_in,
        "athlete": {"id": athlete, "firstname": "Alice", "lastname": "Runner"},
    }))
    .into_response()
}

/// Revokes the app's access for the token's athlete: all of their tokens.
async fn deauthorize(State(inner): Shared, Form(f): Form<HashMap<String, String>>) -> Response {
    log(&inner, "POST /oauth/deauthorize".into());
    let mut g = inner.lock().unwrap();
    let athlete = f.get("access_token").and_then(|t| g.access.get(t).copied());
    if let Some(athlete) = athlete {
        g.access.retain(|_, a| *a != athlete);
        g.refresh.retain(|_, a| *a != athlete);
    }
    g.deauthorized += 1;
    Json(json!({"access_token": f.get("access_token")})).into_response()
}

/// The common part of API calls: log, stall, check the token, play the script.
async fn api_call(
    inner: &Arc<Mutex<Inner>>,
    headers: &HeaderMap,
    line: String,
) -> Result<(), Response> {
    log(inner, line);
    let stall = inner.lock().unwrap().stall;
    if let Some(delay) = stall {
        tokio::time::sleep(delay).await;
    }
    let mut g = inner.lock().unwrap();
    let token = token_of(headers).unwrap_or_default();
    if !g.access.contains_key(&token) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Authorization Error"})),
        )
            .into_response());
    }
    if let Some(status) = g.script.pop_front() {
        let status = StatusCode::from_u16(status).unwrap();
        let mut response = (status, Json(json!({"message": "scripted"}))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Strava sends the usage headers; this fake also sends a short Retry-After.
            let h = response.headers_mut();
            h.insert("x-ratelimit-limit", "100,1000".parse().unwrap());
            h.insert("x-ratelimit-usage", "101,200".parse().unwrap());
            h.insert("retry-after", "1".parse().unwrap());
        }
        return Err(response);
    }
    Ok(())
}

fn with_limits(mut response: Response, g: &Inner) -> Response {
    let counted = g.requests.len();
    let usage = g
        .usage
        .clone()
        .unwrap_or_else(|| format!("{},{counted}", counted % 100));
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", "100,1000".parse().unwrap());
    h.insert("x-ratelimit-usage", usage.parse().unwrap());
    response
}

async fn athlete(State(inner): Shared, headers: HeaderMap) -> Response {
    if let Err(r) = api_call(&inner, &headers, "GET /api/v3/athlete".into()).await {
        return r;
    }
    let g = inner.lock().unwrap();
    let id = token_of(&headers)
        .and_then(|t| g.access.get(&t).copied())
        .unwrap_or_default();
    with_limits(
        Json(json!({"id": id, "resource_state": 2, "firstname": "Alice", "lastname": "Runner"}))
            .into_response(),
        &g,
    )
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

async fn activity(State(inner): Shared, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if let Err(r) = api_call(&inner, &headers, format!("GET /api/v3/activities/{id}")).await {
        return r;
    }
    let g = inner.lock().unwrap();
    if g.hidden.contains(&id) {
        return with_limits(
            (
                StatusCode::FORBIDDEN,
                Json(json!({"message": "Authorization Error"})),
            )
                .into_response(),
            &g,
        );
    }
    match g.activities.get(&id) {
        Some(a) => with_limits(Json(a.clone()).into_response(), &g),
        None => with_limits(
            (
                StatusCode::NOT_FOUND,
                Json(json!({"message": "Record Not Found"})),
            )
                .into_response(),
            &g,
        ),
    }
}

async fn athlete_activities(
    State(inner): Shared,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let line = format!("GET /api/v3/athlete/activities?{}", query_string(&q));
    if let Err(r) = api_call(&inner, &headers, line).await {
        return r;
    }
    let num = |k: &str, d: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (page, per_page, after) = (num("page", 1), num("per_page", 30), num("after", 0));
    let g = inner.lock().unwrap();
    let mut list: Vec<&Value> = g
        .activities
        .values()
        .filter(|a| {
            let start = a["start_date"].as_str().unwrap_or_default();
            jiff::Timestamp::from_str_lenient(start) >= after as i64
        })
        .collect();
    list.sort_by_key(|a| a["start_date"].as_str().unwrap_or_default().to_string());
    let items: Vec<Value> = list
        .into_iter()
        .skip((page.max(1) - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    with_limits(Json(Value::Array(items)).into_response(), &g)
}

trait Lenient {
    fn from_str_lenient(s: &str) -> i64;
}

impl Lenient for jiff::Timestamp {
    /// Seconds since the epoch; 0 for what does not parse.
    fn from_str_lenient(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().map_or(0, |t| t.as_second())
    }
}

// What a host did with the events: read from its database and its admin API.

/// The user's activities, as the host stores them.
pub async fn activities(server: &TestServer, user: &str) -> Vec<ham_host::habits::Activity> {
    server
        .state
        .db
        .list_activities(
            user,
            ham_host::store::habits::ActivityRange::Utc {
                from: 0,
                to: i64::MAX / 2,
            },
        )
        .await
        .unwrap()
}

/// A habit's entries, as the host stores them.
pub async fn entries(server: &TestServer, habit: &str) -> Vec<ham_host::habits::Entry> {
    server
        .state
        .db
        .list_entries(habit, "2000-01-01", "2100-01-01")
        .await
        .unwrap()
}

/// Jobs of the plugin not yet finished.
pub async fn pending_jobs(server: &TestServer) -> i64 {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM jobs WHERE plugin = 'strava-sync' AND state NOT IN ('done', 'dead')",
    )
    .fetch_one(server.state.db.pool())
    .await
    .unwrap();
    row.get::<i64, _>(0)
}

/// The plugin's jobs as `GET /api/admin/jobs` shows them (newest first).
pub async fn admin_jobs(server: &TestServer) -> Vec<Value> {
    super::admin_jobs(&server.url)
        .await
        .into_iter()
        .filter(|j| j["plugin"] == "strava-sync")
        .collect()
}

/// How many requests the fake saw whose line contains `part`.
pub fn calls(fake: &FakeStrava, part: &str) -> usize {
    fake.requests().iter().filter(|r| r.contains(part)).count()
}
