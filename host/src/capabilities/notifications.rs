//! The `ham:plugin/notifications` interface: what a delivery plugin (the bundled
//! `reminders`) needs to send reminders, for plugins whose manifest says
//! `notifications = true` (a component that imports it without is refused at
//! load, as for `llm`).
//!
//! It acts across users: the scheduled tick that asks for due reminders acts for
//! no user, so every call names the user it is about instead of needing an
//! acting user. That is why it is granted to so few plugins, and why it answers
//! only what a reminder needs: who and which habit (ids and names), when, where
//! to send it (the user's channels, tokens opened for sending) and the two links
//! it carries. The channels and done links are [`crate::reminders`]'; which
//! reminders are due is decided here, from [`Db::active_reminders`] and each
//! user's time zone.

use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use wasmtime::component::{HasSelf, Linker};

use super::{Caller, CapabilitiesView, ctx};
use crate::reminders::Reminders;
use crate::store::Db;
use crate::store::notifications::{ActiveReminder, ChannelKind};
use crate::wit::ham::plugin::notifications::{
    self as wit, Channel, ChannelKind as WitChannelKind, Delivery, DueReminder,
};
use crate::wit::ham::plugin::types::Error as GuestError;

/// The longest window `due-reminders` takes: a day, so a window spans at most
/// two local dates in any time zone.
pub const MAX_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// The longest delivery error kept, in bytes; the rest is cut.
pub const MAX_ERROR_BYTES: usize = 500;

/// What the interface draws on.
pub struct NotificationsHost {
    pub(super) db: Db,
    pub(super) reminders: Arc<Reminders>,
    /// `HAM_PUBLIC_URL`, without a trailing `/`: the base of the links.
    pub(super) public_url: String,
}

/// The notifications context of one invocation.
pub struct NotificationsCtx {
    pub(super) caller: Caller,
    pub(super) host: Arc<NotificationsHost>,
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<NotificationsCtx>>(linker, |t| &mut ctx(t).notifications)
}

/// A `YYYY-MM-DD` date from the guest.
fn date_arg(date: &str) -> Result<Date, GuestError> {
    date.parse::<Date>()
        .ok()
        .filter(|d| d.to_string() == date)
        .ok_or_else(|| GuestError::InvalidArgument(format!("date: `{date}` is not YYYY-MM-DD")))
}

