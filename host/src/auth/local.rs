//! `local` identity: HAM keeps the accounts. Users register and log in with a
//! password (`/api/auth/register`, `/api/auth/login` in `api::auth`, guarded by
//! [`super::login`]) and are then known by a session cookie.
//!
//! The cookie (HttpOnly, SameSite=Lax) carries a random token that is stored only
//! as its sha256 ([`super::token_hash`]), so sessions are revocable and a database
//! leak is no login. Over https the cookie is `__Host-ham_session` (Secure,
//! `Path=/`, no `Domain`: a sibling subdomain or a plain-http page cannot plant or
//! overwrite it); over plain http it is `ham_session`. A request is read with the
//! name of its own scheme only (so a `ham_session` set over https before the
//! prefix existed no longer signs in).

use std::time::Duration;

use axum::http::request::Parts;
use futures::future::BoxFuture;

use super::{AuthError, Authenticator, is_https, token_hash};
use crate::store::Db;
use crate::store::users::User;

/// `HAM_AUTH=local`.
pub const MODE: &str = "local";

/// The session cookie over plain http.
pub const SESSION_COOKIE: &str = "ham_session";
/// The session cookie over https: the `__Host-` prefix makes the browser insist on
/// `Secure`, `Path=/` and no `Domain`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-ham_session";
/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Sessions in the database, found by the cookie's token.
pub struct LocalAuth {
    db: Db,
}

impl LocalAuth {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Authenticator for LocalAuth {
    fn mode(&self, _parts: &Parts) -> &'static str {
        MODE
    }

    fn password_login(&self) -> bool {
        true
    }

    /// A session cookie, known or not.
    fn has_credential(&self, parts: &Parts) -> bool {
        session_token(parts).is_some()
    }

    /// The user of the session the cookie names; nobody without a cookie, or
    /// with an unknown or expired session.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<User>, AuthError>> {
        Box::pin(async move {
            let Some(token) = session_token(parts) else {
                return Ok(None);
            };
            self.db
                .session_user(&token_hash(&token))
                .await
                .map_err(AuthError::internal)
        })
    }
}

/// The session cookie's name for a request over https (`secure`) or plain http.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The session token a request carries, if any: the cookie named for the
/// request's scheme ([`super::is_https`]); the other name is ignored.
pub fn session_token(parts: &Parts) -> Option<String> {
    let name = session_cookie_name(is_https(parts));
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_string)
        })
}

/// A `Set-Cookie` value for a session (or, with `None`, one that clears it):
/// `__Host-ham_session` with `Secure` over https, `ham_session` over plain http.
pub fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let name = session_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{name}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_host_prefixed_over_https() {
        let secure = session_cookie(Some("t"), true);
        assert!(
            secure.starts_with("__Host-ham_session=t; Path=/;"),
            "{secure}"
        );
        assert!(
            secure.ends_with("; Secure") && !secure.contains("Domain"),
            "{secure}"
        );
        let plain = session_cookie(None, false);
        assert!(
            plain.starts_with("ham_session=;") && !plain.contains("Secure"),
            "{plain}"
        );
        let read = |proto: &str, cookie: &str| {
            let (parts, ()) = axum::http::Request::builder()
                .header("x-forwarded-proto", proto)
                .header("cookie", cookie)
                .body(())
                .unwrap()
                .into_parts();
            session_token(&parts)
        };
        let both = "ham_session=plain; __Host-ham_session=secure";
        assert_eq!(read("https", both).as_deref(), Some("secure"));
        assert_eq!(read("http", both).as_deref(), Some("plain"));
        assert_eq!(read("https", "ham_session=plain"), None);
        assert_eq!(read("http", "__Host-ham_session=secure"), None);
    }
}
