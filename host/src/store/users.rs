//! Users and their sessions.

use super::{Db, Result, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub is_admin: bool,
    pub time_zone: String,
}

const USER_COLUMNS: &str = "id, username, email, is_admin, time_zone";

/// A `users` row as stored ([`USER_COLUMNS`]); `is_admin` is 0 or 1.
#[derive(sqlx::FromRow)]
struct UserRecord {
    id: String,
    username: String,
    email: Option<String>,
    is_admin: i64,
    time_zone: String,
}

impl From<UserRecord> for User {
    fn from(r: UserRecord) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            is_admin: r.is_admin != 0,
            time_zone: r.time_zone,
        }
    }
}

/// A user with their password hash (none for users a proxy or an identity
/// provider vouches for).
#[derive(sqlx::FromRow)]
struct UserWithPassword {
    #[sqlx(flatten)]
    user: UserRecord,
    password_hash: Option<String>,
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("the username is taken")]
    Taken,
    #[error(transparent)]
    Db(#[from] super::Error),
}

impl Db {
    /// Creates a user; the first user of a database becomes an admin.
    pub async fn create_user(
        &self,
        id: &str,
        username: &str,
        password_hash: Option<&str>,
        make_admin: bool,
    ) -> Result<User, CreateUserError> {
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query("SELECT 1 FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(super::Error::from)?;
        if taken.is_some() {
            return Err(CreateUserError::Taken);
        }
        let count: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users")
            .fetch_one(&mut *tx)
            .await
            .map_err(super::Error::from)?;
        let is_admin = make_admin || count == 0;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(username)
        .bind(password_hash)
        .bind(i64::from(is_admin))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            // A concurrent registration of the same name.
            sqlx::Error::Database(d) if d.is_unique_violation() => CreateUserError::Taken,
            _ => CreateUserError::Db(e.into()),
        })?;
        tx.commit().await.map_err(super::Error::from)?;
        Ok(User {
            id: id.to_string(),
            username: username.to_string(),
            email: None,
            is_admin,
            time_zone: "UTC".to_string(),
        })
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM users")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// A user and their password hash, by username.
    pub async fn user_with_password(
        &self,
        username: &str,
    ) -> Result<Option<(User, Option<String>)>> {
        let row: Option<UserWithPassword> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| (r.user.into(), r.password_hash)))
    }

    /// Stores a session (by the hash of its token).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now_ms())
            .bind(expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The user of a live session.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<User>> {
        let row: Option<UserRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
            USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(User::from))
    }

    /// Deletes sessions that expired before now. Returns how many went.
    pub async fn prune_expired_sessions(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now_ms())
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl Db {
    /// The user's IANA time zone name.
    pub async fn user_time_zone(&self, user_id: &str) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT time_zone FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

impl Db {
    pub async fn set_time_zone(&self, user_id: &str, time_zone: &str) -> Result<()> {
        sqlx::query("UPDATE users SET time_zone = $2 WHERE id = $1")
            .bind(user_id)
            .bind(time_zone)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// Who a proxy or an identity provider says a request comes from.
pub struct Identity<'a> {
    /// `forward-auth`, or the OIDC issuer.
    pub issuer: &'a str,
    /// The source's stable id for the person (the proxy's user id, the token's `sub`).
    pub subject: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub is_admin: bool,
    /// The id a new user gets.
    pub new_id: &'a str,
}

/// Usernames to try for a new identified user: the name, then suffixed ones.
fn display_names(name: &str, new_id: &str) -> impl Iterator<Item = String> {
    std::iter::once(name.to_string())
        .chain((2..=9).map(move |n| format!("{name}-{n}")))
        .chain(std::iter::once(format!(
            "{name}-{}",
            new_id.get(..8).unwrap_or(new_id)
        )))
}

impl Db {
    /// The user an identity names: a proxy's or an issuer's stable id for them,
    /// `(issuer, subject)`. Created on first sight; email and admin flag follow
    /// what the source says now. `display_name` is only what they are called: a
    /// name another person already has gets a suffix (`alice-2`), and a local
    /// account (one with a password) is never matched. A user created before
    /// identities were kept (keyed by name) is claimed by the first identity that
    /// presents that name.
    pub async fn identified_user(&self, identity: &Identity<'_>) -> Result<User> {
        for _ in 0..3 {
            if let Some(user) = self.user_by_identity(identity).await? {
                return self.refresh_identified(user, identity).await;
            }
            let claimed = sqlx::query(
                "UPDATE users SET identity_issuer = $1, identity_subject = $2 \
                 WHERE identity_issuer = 'legacy-name' AND identity_subject = $3",
            )
            .bind(identity.issuer)
            .bind(identity.subject)
            .bind(identity.display_name)
            .execute(self.writer())
            .await?;
            if claimed.rows_affected() == 1 {
                continue;
            }
            for candidate in display_names(identity.display_name, identity.new_id) {
                let inserted = sqlx::query(
                    "INSERT INTO users (id, username, email, is_admin, created_at, identity_issuer, identity_subject) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(identity.new_id)
                .bind(&candidate)
                .bind(identity.email)
                .bind(i64::from(identity.is_admin))
                .bind(now_ms())
                .bind(identity.issuer)
                .bind(identity.subject)
                .execute(self.writer())
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(User {
                        id: identity.new_id.to_string(),
                        username: candidate,
                        email: identity.email.map(str::to_string),
                        is_admin: identity.is_admin,
                        time_zone: "UTC".to_string(),
                    });
                }
                // The name is taken, or another request created this identity first.
                if self.user_by_identity(identity).await?.is_some() {
                    break;
                }
            }
        }
        Err(sqlx::Error::RowNotFound.into())
    }

    async fn user_by_identity(&self, identity: &Identity<'_>) -> Result<Option<User>> {
        let row: Option<UserRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE identity_issuer = $1 AND identity_subject = $2"
        )))
        .bind(identity.issuer)
        .bind(identity.subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(User::from))
    }

    async fn refresh_identified(&self, mut user: User, identity: &Identity<'_>) -> Result<User> {
        if user.email.as_deref() != identity.email || user.is_admin != identity.is_admin {
            sqlx::query("UPDATE users SET email = $2, is_admin = $3 WHERE id = $1")
                .bind(&user.id)
                .bind(identity.email)
                .bind(i64::from(identity.is_admin))
                .execute(self.writer())
                .await?;
            user.email = identity.email.map(str::to_string);
            user.is_admin = identity.is_admin;
        }
        Ok(user)
    }
}

