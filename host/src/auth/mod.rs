//! Identity: who a request comes from.
//!
//! `HAM_AUTH` picks one mode, or an identity provider's mode with `local`
//! ([`mixed`]), once, at start: [`authenticator`] builds its [`Authenticator`]
//! (the one `match` on the mode) and `AppState` holds it.
//! Everything that asks who a request comes from asks it: the extractors
//! [`CurrentUser`], [`MaybeUser`] and [`SessionUser`] (and through them the admin
//! check and plugin routes acting for a user), after a personal API token
//! ([`tokens`]: `Authorization: Bearer ham_…`, in every mode), `GET /api/auth/config`, and the password routes,
//! which answer only where [`Authenticator::password_login`] says HAM keeps the
//! passwords.
//!
//! | mode | module | a request is the user named by |
//! | --- | --- | --- |
//! | `local` | [`local`] | its session cookie; accounts with argon2id passwords, guarded by [`login`] |
//! | `forward-auth` | [`forward`] | a trusted proxy's headers (`HAM_TRUSTED_PROXIES`) |
//! | `oidc` | [`oidc`] | a bearer JWT checked against the issuer's keys |
//! | `forward-auth,local`, `oidc,local` | [`mixed`] | the identity provider's credential if it names someone, else the session cookie |
//!
//! Besides the modes this module holds what they share: random ids and tokens,
//! the peer and client address of a request ([`peer_addr`], [`client_addr`]),
//! and [`AuthError`], which `api::auth` turns into the JSON error.
//!
//! # Adding an identity mode
//!
//! Say HAM should know users by client certificates that a TLS proxy checked.
//! Read [`forward`] (another mode in which someone else signs users in), then:
//!
//! 1. `host/src/auth/<mode>.rs`: a struct holding what it needs (its settings,
//!    the [`Db`]), and `impl Authenticator`: [`Authenticator::mode`] (its
//!    `HAM_AUTH` name), [`Authenticator::has_credential`] (whether a request
//!    carries its kind of credential), [`Authenticator::authenticate`] (`Ok(None)` for nobody,
//!    [`AuthError::Refused`] for a credential it refuses, users found or created
//!    with `Db::identified_user` under an issuer of its own). Leave
//!    [`Authenticator::password_login`] false unless HAM keeps the passwords.
//! 2. `settings.rs`: an `AuthMode` variant and the mode's settings (checked
//!    there, so a bad configuration fails at start; `AuthModes::new` says which
//!    modes combine); here, one arm in [`identity_mode`].
//! 3. A story test (signed in, nobody, refused) like `auth_forward.rs`.

pub mod forward;
pub mod local;
pub mod login;
pub mod mixed;
pub mod oidc;
pub mod tokens;

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::settings::{AuthMode, Settings};
use crate::store::Db;
use crate::store::users::User;

pub use login::{LoginLimiter, password_work_permits};

/// How one identity mode tells who a request comes from. Built once at start by
/// [`authenticator`]; shared by all requests, so it holds no per-request state.
pub trait Authenticator: Send + Sync {
    /// The name, as `HAM_AUTH` spells it, of the mode that speaks for this
    /// request: a single mode's own; in mixed identity ([`mixed`]) the identity
    /// provider's for a request carrying its credential, else `local`.
    /// `GET /api/auth/config` reports it, so the browser app shows a sign-in form
    /// where a password is what signs the request in.
    fn mode(&self, parts: &Parts) -> &'static str;

    /// Whether the request carries this mode's kind of credential where the mode
    /// reads it (a session cookie; identity headers from a trusted proxy; a
    /// bearer token), valid or not.
    fn has_credential(&self, parts: &Parts) -> bool;

    /// Whether HAM keeps the accounts itself: registration, password login and
    /// session cookies (`/api/auth/register`, `/api/auth/login`). False (the
    /// default): an identity provider manages the accounts, those routes answer
    /// 400 `wrong_auth_mode`, and there is no first-run registration.
    fn password_login(&self) -> bool {
        false
    }

    /// The user the request comes from, created on first sight where the mode
    /// names users HAM has not seen. `Ok(None)`: it names nobody (no credential,
    /// or one this mode ignores, such as identity headers from an untrusted
    /// peer). `Err`: it presents a credential that is refused
    /// ([`AuthError::Refused`], said to the client), or the lookup failed.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<User>, AuthError>>;
}

