//! Reminders beyond the habit's own list ([`crate::habits::Reminder`]): where they
//! are delivered ([`channels`]) and the done link a reminder carries.
//!
//! Nothing here sends anything: the bundled `reminders` plugin asks for due
//! reminders, channels and a [`DoneLink`] for each through
//! `ham:plugin/notifications` ([`crate::capabilities::notifications`]), and
//! records each channel's outcome ([`crate::store::Db::record_delivery`]).
//!
//! # Done links
//!
//! A done link checks one habit in as done for one local date, without signing
//! in: `POST /api/reminders/done/{token}`. The token is
//! `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))`, the
//! payload the JSON array `[user id, habit id, "YYYY-MM-DD", expiry]` (expiry in
//! seconds since the epoch: the end of that date in the user's time zone when
//! minted). The key is derived from the host secret with HKDF (`info`
//! `done-link`), as sealed storage derives its keys, so replicas sharing
//! `HAM_SECRET_KEY` accept each other's links and nothing else can make one.
//!
//! [`Reminders::redeem`] refuses, in this order and writing nothing: a token
//! whose signature does not verify (forged, truncated, another host's):
//! [`RedeemError::NotFound`]; a signed one past its expiry:
//! [`RedeemError::Expired`]; one for a habit that no longer exists (or is not
//! the user's): [`RedeemError::NotFound`]. Then it records the link as used
//! (`used_done_links`, keyed by the sha256 of the signature, unique) before the
//! entry, so two requests racing with one link record one entry and the second
//! is [`RedeemError::Used`]; if the entry cannot be recorded (a measurable
//! habit takes a value, not "done") the use is forgotten again.

pub mod channels;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::Digest as _;

use crate::habits::{EntryWrite, Tracker, TrackerError};
use crate::store::sealed::HostSecret;
use crate::store::{self, Db};

/// The source of entries a done link records.
pub const DONE_LINK_SOURCE: &str = "reminders";

/// Reminders' services: channels and done links.
pub struct Reminders {
    db: Db,
    tracker: Arc<Tracker>,
    secret: HostSecret,
}

/// A minted done link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneLink {
    /// The token, for the path `/api/reminders/done/{token}`.
    pub token: String,
    /// When it stops working: seconds since the Unix epoch.
    pub expires_at: i64,
}

/// What a redeemed link recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Redeemed {
    pub habit_id: String,
    /// The local date checked in, `YYYY-MM-DD`.
    pub date: String,
    /// Always `done`.
    pub status: crate::habits::EntryStatus,
}

/// Why a done link did nothing.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// Forged, truncated, or for a habit that is gone.
    #[error("no such link")]
    NotFound,
    /// Used once already.
    #[error("this link was already used")]
    Used,
    /// Past the end of its day.
    #[error("this link has expired")]
    Expired,
    /// The entry was refused (a measurable habit takes a value).
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The signed part of a token.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claims(String, String, String, i64);

fn done_link_key(secret: &HostSecret) -> ring::hmac::Key {
    secret.hmac_key(&[b"done-link"])
}

/// Seconds since the Unix epoch.
fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl DoneLink {
    /// A link that checks `habit_id` of `user_id` in as done on `date`
    /// (`YYYY-MM-DD`, the user's local date), valid until the end of that date in
    /// `time_zone` (UTC if the name is unknown). It is not checked here that the
    /// habit exists: redeeming does.
    pub fn mint(
        secret: &HostSecret,
        user_id: &str,
        habit_id: &str,
        date: jiff::civil::Date,
        time_zone: &str,
    ) -> Self {
        let tz = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let end_of_day = date
            .tomorrow()
            .ok()
            .and_then(|next| next.to_zoned_datetime(tz).ok())
            .map_or(i64::MAX, |z| z.timestamp().as_second());
        Self::mint_until(secret, user_id, habit_id, date, end_of_day)
    }

    /// [`DoneLink::mint`] with an explicit expiry (seconds since the epoch).
    pub fn mint_until(
        secret: &HostSecret,
        user_id: &str,
        habit_id: &str,
        date: jiff::civil::Date,
        expires_at: i64,
    ) -> Self {
        let claims = Claims(
            user_id.to_string(),
            habit_id.to_string(),
            date.to_string(),
            expires_at,
        );
        // Serializing strings and a number cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = ring::hmac::sign(&done_link_key(secret), payload.as_bytes());
        Self {
            token: format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            expires_at,
        }
    }

    /// The path that redeems it.
    pub fn path(&self) -> String {
        format!("/api/reminders/done/{}", self.token)
    }
}

