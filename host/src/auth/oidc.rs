//! `oidc` identity: `Authorization: Bearer <JWT>` checked against the issuer's JWKS.
//!
//! [`OidcAuth`] is the mode's [`Authenticator`]: the user a valid token names,
//! keyed by its issuer and `sub`, called by `preferred_username` (else `sub`),
//! created on first sight, an admin when `HAM_ADMIN_GROUP` is in its `groups`.
//! A request without a bearer token is nobody's; one with an invalid token is
//! refused (401 `invalid_token`, with the reason). [`Oidc`] checks the tokens:
//!
//! Accepted: RS256 tokens whose signature verifies with a key from the JWKS (by
//! `kid`), whose `iss` is `HAM_OIDC_ISSUER`, whose `aud` is or contains
//! `HAM_OIDC_AUDIENCE`, and which are within `nbf`..`exp` (60 s leeway). Anything
//! else is refused. Keys are fetched on first use (from `HAM_OIDC_JWKS_URL`, or the
//! issuer's discovery document), cached, and fetched again when a token names an
//! unknown `kid` (at most every 10 s), so key rotation needs no restart.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::Deserialize;

use super::{AuthError, Authenticator, new_id};
use crate::settings::Settings;
use crate::store::Db;
use crate::store::users::{Identity, User};

/// `HAM_AUTH=oidc`.
pub const MODE: &str = "oidc";

const LEEWAY_S: u64 = 60;
const MIN_REFRESH: Duration = Duration::from_secs(10);

/// Why a token was refused; said to the client (it is their token).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("unsupported algorithm {0}; RS256 is accepted")]
    Algorithm(String),
    #[error("no key `{0}` in the issuer's JWKS")]
    UnknownKey(String),
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("the issuer's keys cannot be fetched: {0}")]
    Jwks(String),
}

/// The claims HAM reads.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    aud: Audience,
    pub exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    pub sub: String,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

type Keys = HashMap<String, RsaPublicKeyComponents<Vec<u8>>>;

/// Users named by bearer tokens from `HAM_OIDC_ISSUER`.
pub struct OidcAuth {
    db: Db,
    tokens: Oidc,
    admin_group: Option<String>,
}

impl OidcAuth {
    /// Reads `HAM_OIDC_ISSUER`, `HAM_OIDC_AUDIENCE` (both required),
    /// `HAM_OIDC_JWKS_URL` and `HAM_ADMIN_GROUP`.
    pub fn new(settings: &Settings, db: Db) -> anyhow::Result<Self> {
        let (Some(issuer), Some(audience)) = (&settings.oidc_issuer, &settings.oidc_audience)
        else {
            anyhow::bail!(
                "HAM_AUTH=oidc needs HAM_OIDC_ISSUER and HAM_OIDC_AUDIENCE (oidc_issuer, oidc_audience)"
            );
        };
        Ok(Self {
            db,
            tokens: Oidc::new(
                issuer.clone(),
                audience.clone(),
                settings.oidc_jwks_url.clone(),
            )?,
            admin_group: settings.admin_group.clone(),
        })
    }
}

/// The bearer token a request carries, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

impl Authenticator for OidcAuth {
    fn mode(&self, _parts: &Parts) -> &'static str {
        MODE
    }

    /// A bearer token (personal API tokens are asked before any mode).
    fn has_credential(&self, parts: &Parts) -> bool {
        bearer(parts).is_some()
    }

    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<User>, AuthError>> {
        Box::pin(async move {
            let Some(token) = bearer(parts) else {
                return Ok(None);
            };
            let claims =
                self.tokens
                    .verify(token.trim())
                    .await
                    .map_err(|e| AuthError::Refused {
                        status: StatusCode::UNAUTHORIZED,
                        code: "invalid_token",
                        message: format!("invalid token: {e}"),
                    })?;
            let username = claims
                .preferred_username
                .clone()
                .unwrap_or_else(|| claims.sub.clone());
            let is_admin = self
                .admin_group
                .as_ref()
                .is_some_and(|g| claims.groups.contains(g));
            let user = self
                .db
                .identified_user(&Identity {
                    issuer: claims.iss.trim_end_matches('/'),
                    subject: &claims.sub,
                    display_name: &username,
                    email: claims.email.as_deref(),
                    is_admin,
                    new_id: &new_id(),
                })
                .await
                .map_err(AuthError::internal)?;
            Ok(Some(user))
        })
    }
}

/// The token checker: signature, issuer, audience and time, with the issuer's
/// keys cached.
pub struct Oidc {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    client: reqwest::Client,
    keys: tokio::sync::RwLock<Keys>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Oidc {
    pub fn new(issuer: String, audience: String, jwks_url: Option<String>) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            issuer,
            audience,
            jwks_url,
            client,
            keys: Default::default(),
            last_fetch: Default::default(),
        })
    }

    /// Verifies a token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
        if header.alg != "RS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let kid = header.kid.unwrap_or_default();
        // Bound first: a read guard held through the match would deadlock `refresh`.
        let cached = self.keys.read().await.get(&kid).cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.keys
                    .read()
                    .await
                    .get(&kid)
                    .cloned()
                    .ok_or(TokenError::UnknownKey(kid))?
            }
        };
        let signed = &token[..h.len() + 1 + p.len()];
        key.verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &decode(s)?)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(p)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(TokenError::Issuer);
        }
        let audience_ok = match &claims.aud {
            Audience::One(a) => *a == self.audience,
            Audience::Many(all) => all.contains(&self.audience),
            Audience::None => false,
        };
        if !audience_ok {
            return Err(TokenError::Audience);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if claims.exp.saturating_add(LEEWAY_S) < now {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_S))
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Fetches the JWKS again, unless it was fetched moments ago.
    async fn refresh(&self) -> Result<(), TokenError> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let fail = |e: reqwest::Error| TokenError::Jwks(e.to_string());
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => {
                #[derive(Deserialize)]
                struct Discovery {
                    jwks_uri: String,
                }
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let found: Discovery = self
                    .client
                    .get(discovery)
                    .send()
                    .await
                    .map_err(fail)?
                    .error_for_status()
                    .map_err(fail)?
                    .json()
                    .await
                    .map_err(fail)?;
                found.jwks_uri
            }
        };
        let jwks: Jwks = self
            .client
            .get(url)
            .send()
            .await
            .map_err(fail)?
            .error_for_status()
            .map_err(fail)?
            .json()
            .await
            .map_err(fail)?;
        let mut keys = Keys::new();
        for jwk in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
            let (Some(n), Some(e)) = (jwk.n, jwk.e) else {
                continue;
            };
            let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
                continue;
            };
            keys.insert(jwk.kid.unwrap_or_default(), RsaPublicKeyComponents { n, e });
        }
        *self.keys.write().await = keys;
        Ok(())
    }
}
