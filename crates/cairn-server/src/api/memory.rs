//! What an agent remembers, over the API: list, save, search, forget.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_core::api::{ErrorBody, SaveMemoryRequest};
use cairn_core::ids::validate_name;
use cairn_core::{MemoryHit, MemoryRecord};
use cairn_memory::{MemoryError, SaveMemory, Scope, SearchOptions};
use cairn_store::SavedMemory;
use serde::Deserialize;

use super::{ApiJson, Caller};
use crate::AppState;
use crate::error::ApiError;
use axum::Extension;

type S = State<Arc<AppState>>;

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Store(e) => e.into(),
            MemoryError::Invalid(m) | MemoryError::Io(m) => ApiError::bad_request(m),
            MemoryError::NoEmbedder => ApiError::bad_request(e.to_string()),
            MemoryError::Model(m) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "embedding_unavailable",
                message: m,
            },
        }
    }
}

fn agent_name(name: &str) -> Result<(), ApiError> {
    validate_name("agent", name).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The person whose facts a caller asks for: a person's key is its own
/// person whatever `?user=` says (another's is refused); the owner may
/// name anyone.
fn person_asked(caller: &Caller, asked: Option<String>) -> Result<Option<String>, ApiError> {
    match (caller.scope(), asked) {
        (None, asked) => Ok(asked),
        (Some(me), Some(other)) if other != me => Err(ApiError::forbidden(
            "a key sees its own person's facts (and shared ones) only",
        )),
        (Some(me), _) => Ok(Some(me.to_string())),
    }
}

/// `?limit=&user=` on memory listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MemoryListQuery {
    /// Most items (default 100, at most 1000).
    limit: Option<i64>,
    /// Only facts about this person.
    user: Option<String>,
}

/// `?q=&limit=&user=` on memory search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MemorySearchQuery {
    /// What to look for.
    q: String,
    /// Most results (default 10, at most 100).
    limit: Option<usize>,
    /// Facts about this person (and about nobody in particular).
    user: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/agents/{name}/memories", tag = "memory",
    params(("name" = String, Path), MemoryListQuery),
    responses((status = 200, body = Vec<MemoryRecord>), (status = 400, body = ErrorBody)))]
pub async fn list_memories(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<MemoryListQuery>,
) -> Result<Json<Vec<MemoryRecord>>, ApiError> {
    agent_name(&name)?;
    caller.may_use(&name)?;
    let user = person_asked(&caller, q.user)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        state
            .rt
            .memory()
            .list(&name, user.as_deref(), limit)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/agents/{name}/memories", tag = "memory",
    params(("name" = String, Path)), request_body = SaveMemoryRequest,
    responses((status = 201, description = "saved", body = MemoryRecord),
              (status = 200, description = "already known: refreshed", body = MemoryRecord),
              (status = 400, body = ErrorBody)))]
pub async fn save_memory(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SaveMemoryRequest>,
) -> Result<Response, ApiError> {
    agent_name(&name)?;
    caller.may_use(&name)?;
    let user_id = person_asked(&caller, req.user_id)?;
    let saved = state
        .rt
        .memory()
        .save(SaveMemory {
            agent: name,
            user_id,
            text: req.text,
            importance: req.importance,
            source: Some("api".into()),
            times: None,
            shared: false,
        })
        .await?;
    Ok(match saved {
        SavedMemory::New(m) => (StatusCode::CREATED, Json(m)).into_response(),
        SavedMemory::Duplicate(m) => (StatusCode::OK, Json(m)).into_response(),
    })
}

#[utoipa::path(get, path = "/api/v1/agents/{name}/memories/search", tag = "memory",
    params(("name" = String, Path), MemorySearchQuery),
    responses((status = 200, body = Vec<MemoryHit>), (status = 400, body = ErrorBody)))]
pub async fn search_memories(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<MemorySearchQuery>,
) -> Result<Json<Vec<MemoryHit>>, ApiError> {
    agent_name(&name)?;
    caller.may_use(&name)?;
    let user = person_asked(&caller, q.user)?;
    let opts = SearchOptions {
        scope: user.map_or(Scope::Everyone, |u| Scope::Person(Some(u))),
        limit: q.limit.unwrap_or(10).clamp(1, 100),
        ..Default::default()
    };
    Ok(Json(state.rt.memory().search(&name, &q.q, &opts).await?))
}

#[utoipa::path(delete, path = "/api/v1/agents/{name}/memories/{id}", tag = "memory",
    params(("name" = String, Path), ("id" = String, Path, description = "memory id or unique prefix")),
    responses((status = 200, description = "forgotten", body = MemoryRecord), (status = 404, body = ErrorBody)))]
pub async fn forget_memory(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<MemoryRecord>, ApiError> {
    agent_name(&name)?;
    caller.may_use(&name)?;
    let scope = caller
        .scope()
        .map_or(Scope::Everyone, |me| Scope::Person(Some(me.to_string())));
    Ok(Json(state.rt.memory().forget(&name, &scope, &id).await?))
}
