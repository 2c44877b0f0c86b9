//! `/api/me/notifications` (a user's delivery channels) and
//! `/api/reminders/done/{token}` (a reminder's done link), over
//! [`crate::reminders`].
//!
//! The done link is the one route here without a session: its token is its
//! credential. A token whose signature does not verify counts against the
//! client's address as a wrong password does at login (the same limiter type,
//! its own table: 5 per address in 15 minutes, then 429 with `Retry-After`), so
//! guessing from one address stops early, and other addresses (the owner's
//! phone) are untouched. Only `POST` redeems; any other method is 405, so a link
//! previewer that fetches the URL uses nothing.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ApiPath;
use super::{ApiError, ApiJson, ErrorBody};
use crate::AppState;
use crate::auth::{self, AuthError, CurrentUser};
use crate::reminders::channels::{
    ChannelError, ChannelTest, Channels, ChannelsInput, DELIVERY_PLUGIN, TEST_EVERY_MS, TestError,
};
use crate::reminders::{RedeemError, Redeemed};

/// The key done-link failures are counted under, beside the client address.
const LIMITER_KEY: &str = "done-link";

pub fn router() -> OpenApiRouter<AppState> {
    let (schemas, paths, done) = routes!(redeem_done_link);
    OpenApiRouter::new()
        .routes(routes!(channels, set_channels))
        .routes(routes!(test_channels))
        .routes((schemas, paths, done.fallback(only_post)))
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Invalid(e) => e.into(),
            ChannelError::Store(e) => e.into(),
            ChannelError::Seal(e) => ApiError::internal(e),
        }
    }
}

impl From<RedeemError> for ApiError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::NotFound => ApiError::not_found("no such link"),
            RedeemError::Used => ApiError::new(StatusCode::GONE, "link_used", e.to_string()),
            RedeemError::Expired => ApiError::new(StatusCode::GONE, "link_expired", e.to_string()),
            RedeemError::Tracker(e) => e.into(),
            RedeemError::Store(e) => e.into(),
        }
    }
}

/// The user's delivery channels; tokens are never shown, only whether one is set.
#[utoipa::path(get, path = "/me/notifications", tag = "reminders",
    responses((status = 200, body = Channels)))]
async fn channels(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Channels>, ApiError> {
    Ok(Json(state.reminders.channels(&user.id).await?))
}

/// Replaces the user's delivery channels. Tokens are write-only: `"token": null`
/// (or no `token`) on a channel with the same kind and url as a stored one keeps
/// its stored token, `""` clears it, any other text replaces it. A channel kept
/// by kind and url keeps its id and its delivery results.
#[utoipa::path(put, path = "/me/notifications", tag = "reminders", request_body = ChannelsInput,
    responses((status = 200, description = "the channels as stored", body = Channels),
        (status = 422, description = "`invalid_field`: more than 10 channels, a kind other than ntfy or webhook, a url that is not http(s) with a host, the same kind and url twice; the message names the field", body = ErrorBody)))]
async fn set_channels(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(input): ApiJson<ChannelsInput>,
) -> Result<Json<Channels>, ApiError> {
    Ok(Json(state.reminders.set_channels(&user.id, input).await?))
}

/// What `POST /api/me/notifications/test` did at each channel.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChannelTests {
    /// One per channel, in the channels' order.
    results: Vec<ChannelTest>,
}

/// Sends a test message to each of the user's channels and reports each answer
/// (waiting up to 15 s). One test per user every 10 s.
#[utoipa::path(post, path = "/me/notifications/test", tag = "reminders",
    responses((status = 200, description = "each channel's result; `[]` when the user has no channel", body = ChannelTests),
        (status = 429, description = "`too_many_tests`: a test was sent less than 10 s ago (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`reminders_unavailable`: the `reminders` plugin is not installed", body = ErrorBody)))]
async fn test_channels(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Response, ApiError> {
    if state.registry.get(DELIVERY_PLUGIN).is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reminders_unavailable",
            "the reminders plugin is not installed, so nothing can be sent",
        ));
    }
    match state
        .reminders
        .test_channels(&user.id, &user.username)
        .await
    {
        Ok(results) => Ok(Json(ChannelTests { results }).into_response()),
        Err(TestError::TooSoon) => {
            let mut refused = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_tests",
                TestError::TooSoon.to_string(),
            )
            .into_response();
            refused
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(TEST_EVERY_MS / 1000));
            Ok(refused)
        }
        Err(TestError::Store(e)) => Err(e.into()),
    }
}

/// Checks a habit in as done for the link's date, once, without signing in. The
/// token is the link's credential (signed by the host; see docs/api.md). Answers
/// JSON, or a short HTML page when the request prefers `text/html`. Only `POST`:
/// any other method is 405.
#[utoipa::path(post, path = "/reminders/done/{token}", tag = "reminders",
    params(("token" = String, Path, description = "the signed token of a done link")),
    security(()),
    responses((status = 200, description = "checked in", body = Redeemed),
        (status = 404, description = "`not_found`: forged, truncated, or for a habit that no longer exists; nothing written", body = ErrorBody),
        (status = 410, description = "`link_used`: the link was used already; `link_expired`: its day is over", body = ErrorBody),
        (status = 422, description = "`invalid_field`: the habit is measurable and takes a value", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many invalid links from this address; Retry-After says when to try again", body = ErrorBody)))]
async fn redeem_done_link(
    State(state): State<AppState>,
    parts: Parts,
    ApiPath(token): ApiPath<String>,
) -> Result<Response, ApiError> {
    let client = auth::client_addr(&parts, &state.settings);
    let limiter = &state.done_link_limiter;
    let attempt = limiter.reserve(client, LIMITER_KEY).map_err(|e| match e {
        AuthError::TooManyAttempts { retry_after } => {
            let wait = retry_after.as_secs().max(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many invalid links from this address; try again in {wait} s"),
            )
            .retry_after(wait)
        }
        other => other.into(),
    })?;
    let outcome = state.reminders.redeem(&token).await;
    match &outcome {
        // Only a token that is not ours counts; a used, expired or stale one
        // came from this host.
        Err(RedeemError::NotFound) if !state.reminders.is_signed(&token) => {
            limiter.failed(attempt);
        }
        _ => limiter.refund(attempt),
    }
    let redeemed = outcome?;
    if prefers_html(&parts) {
        let page = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>Done</title><p>Checked in for {}. <a href=\"/habits/{}\">Open HAM</a></p></html>",
            redeemed.date,
            html_escape(&redeemed.habit_id)
        );
        return Ok(Html(page).into_response());
    }
    Ok(Json(redeemed).into_response())
}

/// Whether `Accept` lists `text/html` before any JSON.
fn prefers_html(parts: &Parts) -> bool {
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let html = accept.find("text/html");
    let json = accept.find("application/json");
    match (html, json) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Any method but POST on a done link: 405, so previewers use nothing.
async fn only_post() -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "a done link is used with POST",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
