//! Account routes: a user's own (`POST /api/me/password`, `POST /api/me/delete`)
//! and the admin's (`/api/admin/users`). Thin: parse, call
//! [`crate::accounts::Accounts`], map [`AccountError`] to the JSON error.
//!
//! Deleting an account first asks the plugin that claims
//! `DELETE /api/strava/connection` (the bundled `strava-sync`) to disconnect the
//! user, in-process and acting for them, so Strava is told to revoke HAM's tokens;
//! a failure there is logged and does not stop the deletion.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ApiPath;
use super::{ApiError, ApiJson, ErrorBody};
use crate::AppState;
use crate::accounts::{AccountError, AccountUpdate};
use crate::auth::{self, SessionUser};
use crate::store::users::Account;

/// `/api/me/password` and `/api/me/delete`.
pub fn me_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(delete_me))
}

/// `/api/admin/users…`, mounted behind the admin check (`api::admin`).
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user, delete_user))
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        match e {
            AccountError::WrongAuthMode => {
                ApiError::new(StatusCode::BAD_REQUEST, "wrong_auth_mode", message)
            }
            AccountError::WrongPassword => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_password", message)
            }
            AccountError::Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
            }
            AccountError::UsernameTaken => {
                ApiError::new(StatusCode::CONFLICT, "username_taken", message)
            }
            AccountError::NotFound(_) => ApiError::not_found(message),
            AccountError::LastAdmin => ApiError::new(StatusCode::CONFLICT, "last_admin", message),
            AccountError::Auth(e) => e.into(),
            AccountError::Db(e) => e.into(),
        }
    }
}

/// An account as the admin sees it.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: String,
    username: String,
    is_admin: bool,
    /// When it was created (RFC 3339, UTC).
    created: String,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id,
            username: a.username,
            is_admin: a.is_admin,
            created: super::admin::timestamp(a.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    users: Vec<AccountView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    /// 8 characters or more (at most 1024 bytes).
    #[schema(min_length = 8)]
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteConfirmation {
    /// The account's password.
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    /// 3 to 32 of `a-z 0-9 . _ -`.
    #[schema(pattern = "^[a-z0-9._-]{3,32}$")]
    username: String,
    /// 8 characters or more (at most 1024 bytes).
    #[schema(min_length = 8)]
    password: String,
    #[serde(default)]
    is_admin: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountChange {
    /// Make an admin, or not (the last admin stays one).
    is_admin: Option<bool>,
    /// A new password (a reset): all the user's sessions are revoked. 8
    /// characters or more (at most 1024 bytes).
    #[schema(min_length = 8)]
    password: Option<String>,
}

/// Changes the signed-in user's password (`HAM_AUTH=local`). Every other session
/// of theirs is revoked; the one asking stays signed in. A wrong current password
/// counts as a failed login.
#[utoipa::path(post, path = "/me/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204, description = "changed; other sessions are signed out"),
        (status = 400, description = "`wrong_auth_mode`: HAM_AUTH is not local", body = ErrorBody),
        (status = 403, description = "`wrong_password`: `current_password` is not the user's; `token_not_allowed`: a personal API token cannot change the password", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `new_password` under 8 characters or over 1024 bytes", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords from this client; Retry-After says when to try again", body = ErrorBody),
        (status = 503, description = "`busy`: password work is at its bound; Retry-After says when to try again", body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    parts: Parts,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let client = auth::client_addr(&parts, &state.settings);
    let keep = auth::local::session_token(&parts).map(|t| auth::token_hash(&t));
    state
        .accounts
        .change_password(
            &user,
            &body.current_password,
            &body.new_password,
            client,
            keep.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the signed-in user's account and everything it owns (`HAM_AUTH=local`;
/// in other modes the identity provider owns the account: 400). The password
/// confirms it; a wrong one counts as a failed login.
#[utoipa::path(post, path = "/me/delete", tag = "auth", request_body = DeleteConfirmation,
    responses((status = 204, description = "deleted, with its habits, entries, activities, reminders, channels, sessions, jobs and plugin storage; the session cookie is cleared"),
        (status = 400, description = "`wrong_auth_mode`: HAM_AUTH is not local", body = ErrorBody),
        (status = 403, description = "`wrong_password`: `password` is not the user's; `token_not_allowed`: a personal API token cannot delete the account", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only admin cannot delete their account", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords from this client; Retry-After says when to try again", body = ErrorBody),
        (status = 503, description = "`busy`: password work is at its bound; Retry-After says when to try again", body = ErrorBody)))]
async fn delete_me(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    parts: Parts,
    ApiJson(body): ApiJson<DeleteConfirmation>,
) -> Result<Response, ApiError> {
    let client = auth::client_addr(&parts, &state.settings);
    state
        .accounts
        .confirm_password(&user, &body.password, client)
        .await?;
    erase(&state, &user.id).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cookie = auth::local::session_cookie(None, auth::is_https(&parts));
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Deletes an account: refused for the last admin before anything happens, then
/// the Strava connection is undone at Strava (best effort), then every row goes.
async fn erase(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    if state.accounts.is_last_admin(user_id).await? {
        return Err(AccountError::LastAdmin.into());
    }
    match super::plugin_routes::call_as(
        state,
        user_id,
        http::Method::DELETE,
        "/api/strava/connection",
    )
    .await
    {
        Ok(None) => {}
        Ok(Some(status)) if status.is_success() => {}
        Ok(Some(status)) => {
            tracing::warn!(user = user_id, %status, "disconnecting Strava before deleting the account failed; deleting anyway");
        }
        Err(e) => {
            tracing::warn!(user = user_id, error = %e.message, "disconnecting Strava before deleting the account failed; deleting anyway");
        }
    }
    state.accounts.delete(user_id).await?;
    tracing::info!(user = user_id, "account deleted");
    Ok(())
}

/// Every account, by username.
#[utoipa::path(get, path = "/users", tag = "admin",
    responses((status = 200, body = AccountList),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody)))]
