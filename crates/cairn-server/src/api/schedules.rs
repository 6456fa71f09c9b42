//! Schedules over the API: list, create, show, pause, resume, remove, and
//! the record of every due time (fired, missed, skipped).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cairn_core::api::ErrorBody;
use cairn_core::ids::{new_id, validate_name};
use cairn_core::now_ms;
use cairn_core::schedule::{FireRecord, NewSchedule, ScheduleRecord};
use serde::Deserialize;

use super::{ApiJson, Caller};
use crate::AppState;
use crate::error::ApiError;
use axum::Extension;

type S = State<Arc<AppState>>;

/// `?agent=` on the schedule listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ScheduleListQuery {
    /// Only this agent's schedules.
    agent: Option<String>,
}

/// `?limit=` on fire records.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FiresQuery {
    /// Most records (default 50, at most 1000).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(ScheduleListQuery),
    responses((status = 200, body = Vec<ScheduleRecord>)))]
pub async fn list_schedules(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ScheduleListQuery>,
) -> Result<Json<Vec<ScheduleRecord>>, ApiError> {
    let all = state
        .tables
        .schedules
        .list_schedules(q.agent.as_deref())
        .await?;
    Ok(Json(
        all.into_iter()
            .filter(|s| caller.sees(s.user_id.as_deref()))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = NewSchedule,
    responses((status = 201, body = ScheduleRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_schedule(
    State(state): S,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewSchedule>,
) -> Result<(StatusCode, Json<ScheduleRecord>), ApiError> {
    validate_name("agent", &new.agent).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(s) = &new.session_id {
        validate_name("session", s).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    state.agent(&new.agent).await?;
    caller.may_use(&new.agent)?;
    // A person's schedule fires into a session of theirs, never another's.
    if let (Some(_), Some(session)) = (caller.user(), &new.session_id) {
        crate::api::caller::own_session(&state, &caller, session, &new.agent).await?;
    }
    let mut s = ScheduleRecord::create(new, new_id("sch"), "api", now_ms())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    s.user_id = caller.user().map(str::to_string);
    state.tables.schedules.create_schedule(&s).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path)),
    responses((status = 200, body = ScheduleRecord), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    Ok(Json(visible(&state, &caller, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let s = visible(&state, &caller, &id).await?;
    state.tables.schedules.delete_schedule(&s.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/schedules/{id}/pause", tag = "schedules", params(("id" = String, Path)),
    responses((status = 200, body = ScheduleRecord), (status = 404, body = ErrorBody)))]
pub async fn pause_schedule(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    let s = visible(&state, &caller, &id).await?;
    state
        .tables
        .schedules
        .set_schedule_paused(&s.id, true, s.next_due)
        .await?;
    Ok(Json(state.tables.schedules.get_schedule(&s.id).await?))
}

#[utoipa::path(post, path = "/api/v1/schedules/{id}/resume", tag = "schedules", params(("id" = String, Path)),
    responses((status = 200, body = ScheduleRecord), (status = 404, body = ErrorBody)))]
pub async fn resume_schedule(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleRecord>, ApiError> {
    let s = visible(&state, &caller, &id).await?;
    let next = s
        .next_due_on_resume(now_ms())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .tables
        .schedules
        .set_schedule_paused(&s.id, false, next)
        .await?;
    Ok(Json(state.tables.schedules.get_schedule(&s.id).await?))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}/fires", tag = "schedules", params(("id" = String, Path), FiresQuery),
    responses((status = 200, body = Vec<FireRecord>), (status = 404, body = ErrorBody)))]
pub async fn schedule_fires(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<FiresQuery>,
) -> Result<Json<Vec<FireRecord>>, ApiError> {
    let s = visible(&state, &caller, &id).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(
        state
            .tables
            .schedules
            .schedule_fires(Some(&s.id), limit)
            .await?,
    ))
}

/// A schedule this caller may see; another person's reads as absent.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<ScheduleRecord, ApiError> {
    let s = state.tables.schedules.get_schedule(id).await?;
    if caller.sees(s.user_id.as_deref()) {
        Ok(s)
    } else {
        Err(ApiError::not_found(format!("schedule {id:?} not found")))
    }
}
