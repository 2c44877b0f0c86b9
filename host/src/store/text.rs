//! Enums stored as text: each one's stored names, both ways, in one place.
//!
//! | enum | column | stored names |
//! | --- | --- | --- |
//! | [`HabitKind`] | `habits.kind` | `boolean`, `measurable` |
//! | [`TargetType`] | `habits.target_type` | `at_least`, `at_most` |
//! | [`EntryStatus`] | `entries.status` | `done`, `skipped`, `value` (the domain's own names, [`EntryStatus::as_str`], shared with the CSV export) |
//! | [`JobState`] | `jobs.state` | `queued`, `running`, `done`, `dead` (the queue's statements in [`super::jobs`] name them in SQL too) |
//! | [`Source`] | `plugin_versions.source` | `upload`, `bundled`, `watch` |
//! | [`Approval`] | `plugin_versions.approval` | `pending`, `approved` |
//! | [`RolloutState`](super::rollouts::RolloutState) | `plugin_rollouts.state` | `canary`, `shadow`, `promoted`, `rolled_back`, `aborted` (in [`super::rollouts`]) |
//! | [`ChannelKind`] | `notification_channels.kind` | `ntfy`, `webhook` |
//!
//! The store writes [`StoredText::as_stored`] and reads with [`decode`], which
//! refuses any other text with [`Error::Unreadable`] naming the column and the
//! value (a row written by a newer binary, or edited by hand) instead of guessing
//! a variant.

use super::jobs::JobState;
use super::notifications::ChannelKind;
use super::plugin_versions::{Approval, Source};
use super::{Error, Result};
use crate::habits::{EntryStatus, HabitKind, TargetType};

/// An enum kept in one text column.
pub trait StoredText: Sized + Copy + 'static {
    /// Where it is stored, `table.column`, for errors.
    const COLUMN: &'static str;

    /// The name stored for this value.
    fn as_stored(self) -> &'static str;

    /// The value a stored name stands for; `None` for a name this binary does
    /// not know.
    fn from_stored(text: &str) -> Option<Self>;
}

/// The value `text` (read from [`StoredText::COLUMN`]) stands for.
///
/// # Errors
///
/// [`Error::Unreadable`], naming the column and the text, for an unknown name.
pub fn decode<T: StoredText>(text: &str) -> Result<T> {
    T::from_stored(text).ok_or_else(|| Error::unreadable(T::COLUMN, text))
}

impl StoredText for HabitKind {
    const COLUMN: &'static str = "habits.kind";

    fn as_stored(self) -> &'static str {
        match self {
            HabitKind::Boolean => "boolean",
            HabitKind::Measurable => "measurable",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "boolean" => Some(HabitKind::Boolean),
            "measurable" => Some(HabitKind::Measurable),
            _ => None,
        }
    }
}

impl StoredText for TargetType {
    const COLUMN: &'static str = "habits.target_type";

    fn as_stored(self) -> &'static str {
        match self {
            TargetType::AtLeast => "at_least",
            TargetType::AtMost => "at_most",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "at_least" => Some(TargetType::AtLeast),
            "at_most" => Some(TargetType::AtMost),
            _ => None,
        }
    }
}

impl StoredText for EntryStatus {
    const COLUMN: &'static str = "entries.status";

    fn as_stored(self) -> &'static str {
        self.as_str()
    }

    fn from_stored(text: &str) -> Option<Self> {
        EntryStatus::parse(text)
    }
}

impl StoredText for JobState {
    const COLUMN: &'static str = "jobs.state";

    fn as_stored(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(JobState::Queued),
            "running" => Some(JobState::Running),
            "done" => Some(JobState::Done),
            "dead" => Some(JobState::Dead),
            _ => None,
        }
    }
}

impl StoredText for Source {
    const COLUMN: &'static str = "plugin_versions.source";

    fn as_stored(self) -> &'static str {
        match self {
            Source::Upload => "upload",
            Source::Bundled => "bundled",
            Source::Watch => "watch",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "upload" => Some(Source::Upload),
            "bundled" => Some(Source::Bundled),
            "watch" => Some(Source::Watch),
            _ => None,
        }
    }
}

impl StoredText for Approval {
    const COLUMN: &'static str = "plugin_versions.approval";

    fn as_stored(self) -> &'static str {
        match self {
            Approval::Pending => "pending",
            Approval::Approved => "approved",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Approval::Pending),
            "approved" => Some(Approval::Approved),
            _ => None,
        }
    }
}

impl StoredText for ChannelKind {
    const COLUMN: &'static str = "notification_channels.kind";

    fn as_stored(self) -> &'static str {
        match self {
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Webhook => "webhook",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "ntfy" => Some(ChannelKind::Ntfy),
            "webhook" => Some(ChannelKind::Webhook),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value reads back as itself, under a name no other value has.
    fn round_trips<T: StoredText + PartialEq + std::fmt::Debug>(all: &[T], names: &[&str]) {
        let stored: Vec<&str> = all.iter().map(|v| v.as_stored()).collect();
        assert_eq!(stored, names, "{}", T::COLUMN);
        for &value in all {
            assert_eq!(decode::<T>(value.as_stored()).unwrap(), value);
        }
    }

    /// An unknown name, or a known one in another case or with spaces, is
    /// refused, naming the column and the value.
    fn refuses_unknown<T: StoredText + std::fmt::Debug>(known: &str) {
        for text in ["", "nonsense", &known.to_uppercase(), &format!(" {known}")] {
            match decode::<T>(text) {
                Err(Error::Unreadable { column, value }) => {
                    assert_eq!((column, value.as_str()), (T::COLUMN, text));
                }
                other => panic!("{}: `{text}` gave {other:?}", T::COLUMN),
            }
        }
        let message = decode::<T>("nonsense").unwrap_err().to_string();
        assert!(
            message.contains(T::COLUMN) && message.contains("`nonsense`"),
            "{message}"
        );
    }

    #[test]
    fn habit_kinds_round_trip_and_unknown_ones_are_refused() {
        round_trips(
            &[HabitKind::Boolean, HabitKind::Measurable],
            &["boolean", "measurable"],
        );
        refuses_unknown::<HabitKind>("boolean");
    }

    #[test]
    fn target_types_round_trip_and_unknown_ones_are_refused() {
        round_trips(
            &[TargetType::AtLeast, TargetType::AtMost],
            &["at_least", "at_most"],
        );
        refuses_unknown::<TargetType>("at_most");
    }

    #[test]
    fn entry_statuses_round_trip_and_unknown_ones_are_refused() {
        round_trips(
            &[EntryStatus::Done, EntryStatus::Skipped, EntryStatus::Value],
            &["done", "skipped", "value"],
        );
        refuses_unknown::<EntryStatus>("done");
    }

    #[test]
    fn job_states_round_trip_and_unknown_ones_are_refused() {
        let all = [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Dead,
        ];
        round_trips(&all, &["queued", "running", "done", "dead"]);
        refuses_unknown::<JobState>("queued");
        // The API shows a state by the same name the table stores.
        for state in all {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_stored())
            );
        }
    }

    #[test]
    fn plugin_version_sources_round_trip_and_unknown_ones_are_refused() {
        round_trips(
            &[Source::Upload, Source::Bundled, Source::Watch],
            &["upload", "bundled", "watch"],
        );
        refuses_unknown::<Source>("upload");
    }

    #[test]
    fn channel_kinds_round_trip_and_unknown_ones_are_refused() {
        round_trips(
            &[ChannelKind::Ntfy, ChannelKind::Webhook],
            &["ntfy", "webhook"],
        );
        refuses_unknown::<ChannelKind>("ntfy");
    }
}
