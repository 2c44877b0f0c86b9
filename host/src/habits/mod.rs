//! Habits and their entries (check-ins): the domain types, their JSON shape, and
//! the rules a habit or an entry must follow. Validation lives here, once, so the
//! API and (later) the `habits` WIT interface refuse the same things with the same
//! words: every refusal names the field. [`Tracker`] applies them, for both.

pub mod tracker;

pub use tracker::{Tracker, TrackerError};

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HabitKind {
    Boolean,
    Measurable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    AtLeast,
    AtMost,
}

/// How often a habit is due: `times` check-ins in every `days` days (daily is
/// `{"times": 1, "days": 1}`, three times a week `{"times": 3, "days": 7}`), or on
/// fixed ISO weekdays (`{"weekdays": [1, 3, 5]}`, 1 = Monday). Its schema in the
/// API document is [`FrequencyInput`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, try_from = "FrequencyInput")]
pub enum Frequency {
    Every {
        times: u32,
        days: u32,
    },
    Weekdays {
        /// ISO weekdays, 1 = Monday to 7 = Sunday, sorted, without repeats.
        weekdays: Vec<u8>,
    },
}

impl utoipa::PartialSchema for Frequency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <FrequencyInput as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Frequency {
    fn name() -> std::borrow::Cow<'static, str> {
        "Frequency".into()
    }
}

impl Frequency {
    pub const DAILY: Frequency = Frequency::Every { times: 1, days: 1 };

    /// As `times` in every `days`: a weekday habit is its count of weekdays in 7.
    /// What a reader of the first contract (`rules`, `habits.frequency`) is given.
    pub fn times_in_days(&self) -> (u32, u32) {
        match self {
            Frequency::Every { times, days } => (*times, *days),
            // At most 7 days after validation.
            Frequency::Weekdays { weekdays } => (weekdays.len().min(7) as u32, 7),
        }
    }

    /// The weekdays of a weekday habit; none for one due `times` in `days`.
    pub fn weekdays(&self) -> Option<&[u8]> {
        match self {
            Frequency::Every { .. } => None,
            Frequency::Weekdays { weekdays } => Some(weekdays),
        }
    }

    /// The weekdays as a bit set, bit 0 Monday to bit 6 Sunday, as stored.
    pub fn weekday_bits(&self) -> Option<u8> {
        self.weekdays().map(|days| {
            days.iter()
                .fold(0u8, |bits, d| bits | 1u8 << ((*d).clamp(1, 7) - 1))
        })
    }

    /// A weekday habit from stored bits; none when no bit of Monday to Sunday is set.
    pub fn from_weekday_bits(bits: u8) -> Option<Frequency> {
        let weekdays: Vec<u8> = (1..=7u8).filter(|d| bits & 1 << (d - 1) != 0).collect();
        (!weekdays.is_empty()).then_some(Frequency::Weekdays { weekdays })
    }
}

/// A frequency as sent: one of the two shapes, each field named, so a mix of them
/// or a stranger gets a message that says which shapes there are. The API document
/// describes `Frequency` as this one flat object rather than a `oneOf` of the two
/// shapes: schema-driven generators (schemathesis) recurse too deep in a `oneOf`
/// nested in every habit body, and the either-or is refused with a clear 422.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "Either `{\"times\", \"days\"}`: `times` check-ins in every `days` days (daily is 1 in 1); \
                   or `{\"weekdays\": [1, 3, 5]}`: fixed ISO weekdays, 1 = Monday to 7 = Sunday, \
                   answered sorted without repeats. Anything else is 422 `invalid_field`.",
    example = json!({"times": 3, "days": 7})
)]
struct FrequencyInput {
    #[schema(minimum = 1, maximum = 366, nullable = false)]
    times: Option<u32>,
    #[schema(minimum = 1, maximum = 366, nullable = false)]
    days: Option<u32>,
    #[schema(min_items = 1, max_items = 7, nullable = false, example = json!([1, 3, 5]))]
    weekdays: Option<Vec<u8>>,
}

impl TryFrom<FrequencyInput> for Frequency {
    type Error = String;