/// When `r` is due within `[from, to)` (milliseconds): every local date the
/// window touches in the user's time zone whose ISO weekday `r` lists, at `r`'s
/// time. A time that a daylight-saving gap skips is due as long after the jump
/// (02:30 in a 02:00 to 03:00 gap is 03:30: jiff's compatible disambiguation),
/// so it is never lost.
fn due_between(r: &ActiveReminder, from: i64, to: i64) -> Vec<DueReminder> {
    let tz = TimeZone::get(&r.time_zone).unwrap_or(TimeZone::UTC);
    let Some((hour, minute)) = r
        .reminder
        .time
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i8>().ok()?, m.parse::<i8>().ok()?)))
    else {
        return Vec::new();
    };
    let local_date = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned_datetime(tz.clone()).date())
    };
    let (Some(first), Some(last)) = (local_date(from), local_date(to)) else {
        return Vec::new();
    };
    let mut due = Vec::new();
    let mut date = first;
    while date <= last {
        let weekday = u8::try_from(date.weekday().to_monday_one_offset()).unwrap_or(0);
        let instant = date
            .at(hour, minute, 0, 0)
            .to_zoned_datetime(tz.clone())
            .map(|z| z.timestamp().as_millisecond());
        if let Ok(at) = instant
            && r.reminder.days.contains(&weekday)
            && (from..to).contains(&at)
        {
            due.push(DueReminder {
                user_id: r.user_id.clone(),
                user_name: r.user_name.clone(),
                habit_id: r.habit_id.clone(),
                habit_name: r.habit_name.clone(),
                due_local: format!("{date}T{}", r.reminder.time),
                due: at,
            });
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    due
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl wit::Host for NotificationsCtx {
    async fn due_reminders(&mut self, from: i64, to: i64) -> Result<Vec<DueReminder>, GuestError> {
        if to < from || to - from > MAX_WINDOW_MS {
            return Err(GuestError::InvalidArgument(format!(
                "the window [{from}, {to}) must run forward and span at most a day"
            )));
        }
        let active = self.host.db.active_reminders().await;
        let active = active.map_err(|e| self.caller.host_failed(e))?;
        Ok(active
            .iter()
            .flat_map(|r| due_between(r, from, to))
            .collect())
    }

    async fn still_due(
        &mut self,
        user_id: String,
        habit_id: String,
        date: String,
    ) -> Result<bool, GuestError> {
        date_arg(&date)?;
        let db = &self.host.db;
        let habit = db.get_habit(&user_id, &habit_id).await;
        match habit.map_err(|e| self.caller.host_failed(e))? {
            None => Ok(false),
            Some(habit) if habit.archived => Ok(false),
            Some(_) => {
                let entries = db.list_entries(&habit_id, &date, &date).await;
                Ok(entries.map_err(|e| self.caller.host_failed(e))?.is_empty())
            }
        }
    }

    async fn channels(
        &mut self,
        user_id: String,
        habit_id: String,
        date: String,
    ) -> Result<Delivery, GuestError> {
        let day = date_arg(&date)?;
        let host = self.host.clone();
        let habit = host.db.get_habit(&user_id, &habit_id).await;
        if habit.map_err(|e| self.caller.host_failed(e))?.is_none() {
            return Err(GuestError::NotFound);
        }
        let channels = self.user_channels(user_id.clone()).await?;
        let link = host.reminders.done_link(&user_id, &habit_id, day).await;
        let link = link.map_err(|e| self.caller.host_failed(e))?;
        Ok(Delivery {
            channels,
            done_url: format!("{}{}", host.public_url, link.path()),
            habit_url: format!("{}/habits/{habit_id}", host.public_url),
        })
    }

    async fn user_channels(&mut self, user_id: String) -> Result<Vec<Channel>, GuestError> {
        let host = self.host.clone();
        let stored = host.db.notification_channels(&user_id).await;
        Ok(stored
            .map_err(|e| self.caller.host_failed(e))?
            .into_iter()
            .map(|c| Channel {
                token: host.reminders.channel_token(&user_id, &c),
                kind: match c.kind {
                    ChannelKind::Ntfy => WitChannelKind::Ntfy,
                    ChannelKind::Webhook => WitChannelKind::Webhook,
                },
                id: c.id,
                url: c.url,
            })
            .collect())
    }

    async fn record_delivery(
        &mut self,
        user_id: String,
        channel_id: String,
        outcome: Result<(), String>,
    ) -> Result<(), GuestError> {
        let db = &self.host.db;
        // A channel is recorded only for its own user: the ids come from the guest.
        let channels = db.notification_channels(&user_id).await;
        let owned = channels
            .map_err(|e| self.caller.host_failed(e))?
            .iter()
            .any(|c| c.id == channel_id);
        if !owned {
            return Err(GuestError::NotFound);
        }
        let outcome = match &outcome {
            Ok(()) => Ok(()),
            Err(why) => Err(cut(why, MAX_ERROR_BYTES)),
        };
        let recorded = db.record_delivery(&channel_id, outcome).await;
        match recorded.map_err(|e| self.caller.host_failed(e))? {
            true => Ok(()),
            // Deleted between the check and the write.
            false => Err(GuestError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::habits::Reminder;

    fn reminder(time_zone: &str, time: &str, days: &[u8]) -> ActiveReminder {
        ActiveReminder {
            user_id: "u".into(),
            user_name: "ann".into(),
            time_zone: time_zone.into(),
            habit_id: "h".into(),
            habit_name: "Stretch".into(),
            reminder: Reminder {
                time: time.into(),
                days: days.to_vec(),
            },
        }
    }

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn due(r: &ActiveReminder, from: &str, to: &str) -> Vec<(String, i64)> {
        due_between(r, ms(from), ms(to))
            .into_iter()
            .map(|d| (d.due_local, d.due))
            .collect()
    }

    #[test]
    fn due_in_the_users_time_zone_on_listed_weekdays_only() {
        // 2026-12-01 is a Tuesday (ISO 2); 07:30 in Berlin (UTC+1) is 06:30 UTC.
        let berlin = reminder("Europe/Berlin", "07:30", &[2]);
        assert_eq!(
            due(&berlin, "2026-12-01T06:29:00Z", "2026-12-01T06:31:00Z"),
            vec![("2026-12-01T07:30".to_string(), ms("2026-12-01T06:30:00Z"))]
        );
        // [from, to): the end is open, the start closed.
        assert!(due(&berlin, "2026-12-01T06:00:00Z", "2026-12-01T06:30:00Z").is_empty());
        assert_eq!(
            due(&berlin, "2026-12-01T06:30:00Z", "2026-12-01T06:30:01Z").len(),
            1
        );
        // Not on Wednesday.
        let wednesday = reminder("Europe/Berlin", "07:30", &[3]);
        assert!(due(&wednesday, "2026-12-01T06:29:00Z", "2026-12-01T06:31:00Z").is_empty());
        // A window across local midnight finds the date it falls on: 00:10 on
        // Wednesday 2 December in Tokyo is 15:10 UTC on Tuesday.
        let tokyo = reminder("Asia/Tokyo", "00:10", &[3]);
        assert_eq!(
            due(&tokyo, "2026-12-01T15:00:00Z", "2026-12-01T15:20:00Z"),
            vec![("2026-12-02T00:10".to_string(), ms("2026-12-01T15:10:00Z"))]
        );
        // Berlin skips 02:00-03:00 on Sunday 29 March 2026: 02:30 is due at
        // 03:30 CEST, 01:30 UTC.
        let gap = reminder("Europe/Berlin", "02:30", &[7]);
        assert_eq!(
            due(&gap, "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
            vec![("2026-03-29T02:30".to_string(), ms("2026-03-29T01:30:00Z"))]
        );
        // A day-long window holds each date once.
        let daily = reminder("UTC", "12:00", &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            due(&daily, "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z").len(),
            1
        );
    }

    #[test]
    fn errors_are_cut_on_a_character_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("hello", 10), "hello");
    }

    #[test]
    fn dates_must_be_written_in_full() {
        assert!(date_arg("2026-12-01").is_ok());
        for bad in ["2026-12-1", "2026-13-01", "yesterday", ""] {
            assert!(date_arg(bad).is_err(), "{bad}");
        }
    }
}
