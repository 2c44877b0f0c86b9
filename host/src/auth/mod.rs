//! Identity: who a request comes from.
//!
//! `local` mode (the only one built so far): accounts with argon2id password
//! hashes, and a session cookie (`ham_session`, HttpOnly, SameSite=Lax, Secure over
//! https) whose token is stored only as its sha256, so sessions are revocable and
//! a database leak is no login. Failed logins are limited per username and per
//! client address.
//!
//! `forward-auth` mode: a proxy (Authentik behind Traefik) names the user in
//! headers; they are believed only from `HAM_TRUSTED_PROXIES`. `oidc` mode: bearer
//! JWTs checked against the issuer's keys ([`oidc`]).

pub mod oidc;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::api::ApiError;
use crate::settings::AuthMode;
use crate::store::users::User;

pub const SESSION_COOKIE: &str = "ham_session";
/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A random identifier: 128 bits, hex.
pub fn new_id() -> String {
    random_hex::<16>()
}

/// A random session token: 256 bits, hex.
pub fn new_token() -> String {
    random_hex::<32>()
}

fn random_hex<const N: usize>() -> String {
    use argon2::password_hash::rand_core::RngCore;
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What sessions are stored by.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

/// Whether `password` matches the stored hash. A missing hash still costs one
/// verification, so a wrong username takes as long as a wrong password.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default());
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// The session token a request carries, if any.
pub fn session_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(SESSION_COOKIE)?
                .strip_prefix('=')
                .map(str::to_string)
        })
}

/// A `Set-Cookie` value for a session (or, with `None`, one that clears it).
pub fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

/// Whether the client reached us over https (directly or through a proxy).
pub fn is_https(parts: &Parts) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            == Some("https")
}

/// The signed-in user; the request is refused with 401 without one.
pub struct CurrentUser(pub User);

/// The signed-in user, if any.
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match state.settings.auth {
            AuthMode::ForwardAuth => return forwarded_user(parts, state).await.map(Self),
            AuthMode::Oidc => return bearer_user(parts, state).await.map(Self),
            AuthMode::Local => {}
        }
        let Some(token) = session_token(parts) else {
            return Ok(Self(None));
        };
        let user = state
            .db
            .session_user(&token_hash(&token))
            .await
            .map_err(ApiError::internal)?;
        Ok(Self(user))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(user) => Ok(Self(user)),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "sign in first",
            )),
        }
    }
}

/// `forward-auth`: the user named by the proxy's headers, created on first sight,
/// but only when the TCP peer is a trusted proxy; from anyone else the headers are
/// ignored, so a client cannot claim to be someone by sending them itself.
async fn forwarded_user(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let settings = &state.settings;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let trusted = peer.is_some_and(|ip| {
        settings
            .trusted_proxies
            .iter()
            .any(|cidr| cidr.contains(ip))
    });
    if !trusted {
        if parts
            .headers
            .contains_key(settings.forward_auth_headers.user.as_str())
        {
            tracing::warn!(peer = ?peer, "forward-auth headers from an untrusted peer ignored");
        }
        return Ok(None);
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(username) = header(&settings.forward_auth_headers.user) else {
        return Ok(None);
    };
    if username.len() > 150 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "forwarded username over 150 bytes",
        ));
    }
    let email = header(&settings.forward_auth_headers.email);
    let is_admin = match (
        &settings.admin_group,
        header(&settings.forward_auth_headers.groups),
    ) {
        (Some(admin), Some(groups)) => groups.split('|').any(|g| g.trim() == admin),
        _ => false,
    };
    let user = state
        .db
        .forwarded_user(&new_id(), username, email, is_admin)
        .await
        .map_err(ApiError::internal)?;
    Ok(Some(user))
}

/// `oidc`: the user a valid bearer token names (`preferred_username`, else `sub`),
/// created on first sight. A present but invalid token is refused with the reason.
async fn bearer_user(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let Some(oidc) = state.oidc.as_ref() else {
        return Ok(None);
    };
    let token = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else { return Ok(None) };
    let claims = oidc.verify(token.trim()).await.map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("invalid token: {e}"),
        )
    })?;
    let username = claims
        .preferred_username
        .clone()
        .unwrap_or_else(|| claims.sub.clone());
    let is_admin = state
        .settings
        .admin_group
        .as_ref()
        .is_some_and(|g| claims.groups.contains(g));
    let user = state
        .db
        .forwarded_user(&new_id(), &username, claims.email.as_deref(), is_admin)
        .await
        .map_err(ApiError::internal)?;
    Ok(Some(user))
}

/// Failed logins per key (a username, a client address) within a window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

const MAX_FAILURES: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);

impl LoginLimiter {
    /// `Err(wait)` when any key has used up its failures in the window.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wait = None;
        for key in keys {
            if let Some(times) = map.get_mut(key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= MAX_FAILURES {
                    let oldest = times.first().copied().unwrap_or(now);
                    wait = Some(WINDOW.saturating_sub(now.duration_since(oldest)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            map.entry(key.clone()).or_default().push(Instant::now());
        }
    }

    pub fn succeeded(&self, username_key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username_key);
    }
}