/// A token whose signature verified: its claims and the hash it is stored by.
struct Verified {
    claims: Claims,
    hash: String,
}

fn verify(secret: &HostSecret, token: &str) -> Option<Verified> {
    let (payload, tag) = token.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    ring::hmac::verify(&done_link_key(secret), payload.as_bytes(), &tag).ok()?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(Verified {
        claims,
        hash: hex::encode(sha2::Sha256::digest(&tag)),
    })
}

impl Reminders {
    pub fn new(db: Db, tracker: Arc<Tracker>, secret: HostSecret) -> Self {
        Self {
            db,
            tracker,
            secret,
        }
    }

    /// A done link for one of the user's habits on `date`, expiring at the end of
    /// that date in the user's time zone.
    pub async fn done_link(
        &self,
        user_id: &str,
        habit_id: &str,
        date: jiff::civil::Date,
    ) -> Result<DoneLink, store::Error> {
        let time_zone = self.db.user_time_zone(user_id).await?;
        Ok(DoneLink::mint(
            &self.secret,
            user_id,
            habit_id,
            date,
            &time_zone,
        ))
    }

    /// Checks the link's habit in as done on its date, once (see the module doc
    /// for what is refused, and in which order).
    pub async fn redeem(&self, token: &str) -> Result<Redeemed, RedeemError> {
        let Verified { claims, hash } = verify(&self.secret, token).ok_or(RedeemError::NotFound)?;
        let Claims(user_id, habit_id, date, expires_at) = claims;
        if now_seconds() >= expires_at {
            return Err(RedeemError::Expired);
        }
        match self.tracker.habit(&user_id, &habit_id).await {
            Ok(_) => {}
            Err(TrackerError::NotFound(_)) => return Err(RedeemError::NotFound),
            Err(e) => return Err(e.into()),
        }
        if !self.db.use_done_link(&hash, &user_id, expires_at).await? {
            return Err(RedeemError::Used);
        }
        // From JSON, so fields the entry input gains later keep their defaults.
        let done = serde_json::from_value(serde_json::json!({"status": "done"}))
            .map_err(|e| store::Error::unreadable("done link entry", e))?;
        let recorded = self
            .tracker
            .record_entry(&user_id, &habit_id, &date, done, DONE_LINK_SOURCE)
            .await
            .map(|written| match written {
                EntryWrite::Written { stored, .. } => stored.entry,
                // A tap stamped later than now (a device clock ahead) stays.
                EntryWrite::KeptNewer(kept) => kept.entry,
            });
        match recorded {
            Ok(entry) => Ok(Redeemed {
                habit_id: entry.habit_id,
                date: entry.date,
                status: entry.status,
            }),
            Err(e) => {
                self.db.forget_done_link(&hash).await?;
                Err(match e {
                    TrackerError::NotFound(_) => RedeemError::NotFound,
                    e => e.into(),
                })
            }
        }
    }

    /// Whether `token` carries this host's signature (whatever it then refers to).
    pub fn is_signed(&self, token: &str) -> bool {
        verify(&self.secret, token).is_some()
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn secret(&self) -> &HostSecret {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> HostSecret {
        HostSecret::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_link_verifies_only_whole_and_under_its_own_secret() {
        let date = jiff::civil::date(2026, 3, 1);
        let link = DoneLink::mint(&secret(1), "u1", "h1", date, "Europe/Berlin");
        // The end of 1 March in Berlin (UTC+1) is 23:00 UTC.
        assert_eq!(
            link.expires_at,
            "2026-03-01T23:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        );
        let ok = verify(&secret(1), &link.token).unwrap();
        assert_eq!(
            (ok.claims.0.as_str(), ok.claims.2.as_str()),
            ("u1", "2026-03-01")
        );
        assert!(verify(&secret(2), &link.token).is_none());
        let truncated = &link.token[..link.token.len() - 2];
        assert!(verify(&secret(1), truncated).is_none());
        // Another habit with the old signature.
        let (_, tag) = link.token.split_once('.').unwrap();
        let other = DoneLink::mint(&secret(1), "u1", "h2", date, "Europe/Berlin");
        let (payload, _) = other.token.split_once('.').unwrap();
        assert!(verify(&secret(1), &format!("{payload}.{tag}")).is_none());
        assert!(verify(&secret(1), "").is_none());
        assert!(verify(&secret(1), "no-dot").is_none());
    }
}
