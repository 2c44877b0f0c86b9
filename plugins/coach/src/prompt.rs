//! The coach's prompts and the context it gives the model: the user's habits, their
//! scores and streaks (from the habit-rules plugin, when it answers), recent
//! entries and the last weeks' activities, cut to a budget.
//!
//! The prompts are versioned with the plugin: change them here and upload the new
//! version, or set the `system_prompt` variable to replace the system prompt.

use std::collections::BTreeMap;

use crate::bindings::ham::plugin::habits::{self, EntryValue, HabitKind, TargetType};
use crate::bindings::ham::plugin::llm::{Message, Role};

/// Who the coach is and how it answers.
pub const SYSTEM_PROMPT: &str = "You are HAM's coach: a warm, practical habit and \
fitness coach. You help one person keep their habits and train consistently. Ground \
every answer in their data below (habits, scores, streaks, check-ins, activities); \
name the habits and numbers you use and never invent data that is not there. Be \
brief: a few short paragraphs or a short list. Suggest one or two concrete next \
steps. Praise real progress; treat misses without judgement. You are not a doctor: \
for pain, injury or illness, suggest seeing a professional.";

/// The weekly review's instruction (the user message of the review job).
pub const WEEKLY_REVIEW_PROMPT: &str = "Write my weekly review: in at most 120 words, \
what went well this past week, what slipped, and one focus for the coming week. Use \
my habits, streaks and activities.";

/// Most characters of user data in the system prompt.
pub const CONTEXT_BUDGET: usize = 8_000;
/// Most characters of conversation history sent (the newest message always goes).
pub const HISTORY_BUDGET: usize = 16_000;
/// Days of check-ins shown per habit.
const ENTRY_DAYS: i64 = 14;
/// Days of activities shown.
const ACTIVITY_DAYS: i64 = 28;

/// The system prompt: the coach's own (or the `system_prompt` variable), then the
/// user's data.
pub fn system(custom: Option<String>, now_ms: i64) -> String {
    let mut out = custom
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| SYSTEM_PROMPT.to_string());
    out.push_str("\n\n");
    out.push_str(&user_context(now_ms));
    out
}

/// What the model is told about the user, at most [`CONTEXT_BUDGET`] characters.
pub fn user_context(now_ms: i64) -> String {
    let mut out = String::new();
    let today = match habits::get_settings() {
        Ok(s) => {
            out.push_str(&format!(
                "# The user's data\nToday is {} ({}).\n",
                s.today, s.time_zone
            ));
            s.today
        }
        Err(_) => {
            out.push_str("# The user's data\n");
            civil_day::format(now_ms.div_euclid(86_400_000))
        }
    };
    out.push_str(&habit_lines(&today));
    out.push_str(&activity_lines(now_ms));
    cut(&mut out, CONTEXT_BUDGET);
    out
}

