//! Strava's API and OAuth, as this plugin uses them: the configuration, the user's
//! connection (tokens sealed at rest), token exchange and refresh, and API calls
//! that respect Strava's rate limits.
//!
//! Tokens live only in the user's sealed `connection` value; they are never logged
//! and never returned by a route.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasip2::http::types::Method;

use crate::bindings::ham::plugin::storage::{self, Scope};
use crate::bindings::ham::plugin::types::Error as HostError;
use crate::bindings::ham::plugin::{config, log};
use crate::http::{self, Reply};
use crate::now_ms;

/// Refresh a token this long before it expires.
const REFRESH_MARGIN_S: i64 = 300;
/// Plugin-scope key: until when (ms) Strava's rate limit is spent.
const RATE_BLOCK_KEY: &str = "ratelimit/until";

/// The plugin's configuration; `Err` names what is missing.
pub struct Config {
    pub client_id: String,
    pub client_secret: String,
    pub verify_token: String,
    pub api: String,
    pub oauth: String,
    pub subscription_id: Option<String>,
}

impl Config {
    pub fn load() -> Result<Self, String> {
        let required = |name: &str| match config::get(name) {
            Ok(Some(v)) if !v.is_empty() => Ok(v),
            _ => Err(format!(
                "set HAM_PLUGIN_STRAVA_SYNC_{} (see docs/strava.md)",
                name.to_uppercase()
            )),
        };
        let optional = |name: &str| config::get(name).ok().flatten().filter(|v| !v.is_empty());
        Ok(Self {
            client_id: required("client_id")?,
            client_secret: required("client_secret")?,
            verify_token: required("verify_token")?,
            api: required("api_base_url")?.trim_end_matches('/').to_string(),
            oauth: required("oauth_base_url")?
                .trim_end_matches('/')
                .to_string(),
            subscription_id: optional("subscription_id"),
        })
    }
}

/// A user's link to Strava. Sealed in the user scope under `connection`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Connection {
    pub athlete_id: u64,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

const CONNECTION_KEY: &str = "connection";
const STATUS_KEY: &str = "status";

impl Connection {
    pub fn load() -> Result<Option<Self>, HostError> {
        Ok(storage::get_sealed(Scope::User, CONNECTION_KEY)?
            .and_then(|e| serde_json::from_slice(&e.value).ok()))
    }

    pub fn save(&self) -> Result<(), HostError> {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        storage::set_sealed(Scope::User, CONNECTION_KEY, &bytes)?;
        Ok(())
    }

    pub fn forget() -> Result<(), HostError> {
        storage::delete(Scope::User, CONNECTION_KEY)?;
        Ok(())
    }
}

/// What `GET /api/strava/status` shows (no tokens). User scope, `status`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub athlete: Option<Value>,
    pub last_sync: Option<i64>,
    pub last_error: Option<String>,
    #[serde(default)]
    pub needs_reconnect: bool,
}

impl Status {
    pub fn load() -> Result<Status, HostError> {
        Ok(storage::get(Scope::User, STATUS_KEY)?
            .and_then(|e| serde_json::from_slice(&e.value).ok())
            .unwrap_or_default())
    }

    pub fn save(&self) -> Result<(), HostError> {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        storage::set(Scope::User, STATUS_KEY, &bytes)?;
        Ok(())
    }

    pub fn forget() -> Result<(), HostError> {
        storage::delete(Scope::User, STATUS_KEY)?;
        Ok(())
    }

    /// Records the outcome of a sync: best effort, a failure here is only logged.
    pub fn record(outcome: Result<(), &str>) {
        let mut status = Status::load().unwrap_or_default();
        match outcome {
            Ok(()) => {
                status.last_sync = Some(now_ms());
                status.last_error = None;
            }
            Err(why) => status.last_error = Some(why.to_string()),
        }
        if let Err(e) = status.save() {
            log::log(
                log::Level::Warn,
                "could not record the sync status",
                &[("error".into(), format!("{e:?}"))],
            );
        }
    }
}

