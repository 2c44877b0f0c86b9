//! `forward-auth` identity: a proxy in front (Authentik behind Traefik) signs
//! users in and names them in request headers; HAM keeps no passwords.
//!
//! The headers are believed only when the TCP peer is one of
//! `HAM_TRUSTED_PROXIES`; from anyone else they are ignored (and logged), so a
//! client cannot claim to be someone by sending them itself. A user is keyed by
//! the proxy's stable id (`X-authentik-uid`: a name alone identifies no one, two
//! people may present the same one), called by the username header, created on
//! first sight, and an admin when `HAM_ADMIN_GROUP` is among the `|`-separated
//! groups header.

use axum::http::StatusCode;
use axum::http::request::Parts;
use futures::future::BoxFuture;

use super::{AuthError, Authenticator, new_id, peer_addr};
use crate::settings::{Cidr, ForwardAuthHeaders, Settings};
use crate::store::Db;
use crate::store::users::{Identity, User};

/// `HAM_AUTH=forward-auth`.
pub const MODE: &str = "forward-auth";

/// The issuer of identities from a forward-auth proxy (`users.issuer`).
const ISSUER: &str = "forward-auth";

/// The longest username header stored.
const MAX_USERNAME_BYTES: usize = 150;
/// The longest user id header stored.
const MAX_UID_BYTES: usize = 255;

/// Users named by a trusted proxy's headers.
pub struct ForwardAuth {
    db: Db,
    headers: ForwardAuthHeaders,
    trusted_proxies: Vec<Cidr>,
    admin_group: Option<String>,
}

impl ForwardAuth {
    /// Reads the header names, `HAM_TRUSTED_PROXIES` and `HAM_ADMIN_GROUP`.
    pub fn new(settings: &Settings, db: Db) -> Self {
        Self {
            db,
            headers: settings.forward_auth_headers.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            admin_group: settings.admin_group.clone(),
        }
    }

    fn peer_is_trusted(&self, parts: &Parts) -> bool {
        peer_addr(parts).is_some_and(|ip| self.trusted_proxies.iter().any(|c| c.contains(ip)))
    }
}

impl Authenticator for ForwardAuth {
    fn mode(&self, _parts: &Parts) -> &'static str {
        MODE
    }

    /// The username header, from a trusted proxy.
    fn has_credential(&self, parts: &Parts) -> bool {
        self.peer_is_trusted(parts) && parts.headers.contains_key(self.headers.user.as_str())
    }

    /// The user the proxy's headers name; nobody when the peer is not a trusted
    /// proxy, or the username or user id header is missing. 400 `bad_request`
    /// for a username over 150 bytes or a user id over 255.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<User>, AuthError>> {
        Box::pin(async move {
            let headers = &self.headers;
            if !self.peer_is_trusted(parts) {
                if parts.headers.contains_key(headers.user.as_str()) {
                    let peer = peer_addr(parts);
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
            let Some(username) = header(&headers.user) else {
                return Ok(None);
            };
            let Some(uid) = header(&headers.uid) else {
                tracing::warn!(
                    header = %headers.uid,
                    "the trusted proxy sent a username but no user id header; nobody is signed in"
                );
                return Ok(None);
            };
            if username.len() > MAX_USERNAME_BYTES || uid.len() > MAX_UID_BYTES {
                return Err(AuthError::Refused {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_request",
                    message: "forwarded username over 150 bytes or user id over 255 bytes".into(),
                });
            }
            let is_admin = match (&self.admin_group, header(&headers.groups)) {
                (Some(admin), Some(groups)) => groups.split('|').any(|g| g.trim() == admin),
                _ => false,
            };
            let user = self
                .db
                .identified_user(&Identity {
                    issuer: ISSUER,
                    subject: uid,
                    display_name: username,
                    email: header(&headers.email),
                    is_admin,
                    new_id: &new_id(),
                })
                .await
                .map_err(AuthError::internal)?;
            Ok(Some(user))
        })
    }
}
