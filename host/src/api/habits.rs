//! `/api/habits`: a user's habits and their entries. Another user's ids are 404.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson};
use crate::AppState;
use crate::auth::{self, CurrentUser};
use crate::habits::{self, EntryInput, FieldError, Habit, HabitInput};
use crate::store::habits::ActivityRange;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/habits", get(list).post(create))
        .route("/habits/{id}", get(read).patch(update).delete(remove))
        .route("/habits/{id}/entries", get(entries))
        .route(
            "/habits/{id}/entries/{date}",
            put(upsert_entry).delete(delete_entry),
        )
        .route("/activities", get(activities))
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

fn not_found() -> ApiError {
    ApiError::not_found("no such habit")
}

async fn owned(state: &AppState, user_id: &str, id: &str) -> Result<Habit, ApiError> {
    state
        .db
        .get_habit(user_id, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    archived: bool,
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let habits = state
        .db
        .list_habits(&user.id, q.archived)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "habits": habits })))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(input): ApiJson<HabitInput>,
) -> Result<Response, ApiError> {
    if input.name.is_none() {
        return Err(FieldError {
            field: "name".into(),
            message: "required".into(),
        }
        .into());
    }
    if input.kind.is_none() {
        return Err(FieldError {
            field: "kind".into(),
            message: "required: boolean or measurable".into(),
        }
        .into());
    }
    let position = state
        .db
        .next_habit_position(&user.id)
        .await
        .map_err(ApiError::internal)?;
    let habit = input.apply(habits::blank(
        auth::new_id(),
        crate::habits::today_in(&user.time_zone),
        position,
    ))?;
    state
        .db
        .insert_habit(&user.id, &habit)
        .await
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(habit)).into_response())
}

async fn read(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Habit>, ApiError> {
    Ok(Json(owned(&state, &user.id, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<HabitInput>,
) -> Result<Json<Habit>, ApiError> {
    let habit = input.apply(owned(&state, &user.id, &id).await?)?;
    if !state
        .db
        .update_habit(&user.id, &habit)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(not_found());
    }
    Ok(Json(habit))
}

async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state
        .db
        .delete_habit(&user.id, &id)
        .await
        .map_err(ApiError::internal)?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(not_found()),
    }
}

async fn upsert_entry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, date)): Path<(String, String)>,
    ApiJson(input): ApiJson<EntryInput>,
) -> Result<Json<habits::Entry>, ApiError> {
    let habit = owned(&state, &user.id, &id).await?;
    let entry = input.entry(&habit, &date, "manual")?;
    state
        .db
        .upsert_entry(&entry)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(entry))
}

async fn delete_entry(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, date)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let habit = owned(&state, &user.id, &id).await?;
    if !habits::is_date(&date) {
        return Err(FieldError {
            field: "date".into(),
            message: format!("`{date}` is not a date YYYY-MM-DD"),
        }
        .into());
    }
    match state
        .db
        .delete_entry(&habit.id, &date)
        .await
        .map_err(ApiError::internal)?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("no entry on {date}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

async fn entries(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Query(range): Query<Range>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let habit = owned(&state, &user.id, &id).await?;
    let from = range.from.unwrap_or_else(|| "0001-01-01".into());
    let to = range.to.unwrap_or_else(|| "9999-12-31".into());
    for (field, value) in [("from", &from), ("to", &to)] {
        if !habits::is_date(value) {
            return Err(FieldError {
                field: field.into(),
                message: format!("`{value}` is not a date YYYY-MM-DD"),
            }
            .into());
        }
    }
    let entries = state
        .db
        .list_entries(&habit.id, &from, &to)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "entries": entries })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    from: Option<String>,
    to: Option<String>,
    sport: Option<String>,
}

/// The user's workouts by local start date (inclusive), optionally one sport type.
async fn activities(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<ActivityQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let from = q.from.unwrap_or_else(|| "0001-01-01".into());
    let to = q.to.unwrap_or_else(|| "9999-12-31".into());
    for (field, value) in [("from", &from), ("to", &to)] {
        if !habits::is_date(value) {
            return Err(FieldError {
                field: field.into(),
                message: format!("`{value}` is not a date YYYY-MM-DD"),
            }
            .into());
        }
    }
    let range = ActivityRange::LocalDates {
        from: &from,
        to: &to,
        sport: q.sport.as_deref(),
    };
    let found = state
        .db
        .list_activities(&user.id, range)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "activities": found })))
}