/// The authenticator for `settings.auth`: one mode's, or [`mixed::Mixed`] for an
/// identity provider's mode with `local`. Fails when a mode's settings are
/// incomplete (`oidc` without an issuer and audience). [`AuthModes`] admits no
/// other combination (the last arm is there for completeness).
///
/// [`AuthModes`]: crate::settings::AuthModes
pub fn authenticator(settings: &Settings, db: &Db) -> anyhow::Result<Arc<dyn Authenticator>> {
    let mut modes = settings.auth.iter();
    match (modes.next(), modes.next(), modes.next()) {
        (Some(mode), None, None) => identity_mode(mode, settings, db),
        (Some(provider), Some(AuthMode::Local), None) if provider != AuthMode::Local => {
            if provider == AuthMode::ForwardAuth && settings.trusted_proxies.is_empty() {
                tracing::warn!(
                    "HAM_AUTH={} without HAM_TRUSTED_PROXIES: no proxy's headers are believed, \
                     so everyone signs in locally",
                    settings.auth
                );
            }
            Ok(Arc::new(mixed::Mixed::new(
                identity_mode(provider, settings, db)?,
                local::LocalAuth::new(db.clone()),
            )))
        }
        _ => anyhow::bail!(
            "HAM_AUTH={}: give one mode, or forward-auth or oidc with local",
            settings.auth
        ),
    }
}

/// One mode's authenticator: the one place a mode is matched.
fn identity_mode(
    mode: AuthMode,
    settings: &Settings,
    db: &Db,
) -> anyhow::Result<Arc<dyn Authenticator>> {
    Ok(match mode {
        AuthMode::Local => Arc::new(local::LocalAuth::new(db.clone())),
        AuthMode::ForwardAuth => Arc::new(forward::ForwardAuth::new(settings, db.clone())),
        AuthMode::Oidc => Arc::new(oidc::OidcAuth::new(settings, db.clone())?),
    })
}

/// Why a request is not answered on its merits by identity: a refused
/// credential, a login limit, or a failure of ours. `api::auth` turns it into
/// the JSON error, with `Retry-After` where there is a wait.
#[derive(Debug)]
pub enum AuthError {
    /// The request presents a credential (a token, identity headers) that is
    /// refused: answered with this status, code and message. It is the client's
    /// own credential, so the message may say what is wrong with it.
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// 429 `too_many_attempts`: this client has used up its failed logins.
    TooManyAttempts { retry_after: Duration },
    /// 503 `busy`: password work, or the limiter's table, is at its bound.
    Busy { retry_after: Duration },
    /// 500 `internal`: a failure of ours (the database, a task), logged in full
    /// and said vaguely.
    Internal(String),
}

impl AuthError {
    pub fn internal(error: impl Display) -> Self {
        Self::Internal(error.to_string())
    }
}

pub use crate::store::new_id;

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

/// The signed-in user; the request is refused with 401 without one. A
/// personal API token counts ([`tokens`]).
pub struct CurrentUser(pub User);

/// The signed-in user, if any. A personal API token counts ([`tokens`]).
pub struct MaybeUser(pub Option<User>);

/// The signed-in user, named by the identity mode itself (a session, the
/// proxy's headers, an OIDC token), not by a personal API token: 403
/// `token_not_allowed` for one. For what a script must not do: manage tokens,
/// change the password, delete the account.
pub struct SessionUser(pub User);

/// Asks the state's personal API tokens first (a `ham_` bearer), then its
/// [`Authenticator`].
impl<S> FromRequestParts<S> for MaybeUser
where
    S: Send + Sync,
    Arc<dyn Authenticator>: FromRef<S>,
    Arc<tokens::ApiTokens>: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        let api_tokens = Arc::<tokens::ApiTokens>::from_ref(state);
        if let Some(user) = api_tokens.authenticate(parts).await? {
            parts.extensions.insert(tokens::ByToken);
            return Ok(Self(Some(user)));
        }
        let authenticator = Arc::<dyn Authenticator>::from_ref(state);
        let user = authenticator.authenticate(parts).await?;
        Ok(Self(user))
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Arc<dyn Authenticator>: FromRef<S>,
    Arc<tokens::ApiTokens>: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(user) => Ok(Self(user)),
            None => Err(AuthError::Refused {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthorized",
                message: "sign in first".into(),
            }),
        }
    }
}

