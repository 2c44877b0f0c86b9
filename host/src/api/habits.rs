//! `/api/habits`: a user's habits and their entries. Another user's ids are 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{ApiPath, ApiQuery};
use super::{ApiError, ApiJson, ErrorBody};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::habits::{self, EntryInput, EntryWrite, FieldError, Habit, HabitInput, TrackerError};
use crate::rules::{self, StatsError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(all_stats))
        .routes(routes!(reorder))
        .routes(routes!(read, update, remove))
        .routes(routes!(stats))
        .routes(routes!(entries))
        .routes(routes!(upsert_entry, delete_entry))
        .routes(routes!(activities))
}

#[derive(Serialize, ToSchema)]
pub struct HabitList {
    habits: Vec<Habit>,
}

#[derive(Serialize, ToSchema)]
pub struct EntryList {
    entries: Vec<habits::Entry>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityList {
    activities: Vec<habits::Activity>,
}

/// Today's standing of one habit, in `GET /api/habits/stats`.
#[derive(Serialize, ToSchema)]
pub struct HabitToday {
    habit_id: String,
    /// Today's score, 0..1.
    score: f64,
    /// Days in the current streak; 0 for none.
    current_streak: u32,
    /// Days in the longest streak ever.
    best_streak: u32,
    window: rules::Window,
}

#[derive(Serialize, ToSchema)]
pub struct StatsList {
    stats: Vec<HabitToday>,
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            e.to_string(),
        )
    }
}

impl From<TrackerError> for ApiError {
    fn from(e: TrackerError) -> Self {
        match e {
            TrackerError::NotFound(what) => ApiError::not_found(what),
            TrackerError::Invalid(e) => e.into(),
            TrackerError::Store(e) => ApiError::internal(e),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Include archived habits.
    #[serde(default)]
    archived: bool,
}

/// The user's habits, by position.
#[utoipa::path(get, path = "/habits", tag = "habits", params(ListQuery),
    responses((status = 200, body = HabitList)))]
async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<HabitList>, ApiError> {
    let habits = state.tracker.habits(&user.id, q.archived).await?;
    Ok(Json(HabitList { habits }))
}

/// Creates a habit; `name` and `kind` are required.
#[utoipa::path(post, path = "/habits", tag = "habits", request_body = HabitInput,
    responses((status = 201, body = Habit),
        (status = 422, description = "`invalid_field`: a field is missing or breaks a habit's rules (docs/api.md); the message names it", body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(input): ApiJson<HabitInput>,
) -> Result<Response, ApiError> {
    let habit = state
        .tracker
        .create_habit(&user.id, &user.time_zone, input)
        .await?;
    Ok((StatusCode::CREATED, Json(habit)).into_response())
}

/// A new order for some of the user's habits.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HabitOrder {
    /// Habit ids, each once, in their new order. They take the places they held
    /// between them, so habits not named (archived ones, say) keep theirs.
    #[schema(value_type = std::collections::BTreeSet<String>, max_items = 1000)]
    ids: Vec<String>,
}

/// Reorders habits (drag or keyboard in the app) in one step.
#[utoipa::path(put, path = "/habits/order", tag = "habits", request_body = HabitOrder,
    responses((status = 200, description = "the user's active habits in their new order", body = HabitList),
        (status = 404, description = "`not_found`: an id is no habit of the user's; nothing changed", body = ErrorBody),
        (status = 422, description = "`invalid_field`: an id appears twice or more than 1000 are named; nothing changed", body = ErrorBody)))]
async fn reorder(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(order): ApiJson<HabitOrder>,
) -> Result<Json<HabitList>, ApiError> {
    let habits = state.tracker.reorder_habits(&user.id, &order.ids).await?;
    Ok(Json(HabitList { habits }))
}

/// One habit.
#[utoipa::path(get, path = "/habits/{id}", tag = "habits", params(("id" = String, Path)),
    responses((status = 200, body = Habit),
        (status = 404, description = "`not_found`: no such habit of the user's", body = ErrorBody)))]
