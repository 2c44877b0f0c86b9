//! A user's delivery channels: where reminders go (`GET`/`PUT
//! /api/me/notifications`).
//!
//! A PUT replaces the whole list. Tokens are write-only: they are sealed at once
//! (AES-256-GCM under a key derived from the host secret for `ham:notifications`,
//! bound to the user and the channel's id, see [`crate::store::sealed`]) and
//! never shown again; a channel answers `token_set` instead. In a PUT, a channel
//! with the same kind and url as a stored one keeps its id and its delivery
//! results, and keeps its token when `token` is `null` or absent; `""` clears it;
//! any other text replaces it. Refused (naming the field): more than
//! [`MAX_CHANNELS`] channels, a url that is not `http(s)://` with a host, an
//! over-long url or token. A channel listed twice is saved once, with the later
//! listing's token (so a schema-valid body is never refused for it).

use serde::{Deserialize, Deserializer, Serialize};

use super::Reminders;
use crate::habits::FieldError;
use crate::store::notifications::{ChannelKind, StoredChannel};
use crate::store::{self, new_id};

/// The most channels one user may have.
pub const MAX_CHANNELS: usize = 10;
/// The longest url accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// What sealed channel tokens are sealed for (not a plugin name: those have no `:`).
const SEALED_FOR: &str = "ham:notifications";

/// A channel as shown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    pub url: String,
    /// Whether a token is stored (it is never shown).
    pub token_set: bool,
    /// The last delivery's error; null until a delivery failed.
    pub last_error: Option<String>,
    /// When it failed, milliseconds since the Unix epoch.
    pub last_error_at: Option<i64>,
    /// When a delivery last succeeded, milliseconds since the Unix epoch.
    pub last_success_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Channels {
    pub channels: Vec<Channel>,
}

/// A channel as sent in a PUT.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub kind: ChannelKind,
    /// `http://` or `https://` with a host.
    #[schema(
        example = "https://ntfy.sh/my-topic",
        max_length = 2048,
        pattern = r"^https?://[A-Za-z0-9][A-Za-z0-9.-]{0,62}(:[0-9]{1,4})?(/[A-Za-z0-9._~%/-]*)?$"
    )]
    pub url: String,
    /// Write-only. `null` or absent: keep the token stored for a channel of the
    /// same kind and url (none for a new one); `""`: no token; text: this token.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, max_length = 1024)]
    pub token: Option<Option<String>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelsInput {
    /// At most 10; a channel listed twice (same kind and url) counts once, with
    /// the later listing's token.
    #[schema(max_items = 10)]
    pub channels: Vec<ChannelInput>,
}

/// Why channels were not saved.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("sealing a token failed: {0}")]
    Seal(#[from] store::sealed::SecretError),
}

/// Whether `url` is `http://` or `https://` with a host.
fn is_web_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some_and(|h| !h.is_empty())
}

fn validate(input: &ChannelsInput) -> Result<(), FieldError> {
    if input.channels.len() > MAX_CHANNELS {
        return Err(FieldError::new(
            "channels",
            format!("at most {MAX_CHANNELS} channels"),
        ));
    }
    for (i, c) in input.channels.iter().enumerate() {
        let field = |name: &str| format!("channels[{i}].{name}");
        if c.url.len() > MAX_URL_BYTES {
            return Err(FieldError::new(
                &field("url"),
                format!("must be at most {MAX_URL_BYTES} bytes"),
            ));
        }
        if !is_web_url(&c.url) {
            return Err(FieldError::new(
                &field("url"),
                format!("`{}` is not an http:// or https:// URL with a host", c.url),
            ));
        }
        if let Some(Some(token)) = &c.token
            && (token.len() > MAX_TOKEN_BYTES || token.contains('\0'))
        {
            return Err(FieldError::new(
                &field("token"),
                format!("must be at most {MAX_TOKEN_BYTES} bytes, without NUL"),
            ));
        }
    }
    Ok(())
}

fn shown(c: StoredChannel) -> Channel {
    Channel {
        id: c.id,
        kind: c.kind,
        url: c.url,
        token_set: c.token_sealed.is_some(),
        last_error: c.last_error,
        last_error_at: c.last_error_at,
        last_success_at: c.last_success_at,
    }
}

impl Reminders {
    /// The user's channels, tokens hidden.
    pub async fn channels(&self, user_id: &str) -> Result<Channels, store::Error> {
        let stored = self.db().notification_channels(user_id).await?;
        Ok(Channels {
            channels: stored.into_iter().map(shown).collect(),
        })
    }