/// Why a call to Strava did not give an answer to use.
#[derive(Debug)]
pub enum ApiError {
    /// Wait this many ms (a rate limit); not a failure.
    RateLimited(u64),
    /// The token was refused even after a refresh, or the refresh itself was
    /// refused: the user must reconnect.
    Unauthorized,
    /// The thing asked for is gone, or hidden from this app: 404 (a deleted
    /// activity) or 403 (an activity made private to the app).
    NotFound,
    /// Worth retrying: a 5xx, a network failure.
    Transient(String),
    /// Not worth retrying.
    Permanent(String),
}

/// The token endpoint's answer.
#[derive(Deserialize)]
pub struct TokenReply {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: i64,
    #[serde(default)]
    pub athlete: Option<Value>,
}

/// POSTs a form to `{oauth}/token`.
pub fn token_request(cfg: &Config, extra: &[(&str, &str)]) -> Result<TokenReply, ApiError> {
    let mut pairs = vec![
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let body = http::form(&pairs);
    let reply = http::call(
        Method::Post,
        &format!("{}/token", cfg.oauth),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ],
        Some(body.as_bytes()),
    )
    .map_err(ApiError::Transient)?;
    check(&reply)?;
    serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Permanent("the token endpoint answered no tokens".into()))
}

/// Refreshes the connection's tokens; the new refresh token replaces the old one.
///
/// Strava takes a refresh token once, and two jobs of one user can refresh at
/// the same moment: the loser's token is refused. It then takes the tokens the
/// winner stored (waiting a moment for the winner to store them) instead of
/// failing, so concurrent events near expiry are not lost. A refusal with no
/// newer tokens in storage is [`ApiError::Unauthorized`]: the grant is gone.
pub fn refresh(cfg: &Config, conn: &mut Connection) -> Result<(), ApiError> {
    let presented = conn.refresh_token.clone();
    let reply = match token_request(
        cfg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &presented),
        ],
    ) {
        Ok(reply) => reply,
        Err(ApiError::Unauthorized | ApiError::Permanent(_)) => {
            for wait_ms in [0u64, 250, 1000] {
                if wait_ms > 0 {
                    wasip2::clocks::monotonic_clock::subscribe_duration(wait_ms * 1_000_000)
                        .block();
                }
                if let Ok(Some(stored)) = Connection::load()
                    && stored.refresh_token != presented
                {
                    *conn = stored;
                    return Ok(());
                }
            }
            return Err(ApiError::Unauthorized);
        }
        Err(e) => return Err(e),
    };
    conn.access_token = reply.access_token;
    conn.refresh_token = reply.refresh_token;
    conn.expires_at = reply.expires_at;
    conn.save()
        .map_err(|e| ApiError::Transient(format!("storing refreshed tokens: {e:?}")))
}

/// How long until Strava's limits are available again, when they are spent.
pub fn rate_block_ms() -> Option<u64> {
    rate_block().map(|until| u64::try_from(until - now_ms()).unwrap_or(0).max(1))
}

/// Until when Strava's limits are spent, if they are.
fn rate_block() -> Option<i64> {
    storage::get(Scope::Plugin, RATE_BLOCK_KEY)
        .ok()
        .flatten()
        .and_then(|e| String::from_utf8_lossy(&e.value).parse().ok())
        .filter(|until| *until > now_ms())
}

fn block_until(until: i64) {
    let _ = storage::set(Scope::Plugin, RATE_BLOCK_KEY, until.to_string().as_bytes());
}

/// When the spent window ends, from `X-RateLimit-Limit` and `X-RateLimit-Usage`
/// ("15-minute,daily"): the next quarter hour, or the next UTC day when the daily
/// limit is spent. None when neither is spent.
pub fn window_end(limit: Option<&str>, usage: Option<&str>, now: i64) -> Option<i64> {
    let parse =
        |s: &str| -> Vec<u64> { s.split(',').filter_map(|p| p.trim().parse().ok()).collect() };
    let (limit, usage) = (parse(limit?), parse(usage?));
    let spent = |i: usize| matches!((limit.get(i), usage.get(i)), (Some(l), Some(u)) if u >= l);
    if spent(1) {
        Some((now.div_euclid(86_400_000) + 1) * 86_400_000)
    } else if spent(0) {
        Some(next_quarter_hour(now))
    } else {
        None
    }
}

