//! Accounts: what a user does to their own account (change the password, delete
//! it) and what an admin does to anyone's (list, create, make admin, reset the
//! password, delete), for the HTTP API (`api::accounts`).
//!
//! The rules live here once: usernames and passwords as registration takes them
//! ([`check_username`], [`check_password`]); a password is checked only under the
//! login limiter ([`crate::auth::login`]), so the password routes of a signed-in
//! user cannot be used to guess it faster than the login form; changing or
//! resetting a password signs out the user's other sessions; the last admin is
//! never demoted or deleted ([`AccountError::LastAdmin`], decided in the same
//! transaction as the change). Deleting a user deletes every row they own in one
//! transaction ([`Db::delete_user`]); what lives outside the database (a Strava
//! connection at Strava) is for the caller to undo first.
//!
//! Passwords are HAM's only in `local` mode; elsewhere the password operations
//! answer [`AccountError::WrongAuthMode`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{self, AuthError, LoginLimiter};
use crate::store::Db;
use crate::store::users::{Account, AccountChangeError, CreateUserError, User};

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// HAM does not keep the passwords (`HAM_AUTH` is not `local`).
    #[error("accounts are managed by the identity provider (HAM_AUTH is not local)")]
    WrongAuthMode,
    /// The password given to confirm the change is not the user's.
    #[error("the password is wrong")]
    WrongPassword,
    /// A field breaks the rules; the message says how.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("username: already taken")]
    UsernameTaken,
    #[error("no user {0}")]
    NotFound(String),
    #[error("the last admin cannot be removed or demoted; make another user an admin first")]
    LastAdmin,
    /// The login limiter or password work refused, or failed.
    #[error("{0:?}")]
    Auth(AuthError),
    #[error(transparent)]
    Db(#[from] crate::store::Error),
}

impl From<AuthError> for AccountError {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

fn change_error(user_id: &str, e: AccountChangeError) -> AccountError {
    match e {
        AccountChangeError::NotFound => AccountError::NotFound(user_id.to_string()),
        AccountChangeError::LastAdmin => AccountError::LastAdmin,
        AccountChangeError::Db(e) => AccountError::Db(e),
    }
}

/// A username as registration takes it: 3 to 32 of `a-z 0-9 . _ -`.
pub fn check_username(username: &str) -> Result<(), AccountError> {
    let ok = (3..=32).contains(&username.len())
        && username
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
    if ok {
        return Ok(());
    }
    Err(AccountError::Invalid {
        field: "username",
        message: "3 to 32 of a-z, 0-9, '.', '_', '-'".into(),
    })
}

/// A new password as registration takes it: 8 characters or more, at most
/// [`auth::login::MAX_PASSWORD_BYTES`] bytes.
pub fn check_password(field: &'static str, password: &str) -> Result<(), AccountError> {
    if password.len() > auth::login::MAX_PASSWORD_BYTES {
        return Err(AccountError::Invalid {
            field,
            message: format!("at most {} bytes", auth::login::MAX_PASSWORD_BYTES),
        });
    }
    if password.chars().count() < 8 {
        return Err(AccountError::Invalid {
            field,
            message: "at least 8 characters".into(),
        });
    }
    Ok(())
}

/// Changes to an account an admin asks for; absent fields stay.
#[derive(Debug, Default)]
pub struct AccountUpdate {
    pub is_admin: Option<bool>,
    /// A new password (a reset): the user's sessions are all revoked.
    pub password: Option<String>,
}

/// Account operations; see the module doc.
pub struct Accounts {
    db: Db,
    limiter: Arc<LoginLimiter>,
    /// Whether HAM keeps the passwords (`local` mode).
    password_login: bool,
}

impl Accounts {
    pub fn new(db: Db, limiter: Arc<LoginLimiter>, password_login: bool) -> Self {
        Self {
            db,
            limiter,
            password_login,
        }
    }

    fn local_only(&self) -> Result<(), AccountError> {
        if self.password_login {
            Ok(())
        } else {
            Err(AccountError::WrongAuthMode)
        }
    }

