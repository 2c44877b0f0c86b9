//! Everything a user owns, as one document: JSON or CSV, both ways.
//!
//! `GET /api/export?format=json|csv` writes it; `POST /api/import` reads either
//! (by `Content-Type`) and adds it to the signed-in user's data in one
//! transaction: all of it or none. Habits get new ids on import (the document's
//! ids only link entries to their habit), so an export can be imported by another
//! user or into a database that already holds the original.
//!
//! The CSV form is one table with a `record` column (`settings`, `habit`, `entry`,
//! `activity`); each record fills the columns it uses and leaves the rest empty.
//! A habit's reminders are one CSV cell, `HH:MM=days` joined by `;`
//! (`07:30=1,2,3,4,5;09:00=6,7`).
//!
//! Exports written before habits had several reminders carry one `reminder`
//! (`HH:MM`, in JSON and as a CSV column); an import reads it as that time on
//! every day. Exports never write it.

pub mod loop_backup;

use serde::{Deserialize, Serialize};

use crate::habits::{
    Activity, EVERY_DAY, EntryStatus, FieldError, Frequency, Habit, HabitKind, Reminder, Target,
    TargetType,
};

pub const FORMAT: &str = "ham-export";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub format: String,
    pub version: u32,
    pub time_zone: String,
    pub habits: Vec<ExportedHabit>,
    pub activities: Vec<Activity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedHabit {
    /// Links entries to the habit within the document.
    pub id: String,
    pub name: String,
    pub description: String,
    pub color: String,
    pub kind: HabitKind,
    pub unit: Option<String>,
    pub target: Option<Target>,
    pub frequency: Frequency,
    #[serde(default)]
    pub reminders: Vec<Reminder>,
    /// Older exports' single reminder, `HH:MM`: read on import as that time
    /// every day (when `reminders` is empty); never written.
    #[serde(default, skip_serializing)]
    #[schema(deprecated)]
    pub reminder: Option<String>,
    pub archived: bool,
    pub position: i64,
    /// Absent in exports written before habits had groups.
    #[serde(default)]
    pub group: Option<String>,
    pub created: String,
    pub entries: Vec<ExportedEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedEntry {
    pub date: String,
    pub status: EntryStatus,
    pub value: Option<f64>,
    pub note: Option<String>,
    pub source: String,
}

impl ExportedHabit {
    pub fn of(h: Habit, entries: Vec<crate::habits::Entry>) -> Self {
        Self {
            id: h.id,
            name: h.name,
            description: h.description,
            color: h.color,
            kind: h.kind,
            unit: h.unit,
            target: h.target,
            frequency: h.frequency,
            reminders: h.reminders,
            reminder: None,
            archived: h.archived,
            position: h.position,
            group: h.group,
            created: h.created,
            entries: entries
                .into_iter()
                .map(|e| ExportedEntry {
                    date: e.date,
                    status: e.status,
                    value: e.value,
                    note: e.note,
                    source: e.source,
                })
                .collect(),
        }
    }

    /// The reminders an import gives the habit: `reminders` with their days
    /// sorted and deduplicated, or else an old export's `reminder` every day.
    fn reminders_to_import(&self) -> Vec<Reminder> {
        match (&self.reminder, self.reminders.is_empty()) {
            (Some(time), true) if !time.is_empty() => vec![Reminder {
                time: time.clone(),
                days: EVERY_DAY.to_vec(),
            }],
            _ => self
                .reminders
                .iter()
                .map(|r| {
                    let mut days = r.days.clone();
                    days.sort_unstable();
                    days.dedup();
                    Reminder {
                        time: r.time.clone(),
                        days,
                    }
                })
                .collect(),
        }
    }

    /// The habit under a new id, checked against the same rules as the API.
    pub fn habit(&self, id: String) -> Result<Habit, FieldError> {
        let habit = Habit {
            id,
            name: self.name.clone(),
            description: self.description.clone(),
            color: self.color.clone(),
            kind: self.kind,
            unit: self.unit.clone(),
            target: self.target,
            frequency: self.frequency.clone(),
            reminders: self.reminders_to_import(),
            archived: self.archived,
            position: self.position,
            group: self.group.clone(),
            created: self.created.clone(),
        };
        crate::habits::validate(&habit).map_err(|e| FieldError {
            field: format!("habits[{}].{}", self.name, e.field),
            message: e.message,
        })?;
        if !crate::habits::is_date(&habit.created) {
            return Err(FieldError {
                field: format!("habits[{}].created", self.name),
                message: "not a date YYYY-MM-DD".into(),
            });
        }
        Ok(habit)
    }
}

/// One CSV row; each record kind uses some of the columns.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CsvRow {
    record: String,
    habit: Option<String>,
    time_zone: Option<String>,
    name: Option<String>,
    description: Option<String>,
    color: Option<String>,
    kind: Option<String>,
    unit: Option<String>,
    target_value: Option<f64>,
    target_type: Option<String>,
    frequency_times: Option<u32>,
    frequency_days: Option<u32>,
    /// A weekday habit's ISO weekdays joined by `,`; `frequency_times` and
    /// `frequency_days` then hold their count in 7 days.
    #[serde(default)]
    frequency_weekdays: Option<String>,
    /// `HH:MM=days` joined by `;`.
    reminders: Option<String>,
    /// Older exports' single reminder; read, never written.
    #[serde(skip_serializing)]
    reminder: Option<String>,
    archived: Option<bool>,
    position: Option<i64>,
    #[serde(default)]
    group: Option<String>,
    created: Option<String>,
    date: Option<String>,
    status: Option<String>,
    value: Option<f64>,
    note: Option<String>,
    source: Option<String>,
    external_id: Option<String>,
    sport_type: Option<String>,
    start_utc: Option<i64>,
    start_local: Option<String>,
    distance_m: Option<f64>,
    moving_time_s: Option<u32>,
    elapsed_time_s: Option<u32>,
    elevation_gain_m: Option<f64>,
    average_heartrate: Option<f64>,
}

