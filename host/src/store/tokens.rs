//! Personal API tokens (`api_tokens`): stored by the sha256 of the token, never
//! the token itself.

use super::users::User;
use super::{Db, Result, now_ms};

/// A token as its owner sees it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch; refreshed at most once a minute.
    pub last_used_at: Option<i64>,
}

/// The user a token stands for, and when the token was last used.
#[derive(sqlx::FromRow)]
struct TokenOwner {
    token_id: String,
    last_used_at: Option<i64>,
    id: String,
    username: String,
    email: Option<String>,
    is_admin: i64,
    time_zone: String,
}

/// How often `last_used_at` is written at most.
pub const LAST_USED_EVERY_MS: i64 = 60_000;

impl Db {
    /// Stores a token (by its hash) for `user_id`.
    pub async fn create_api_token(
        &self,
        id: &str,
        user_id: &str,
        name: &str,
        token_hash: &str,
    ) -> Result<ApiToken> {
        let created_at = now_ms();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(created_at)
        .execute(self.writer())
        .await?;
        Ok(ApiToken {
            id: id.to_string(),
            name: name.to_string(),
            created_at,
            last_used_at: None,
        })
    }

    /// The user's tokens, oldest first.
    pub async fn list_api_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        Ok(sqlx::query_as(
            "SELECT id, name, created_at, last_used_at FROM api_tokens \
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many tokens the user has.
    pub async fn count_api_tokens(&self, user_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM api_tokens WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Deletes one of the user's tokens; false when they have none by that id.
    pub async fn delete_api_token(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The user a token (by its hash) stands for; its `last_used_at` is set to
    /// now when it is older than [`LAST_USED_EVERY_MS`].
    pub async fn api_token_user(&self, token_hash: &str) -> Result<Option<User>> {
        let row: Option<TokenOwner> = sqlx::query_as(
            "SELECT t.id AS token_id, t.last_used_at, u.id, u.username, u.email, u.is_admin, u.time_zone \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let now = now_ms();
        if row
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_EVERY_MS)
        {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(&row.token_id)
            .bind(now)
            .bind(now - LAST_USED_EVERY_MS)
            .execute(self.writer())
            .await?;
        }
        Ok(Some(User {
            id: row.id,
            username: row.username,
            email: row.email,
            is_admin: row.is_admin != 0,
            time_zone: row.time_zone,
        }))
    }
}