    /// Checks `password` against the user's, as a login from `client` would:
    /// reserved in the limiter first, a wrong one counted as a failed login.
    pub async fn confirm_password(
        &self,
        user: &User,
        password: &str,
        client: IpAddr,
    ) -> Result<(), AccountError> {
        self.local_only()?;
        if password.len() > auth::login::MAX_PASSWORD_BYTES {
            return Err(AccountError::WrongPassword);
        }
        let attempt = self.limiter.reserve(client, &user.username)?;
        let stored = match self.db.password_hash(&user.id).await {
            Ok(stored) => stored,
            Err(e) => {
                self.limiter.refund(attempt);
                return Err(e.into());
            }
        };
        match self
            .limiter
            .passwords()
            .verify(stored, password.to_string())
            .await
        {
            Ok(true) => {
                self.limiter.succeeded(attempt);
                Ok(())
            }
            Ok(false) => {
                self.limiter.failed(attempt);
                Err(AccountError::WrongPassword)
            }
            Err(e) => {
                self.limiter.refund(attempt);
                Err(e.into())
            }
        }
    }

    /// Changes the user's password after checking the current one; every session
    /// of theirs but `keep` (the token hash of the one asking) is revoked.
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        client: IpAddr,
        keep: Option<&str>,
    ) -> Result<(), AccountError> {
        self.local_only()?;
        check_password("new_password", new)?;
        self.confirm_password(user, current, client).await?;
        let hash = self.limiter.passwords().hash(new.to_string()).await?;
        if !self.db.set_password(&user.id, &hash, keep).await? {
            return Err(AccountError::NotFound(user.id.clone()));
        }
        Ok(())
    }

    /// Every account, by username.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        Ok(self.db.list_accounts().await?)
    }

    /// Creates an account with a password (an admin's doing; `local` mode).
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Account, AccountError> {
        self.local_only()?;
        check_username(username)?;
        check_password("password", password)?;
        let hash = self.limiter.passwords().hash(password.to_string()).await?;
        let id = auth::new_id();
        self.db
            .create_user(&id, username, Some(&hash), is_admin)
            .await
            .map_err(|e| match e {
                CreateUserError::Taken => AccountError::UsernameTaken,
                CreateUserError::Db(e) => AccountError::Db(e),
            })?;
        self.db
            .account(&id)
            .await?
            .ok_or(AccountError::NotFound(id))
    }

    /// Applies an admin's changes to an account: the admin flag (the last admin
    /// stays one), a password reset (which revokes all the user's sessions).
    pub async fn update(
        &self,
        user_id: &str,
        update: AccountUpdate,
    ) -> Result<Account, AccountError> {
        if let Some(password) = &update.password {
            self.local_only()?;
            check_password("password", password)?;
        }
        if self.db.account(user_id).await?.is_none() {
            return Err(AccountError::NotFound(user_id.to_string()));
        }
        if let Some(is_admin) = update.is_admin {
            self.db
                .set_admin(user_id, is_admin)
                .await
                .map_err(|e| change_error(user_id, e))?;
        }
        if let Some(password) = update.password {
            let hash = self.limiter.passwords().hash(password).await?;
            if !self.db.set_password(user_id, &hash, None).await? {
                return Err(AccountError::NotFound(user_id.to_string()));
            }
        }
        self.db
            .account(user_id)
            .await?
            .ok_or_else(|| AccountError::NotFound(user_id.to_string()))
    }

    /// Deletes the user and everything they own, in one transaction; the last
    /// admin is refused.
    pub async fn delete(&self, user_id: &str) -> Result<(), AccountError> {
        self.db
            .delete_user(user_id)
            .await
            .map_err(|e| change_error(user_id, e))
    }

    /// Whether this account would be refused as the last admin, asked before
    /// anything outside the database is undone for it.
    pub async fn is_last_admin(&self, user_id: &str) -> Result<bool, AccountError> {
        let accounts = self.db.list_accounts().await?;
        let admins: Vec<&Account> = accounts.iter().filter(|a| a.is_admin).collect();
        Ok(admins.len() == 1 && admins.iter().any(|a| a.id == user_id))
    }
}