fn kind_name(k: HabitKind) -> &'static str {
    match k {
        HabitKind::Boolean => "boolean",
        HabitKind::Measurable => "measurable",
    }
}

/// A habit's reminders as one CSV cell: `07:30=1,2,3,4,5;09:00=6,7`.
fn reminders_cell(reminders: &[Reminder]) -> String {
    reminders
        .iter()
        .map(|r| {
            let days: Vec<String> = r.days.iter().map(u8::to_string).collect();
            format!("{}={}", r.time, days.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The reminders of a CSV cell written by [`reminders_cell`]; `None` when it does
/// not read. The values are checked later, with the habit.
fn parse_reminders_cell(cell: &str) -> Option<Vec<Reminder>> {
    cell.split(';')
        .map(|one| {
            let (time, days) = one.trim().split_once('=')?;
            let days = days
                .split(',')
                .map(|d| d.trim().parse::<u8>().ok())
                .collect::<Option<Vec<u8>>>()?;
            Some(Reminder {
                time: time.to_string(),
                days,
            })
        })
        .collect()
}

/// The document as CSV.
pub fn to_csv(export: &Export) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.serialize(CsvRow {
        record: "settings".into(),
        time_zone: Some(export.time_zone.clone()),
        ..Default::default()
    })?;
    for h in &export.habits {
        out.serialize(CsvRow {
            record: "habit".into(),
            habit: Some(h.id.clone()),
            name: Some(h.name.clone()),
            description: Some(h.description.clone()),
            color: Some(h.color.clone()),
            kind: Some(kind_name(h.kind).into()),
            unit: h.unit.clone(),
            target_value: h.target.map(|t| t.value),
            target_type: h.target.map(|t| match t.target_type {
                TargetType::AtLeast => "at_least".into(),
                TargetType::AtMost => "at_most".into(),
            }),
            frequency_times: Some(h.frequency.times_in_days().0),
            frequency_days: Some(h.frequency.times_in_days().1),
            frequency_weekdays: h
                .frequency
                .weekdays()
                .map(|days| days.iter().map(u8::to_string).collect::<Vec<_>>().join(",")),
            reminders: (!h.reminders.is_empty()).then(|| reminders_cell(&h.reminders)),
            archived: Some(h.archived),
            position: Some(h.position),
            group: h.group.clone(),
            created: Some(h.created.clone()),
            ..Default::default()
        })?;
        for e in &h.entries {
            out.serialize(CsvRow {
                record: "entry".into(),
                habit: Some(h.id.clone()),
                date: Some(e.date.clone()),
                status: Some(e.status.as_str().into()),
                value: e.value,
                note: e.note.clone(),
                source: Some(e.source.clone()),
                ..Default::default()
            })?;
        }
    }
    for a in &export.activities {
        out.serialize(CsvRow {
            record: "activity".into(),
            name: Some(a.name.clone()),
            source: Some(a.source.clone()),
            external_id: Some(a.external_id.clone()),
            sport_type: Some(a.sport_type.clone()),
            start_utc: Some(a.start_utc),
            start_local: Some(a.start_local.clone()),
            distance_m: a.distance_m,
            moving_time_s: a.moving_time_s,
            elapsed_time_s: a.elapsed_time_s,
            elevation_gain_m: a.elevation_gain_m,
            average_heartrate: a.average_heartrate,
            ..Default::default()
        })?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the CSV form; the error names the line and column at fault.
pub fn from_csv(text: &str) -> Result<Export, FieldError> {
    let bad = |line: usize, field: &str, message: String| FieldError {
        field: format!("line {line}: {field}"),
        message,
    };
    let mut export = Export {
        format: FORMAT.into(),
        version: VERSION,
        time_zone: "UTC".into(),
        habits: Vec::new(),
        activities: Vec::new(),
    };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for (i, row) in reader.deserialize::<CsvRow>().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| bad(line, "row", e.to_string()))?;
        let need =
            |v: Option<String>, field: &str| v.ok_or_else(|| bad(line, field, "required".into()));
        match row.record.as_str() {
            "settings" => export.time_zone = need(row.time_zone, "time_zone")?,
            "habit" => {
                let kind = match need(row.kind, "kind")?.as_str() {
                    "boolean" => HabitKind::Boolean,
                    "measurable" => HabitKind::Measurable,
                    other => {
                        return Err(bad(
                            line,
                            "kind",
                            format!("`{other}` is not boolean or measurable"),
                        ));
                    }
                };
                let target = match (row.target_value, row.target_type.as_deref()) {
                    (Some(value), Some("at_least")) => Some(Target {
                        value,
                        target_type: TargetType::AtLeast,
                    }),
                    (Some(value), Some("at_most")) => Some(Target {
                        value,
                        target_type: TargetType::AtMost,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(bad(
                            line,
                            "target_type",
                            "a target is a value and at_least or at_most".into(),
                        ));
                    }
                };
                export.habits.push(ExportedHabit {
                    id: need(row.habit, "habit")?,
                    name: need(row.name, "name")?,
                    description: row.description.unwrap_or_default(),
                    color: row
                        .color
                        .unwrap_or_else(|| crate::habits::DEFAULT_COLOR.into()),
                    kind,
                    unit: row.unit,
                    target,
                    frequency: match row.frequency_weekdays.as_deref() {
                        None | Some("") => Frequency::Every {
                            times: row.frequency_times.unwrap_or(1),
                            days: row.frequency_days.unwrap_or(1),
                        },
                        Some(cell) => Frequency::Weekdays {
                            weekdays: cell
                                .split(',')
                                .map(|d| d.trim().parse::<u8>().ok())
                                .collect::<Option<Vec<u8>>>()
                                .ok_or_else(|| {
                                    bad(
                                        line,
                                        "frequency_weekdays",
                                        format!("`{cell}` is not ISO weekdays joined by `,`"),
                                    )
                                })?,
                        },
                    },
                    reminders: match row.reminders.as_deref() {
                        None | Some("") => Vec::new(),
                        Some(cell) => parse_reminders_cell(cell)
                            .ok_or_else(|| {
                                bad(
                                    line,
                                    "reminders",
                                    format!("`{cell}` is not HH:MM=days joined by `;` (07:30=1,2,3;09:00=6,7)"),
                                )
                            })?,
                    },
                    reminder: row.reminder,
                    archived: row.archived.unwrap_or(false),
                    position: row.position.unwrap_or(0),
                    group: row.group.filter(|g| !g.is_empty()),
                    created: need(row.created, "created")?,
                    entries: Vec::new(),
                });
            }
            "entry" => {
                let habit = need(row.habit, "habit")?;
                let status = need(row.status, "status")?;
                let entry = ExportedEntry {
                    date: need(row.date, "date")?,
                    status: EntryStatus::parse(&status).ok_or_else(|| {
                        bad(
                            line,
                            "status",
                            format!("`{status}` is not done, skipped or value"),
                        )
                    })?,
                    value: row.value,
                    note: row.note,
                    source: row.source.unwrap_or_else(|| "manual".into()),
                };
                let owner = export.habits.iter_mut().find(|h| h.id == habit);
                owner
                    .ok_or_else(|| {
                        bad(
                            line,
                            "habit",
                            format!("no habit `{habit}` above this entry"),
                        )
                    })?
                    .entries
                    .push(entry);
            }
            "activity" => export.activities.push(Activity {
                source: need(row.source, "source")?,
                external_id: need(row.external_id, "external_id")?,
                sport_type: need(row.sport_type, "sport_type")?,
                name: row.name.unwrap_or_default(),
                start_utc: row
                    .start_utc
                    .ok_or_else(|| bad(line, "start_utc", "required".into()))?,
                start_local: need(row.start_local, "start_local")?,
                distance_m: row.distance_m,
                moving_time_s: row.moving_time_s,
                elapsed_time_s: row.elapsed_time_s,
                elevation_gain_m: row.elevation_gain_m,
                average_heartrate: row.average_heartrate,
            }),
            other => {
                return Err(bad(
                    line,
                    "record",
                    format!("`{other}` is not settings, habit, entry or activity"),
                ));
            }
        }
    }
    Ok(export)
}