    /// Weekdays come sorted and without repeats; [`validate`] checks their range.
    fn try_from(f: FrequencyInput) -> Result<Self, String> {
        match f {
            FrequencyInput {
                times: Some(times),
                days: Some(days),
                weekdays: None,
            } => Ok(Frequency::Every { times, days }),
            FrequencyInput {
                times: None,
                days: None,
                weekdays: Some(mut weekdays),
            } => {
                weekdays.sort_unstable();
                weekdays.dedup();
                Ok(Frequency::Weekdays { weekdays })
            }
            _ => Err(
                "frequency is either {\"times\", \"days\"} or {\"weekdays\": [1 to 7, ...]}"
                    .to_string(),
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub value: f64,
    #[serde(rename = "type")]
    pub target_type: TargetType,
}

/// A habit as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Habit {
    pub id: String,
    pub name: String,
    pub description: String,
    pub color: String,
    pub kind: HabitKind,
    pub unit: Option<String>,
    pub target: Option<Target>,
    pub frequency: Frequency,
    /// When to remind the user, in the user's time zone; at most
    /// [`MAX_REMINDERS`].
    pub reminders: Vec<Reminder>,
    pub archived: bool,
    pub position: i64,
    /// Today shows the habits of one group together; none for no group.
    #[schema(example = "Morning")]
    pub group: Option<String>,
    /// The local date it was created, `YYYY-MM-DD`.
    pub created: String,
}

/// A create or update body. On create, `name` and `kind` are required; on update,
/// absent fields keep their value and `null` clears an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HabitInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub color: Option<String>,
    pub kind: Option<HabitKind>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub unit: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Target>, nullable)]
    pub target: Option<Option<Target>>,
    pub frequency: Option<Frequency>,
    /// Replaces the habit's reminders; `[]` removes them all.
    pub reminders: Option<Vec<ReminderInput>>,
    pub archived: Option<bool>,
    pub position: Option<i64>,
    /// The habit's group, 1 to 40 characters after trimming; `null` or `""`
    /// takes it out of its group.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub group: Option<Option<String>>,
}

/// Tells a field set to `null` (Some(None)) from an absent one (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A refused value, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

fn refuse<T>(field: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        field: field.to_string(),
        message: message.into(),
    })
}

/// Text is stored as given, except NUL, which PostgreSQL cannot store in text and
/// no person types: refused on both backends alike.
fn check_text(field: &str, value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        return refuse(field, "must not contain NUL characters");
    }
    Ok(())
}

pub const DEFAULT_COLOR: &str = "#4f46e5";

impl HabitInput {
    /// The habit this input makes: a new one (`base` None: `id`, `created` and
    /// `position` are the caller's) or `base` changed.
    pub fn apply(self, base: Habit) -> Result<Habit, FieldError> {
        let mut h = base;
        if let Some(name) = self.name {
            h.name = name.trim().to_string();
        }
        if let Some(description) = self.description {
            h.description = description;
        }
        if let Some(color) = self.color {
            h.color = color;
        }
        if let Some(kind) = self.kind {
            h.kind = kind;
        }
        if let Some(unit) = self.unit {
            h.unit = unit;
        }
        if let Some(target) = self.target {
            h.target = target;
        }
        if let Some(frequency) = self.frequency {
            h.frequency = frequency;
        }
        if let Some(reminders) = self.reminders {
            h.reminders = reminders
                .into_iter()
                .map(ReminderInput::into_reminder)
                .collect();
        }
        if let Some(archived) = self.archived {
            h.archived = archived;
        }
        if let Some(position) = self.position {
            h.position = position;
        }
        if let Some(group) = self.group {
            h.group = group
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty());
        }
        validate(&h)?;
        Ok(h)
    }
}

/// A blank habit for [`HabitInput::apply`] to fill on create.
pub fn blank(id: String, created: String, position: i64) -> Habit {
    Habit {
        id,
        name: String::new(),
        description: String::new(),
        color: DEFAULT_COLOR.to_string(),
        kind: HabitKind::Boolean,
        unit: None,
        target: None,
        frequency: Frequency::DAILY,
        reminders: Vec::new(),
        archived: false,
        position,
        group: None,
        created,
    }
}

