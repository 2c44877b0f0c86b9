//! Identity routes: how this server identifies users, register, log in, log out,
//! and who am I.
//!
//! Who a request comes from is the [`crate::auth::Authenticator`] in `AppState`'s
//! business; these routes only ask it. Registration and login exist where it keeps
//! the passwords (`local` mode); in other modes they answer 400 `wrong_auth_mode`.
//! They refuse over-long credentials before any lookup, reserve a login attempt
//! before the password is verified, and run argon2 only under the password-work
//! bound (see [`crate::auth::login`]); refusals carry `Retry-After`. Here too
//! [`AuthError`] becomes the API's JSON error.

use axum::Json;
use axum::extract::{FromRequestParts as _, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ErrorBody};
use crate::AppState;
use crate::auth::{self, AuthError, CurrentUser, MaybeUser};
use crate::store::users::{CreateUserError, User};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
}

/// [`AuthError`] as the client sees it: a refusal as the authenticator worded
/// it, a wait with `Retry-After`, or a vague 500 (logged in full).
/// The extractors' rejection: the API's JSON error.
impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        ApiError::from(self).into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        // Whole seconds, rounded up, at least 1.
        let seconds =
            |d: std::time::Duration| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1);
        match e {
            AuthError::Refused {
                status,
                code,
                message,
            } => ApiError::new(status, code, message),
            AuthError::TooManyAttempts { retry_after } => {
                let wait = seconds(retry_after);
                let message = format!("too many failed logins; try again in {wait} s");
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
                    .retry_after(wait)
            }
            AuthError::Busy { retry_after } => {
                let wait = seconds(retry_after);
                let message = format!("the server is busy; try again in {wait} s");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message).retry_after(wait)
            }
            AuthError::Internal(why) => ApiError::internal(why),
        }
    }
}

/// How this server identifies users.
#[derive(serde::Serialize, ToSchema)]
pub struct AuthConfig {
    /// The mode that speaks for this request: `local`, `forward-auth` or `oidc`.
    /// With mixed identity (`HAM_AUTH=forward-auth,local`), `forward-auth` for a
    /// request that a trusted proxy names a user in, `local` for any other (the
    /// app then offers the sign-in form).
    mode: &'static str,
    /// Every mode `HAM_AUTH` enables, identity provider first: `["local"]`,
    /// `["forward-auth", "local"]`, ...
    modes: Vec<&'static str>,
    /// No account exists yet: the first to register becomes the admin.
    first_run: bool,
    /// Anyone may register (`HAM_OPEN_REGISTRATION=1`).
    open_registration: bool,
}

#[derive(Deserialize, ToSchema)]
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

/// Credentials no hash or lookup is spent on: a username over
/// [`auth::login::MAX_USERNAME_BYTES`] or a password over [`auth::login::MAX_PASSWORD_BYTES`].
fn check_lengths(c: &Credentials) -> Result<(), ApiError> {
    if c.username.len() > auth::login::MAX_USERNAME_BYTES {
        return Err(invalid(
            "username",
            &format!("at most {} bytes", auth::login::MAX_USERNAME_BYTES),
        ));
    }
    if c.password.len() > auth::login::MAX_PASSWORD_BYTES {
        return Err(invalid(
            "password",
            &format!("at most {} bytes", auth::login::MAX_PASSWORD_BYTES),
        ));
    }
    Ok(())
}

/// Registration's rules, the same for an account an admin creates
/// ([`crate::accounts`]).
fn check_credentials(c: &Credentials) -> Result<(), ApiError> {
    check_lengths(c)?;
    crate::accounts::check_username(&c.username)?;
    crate::accounts::check_password("password", &c.password)?;
    Ok(())
}

/// Sets the session cookie on a response.
fn with_session(mut response: Response, token: Option<&str>, secure: bool) -> Response {
    if let Ok(value) = HeaderValue::from_str(&auth::local::session_cookie(token, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn start_session(state: &AppState, user_id: &str) -> Result<String, ApiError> {
    let token = auth::new_token();
    let ttl = i64::try_from(auth::local::SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
    state
        .db
        .create_session(
            &auth::token_hash(&token),
            user_id,
            crate::store::now_ms() + ttl,
        )
        .await?;
    Ok(token)
}

/// Refuses password routes where HAM does not keep the passwords.
fn password_login_only(state: &AppState) -> Result<(), ApiError> {
    if state.auth.password_login() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "wrong_auth_mode",
        "accounts are managed by the identity provider (HAM_AUTH is not local)",
    ))
}

/// How this server identifies users, so the browser app knows whether to show
/// first-run registration, sign-in, or nothing (a proxy signs users in).
#[utoipa::path(get, path = "/auth/config", tag = "auth", security(()),
    responses((status = 200, body = AuthConfig)))]
async fn config(State(state): State<AppState>, parts: Parts) -> Result<Json<AuthConfig>, ApiError> {
    let first_run = state.auth.password_login() && state.db.count_users().await? == 0;
    Ok(Json(AuthConfig {
        mode: state.auth.mode(&parts),
        modes: state.settings.auth.names(),
        first_run,
        open_registration: state.settings.open_registration,
    }))
}