async fn read(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Habit>, ApiError> {
    Ok(Json(state.tracker.habit(&user.id, &id).await?))
}

/// Changes a habit: absent fields stay, `null` clears `unit` and `target`, `reminders` replaces the list.
#[utoipa::path(patch, path = "/habits/{id}", tag = "habits", params(("id" = String, Path)), request_body = HabitInput,
    responses((status = 200, body = Habit),
        (status = 404, description = "`not_found`: no such habit of the user's", body = ErrorBody),
        (status = 422, description = "`invalid_field`: the changed habit breaks a habit's rules (docs/api.md); the message names the field", body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<HabitInput>,
) -> Result<Json<Habit>, ApiError> {
    Ok(Json(
        state.tracker.update_habit(&user.id, &id, input).await?,
    ))
}

/// Deletes a habit and its entries.
#[utoipa::path(delete, path = "/habits/{id}", tag = "habits", params(("id" = String, Path)),
    responses((status = 204, description = "deleted, with its entries"),
        (status = 404, description = "`not_found`: no such habit of the user's", body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.tracker.delete_habit(&user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The entry as stored by `PUT /api/habits/{id}/entries/{date}`.
#[derive(Serialize, ToSchema)]
pub struct RecordedEntry {
    #[serde(flatten)]
    stored: habits::StoredEntry,
    /// The entry this one overwrote when it held another status, value or note
    /// (another device's check-in of the same day); else null.
    replaced: Option<habits::StoredEntry>,
}

/// The 409 answer when a later tap's entry is stored: code `newer_entry`, and
/// the entry kept.
#[derive(Serialize, ToSchema)]
pub struct NewerEntryBody {
    #[serde(flatten)]
    error: ErrorBody,
    /// The stored entry, from a later tap, that was kept.
    kept: habits::StoredEntry,
}

/// Records the entry of a date (an idempotent upsert). Of two taps on one day
/// the later `tapped_at` wins, whichever reaches the server first.
#[utoipa::path(put, path = "/habits/{id}/entries/{date}", tag = "habits",
    params(("id" = String, Path), ("date" = String, Path, format = Date, description = "a calendar date, YYYY-MM-DD")), request_body = EntryInput,
    responses((status = 200, description = "stored; `replaced` is the overwritten entry when it differed", body = RecordedEntry),
        (status = 404, description = "`not_found`: no such habit of the user's", body = ErrorBody),
        (status = 409, description = "`newer_entry`: an entry from a later tap is stored and was kept (in `kept`); nothing changed", body = NewerEntryBody),
        (status = 422, description = "`invalid_field`: not a calendar date, an entry the habit's kind does not take, or a negative `tapped_at`; the message names the field", body = ErrorBody)))]
async fn upsert_entry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, date)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<EntryInput>,
) -> Result<Response, ApiError> {
    let written = state
        .tracker
        .record_entry(&user.id, &id, &date, input, "manual")
        .await?;
    Ok(match written {
        EntryWrite::Written { stored, replaced } => {
            Json(RecordedEntry { stored, replaced }).into_response()
        }
        EntryWrite::KeptNewer(kept) => {
            let error = ErrorBody::new(
                "newer_entry",
                format!("a later check-in of {date} (from another device) is stored and was kept"),
            );
            (StatusCode::CONFLICT, Json(NewerEntryBody { error, kept })).into_response()
        }
    })
}

/// Deletes the entry of a date.
#[utoipa::path(delete, path = "/habits/{id}/entries/{date}", tag = "habits",
    params(("id" = String, Path), ("date" = String, Path, format = Date, description = "a calendar date, YYYY-MM-DD")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "`not_found`: no such habit of the user's, or no entry on that date", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `date` is not a calendar date", body = ErrorBody)))]
async fn delete_entry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath((id, date)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    match state.tracker.delete_entry(&user.id, &id, &date).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("no entry on {date}"))),
    }
}

/// Dates `YYYY-MM-DD`, inclusive.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Range {
    /// The first day, `YYYY-MM-DD`.
    #[param(format = Date)]
    from: Option<String>,
    /// The last day, `YYYY-MM-DD`.
    #[param(format = Date)]
    to: Option<String>,
}