/// The refusal of a personal API token where the person is needed.
pub fn token_not_allowed() -> AuthError {
    AuthError::Refused {
        status: StatusCode::FORBIDDEN,
        code: "token_not_allowed",
        message: "a personal API token cannot do this; sign in".into(),
    }
}

impl<S> FromRequestParts<S> for SessionUser
where
    S: Send + Sync,
    Arc<dyn Authenticator>: FromRef<S>,
    Arc<tokens::ApiTokens>: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if parts.extensions.get::<tokens::ByToken>().is_some() {
            return Err(token_not_allowed());
        }
        Ok(Self(user))
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

/// The TCP peer of a request served through [`crate::serve`], IPv4-mapped IPv6
/// addresses as IPv4.
pub fn peer_addr(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// Whether the request's TCP peer is a trusted proxy (`HAM_TRUSTED_PROXIES`), whose
/// forwarding and identity headers are believed.
pub fn from_trusted_proxy(parts: &Parts, settings: &Settings) -> bool {
    peer_addr(parts).is_some_and(|ip| settings.is_trusted_proxy(ip))
}

/// The address a request comes from, as rate limits count it: the TCP peer, unless
/// the peer is a trusted proxy (`HAM_TRUSTED_PROXIES`); then the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (each proxy appends
/// the address it saw, so everything left of that entry is the client's own
/// claim). An unreadable entry stops the walk at the last address read. From any
/// other peer `X-Forwarded-For` is ignored. A request without a known peer (not
/// served through [`crate::serve`]) gets the unspecified address, shared by all
/// such requests. IPv4-mapped IPv6 addresses come back as IPv4.
pub fn client_addr(parts: &Parts, settings: &Settings) -> IpAddr {
    let Some(peer) = peer_addr(parts) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let trusted = |ip: IpAddr| settings.is_trusted_proxy(ip);
    let mut client = peer;
    if !trusted(client) {
        return client;
    }
    'walk: for line in parts.headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else { break };
        for hop in line.rsplit(',') {
            let Some(ip) = forwarded_hop(hop) else {
                break 'walk;
            };
            client = ip;
            if !trusted(ip) {
                break 'walk;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, with or without a port.
fn forwarded_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn request(peer: &str, forwarded: &[&str]) -> Parts {
        let mut builder = axum::http::Request::builder();
        for value in forwarded {
            builder = builder.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address_behind_a_trusted_proxy() {
        let settings = Settings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..Settings::default()
        };
        let cases: &[(&str, &[&str], &str)] = &[
            // Not a trusted proxy: its X-Forwarded-For is the client's own claim.
            ("203.0.113.9:4000", &["192.0.2.1"], "203.0.113.9"),
            ("10.0.0.1:4000", &[], "10.0.0.1"),
            ("10.0.0.1:4000", &["192.0.2.1"], "192.0.2.1"),
            // A forged entry to the left of what the proxy appended.
            ("10.0.0.1:4000", &["198.51.100.1, 192.0.2.1"], "192.0.2.1"),
            ("10.0.0.1:4000", &["198.51.100.1", "192.0.2.1"], "192.0.2.1"),
            // Two proxies.
            ("10.0.0.1:4000", &["192.0.2.1, 10.0.0.2"], "192.0.2.1"),
            // Ports, brackets, mapped addresses.
            ("10.0.0.1:4000", &["192.0.2.1:5678"], "192.0.2.1"),
            ("10.0.0.1:4000", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.1:4000", &["[2001:db8::1]"], "2001:db8::1"),
            ("[::ffff:10.0.0.1]:4000", &["::ffff:192.0.2.1"], "192.0.2.1"),
            // Unreadable: the last address read.
            ("10.0.0.1:4000", &["192.0.2.1, junk, 10.0.0.2"], "10.0.0.2"),
            ("10.0.0.1:4000", &["junk"], "10.0.0.1"),
            ("10.0.0.1:4000", &["192.0.2.1,"], "10.0.0.1"),
        ];
        for (peer, forwarded, expected) in cases {
            assert_eq!(
                client_addr(&request(peer, forwarded), &settings),
                ip(expected),
                "peer {peer}, X-Forwarded-For {forwarded:?}"
            );
        }
        // No trusted proxies: never believed.
        let (parts, ()) = axum::http::Request::builder()
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            client_addr(&parts, &settings),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            client_addr(&request("10.0.0.1:1", &["192.0.2.1"]), &Settings::default()),
            ip("10.0.0.1")
        );
    }
}
