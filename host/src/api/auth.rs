//! `local` identity: register, log in, log out, and who am I.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiJson};
use crate::AppState;
use crate::auth::{self, CurrentUser, MaybeUser};
use crate::settings::AuthMode;
use crate::store::users::CreateUserError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me).patch(update_me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        format!("{field}: {message}"),
    )
}

fn check_credentials(c: &Credentials) -> Result<(), ApiError> {
    let u = &c.username;
    let ok = (3..=32).contains(&u.len())
        && u.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
    if !ok {
        return Err(invalid("username", "3 to 32 of a-z, 0-9, '.', '_', '-'"));
    }
    if c.password.chars().count() < 8 || c.password.len() > 1024 {
        return Err(invalid("password", "at least 8 characters"));
    }
    Ok(())
}

/// Sets the session cookie on a response.
fn with_session(mut response: Response, token: Option<&str>, secure: bool) -> Response {
    if let Ok(value) = HeaderValue::from_str(&auth::session_cookie(token, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn start_session(state: &AppState, user_id: &str) -> Result<String, ApiError> {
    let token = auth::new_token();
    let ttl = i64::try_from(auth::SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
    state
        .db
        .create_session(
            &auth::token_hash(&token),
            user_id,
            crate::store::now_ms() + ttl,
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(token)
}

/// The first user becomes an admin and is signed in. After that, only an admin may
/// create accounts, unless `HAM_OPEN_REGISTRATION=1`.
fn local_only(state: &AppState) -> Result<(), ApiError> {
    match state.settings.auth {
        AuthMode::Local => Ok(()),
        AuthMode::ForwardAuth | AuthMode::Oidc => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "wrong_auth_mode",
            "accounts are managed by the identity provider (HAM_AUTH is not local)",
        )),
    }
}

async fn register(
    State(state): State<AppState>,
    MaybeUser(current): MaybeUser,
    parts: Parts,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    local_only(&state)?;
    check_credentials(&body)?;
    let first = state.db.count_users().await.map_err(ApiError::internal)? == 0;
    let by_admin = current.as_ref().is_some_and(|u| u.is_admin);
    if !first && !by_admin && !state.settings.open_registration {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "registration is closed: an admin creates accounts (or set HAM_OPEN_REGISTRATION=1)",
        ));
    }
    let password = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)??;
    let user = state
        .db
        .create_user(&auth::new_id(), &body.username, Some(&hash), false)
        .await
        .map_err(|e| match e {
            CreateUserError::Taken => ApiError::new(
                StatusCode::CONFLICT,
                "username_taken",
                "username: already taken",
            ),
            CreateUserError::Db(e) => ApiError::internal(e),
        })?;
    let response = (StatusCode::CREATED, Json(&user)).into_response();
    // An admin creating an account stays signed in as themselves.
    if current.is_some() {
        return Ok(response);
    }
    let token = start_session(&state, &user.id).await?;
    Ok(with_session(response, Some(&token), auth::is_https(&parts)))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    local_only(&state)?;
    let user_key = format!("user:{}", body.username);
    let keys = [user_key.clone(), format!("addr:{}", peer.ip())];
    if let Err(wait) = state.login_limiter.check(&keys) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed logins; try again in {} s",
                wait.as_secs().max(1)
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(response);
    }
    let found = state
        .db
        .user_with_password(&body.username)
        .await
        .map_err(ApiError::internal)?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(hash.as_deref(), &password))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| ok) else {
        state.login_limiter.failed(&keys);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong username or password",
        ));
    };
    state.login_limiter.succeeded(&user_key);
    let token = start_session(&state, &user.id).await?;
    Ok(with_session(
        Json(&user).into_response(),
        Some(&token),
        auth::is_https(&parts),
    ))
}

/// Revokes the session on the server and clears the cookie.
async fn logout(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if let Some(token) = auth::session_token(&parts) {
        state
            .db
            .delete_session(&auth::token_hash(&token))
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(with_session(
        StatusCode::NO_CONTENT.into_response(),
        None,
        auth::is_https(&parts),
    ))
}

/// The signed-in user, with `today` in their time zone.
async fn me(CurrentUser(user): CurrentUser) -> Response {
    let today = crate::habits::today_in(&user.time_zone);
    let mut body = serde_json::to_value(&user).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("today".into(), today.into());
    }
    Json(body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeUpdate {
    time_zone: Option<String>,
}

/// Changes the user's settings: `{"time_zone": "Europe/Berlin"}` (an IANA name).
async fn update_me(
    State(state): State<AppState>,
    CurrentUser(mut user): CurrentUser,
    ApiJson(update): ApiJson<MeUpdate>,
) -> Result<Response, ApiError> {
    if let Some(tz) = update.time_zone {
        if !crate::habits::is_time_zone(&tz) {
            return Err(invalid(
                "time_zone",
                &format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
            ));
        }
        state
            .db
            .set_time_zone(&user.id, &tz)
            .await
            .map_err(ApiError::internal)?;
        user.time_zone = tz;
    }
    Ok(me(CurrentUser(user)).await)
}
