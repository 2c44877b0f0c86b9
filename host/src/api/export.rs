//! `GET /api/export`, `POST /api/import`: everything a user owns, out and back in.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ApiQuery;
use super::{ApiError, ErrorBody, body_deadline};
use crate::AppState;
use crate::auth::{self, CurrentUser};
use crate::export::loop_backup::{self, LoopError};
use crate::export::{self, Export, ExportedHabit};
use crate::habits::{self, EntryInput, FieldError};
use crate::store::habits::ActivityRange;

/// Largest import: ten years of daily entries for dozens of habits fit well within.
const IMPORT_LIMIT: usize = 32 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    let (schemas, paths, import) = routes!(import);
    OpenApiRouter::new().routes(routes!(export_all)).routes((
        schemas,
        paths,
        import.layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
    ))
}

/// What an import added.
#[derive(Serialize, ToSchema)]
pub struct Imported {
    habits: usize,
    entries: usize,
    activities: usize,
    /// Notes a Loop backup holds on days that are no check-in (not done, or
    /// unknown): HAM keeps notes on entries only, so these were left out.
    dropped_notes: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// `loop` for Loop Habit Tracker's full backup (its `.db` file; a body sent
    /// as application/octet-stream is taken as one too); absent for HAM's own
    /// export, JSON or CSV by `Content-Type`.
    #[param(value_type = Option<ImportFormat>, inline)]
    format: Option<String>,
}

/// What `POST /api/import?format=` takes.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(
    dead_code,
    reason = "describes the parameter; the handler reads it as text"
)]
enum ImportFormat {
    Loop,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// `json` (the default) or `csv`.
    #[param(value_type = Option<ExportFormat>, inline)]
    format: Option<String>,
}

/// What `GET /api/export?format=` takes.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(
    dead_code,
    reason = "describes the parameter; the handler reads it as text"
)]
enum ExportFormat {
    Json,
    Csv,
}

/// Everything the user owns, as JSON or as one CSV table.
#[utoipa::path(get, path = "/export", tag = "export", params(ExportQuery),
    responses((status = 200, content((Export = "application/json"), (String = "text/csv"))),
        (status = 422, description = "`invalid_field`: `format` is not json or csv", body = ErrorBody)))]
async fn export_all(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let db = &state.db;
    let mut habits = Vec::new();
    for habit in db.list_habits(&user.id, true).await? {
        let entries = db
            .list_entries(&habit.id, "0001-01-01", "9999-12-31")
            .await?;
        habits.push(ExportedHabit::of(habit, entries));
    }
    let range = ActivityRange::LocalDates {
        from: "0001-01-01",
        to: "9999-12-31",
        sport: None,
    };
    let activities = db.list_activities(&user.id, range).await?;
    let document = Export {
        format: export::FORMAT.into(),
        version: export::VERSION,
        time_zone: user.time_zone,
        habits,
        activities,
    };
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(document).into_response()),
        "csv" => {
            let csv = export::to_csv(&document).map_err(ApiError::internal)?;
            let headers = [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"ham-export.csv\"",
                ),
            ];
            Ok((headers, csv).into_response())
        }
        other => Err(FieldError {
            field: "format".into(),
            message: format!("`{other}` is not json or csv"),
        }
        .into()),
    }
}