    /// Replaces the user's channels (see the module doc); answers them as
    /// [`Reminders::channels`] would.
    pub async fn set_channels(
        &self,
        user_id: &str,
        input: ChannelsInput,
    ) -> Result<Channels, ChannelError> {
        validate(&input)?;
        let mut old = self.db().notification_channels(user_id).await?;
        let mut new = Vec::with_capacity(input.channels.len());
        for c in input.channels {
            // A channel listed twice is one channel; the later listing's token wins.
            let kept = match new
                .iter()
                .position(|n: &StoredChannel| n.kind == c.kind && n.url == c.url)
            {
                Some(i) => Some(new.remove(i)),
                None => old
                    .iter()
                    .position(|o| o.kind == c.kind && o.url == c.url)
                    .map(|i| old.swap_remove(i)),
            };
            let mut channel = kept.unwrap_or_else(|| StoredChannel {
                id: new_id(),
                kind: c.kind,
                url: c.url,
                token_sealed: None,
                last_error: None,
                last_error_at: None,
                last_success_at: None,
            });
            match c.token {
                None | Some(None) => {}
                Some(Some(token)) if token.is_empty() => channel.token_sealed = None,
                Some(Some(token)) => {
                    channel.token_sealed = Some(self.secret().seal(
                        SEALED_FOR,
                        user_id,
                        &channel.id,
                        token.as_bytes(),
                    )?);
                }
            }
            new.push(channel);
        }
        self.db()
            .replace_notification_channels(user_id, &new)
            .await?;
        Ok(Channels {
            channels: new.into_iter().map(shown).collect(),
        })
    }

    /// A channel's token in plaintext, for the delivery worker; `None` when it
    /// has none, or when it does not open (another host secret).
    pub fn channel_token(&self, user_id: &str, channel: &StoredChannel) -> Option<String> {
        let sealed = channel.token_sealed.as_deref()?;
        let opened = self
            .secret()
            .open(SEALED_FOR, user_id, &channel.id, sealed)
            .ok()?;
        String::from_utf8(opened).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_a_web_scheme_and_a_host() {
        for ok in ["https://ntfy.sh/topic", "http://10.0.0.2:8080/hook?x=1"] {
            assert!(is_web_url(ok), "{ok}");
        }
        for bad in [
            "ftp://x/y",
            "https://",
            "ntfy.sh/topic",
            "",
            "javascript:alert(1)",
            "https:///path",
        ] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }
}

/// The plugin that delivers reminders (and test messages).
pub const DELIVERY_PLUGIN: &str = "reminders";

/// One test message fewer per user than this apart: each test POSTs to every
/// channel, and a channel may be any public URL.
pub const TEST_EVERY_MS: i64 = 10_000;

/// How long a test waits for the delivery plugin's answers.
const TEST_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// What a test message did at one channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelTest {
    pub channel_id: String,
    pub kind: ChannelKind,
    pub url: String,
    /// The channel answered 2xx.
    pub ok: bool,
    /// What went wrong (the same text the channel's `last_error` shows).
    pub error: Option<String>,
}

impl ChannelTest {
    /// The result at `channel`: sent, or the error.
    fn of(channel: &StoredChannel, error: Option<String>) -> Self {
        Self {
            channel_id: channel.id.clone(),
            kind: channel.kind,
            url: channel.url.clone(),
            ok: error.is_none(),
            error,
        }
    }
}

/// Why no test was sent.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("a test was sent less than {} seconds ago", TEST_EVERY_MS / 1000)]
    TooSoon,
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Reminders {
    /// Sends a test message to each of the user's channels through the delivery
    /// plugin (one `test` job per channel, so the wording and formats stay the
    /// plugin's), and waits up to 15 s for each answer. The jobs run once: the
    /// user is waiting, so a failure is reported rather than retried.
    pub async fn test_channels(
        &self,
        user_id: &str,
        user_name: &str,
    ) -> Result<Vec<ChannelTest>, TestError> {
        let now = store::now_ms();
        if self
            .db
            .has_job_since(DELIVERY_PLUGIN, user_id, "test", now - TEST_EVERY_MS)
            .await?
        {
            return Err(TestError::TooSoon);
        }
        let mut sent = Vec::new();
        for channel in self.db.notification_channels(user_id).await? {
            let id = new_id();
            let payload = serde_json::json!({
                "user": user_id, "user_name": user_name, "channel": channel.id,
            })
            .to_string();
            self.db
                .enqueue_job(&store::jobs::NewJob {
                    id: &id,
                    plugin: DELIVERY_PLUGIN,
                    user_id: Some(user_id),
                    kind: "test",
                    payload: payload.as_bytes(),
                    run_after: now,
                    max_attempts: 1,
                })
                .await?;
            sent.push((channel, id));
        }
        let deadline = tokio::time::Instant::now() + TEST_WAIT;
        let mut results: Vec<Option<ChannelTest>> = sent.iter().map(|_| None).collect();
        loop {
            for ((channel, job), result) in sent.iter().zip(results.iter_mut()) {
                if result.is_some() {
                    continue;
                }
                let Some(row) = self.db.get_job(job).await? else {
                    continue;
                };
                *result = match row.state {
                    store::jobs::JobState::Done => Some(ChannelTest::of(channel, None)),
                    store::jobs::JobState::Dead => Some(ChannelTest::of(
                        channel,
                        Some(
                            row.last_error
                                .unwrap_or_else(|| "the delivery failed".into()),
                        ),
                    )),
                    _ => continue,
                };
            }
            if results.iter().all(Option::is_some) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(sent
            .into_iter()
            .zip(results)
            .map(|((channel, _), result)| {
                result.unwrap_or_else(|| {
                    ChannelTest::of(
                        &channel,
                        Some("no answer within 15 seconds; the test may still arrive".into()),
                    )
                })
            })
            .collect())
    }
}