/// An account as the admin's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    /// When it was created, ms since the epoch.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct AccountRecord {
    id: String,
    username: String,
    is_admin: i64,
    created_at: i64,
}

impl From<AccountRecord> for Account {
    fn from(r: AccountRecord) -> Self {
        Account {
            id: r.id,
            username: r.username,
            is_admin: r.is_admin != 0,
            created_at: r.created_at,
        }
    }
}

/// Why a change to an account's admin flag, or its removal, was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountChangeError {
    #[error("no such user")]
    NotFound,
    /// It would leave the database without an admin.
    #[error("the last admin cannot be removed or demoted")]
    LastAdmin,
    #[error(transparent)]
    Db(#[from] super::Error),
}

impl From<sqlx::Error> for AccountChangeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

/// The tables holding a user's rows, each with the statement that deletes them
/// (`$1` is the user's id). Plugin storage's user scope is `plugin_kv.owner`;
/// entries and reminders belong to a habit.
const OWNED_ROWS: &[&str] = &[
    "DELETE FROM entries WHERE habit_id IN (SELECT id FROM habits WHERE user_id = $1)",
    "DELETE FROM habit_reminders WHERE habit_id IN (SELECT id FROM habits WHERE user_id = $1)",
    "DELETE FROM habits WHERE user_id = $1",
    "DELETE FROM activities WHERE user_id = $1",
    "DELETE FROM sessions WHERE user_id = $1",
    "DELETE FROM api_tokens WHERE user_id = $1",
    "DELETE FROM jobs WHERE user_id = $1",
    "DELETE FROM llm_usage WHERE user_id = $1",
    "DELETE FROM llm_budget WHERE user_id = $1",
    "DELETE FROM notification_channels WHERE user_id = $1",
    "DELETE FROM used_done_links WHERE user_id = $1",
    "DELETE FROM plugin_kv WHERE owner = $1",
];

impl Db {
    /// Every account, by username.
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let rows: Vec<AccountRecord> = sqlx::query_as(
            "SELECT id, username, is_admin, created_at FROM users ORDER BY username",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// One account, by id.
    pub async fn account(&self, user_id: &str) -> Result<Option<Account>> {
        let row: Option<AccountRecord> =
            sqlx::query_as("SELECT id, username, is_admin, created_at FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Account::from))
    }

    /// The user's password hash; `None` for a user without a password (one a
    /// proxy or an identity provider vouches for) or no such user.
    pub async fn password_hash(&self, user_id: &str) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(hash.flatten())
    }

    /// Sets a user's password hash and deletes their sessions but the one whose
    /// token hash is `keep` (none: every session), in one transaction. False when
    /// there is no such user.
    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The admins' ids, locked until the transaction ends (PostgreSQL; SQLite's
    /// `BEGIN IMMEDIATE` already holds the one write lock), so two demotions at
    /// once cannot both see another admin left.
    async fn lock_admins(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<Vec<String>, AccountChangeError> {
        let sql = match self.backend() {
            super::Backend::Postgres => {
                "SELECT id FROM users WHERE is_admin <> 0 ORDER BY id FOR UPDATE"
            }
            super::Backend::Sqlite => "SELECT id FROM users WHERE is_admin <> 0 ORDER BY id",
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&mut **tx).await?)
    }

    /// Refuses when `user_id` is the only admin.
    async fn check_not_last_admin(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user_id: &str,
    ) -> Result<(), AccountChangeError> {
        let admins = self.lock_admins(tx).await?;
        if admins.iter().all(|id| id == user_id) && admins.iter().any(|id| id == user_id) {
            return Err(AccountChangeError::LastAdmin);
        }
        Ok(())
    }

    /// Makes a user an admin or not; the last admin is not demoted.
    pub async fn set_admin(
        &self,
        user_id: &str,
        is_admin: bool,
    ) -> Result<Account, AccountChangeError> {
        let mut tx = self.begin_write().await?;
        if !is_admin {
            self.check_not_last_admin(&mut tx, user_id).await?;
        }
        let updated = sqlx::query("UPDATE users SET is_admin = $2 WHERE id = $1")
            .bind(user_id)
            .bind(i64::from(is_admin))
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(AccountChangeError::NotFound);
        }
        tx.commit().await?;
        self.account(user_id)
            .await?
            .ok_or(AccountChangeError::NotFound)
    }

    /// Deletes a user and every row they own ([`OWNED_ROWS`]) in one transaction;
    /// the last admin is not deleted.
    pub async fn delete_user(&self, user_id: &str) -> Result<(), AccountChangeError> {
        let mut tx = self.begin_write().await?;
        self.check_not_last_admin(&mut tx, user_id).await?;
        for statement in OWNED_ROWS {
            sqlx::query(*statement)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(AccountChangeError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