/// Adds an export (JSON or CSV, by `Content-Type`) or a Loop Habit Tracker
/// backup (`?format=loop`) to the user's data, all or nothing.
#[utoipa::path(post, path = "/import", tag = "export", params(ImportQuery),
    request_body(content((Export = "application/json"), (String = "text/csv"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 200, body = Imported),
        (status = 400, description = "`invalid_json`: the JSON does not parse; `bad_request`: the CSV is not UTF-8", body = ErrorBody),
        (status = 413, description = "`too_large`: over 32 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither application/json nor text/csv", body = ErrorBody),
        (status = 422, description = "`invalid_field`: the document is refused (another format or version, a CSV without the export's header, a bad field, a file that is not a Loop backup or is damaged); the message names the field, CSV line or habit, and nothing is written", body = ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Imported>, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an import may be at most {IMPORT_LIMIT} bytes"),
        ),
        _ if body_deadline::is_body_timeout(&e) => super::body_timeout(),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    })?;
    let mut dropped_notes = 0;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let binary = [
        "application/octet-stream",
        "application/vnd.sqlite3",
        "application/x-sqlite3",
    ]
    .iter()
    .any(|t| content_type.starts_with(t));
    let format = q.format.as_deref().or(binary.then_some("loop"));
    let document = match format {
        None => document(content_type, &body)?,
        Some("loop") => {
            let today = habits::today_in(&user.time_zone);
            let backup = loop_backup::read(&body, &today, &user.time_zone)
                .await
                .map_err(|e| match e {
                    LoopError::Io(e) => ApiError::internal(e),
                    refused => FieldError::new("file", refused.to_string()).into(),
                })?;
            dropped_notes = backup.dropped_notes;
            backup.export
        }
        Some(other) => {
            return Err(FieldError::new("format", format!("`{other}` is not loop")).into());
        }
    };
    if document.format != export::FORMAT || document.version != export::VERSION {
        return Err(FieldError {
            field: "format".into(),
            message: format!("expected {} version {}", export::FORMAT, export::VERSION),
        }
        .into());
    }
    if !habits::is_time_zone(&document.time_zone) {
        return Err(FieldError {
            field: "time_zone".into(),
            message: format!("`{}` is not an IANA time zone", document.time_zone),
        }
        .into());
    }
    // Check everything before writing anything.
    let first_position = state.db.next_habit_position(&user.id).await?;
    let mut habits = Vec::new();
    let mut entry_count = 0;
    for (i, exported) in document.habits.iter().enumerate() {
        let mut habit = exported.habit(auth::new_id())?;
        habit.position = first_position + i64::try_from(i).unwrap_or(0);
        let mut entries = Vec::new();
        for e in &exported.entries {
            let input = EntryInput {
                status: Some(e.status),
                value: e.value,
                note: e.note.clone(),
                tapped_at: None,
            };
            let entry = input
                .entry(&habit, &e.date, &e.source)
                .map_err(|err| FieldError {
                    field: format!(
                        "habits[{}].entries[{}].{}",
                        exported.name, e.date, err.field
                    ),
                    message: err.message,
                })?;
            entries.push(entry);
        }
        entry_count += entries.len();
        habits.push((habit, entries));
    }
    for (i, activity) in document.activities.iter().enumerate() {
        activity.validate().map_err(|e| FieldError {
            field: format!("activities[{i}].{}", e.field),
            message: e.message,
        })?;
    }
    state
        .db
        .import(&user.id, &document.time_zone, &habits, &document.activities)
        .await?;
    Ok(Json(Imported {
        habits: habits.len(),
        entries: entry_count,
        activities: document.activities.len(),
        dropped_notes,
    }))
}

/// HAM's own export from the body: JSON or CSV, by its `Content-Type`.
fn document(content_type: &str, body: &[u8]) -> Result<Export, ApiError> {
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            ),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()),
        })
    } else if content_type.starts_with("text/csv") {
        let text = std::str::from_utf8(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the CSV is not UTF-8",
            )
        })?;
        let has_records = csv::Reader::from_reader(text.as_bytes())
            .headers()
            .is_ok_and(|h| h.iter().any(|column| column == "record"));
        if !has_records {
            return Err(FieldError {
                field: "line 1".into(),
                message: "not the export's header (it has a `record` column); send what GET /api/export?format=csv gives".into(),
            }
            .into());
        }
        Ok(export::from_csv(text)?)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the export as application/json or text/csv, or a Loop backup with ?format=loop",
        ))
    }
}
