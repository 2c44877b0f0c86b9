//! Mapping rules: which activities check which habit, kept per user (user scope,
//! key `rules`, a JSON list).
//!
//! A rule is `{"id", "habit_id", "sport_types": [..], "min_distance_m",
//! "min_moving_time_s", "measure": "done" | "distance_km" | "moving_time_min"}`.
//! `done` fits a boolean habit; the two measures fit a measurable one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bindings::ham::plugin::habits::{self, HabitKind};
use crate::bindings::ham::plugin::storage::{self, Scope};
use crate::bindings::ham::plugin::types::Error as HostError;

const KEY: &str = "rules";
/// Most rules one user may have.
pub const MAX_RULES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub id: String,
    pub habit_id: String,
    pub sport_types: Vec<String>,
    pub min_distance_m: Option<f64>,
    pub min_moving_time_s: Option<u32>,
    pub measure: Measure,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Done,
    DistanceKm,
    MovingTimeMin,
}

/// What an activity brings to a rule's habit.
pub struct Workout<'a> {
    pub sport_type: &'a str,
    pub distance_m: Option<f64>,
    pub moving_time_s: Option<u32>,
}

impl Rule {
    pub fn matches(&self, w: &Workout<'_>) -> bool {
        self.sport_types.iter().any(|t| t == w.sport_type)
            && self
                .min_distance_m
                .is_none_or(|min| w.distance_m.unwrap_or(0.0) >= min)
            && self
                .min_moving_time_s
                .is_none_or(|min| w.moving_time_s.unwrap_or(0) >= min)
    }

    /// The amount an activity adds to a measurable habit's day.
    pub fn amount(&self, w: &Workout<'_>) -> f64 {
        match self.measure {
            Measure::Done => 1.0,
            Measure::DistanceKm => w.distance_m.unwrap_or(0.0) / 1000.0,
            Measure::MovingTimeMin => f64::from(w.moving_time_s.unwrap_or(0)) / 60.0,
        }
    }
}

pub fn load() -> Result<Vec<Rule>, HostError> {
    Ok(storage::get(Scope::User, KEY)?
        .and_then(|e| serde_json::from_slice(&e.value).ok())
        .unwrap_or_default())
}

pub fn save(rules: &[Rule]) -> Result<(), HostError> {
    let bytes = serde_json::to_vec(rules).unwrap_or_default();
    storage::set(Scope::User, KEY, &bytes)?;
    Ok(())
}

/// A client's mistake, naming the field.
#[derive(Debug)]
pub enum Invalid {
    Field(String),
    Host(HostError),
}

impl From<HostError> for Invalid {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}

fn field(msg: impl Into<String>) -> Invalid {
    Invalid::Field(msg.into())
}

/// A rule from a JSON object (a new rule, or an old one with a patch merged in),
/// checked against the user's habits.
pub fn validate(id: &str, body: &Map<String, Value>) -> Result<Rule, Invalid> {
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "id" | "habit_id" | "sport_types" | "min_distance_m" | "min_moving_time_s" | "measure"
        ) {
            return Err(field(format!("{key}: unknown field")));
        }
    }
    let habit_id = body
        .get("habit_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| field("habit_id: required, a habit's id"))?;
    let sport_types: Vec<String> = match body.get("sport_types") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 50 => items
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| !s.is_empty() && s.len() <= 64)
                    .map(str::to_string)
                    .ok_or_else(|| field("sport_types: each must be a sport type such as \"Run\""))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(field(
                "sport_types: required, a list of 1 to 50 sport types such as [\"Run\", \"TrailRun\"]",
            ));
        }
    };
    let min_distance_m = match body.get("min_distance_m") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|d| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| field("min_distance_m: a number of meters, at least 0, or null"))?,
        ),
    };
    let min_moving_time_s = match body.get("min_moving_time_s") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| field("min_moving_time_s: whole seconds, at least 0, or null"))?,
        ),
    };
    let measure = match body.get("measure").and_then(Value::as_str) {
        Some("done") => Measure::Done,
        Some("distance_km") => Measure::DistanceKm,
        Some("moving_time_min") => Measure::MovingTimeMin,
        _ => {
            return Err(field(
                "measure: one of \"done\", \"distance_km\", \"moving_time_min\"",
            ));
        }
    };
    let habit = habits::list_habits()?
        .into_iter()
        .find(|h| h.id == habit_id)
        .ok_or_else(|| field(format!("habit_id: no habit `{habit_id}`")))?;
    match (habit.kind, measure) {
        (HabitKind::Boolean, Measure::Done) => {}
        (HabitKind::Boolean, _) => {
            return Err(field(
                "measure: a yes/no habit takes \"done\"; distance_km and moving_time_min need a measurable habit",
            ));
        }
        (HabitKind::Measurable, Measure::Done) => {
            return Err(field(
                "measure: a measurable habit takes \"distance_km\" or \"moving_time_min\"",
            ));
        }
        (HabitKind::Measurable, _) => {}
    }
    Ok(Rule {
        id: id.to_string(),
        habit_id: habit_id.to_string(),
        sport_types,
        min_distance_m,
        min_moving_time_s,
        measure,
    })
}