pub fn validate(h: &Habit) -> Result<(), FieldError> {
    check_text("name", &h.name)?;
    check_text("description", &h.description)?;
    if let Some(unit) = &h.unit {
        check_text("unit", unit)?;
    }
    if let Some(group) = &h.group {
        check_text("group", group)?;
        if group.trim().is_empty() || group.chars().count() > MAX_GROUP_CHARS {
            return refuse(
                "group",
                format!("must be 1 to {MAX_GROUP_CHARS} characters"),
            );
        }
    }
    let name_len = h.name.chars().count();
    if name_len == 0 || name_len > 100 {
        return refuse("name", "must be 1 to 100 characters");
    }
    if h.description.chars().count() > 2000 {
        return refuse("description", "must be at most 2000 characters");
    }
    let hex = h.color.strip_prefix('#').unwrap_or_default();
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return refuse("color", format!("`{}` is not a #rrggbb color", h.color));
    }
    match &h.frequency {
        &Frequency::Every { times, days } => {
            if days == 0 {
                return refuse("frequency.days", "must be at least 1");
            }
            if times == 0 {
                return refuse("frequency.times", "must be at least 1");
            }
            if times > days {
                return refuse(
                    "frequency.times",
                    format!("{times} times cannot fit in {days} days"),
                );
            }
            if days > 366 {
                return refuse("frequency.days", "must be at most 366");
            }
        }
        Frequency::Weekdays { weekdays } => {
            if weekdays.is_empty() {
                return refuse("frequency.weekdays", "name at least one weekday, 1 to 7");
            }
            if let Some(d) = weekdays.iter().find(|d| !(1..=7).contains(*d)) {
                return refuse(
                    "frequency.weekdays",
                    format!("{d} is not an ISO weekday (1 = Monday to 7 = Sunday)"),
                );
            }
        }
    }
    match h.kind {
        HabitKind::Boolean => {
            if h.target.is_some() {
                return refuse("target", "a boolean habit has no target");
            }
        }
        HabitKind::Measurable => {
            let Some(target) = h.target else {
                return refuse(
                    "target",
                    "a measurable habit needs a target {\"value\", \"type\"}",
                );
            };
            if !target.value.is_finite() || target.value < 0.0 {
                return refuse(
                    "target.value",
                    format!("{} must be a number of at least 0", target.value),
                );
            }
            if h.unit.as_deref().is_some_and(|u| u.chars().count() > 20) {
                return refuse("unit", "must be at most 20 characters");
            }
        }
    }
    validate_reminders(&h.reminders)
}

/// The earliest date an entry may have. The rules judge at most 200 years of a
/// habit's history (`habit-rules-engine`'s `MAX_SPAN_DAYS`): an entry centuries
/// back would make every stats request of its user fail, so it is refused here.
pub const FIRST_ENTRY_DATE: &str = "1900-01-01";

/// The most habits one reorder names.
pub const MAX_REORDERED: usize = 1000;

/// The longest group name.
pub const MAX_GROUP_CHARS: usize = 40;

/// The most reminders one habit may have.
pub const MAX_REMINDERS: usize = 10;

/// Every ISO weekday, Monday (1) to Sunday (7).
pub const EVERY_DAY: [u8; 7] = [1, 2, 3, 4, 5, 6, 7];

/// A reminder: a local time of day and the ISO weekdays (1 = Monday) it is for,
/// sorted, without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reminder {
    /// `HH:MM`, 00:00 to 23:59, in the user's time zone.
    #[schema(example = "07:30")]
    pub time: String,
    /// ISO weekdays, 1 = Monday to 7 = Sunday.
    #[schema(example = json!([1, 2, 3, 4, 5]))]
    pub days: Vec<u8>,
}

/// A reminder as sent: `days` may be left out (every day), unsorted or repeated.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderInput {
    /// `HH:MM`, 00:00 to 23:59.
    #[schema(example = "07:30")]
    pub time: String,
    /// ISO weekdays, 1 = Monday to 7 = Sunday; every day when absent.
    pub days: Option<Vec<u8>>,
}

impl ReminderInput {
    /// The reminder with its days sorted and deduplicated (every day when absent);
    /// [`validate`] then checks it.
    pub fn into_reminder(self) -> Reminder {
        let mut days = self.days.unwrap_or_else(|| EVERY_DAY.to_vec());
        days.sort_unstable();
        days.dedup();
        Reminder {
            time: self.time,
            days,
        }
    }
}

