//! Personal API token routes (`/api/me/tokens`): make one (its secret shown
//! once), list them, revoke one. Thin: [`crate::auth::tokens::ApiTokens`] does
//! the work. They take a signed-in person, never a token
//! ([`crate::auth::SessionUser`]), so a leaked token cannot mint more.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ApiPath;
use super::{ApiError, ApiJson, ErrorBody};
use crate::AppState;
use crate::auth::SessionUser;
use crate::auth::tokens::TokenError;
use crate::store::tokens::ApiToken;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let message = e.to_string();
        match e {
            TokenError::InvalidName(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
            }
            TokenError::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_tokens", message),
            TokenError::NotFound(_) => ApiError::not_found(message),
            TokenError::Db(e) => e.into(),
        }
    }
}

/// A token as its owner sees it: never the secret.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    id: String,
    name: String,
    /// When it was made (RFC 3339, UTC).
    created_at: String,
    /// When it last authenticated a request (RFC 3339, UTC; to the minute), or
    /// null if never.
    last_used_at: Option<String>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            created_at: super::admin::timestamp(t.created_at),
            last_used_at: t.last_used_at.map(super::admin::timestamp),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

/// A token just made, with its secret: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    id: String,
    name: String,
    /// `ham_` and 43 characters: send it as `Authorization: Bearer <token>`. It
    /// is not stored and cannot be shown again.
    token: String,
    created_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// What the token is for ("Home Assistant"): 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
}

const PERSON_ONLY: &str =
    "`token_not_allowed`: sent with a personal API token; tokens are managed by a signed-in person";

/// The signed-in user's personal API tokens, oldest first, without their secrets.
#[utoipa::path(get, path = "/me/tokens", tag = "auth",
    responses((status = 200, body = TokenList),
        (status = 403, description = PERSON_ONLY, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.tokens.list(&user.id).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// Makes a personal API token: `Authorization: Bearer <token>` then acts as the
/// user on every user route (not the admin routes, not these).
#[utoipa::path(post, path = "/me/tokens", tag = "auth", request_body = TokenRequest,
    responses((status = 201, body = CreatedToken, description = "the token, with its secret shown this once"),
        (status = 403, description = PERSON_ONLY, body = ErrorBody),
        (status = 409, description = "`too_many_tokens`: the user has 50; revoke one first", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `name` empty or over 64 characters", body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    let made = state.tokens.create(&user.id, &body.name).await?;
    let view = TokenView::from(made.token);
    let created = CreatedToken {
        id: view.id,
        name: view.name,
        token: made.secret,
        created_at: view.created_at,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes one of the signed-in user's tokens: it stops working at once.
#[utoipa::path(delete, path = "/me/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "the token's id")),
    responses((status = 204, description = "revoked"),
        (status = 403, description = PERSON_ONLY, body = ErrorBody),
        (status = 404, description = "`not_found`: the user has no token by that id", body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.tokens.revoke(&user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
