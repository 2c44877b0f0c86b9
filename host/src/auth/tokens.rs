//! Personal API tokens: `Authorization: Bearer ham_…` acts as the user who made
//! the token, on every user route, in every identity mode. The identity
//! extractors ([`super::MaybeUser`], [`super::CurrentUser`]) ask
//! [`ApiTokens::authenticate`] before the mode's own [`super::Authenticator`], so
//! a `ham_` bearer is never taken for an OIDC token, and mark the request
//! [`ByToken`].
//!
//! What a token may not do: the admin routes refuse it (`api::admin`), and so do
//! the routes that need the person, not a script ([`super::SessionUser`]):
//! managing tokens (a leaked token cannot mint more), changing the password,
//! deleting the account.
//!
//! A token is `ham_` and 32 random bytes, base64url without padding; the
//! database holds only its sha256 ([`super::token_hash`]), so it is shown once,
//! at creation. Failed bearer attempts (an unknown or revoked token) count per
//! client address ([`super::client_addr`]) in a limiter of their own, as failed
//! logins do: after 5 failures within 15 minutes that address gets 429 for
//! bearer tokens, the right one included, until the window passes. The budget
//! is checked before each lookup and a failure recorded after it, rather than
//! reserved (as logins are): a lookup is one indexed read, not argon2 work, and a
//! reservation held by every valid request would refuse a script's parallel
//! requests; guesses in flight at once may overrun the budget by their number.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuthError, LoginLimiter, client_addr, token_hash};
use crate::settings::Settings;
use crate::store::Db;
use crate::store::tokens::ApiToken;
use crate::store::users::User;

/// What every personal API token starts with.
pub const PREFIX: &str = "ham_";
/// The most tokens one user may have.
pub const MAX_TOKENS_PER_USER: i64 = 50;
/// The longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Set on a request whose user was named by a personal API token.
#[derive(Clone, Copy, Debug)]
pub struct ByToken;

/// Why a token operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("name: {0}")]
    InvalidName(String),
    #[error("at most {MAX_TOKENS_PER_USER} tokens per user; revoke one first")]
    TooMany,
    #[error("no token {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] crate::store::Error),
}

/// A token just made: its row, and the secret, shown this once.
pub struct NewToken {
    pub token: ApiToken,
    pub secret: String,
}

/// Personal API tokens; see the module doc.
pub struct ApiTokens {
    db: Db,
    settings: Arc<Settings>,
    /// Failed bearer attempts per client address.
    failures: LoginLimiter,
}

/// The `ham_…` bearer token a request carries, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| t.starts_with(PREFIX))
}

impl ApiTokens {
    pub fn new(db: Db, settings: Arc<Settings>) -> Self {
        Self {
            db,
            settings,
            failures: LoginLimiter::new(super::login::MAX_TRACKED_KEYS, 1),
        }
    }

    /// The user a `ham_` bearer token names. `Ok(None)`: the request carries no
    /// such token. 401 `invalid_token` for an unknown or revoked one; 429
    /// `too_many_attempts` when this address has failed too often.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<User>, AuthError> {
        let Some(token) = bearer(parts) else {
            return Ok(None);
        };
        let client = client_addr(parts, &self.settings);
        // One budget per address, whatever the token. Checked, not reserved:
        // a valid token's request never holds a slot, so a script's parallel
        // requests are never refused for each other.
        self.failures.check(client, "")?;
        match self.db.api_token_user(&token_hash(token)).await {
            Ok(Some(user)) => Ok(Some(user)),
            Ok(None) => {
                if let Ok(attempt) = self.failures.reserve(client, "") {
                    self.failures.failed(attempt);
                }
                Err(AuthError::Refused {
                    status: StatusCode::UNAUTHORIZED,
                    code: "invalid_token",
                    message: "the API token is unknown or revoked".into(),
                })
            }
            Err(e) => Err(AuthError::internal(e)),
        }
    }

    /// Makes a token named `name` for the user: the secret is in the answer and
    /// nowhere else.
    pub async fn create(&self, user_id: &str, name: &str) -> Result<NewToken, TokenError> {
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(TokenError::InvalidName(format!(
                "1 to {MAX_NAME_CHARS} characters"
            )));
        }
        if self.db.count_api_tokens(user_id).await? >= MAX_TOKENS_PER_USER {
            return Err(TokenError::TooMany);
        }
        let secret = new_secret();
        let token = self
            .db
            .create_api_token(&super::new_id(), user_id, name, &token_hash(&secret))
            .await?;
        Ok(NewToken { token, secret })
    }

    /// The user's tokens, without their secrets.
    pub async fn list(&self, user_id: &str) -> Result<Vec<ApiToken>, TokenError> {
        Ok(self.db.list_api_tokens(user_id).await?)
    }

    /// Revokes one of the user's tokens; another user's is not found.
    pub async fn revoke(&self, user_id: &str, id: &str) -> Result<(), TokenError> {
        if self.db.delete_api_token(user_id, id).await? {
            Ok(())
        } else {
            Err(TokenError::NotFound(id.to_string()))
        }
    }
}

/// `ham_` and 32 random bytes, base64url without padding.
fn new_secret() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore as _};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_43_characters_of_base64url() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let body = a.strip_prefix(PREFIX).unwrap();
        assert_eq!(body.len(), 43);
        assert!(
            body.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn only_ham_bearers_are_taken() {
        let parts = |value: &str| {
            axum::http::Request::builder()
                .header("authorization", value)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert_eq!(bearer(&parts("Bearer ham_abc")), Some("ham_abc"));
        assert_eq!(bearer(&parts("Bearer eyJhbGciOi")), None);
        assert_eq!(bearer(&parts("Basic ham_abc")), None);
    }
}