pub fn next_quarter_hour(now: i64) -> i64 {
    (now.div_euclid(900_000) + 1) * 900_000
}

/// Maps a reply's status to an error; records a spent rate limit.
fn check(reply: &Reply) -> Result<(), ApiError> {
    let now = now_ms();
    let spent = window_end(
        reply.header("x-ratelimit-limit"),
        reply.header("x-ratelimit-usage"),
        now,
    );
    if reply.status == 429 {
        // A Retry-After (seconds) wins; Strava sends the usage headers instead.
        let until = reply
            .header("retry-after")
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(|s| now + s * 1000)
            .or(spent)
            .unwrap_or_else(|| next_quarter_hour(now));
        block_until(until);
        return Err(ApiError::RateLimited(
            u64::try_from(until - now).unwrap_or(0).max(1),
        ));
    }
    if let Some(until) = spent {
        // This answer counts; the next call waits for the window.
        block_until(until);
    }
    match reply.status {
        200..=299 => Ok(()),
        401 => Err(ApiError::Unauthorized),
        403 | 404 => Err(ApiError::NotFound),
        500..=599 => Err(ApiError::Transient(format!(
            "Strava answered {}",
            reply.status
        ))),
        other => Err(ApiError::Permanent(format!("Strava answered {other}"))),
    }
}

/// GETs `{api}{path}` with the user's token: refreshed first when it expires
/// within five minutes, and once more after a 401; a second 401, or a refresh
/// Strava refuses, marks the connection as needing a reconnect.
pub fn get(cfg: &Config, conn: &mut Connection, path: &str) -> Result<Value, ApiError> {
    if let Some(ms) = rate_block_ms() {
        return Err(ApiError::RateLimited(ms));
    }
    if conn.expires_at - now_ms() / 1000 < REFRESH_MARGIN_S {
        match refresh(cfg, conn) {
            Ok(()) => {}
            Err(ApiError::Unauthorized) => return Err(needs_reconnect()),
            Err(e) => return Err(e),
        }
    }
    let mut refreshed = false;
    loop {
        let bearer = format!("Bearer {}", conn.access_token);
        let reply = http::call(
            Method::Get,
            &format!("{}{path}", cfg.api),
            &[("authorization", &bearer), ("accept", "application/json")],
            None,
        )
        .map_err(ApiError::Transient)?;
        match check(&reply) {
            Ok(()) => {
                return serde_json::from_slice(&reply.body)
                    .map_err(|_| ApiError::Transient("Strava answered no JSON".into()));
            }
            Err(ApiError::Unauthorized) if !refreshed => {
                refreshed = true;
                match refresh(cfg, conn) {
                    Ok(()) => continue,
                    Err(ApiError::Unauthorized) => return Err(needs_reconnect()),
                    Err(e) => return Err(e),
                }
            }
            Err(ApiError::Unauthorized) => return Err(needs_reconnect()),
            Err(e) => return Err(e),
        }
    }
}

fn needs_reconnect() -> ApiError {
    let mut status = Status::load().unwrap_or_default();
    status.needs_reconnect = true;
    status.last_error = Some("Strava refused the tokens: reconnect".into());
    let _ = status.save();
    ApiError::Unauthorized
}

/// Asks Strava to revoke the user's tokens; best effort.
pub fn deauthorize(cfg: &Config, conn: &Connection) {
    let body = http::form(&[("access_token", &conn.access_token)]);
    let sent = http::call(
        Method::Post,
        &format!("{}/deauthorize", cfg.oauth),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    );
    if let Err(e) = sent {
        log::log(
            log::Level::Warn,
            "deauthorizing at Strava failed",
            &[("error".into(), e)],
        );
    }
}