/// Checks a habit's reminders: at most [`MAX_REMINDERS`], each a time `HH:MM`
/// and days 1 to 7 (at least one), and no two at the same time on a same day.
/// Refusals name the field: `reminders`, `reminders[2].time`, `reminders[0].days`.
pub fn validate_reminders(reminders: &[Reminder]) -> Result<(), FieldError> {
    if reminders.len() > MAX_REMINDERS {
        return refuse(
            "reminders",
            format!("at most {MAX_REMINDERS} reminders per habit"),
        );
    }
    for (i, r) in reminders.iter().enumerate() {
        if !is_time_of_day(&r.time) {
            return refuse(
                &format!("reminders[{i}].time"),
                format!("`{}` is not a time HH:MM (00:00 to 23:59)", r.time),
            );
        }
        if r.days.is_empty() {
            return refuse(
                &format!("reminders[{i}].days"),
                "needs at least one weekday (1 = Monday to 7 = Sunday)",
            );
        }
        if let Some(bad) = r.days.iter().find(|d| !(1..=7).contains(*d)) {
            return refuse(
                &format!("reminders[{i}].days"),
                format!("{bad} is not a weekday 1 (Monday) to 7 (Sunday)"),
            );
        }
        let clash = reminders[..i]
            .iter()
            .position(|o| o.time == r.time && o.days.iter().any(|d| r.days.contains(d)));
        if let Some(j) = clash {
            return refuse(
                &format!("reminders[{i}].time"),
                format!("{} is already reminders[{j}] on a same weekday", r.time),
            );
        }
    }
    Ok(())
}

fn is_time_of_day(s: &str) -> bool {
    let Some((h, m)) = s.split_once(':') else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && h.parse::<u8>().is_ok_and(|h| h < 24)
        && m.parse::<u8>().is_ok_and(|m| m < 60)
}

/// An inclusive range of dates from optional ends, each a real calendar date
/// `YYYY-MM-DD`; an open end takes in every date.
pub fn date_range(
    from: Option<String>,
    to: Option<String>,
) -> Result<(String, String), FieldError> {
    let from = from.unwrap_or_else(|| "0001-01-01".into());
    let to = to.unwrap_or_else(|| "9999-12-31".into());
    for (field, value) in [("from", &from), ("to", &to)] {
        if !is_date(value) {
            return refuse(field, format!("`{value}` is not a date YYYY-MM-DD"));
        }
    }
    Ok((from, to))
}

/// Whether `s` is a real calendar date written `YYYY-MM-DD`.
pub fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=9999).contains(&y) && (1..=days_in_month).contains(&d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Done,
    Skipped,
    /// A measured value (measurable habits).
    Value,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Done => "done",
            EntryStatus::Skipped => "skipped",
            EntryStatus::Value => "value",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "done" => Some(EntryStatus::Done),
            "skipped" => Some(EntryStatus::Skipped),
            "value" => Some(EntryStatus::Value),
            _ => None,
        }
    }
}

/// A check-in: one per habit per local date.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub habit_id: String,
    pub date: String,
    pub status: EntryStatus,
    pub value: Option<f64>,
    pub note: Option<String>,
    pub source: String,
}

/// An entry as stored, with the time of the tap that set it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredEntry {
    #[serde(flatten)]
    pub entry: Entry,
    /// When the user tapped (ms since the Unix epoch, the client's clock as sent
    /// in `tapped_at`, or the server's when none was sent).
    pub updated_at: i64,
}

/// What recording an entry did. Of two taps on one day the later one wins,
/// whichever reaches the server first (two devices, one of them offline).
#[derive(Debug, Clone, PartialEq)]
pub enum EntryWrite {
    /// The entry was stored; `replaced` is the entry it overwrote when that one
    /// held another status, value or note.
    Written {
        stored: StoredEntry,
        replaced: Option<StoredEntry>,
    },
    /// A later tap was already stored and is kept; nothing was written.
    KeptNewer(StoredEntry),
}

/// An entry upsert body: `{"status": "done"}`, `{"status": "skipped"}` or
/// `{"value": 2.5}`, each with an optional `note` and `tapped_at`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryInput {
    pub status: Option<EntryStatus>,
    pub value: Option<f64>,
    pub note: Option<String>,
    /// When the user tapped, ms since the Unix epoch by the client's clock
    /// (an app sending a check-in made offline sends the time of the tap). Absent
    /// means now; a time in the future counts as now. The later tap of a day wins:
    /// an entry stored from a later tap is kept (409 `newer_entry`).
    #[serde(default)]
    #[schema(example = 1_718_000_000_000_i64)]
    pub tapped_at: Option<i64>,
}