fn habit_lines(today: &str) -> String {
    let mut out = String::from("\n## Habits\n");
    let list = match habits::list_habits() {
        Ok(list) => list,
        Err(_) => {
            out.push_str("(unavailable)\n");
            return out;
        }
    };
    let list: Vec<_> = list.into_iter().filter(|h| !h.archived).collect();
    if list.is_empty() {
        out.push_str("(none yet)\n");
        return out;
    }
    // Scores and streaks come from the rules plugin; without it, go on without them.
    let stats: BTreeMap<String, habits::HabitStats> = habits::list_stats()
        .map(|s| s.into_iter().map(|s| (s.habit_id.clone(), s)).collect())
        .unwrap_or_default();
    let from = civil_day::parse(today)
        .map(|d| civil_day::format(d - (ENTRY_DAYS - 1)))
        .unwrap_or_else(|| today.to_string());
    for habit in list.iter().take(40) {
        let goal = match (&habit.kind, &habit.target) {
            (HabitKind::Measurable, Some(t)) => format!(
                "{} {} {}{}",
                match t.type_ {
                    TargetType::AtLeast => "at least",
                    TargetType::AtMost => "at most",
                },
                t.value,
                habit.unit.clone().unwrap_or_default(),
                per(habit.frequency.times, habit.frequency.days)
            ),
            _ => format!(
                "{} times every {} days",
                habit.frequency.times, habit.frequency.days
            ),
        };
        out.push_str(&format!("- {}: {goal}", habit.name));
        if let Some(s) = stats.get(&habit.id) {
            out.push_str(&format!(
                "; today's score {:.0}%, current streak {} days, best {} days",
                s.today_score * 100.0,
                s.current_streak,
                s.best_streak
            ));
        }
        if let Ok(entries) = habits::list_entries(&habit.id, &from, today) {
            let (mut done, mut skipped) = (0, 0);
            let mut recent = Vec::new();
            for e in &entries {
                let mark = match e.value {
                    EntryValue::Done => {
                        done += 1;
                        "done".to_string()
                    }
                    EntryValue::Skipped => {
                        skipped += 1;
                        "skipped".to_string()
                    }
                    EntryValue::Value(v) => {
                        done += 1;
                        format!("{v}{}", habit.unit.as_deref().unwrap_or_default())
                    }
                };
                recent.push(format!("{} {mark}", e.date));
            }
            out.push_str(&format!(
                "; last {ENTRY_DAYS} days: {done} check-ins, {skipped} skipped"
            ));
            if !recent.is_empty() {
                let tail = recent.len().saturating_sub(7);
                out.push_str(&format!(" (recent: {})", recent[tail..].join(", ")));
            }
        }
        out.push('\n');
    }
    out
}

fn per(times: u32, days: u32) -> String {
    match (times, days) {
        (1, 1) => " a day".into(),
        (1, 7) => " a week".into(),
        _ => format!(" {times} times every {days} days"),
    }
}

fn activity_lines(now_ms: i64) -> String {
    let mut out = format!("\n## Activities, last {ACTIVITY_DAYS} days\n");
    let from = now_ms - ACTIVITY_DAYS * 86_400_000;
    match habits::list_activities(from, now_ms) {
        Err(_) => out.push_str("(unavailable)\n"),
        Ok(list) if list.is_empty() => out.push_str("(none)\n"),
        Ok(mut list) => {
            list.sort_by_key(|a| std::cmp::Reverse(a.start));
            for a in list.iter().take(40) {
                let day = a.start_local.get(..10).unwrap_or(&a.start_local);
                out.push_str(&format!("- {day} {} \"{}\"", a.sport_type, a.name));
                if let Some(m) = a.distance_m {
                    out.push_str(&format!(", {:.1} km", m / 1000.0));
                }
                if let Some(s) = a.moving_time_s {
                    out.push_str(&format!(", {} min", s / 60));
                }
                if let Some(e) = a.elevation_gain_m {
                    out.push_str(&format!(", +{e:.0} m"));
                }
                if let Some(hr) = a.average_heartrate {
                    out.push_str(&format!(", avg HR {hr:.0}"));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Cuts `text` to at most `max` bytes at a line end (or a char boundary).
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |i| i + 1);
    text.truncate(end);
    text.push_str("(more data left out)\n");
}

/// The conversation as the model sees it: roles alternating, starting with the
/// user, the oldest turns dropped to fit [`HISTORY_BUDGET`].
pub fn history(turns: &[(Role, String)]) -> Vec<Message> {
    let mut merged: Vec<Message> = Vec::new();
    for (role, text) in turns {
        if text.trim().is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some(last) if same(&last.role, role) => {
                last.text.push_str("\n\n");
                last.text.push_str(text);
            }
            _ => merged.push(Message {
                role: *role,
                text: text.clone(),
            }),
        }
    }
    let mut total: usize = merged.iter().map(|m| m.text.len()).sum();
    while merged.len() > 1 && total > HISTORY_BUDGET {
        total -= merged.remove(0).text.len();
    }
    while merged.len() > 1 && matches!(merged[0].role, Role::Assistant) {
        merged.remove(0);
    }
    merged
}

fn same(a: &Role, b: &Role) -> bool {
    matches!(
        (a, b),
        (Role::User, Role::User) | (Role::Assistant, Role::Assistant)
    )
}