/// A habit's entries between two dates, oldest first.
#[utoipa::path(get, path = "/habits/{id}/entries", tag = "habits", params(("id" = String, Path), Range),
    responses((status = 200, body = EntryList),
        (status = 404, description = "`not_found`: no such habit of the user's", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `from` or `to` is not a calendar date", body = ErrorBody)))]
async fn entries(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(range): ApiQuery<Range>,
) -> Result<Json<EntryList>, ApiError> {
    let entries = state
        .tracker
        .entries(&user.id, &id, range.from, range.to)
        .await?;
    Ok(Json(EntryList { entries }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    /// The first local start date, `YYYY-MM-DD`.
    #[param(format = Date)]
    from: Option<String>,
    /// The last local start date, `YYYY-MM-DD`.
    #[param(format = Date)]
    to: Option<String>,
    /// One sport type, such as `Run`.
    sport: Option<String>,
}

/// The user's workouts by local start date (inclusive), optionally one sport type.
#[utoipa::path(get, path = "/activities", tag = "activities", params(ActivityQuery),
    responses((status = 200, body = ActivityList),
        (status = 422, description = "`invalid_field`: `from` or `to` is not a calendar date", body = ErrorBody)))]
async fn activities(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<ActivityList>, ApiError> {
    let found = state
        .tracker
        .activities_on_dates(&user.id, q.from, q.to, q.sport.as_deref())
        .await?;
    Ok(Json(ActivityList { activities: found }))
}

impl From<StatsError> for ApiError {
    fn from(e: StatsError) -> Self {
        match e {
            StatsError::NoRulesPlugin => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "rules_unavailable",
                format!("{e}; install one (the bundled habit-rules is installed at start)"),
            ),
            StatsError::Invoke { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "rules_plugin_failed",
                e.to_string(),
            ),
            StatsError::BadAnswer { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "rules_plugin_invalid",
                e.to_string(),
            ),
            StatsError::Db(e) => ApiError::internal(e),
        }
    }
}

fn today_of(user: &crate::store::users::User) -> Result<jiff::civil::Date, ApiError> {
    habits::today_in(&user.time_zone)
        .parse()
        .map_err(ApiError::internal)
}

/// A habit's stats over `from..=to` (default: the 30 days ending today), judged by
/// the active rules plugin.
#[utoipa::path(get, path = "/habits/{id}/stats", tag = "habits", params(("id" = String, Path), Range),
    responses((status = 200, body = rules::HabitStats),
        (status = 404, description = "`not_found`: no such habit of the user's", body = ErrorBody),
        (status = 422, description = "`invalid_field`: not a calendar date, `from` after `to`, or a range over 3660 days", body = ErrorBody),
        (status = 502, description = "the rules plugin failed or answered out of range; names the plugin and version", body = ErrorBody),
        (status = 503, description = "`rules_unavailable`: no rules plugin is active", body = ErrorBody)))]
async fn stats(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<Range>,
) -> Result<Json<rules::HabitStats>, ApiError> {
    let found = state.tracker.habit_with_revision(&user.id, &id).await?;
    let today = today_of(&user)?;
    let to = q.to.unwrap_or_else(|| today.to_string());
    let from = match q.from {
        Some(from) => from,
        None => to
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.checked_sub(jiff::Span::new().days(29)).ok())
            .map_or_else(|| to.clone(), |d| d.to_string()),
    };
    let range = rules::Range::parse(&from, &to).map_err(|message| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    })?;
    let mut stats = state
        .evaluator
        .evaluate(&user.id, &[found], today, &range)
        .await?;
    let one = stats
        .pop()
        .ok_or_else(|| ApiError::internal("no stats returned"))?;
    Ok(Json(rules::HabitStats::clone(&one)))
}

/// Today's score and streak of every active habit, from one rules plugin call.
#[utoipa::path(get, path = "/habits/stats", tag = "habits",
    responses((status = 200, body = StatsList),
        (status = 502, description = "`rules_plugin_failed` or `rules_plugin_invalid`; names the plugin and version", body = ErrorBody),
        (status = 503, description = "`rules_unavailable`: no rules plugin is active", body = ErrorBody)))]
async fn all_stats(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<StatsList>, ApiError> {
    let habits = state.tracker.habits_with_revision(&user.id, false).await?;
    let today = today_of(&user)?;
    let range = rules::Range {
        from: today,
        to: today,
    };
    let stats = state
        .evaluator
        .evaluate(&user.id, &habits, today, &range)
        .await?;
    let stats = habits
        .iter()
        .zip(stats)
        .map(|((habit, _), s)| HabitToday {
            habit_id: habit.id.clone(),
            score: s.score,
            current_streak: s.current_streak,
            best_streak: s.best_streaks.iter().map(|b| b.length).max().unwrap_or(0),
            window: s.window.clone(),
        })
        .collect();
    Ok(Json(StatsList { stats }))
}