async fn list_users(State(state): State<AppState>) -> Result<Json<AccountList>, ApiError> {
    let users = state.accounts.list().await?;
    Ok(Json(AccountList {
        users: users.into_iter().map(AccountView::from).collect(),
    }))
}

/// Creates an account with a password (`HAM_AUTH=local`).
#[utoipa::path(post, path = "/users", tag = "admin", request_body = NewAccount,
    responses((status = 201, body = AccountView),
        (status = 400, description = "`wrong_auth_mode`: HAM_AUTH is not local", body = ErrorBody),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a username that is not 3 to 32 of a-z, 0-9, '.', '_', '-', or a password under 8 characters", body = ErrorBody),
        (status = 503, description = "`busy`: password hashing is at its bound; Retry-After says when to try again", body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewAccount>,
) -> Result<Response, ApiError> {
    let account = state
        .accounts
        .create(&body.username, &body.password, body.is_admin)
        .await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(account))).into_response())
}

/// Makes a user an admin or not, and/or resets their password (which signs
/// them out everywhere).
#[utoipa::path(patch, path = "/users/{id}", tag = "admin", request_body = AccountChange,
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 200, body = AccountView),
        (status = 400, description = "`wrong_auth_mode`: a password reset while HAM_AUTH is not local", body = ErrorBody),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only admin cannot be demoted", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a password under 8 characters", body = ErrorBody),
        (status = 503, description = "`busy`: password hashing is at its bound; Retry-After says when to try again", body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountChange>,
) -> Result<Json<AccountView>, ApiError> {
    let update = AccountUpdate {
        is_admin: body.is_admin,
        password: body.password,
    };
    let account = state.accounts.update(&id, update).await?;
    Ok(Json(account.into()))
}

/// Deletes a user and everything they own, their Strava connection undone at
/// Strava first.
#[utoipa::path(delete, path = "/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 204, description = "deleted"),
        (status = 401, description = "`unauthorized`: not an admin's session, nor the HAM_ADMIN_TOKEN bearer", body = ErrorBody),
        (status = 403, description = "`not_admin`: the signed-in user is not an admin; `token_not_allowed`: a personal API token; `admin_disabled`: no admin signed in and HAM_ADMIN_TOKEN unset", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only admin cannot be deleted", body = ErrorBody)))]
async fn delete_user(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.db.account(&id).await?.is_none() {
        return Err(AccountError::NotFound(id).into());
    }
    erase(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
