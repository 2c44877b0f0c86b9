//! Where a user's reminders are delivered (`notification_channels`), which
//! done links were already used (`used_done_links`), and every active habit's
//! reminders across users, for delivery ([`Db::active_reminders`]). Tokens
//! arrive here sealed; the store never sees one in plaintext.

use super::habits::read_days;
use super::text::decode;
use super::{Db, Result, now_ms};
use crate::habits::Reminder;

/// A delivery channel's kind (stored as text, see [`super::text`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// An ntfy topic URL (`https://ntfy.sh/my-topic`); the token, if any, is its
    /// access token.
    Ntfy,
    /// A URL that receives a JSON POST; the token, if any, is sent as a bearer token.
    Webhook,
}

/// A `notification_channels` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChannel {
    pub id: String,
    pub kind: ChannelKind,
    pub url: String,
    /// The token, sealed; `None` when the channel has none.
    pub token_sealed: Option<Vec<u8>>,
    pub last_error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub last_error_at: Option<i64>,
    pub last_success_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ChannelRecord {
    id: String,
    kind: String,
    url: String,
    token_sealed: Option<Vec<u8>>,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    last_success_at: Option<i64>,
}

impl TryFrom<ChannelRecord> for StoredChannel {
    type Error = super::Error;

    fn try_from(r: ChannelRecord) -> Result<Self> {
        Ok(Self {
            id: r.id,
            kind: decode::<ChannelKind>(&r.kind)?,
            url: r.url,
            token_sealed: r.token_sealed,
            last_error: r.last_error,
            last_error_at: r.last_error_at,
            last_success_at: r.last_success_at,
        })
    }
}

/// One reminder of an active (not archived) habit, with what delivering it
/// needs to know of its user: names and the time zone, nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveReminder {
    pub user_id: String,
    /// The user's username.
    pub user_name: String,
    /// The user's IANA time zone.
    pub time_zone: String,
    pub habit_id: String,
    pub habit_name: String,
    pub reminder: Reminder,
}

#[derive(sqlx::FromRow)]
struct ActiveReminderRecord {
    user_id: String,
    user_name: String,
    time_zone: String,
    habit_id: String,
    habit_name: String,
    time: String,
    days: String,
}

impl TryFrom<ActiveReminderRecord> for ActiveReminder {
    type Error = super::Error;

    fn try_from(r: ActiveReminderRecord) -> Result<Self> {
        Ok(Self {
            reminder: Reminder {
                time: r.time,
                days: read_days(&r.days)?,
            },
            user_id: r.user_id,
            user_name: r.user_name,
            time_zone: r.time_zone,
            habit_id: r.habit_id,
            habit_name: r.habit_name,
        })
    }
}

impl Db {
    /// Every reminder of every active habit of every user. Which of them are due
    /// depends on each user's time zone, so the caller filters; a household has
    /// tens of them, read once a minute.
    pub async fn active_reminders(&self) -> Result<Vec<ActiveReminder>> {
        let rows: Vec<ActiveReminderRecord> = sqlx::query_as(
            "SELECT h.user_id, u.username AS user_name, u.time_zone, r.habit_id, \
             h.name AS habit_name, r.time, r.days \
             FROM habit_reminders r JOIN habits h ON h.id = r.habit_id \
             JOIN users u ON u.id = h.user_id \
             WHERE h.archived = 0 ORDER BY h.user_id, r.habit_id, r.position",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(ActiveReminder::try_from).collect()
    }

    /// A user's channels, in their order.
    pub async fn notification_channels(&self, user_id: &str) -> Result<Vec<StoredChannel>> {
        let rows: Vec<ChannelRecord> = sqlx::query_as(
            "SELECT id, kind, url, token_sealed, last_error, last_error_at, last_success_at \
             FROM notification_channels WHERE user_id = $1 ORDER BY position",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(StoredChannel::try_from).collect()
    }

    /// Replaces a user's channels with `channels`, in that order, in one
    /// transaction.
    pub async fn replace_notification_channels(
        &self,
        user_id: &str,
        channels: &[StoredChannel],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM notification_channels WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for (position, c) in (0_i64..).zip(channels) {
            // A NULL blob is written as a literal: a bound one does not reach
            // PostgreSQL as `bytea` through the Any driver on every version.
            let token = match c.token_sealed {
                Some(_) => "$5",
                None => "NULL",
            };
            let statement = format!(
                "INSERT INTO notification_channels (id, user_id, position, kind, token_sealed, url, \
                 last_error, last_error_at, last_success_at, created_at) \
                 VALUES ($1, $2, $3, $4, {token}, $6, $7, $8, $9, $10)"
            );
            let query = sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(&c.id)
                .bind(user_id)
                .bind(position)
                .bind(super::text::StoredText::as_stored(c.kind));
            let query = match &c.token_sealed {
                Some(sealed) => query.bind(sealed.clone()),
                None => query.bind(""),
            };
            query
                .bind(&c.url)
                .bind(c.last_error.as_deref())
                .bind(c.last_error_at)
                .bind(c.last_success_at)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcome of a delivery to a channel (`Err`: what went wrong);
    /// `false` when the channel is gone.
    pub async fn record_delivery(
        &self,
        channel_id: &str,
        outcome: std::result::Result<(), &str>,
    ) -> Result<bool> {
        let query = match outcome {
            Ok(()) => sqlx::query(
                "UPDATE notification_channels SET last_success_at = $2 WHERE id = $1",
            )
            .bind(channel_id)
            .bind(now_ms()),
            Err(error) => sqlx::query(
                "UPDATE notification_channels SET last_error = $3, last_error_at = $2 WHERE id = $1",
            )
            .bind(channel_id)
            .bind(now_ms())
            .bind(error.to_string()),
        };
        Ok(query.execute(self.writer()).await?.rows_affected() > 0)
    }

    /// Marks a done link used, by its hash; `false` when it already was.
    pub async fn use_done_link(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO used_done_links (token_hash, user_id, expires_at, used_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(expires_at)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the uses of done links that have expired: an expired link is
    /// refused for its expiry before its use is looked up, so the row has no
    /// more work to do. Returns how many went.
    pub async fn prune_expired_done_links(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM used_done_links WHERE expires_at < $1")
            .bind(now_ms() / 1000)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Forgets a use of a done link whose entry could not be recorded.
    pub async fn forget_done_link(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM used_done_links WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
