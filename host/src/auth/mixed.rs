//! Mixed identity: an identity provider's mode with `local`
//! (`HAM_AUTH=forward-auth,local`, or `oidc,local`), for a deployment that
//! people reach two ways: through the proxy that signs them in (Authentik on
//! the public route) and over a LAN route that skips it, where they sign in
//! with a password.
//!
//! A request is asked of the identity provider's mode first: a trusted proxy's
//! identity headers (or a bearer JWT) name its user, and a credential it refuses
//! is refused. A request that names no one there (no headers, or headers from a
//! peer outside `HAM_TRUSTED_PROXIES`, which [`super::forward`] ignores) is known
//! by its session cookie, as in `local`; registration, login and logout work as
//! in `local`. So headers from an untrusted peer never name anyone: that peer
//! gets its own session's user, or nobody (401).
//!
//! A route that skips the proxy's authentication but still passes through the
//! proxy (a trusted peer) must strip the identity headers a client sent, or the
//! client names whom it likes: the k3s LAN component does (Middleware
//! `strip-identity-headers`), as the Strava webhook route does.

use axum::http::request::Parts;
use futures::future::BoxFuture;
use std::sync::Arc;

use super::local::LocalAuth;
use super::{AuthError, Authenticator};
use crate::store::users::User;

/// An identity provider's mode, then local sessions.
pub struct Mixed {
    provider: Arc<dyn Authenticator>,
    local: LocalAuth,
}

impl Mixed {
    /// `provider` is asked first (`forward-auth` or `oidc`), then `local`.
    pub fn new(provider: Arc<dyn Authenticator>, local: LocalAuth) -> Self {
        Self { provider, local }
    }
}

impl Authenticator for Mixed {
    /// The identity provider's mode for a request that carries its credential
    /// (the browser app then shows no sign-in form), `local` for any other.
    fn mode(&self, parts: &Parts) -> &'static str {
        if self.provider.has_credential(parts) {
            self.provider.mode(parts)
        } else {
            self.local.mode(parts)
        }
    }

    /// Local accounts exist beside the provider's: registration and login work.
    fn password_login(&self) -> bool {
        true
    }

    fn has_credential(&self, parts: &Parts) -> bool {
        self.provider.has_credential(parts) || self.local.has_credential(parts)
    }

    /// The provider's user; else the session's. A credential the provider
    /// refuses is refused, whatever cookie comes with it.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<User>, AuthError>> {
        Box::pin(async move {
            if let Some(user) = self.provider.authenticate(parts).await? {
                return Ok(Some(user));
            }
            self.local.authenticate(parts).await
        })
    }
}