impl EntryInput {
    /// The tap time to store: `tapped_at` clamped to `now` (ms since the epoch),
    /// or `now` when absent. Refuses a negative time.
    pub fn tap_time(&self, now: i64) -> Result<i64, FieldError> {
        match self.tapped_at {
            None => Ok(now),
            Some(t) if t < 0 => refuse(
                "tapped_at",
                format!("{t} must be ms since the Unix epoch, at least 0"),
            ),
            Some(t) => Ok(t.min(now)),
        }
    }
}

impl EntryInput {
    /// The entry this input records for `habit` on `date`.
    pub fn entry(self, habit: &Habit, date: &str, source: &str) -> Result<Entry, FieldError> {
        if !is_date(date) {
            return refuse("date", format!("`{date}` is not a date YYYY-MM-DD"));
        }
        // YYYY-MM-DD compares as text.
        if date < FIRST_ENTRY_DATE {
            return refuse("date", format!("must be {FIRST_ENTRY_DATE} or later"));
        }
        if let Some(note) = &self.note {
            check_text("note", note)?;
        }
        if self
            .note
            .as_deref()
            .is_some_and(|n| n.chars().count() > 2000)
        {
            return refuse("note", "must be at most 2000 characters");
        }
        let (status, value) = match (self.status, self.value, habit.kind) {
            (Some(EntryStatus::Skipped), None, _) => (EntryStatus::Skipped, None),
            (Some(EntryStatus::Done), None, HabitKind::Boolean) => (EntryStatus::Done, None),
            (None | Some(EntryStatus::Value), Some(v), HabitKind::Measurable) => {
                if !v.is_finite() || v < 0.0 {
                    return refuse("value", format!("{v} must be a number of at least 0"));
                }
                (EntryStatus::Value, Some(v))
            }
            (_, Some(_), HabitKind::Boolean) => {
                return refuse("value", "a boolean habit takes status done or skipped");
            }
            (Some(EntryStatus::Done), _, HabitKind::Measurable) => {
                return refuse(
                    "status",
                    "a measurable habit takes a value (or status skipped)",
                );
            }
            (Some(_), Some(_), _) => return refuse("value", "send either a status or a value"),
            (_, None, _) => {
                return refuse(
                    "status",
                    "send {\"status\": \"done\"|\"skipped\"} or {\"value\": number}",
                );
            }
        };
        Ok(Entry {
            habit_id: habit.id.clone(),
            date: date.to_string(),
            status,
            value,
            note: self.note,
            source: source.to_string(),
        })
    }
}

/// Whether `name` is an IANA time zone this host knows (bundled tz database).
pub fn is_time_zone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

/// Today's date in the time zone `name` (UTC if unknown), `YYYY-MM-DD`.
pub fn today_in(name: &str) -> String {
    let tz = jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::now()
        .to_zoned_datetime(tz)
        .date()
        .to_string()
}

/// A workout, as synced from a source such as Strava.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Activity {
    pub source: String,
    pub external_id: String,
    pub sport_type: String,
    pub name: String,
    /// Start, milliseconds since the Unix epoch (UTC).
    pub start_utc: i64,
    /// Local wall-clock start, `YYYY-MM-DDTHH:MM:SS`.
    pub start_local: String,
    pub distance_m: Option<f64>,
    pub moving_time_s: Option<u32>,
    pub elapsed_time_s: Option<u32>,
    pub elevation_gain_m: Option<f64>,
    pub average_heartrate: Option<f64>,
}