/// Creates an account (`HAM_AUTH=local`). The first becomes the admin and is
/// signed in; later ones only by an admin, or by anyone with open registration.
#[utoipa::path(post, path = "/auth/register", tag = "auth", security((), ("session" = [])), request_body = Credentials,
    responses((status = 201, body = User, description = "the account; a session cookie when it signs in"),
        (status = 400, description = "`wrong_auth_mode`: HAM_AUTH is not local", body = ErrorBody),
        (status = 401, description = "`invalid_token`: HAM_AUTH=oidc and the bearer token is invalid", body = ErrorBody),
        (status = 403, description = "`registration_closed`: only an admin creates accounts (HAM_OPEN_REGISTRATION unset)", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a username that is not 3 to 32 of a-z, 0-9, '.', '_', '-', or a password under 8 characters", body = ErrorBody),
        (status = 503, description = "`busy`: password hashing is at its bound; Retry-After says when to try again", body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    mut parts: Parts,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    password_login_only(&state)?;
    check_credentials(&body)?;
    // Only now, with the credentials in bounds, the session lookup.
    let MaybeUser(current) = MaybeUser::from_request_parts(&mut parts, &state).await?;
    let first = state.db.count_users().await? == 0;
    // An admin's personal API token is not the admin: it opens no admin route,
    // and creates no account.
    let by_token = parts.extensions.get::<auth::tokens::ByToken>().is_some();
    let by_admin = current.as_ref().is_some_and(|u| u.is_admin) && !by_token;
    if !first && !by_admin && !state.settings.open_registration {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "registration is closed: an admin creates accounts (or set HAM_OPEN_REGISTRATION=1)",
        ));
    }
    let hash = state
        .login_limiter
        .passwords()
        .hash(body.password.clone())
        .await?;
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

/// Signs in (`HAM_AUTH=local`): a session cookie, `__Host-ham_session` over https
/// and `ham_session` over plain http. Failed logins are limited per (username,
/// client address) and per client address.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = Credentials,
    responses((status = 200, body = User, description = "signed in: the user, and the session cookie"),
        (status = 400, description = "`wrong_auth_mode`: HAM_AUTH is not local", body = ErrorBody),
        (status = 401, description = "`bad_credentials`: wrong username or password", body = ErrorBody),
        (status = 422, description = "`invalid_field`: an over-long username or password", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failures for this username or client address; Retry-After says when to try again", body = ErrorBody),
        (status = 503, description = "`busy`: password checks are at their bound; Retry-After says when to try again", body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    password_login_only(&state)?;
    check_lengths(&body)?;
    let client = auth::client_addr(&parts, &state.settings);
    let limiter = &state.login_limiter;
    // Reserved before the verification, so parallel guesses cannot overrun it.
    let attempt = limiter.reserve(client, &body.username)?;
    let found = match state.db.user_with_password(&body.username).await {
        Ok(found) => found,
        Err(e) => {
            limiter.refund(attempt);
            return Err(ApiError::internal(e));
        }
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let verified = limiter.passwords().verify(hash, body.password).await;
    let ok = match verified {
        Ok(ok) => ok,
        Err(e) => {
            limiter.refund(attempt);
            return Err(e.into());
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        limiter.failed(attempt);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong username or password",
        ));
    };
    limiter.succeeded(attempt);
    let token = start_session(&state, &user.id).await?;
    Ok(with_session(
        Json(&user).into_response(),
        Some(&token),
        auth::is_https(&parts),
    ))
}

/// Revokes the session on the server and clears the cookie (the one named for the
/// request's scheme).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security((), ("session" = [])),
    responses((status = 204, description = "signed out; the cookie is cleared")))]
async fn logout(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if let Some(token) = auth::local::session_token(&parts) {
        state.db.delete_session(&auth::token_hash(&token)).await?;
    }
    Ok(with_session(
        StatusCode::NO_CONTENT.into_response(),
        None,
        auth::is_https(&parts),
    ))
}

/// The signed-in user and their today.
#[derive(serde::Serialize, ToSchema)]
pub struct Me {
    #[serde(flatten)]
    user: User,
    /// Today in the user's time zone, `YYYY-MM-DD`.
    today: String,
}

/// The signed-in user, with `today` in their time zone.
#[utoipa::path(get, path = "/me", tag = "auth",
    responses((status = 200, body = Me)))]
async fn me(CurrentUser(user): CurrentUser) -> Json<Me> {
    let today = crate::habits::today_in(&user.time_zone);
    Json(Me { user, today })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MeUpdate {
    /// An IANA time zone such as `Europe/Berlin`.
    time_zone: Option<String>,
}

/// Changes the user's settings: `{"time_zone": "Europe/Berlin"}` (an IANA name).
#[utoipa::path(patch, path = "/me", tag = "auth", request_body = MeUpdate,
    responses((status = 200, body = Me),
        (status = 422, description = "`invalid_field`: `time_zone` is not an IANA time zone", body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    CurrentUser(mut user): CurrentUser,
    ApiJson(update): ApiJson<MeUpdate>,
) -> Result<Json<Me>, ApiError> {
    if let Some(tz) = update.time_zone {
        if !crate::habits::is_time_zone(&tz) {
            return Err(invalid(
                "time_zone",
                &format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
            ));
        }
        state.db.set_time_zone(&user.id, &tz).await?;
        user.time_zone = tz;
    }
    Ok(me(CurrentUser(user)).await)
}