impl Activity {
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, value) in [
            ("source", &self.source),
            ("external_id", &self.external_id),
            ("sport_type", &self.sport_type),
        ] {
            if value.is_empty() || value.len() > 200 {
                return refuse(field, "must be 1 to 200 bytes");
            }
            check_text(field, value)?;
        }
        check_text("name", &self.name)?;
        if self.name.chars().count() > 500 {
            return refuse("name", "must be at most 500 characters");
        }
        let local_ok = self.start_local.get(..10).is_some_and(is_date);
        if !local_ok {
            return refuse(
                "start_local",
                format!(
                    "`{}` is not a local time YYYY-MM-DDTHH:MM:SS",
                    self.start_local
                ),
            );
        }
        for (field, value) in [
            ("distance_m", self.distance_m),
            ("elevation_gain_m", self.elevation_gain_m),
            ("average_heartrate", self.average_heartrate),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return refuse(field, "must be a finite number");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_exist() {
        for ok in ["2024-02-29", "2026-12-31", "2000-02-29"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "2026-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-04-31",
            "2026-1-01",
            "yesterday",
            "2026-00-10",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn a_frequency_is_times_in_days_or_weekdays_and_never_a_mix() {
        let parse = |json: &str| serde_json::from_str::<Frequency>(json);
        let gym = parse(r#"{"weekdays": [5, 1, 3, 1]}"#).unwrap();
        assert_eq!(gym.weekdays(), Some(&[1, 3, 5][..]));
        assert_eq!(
            (gym.times_in_days(), gym.weekday_bits()),
            ((3, 7), Some(0b10101))
        );
        assert_eq!(Frequency::from_weekday_bits(0b10101), Some(gym.clone()));
        assert_eq!(Frequency::from_weekday_bits(0b1000_0000), None);
        assert_eq!(
            serde_json::to_value(&gym).unwrap(),
            serde_json::json!({"weekdays": [1, 3, 5]})
        );
        let weekly = parse(r#"{"times": 3, "days": 7}"#).unwrap();
        assert_eq!(
            serde_json::to_value(&weekly).unwrap(),
            serde_json::json!({"times": 3, "days": 7})
        );
        for bad in [
            r#"{"times": 3, "days": 7, "weekdays": [1]}"#,
            r#"{"times": 3}"#,
            r#"{}"#,
            r#"{"weekdays": [1], "every": 2}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn habit_rules_name_the_field() {
        let input = |json: &str| serde_json::from_str::<HabitInput>(json).unwrap();
        let base = || blank("h".into(), "2026-11-23".into(), 0);
        let cases = [
            (r#"{"name": ""}"#, "name"),
            (
                r#"{"name": "Run", "frequency": {"times": 4, "days": 3}}"#,
                "frequency.times",
            ),
            (
                r#"{"name": "Run", "frequency": {"times": 1, "days": 0}}"#,
                "frequency.days",
            ),
            (
                r#"{"name": "Gym", "frequency": {"weekdays": []}}"#,
                "frequency.weekdays",
            ),
            (
                r#"{"name": "Gym", "frequency": {"weekdays": [1, 8]}}"#,
                "frequency.weekdays",
            ),
            (r#"{"name": "W", "kind": "measurable"}"#, "target"),
            (
                r#"{"name": "W", "kind": "measurable", "target": {"value": -1, "type": "at_least"}}"#,
                "target.value",
            ),
            (r#"{"name": "Run", "color": "red"}"#, "color"),
            (
                r#"{"name": "Run", "reminders": [{"time": "25:00"}]}"#,
                "reminders[0].time",
            ),
            (
                r#"{"name": "Run", "reminders": [{"time": "07:00", "days": []}]}"#,
                "reminders[0].days",
            ),
            (
                r#"{"name": "Run", "reminders": [{"time": "07:00", "days": [0]}]}"#,
                "reminders[0].days",
            ),
            (
                r#"{"name": "Run", "reminders": [{"time": "07:00", "days": [1, 2]}, {"time": "07:00", "days": [2, 3]}]}"#,
                "reminders[1].time",
            ),
        ];
        for (json, field) in cases {
            let err = input(json).apply(base()).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        let ok = input(
            r#"{"name": "Water", "kind": "measurable", "unit": "l", "target": {"value": 2.0, "type": "at_least"}}"#,
        );
        assert!(ok.apply(base()).is_ok());
    }

    #[test]
    fn reminders_are_sorted_deduplicated_and_bounded() {
        let input = |json: &str| serde_json::from_str::<HabitInput>(json).unwrap();
        let base = || blank("h".into(), "2026-11-23".into(), 0);
        let habit = input(
            r#"{"reminders": [{"time": "07:00", "days": [5, 1, 5]}, {"time": "07:00", "days": [6]}, {"time": "21:30"}]}"#,
        )
        .apply(Habit {
            name: "Run".into(),
            ..base()
        })
        .unwrap();
        let days: Vec<&[u8]> = habit.reminders.iter().map(|r| r.days.as_slice()).collect();
        assert_eq!(days, [&[1, 5][..], &[6], &EVERY_DAY]);
        let eleven: Vec<String> = (0..11)
            .map(|i| format!(r#"{{"time": "0{}:00"}}"#, i % 10))
            .collect();
        let err = input(&format!(
            r#"{{"name": "Run", "reminders": [{}]}}"#,
            eleven.join(", ")
        ))
        .apply(base())
        .unwrap_err();
        assert_eq!(err.field, "reminders");
    }
}
