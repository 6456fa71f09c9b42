//! Routes, the JSON body extractor and the API-key check.

pub mod caller;
pub mod events;
pub mod guard;
pub mod memory;
pub mod metrics;
pub mod native;
pub mod openai;
pub mod openapi;
pub mod schedules;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;
use cairn_core::keys::constant_time_eq;

/// Agents, sessions and memories.
fn agent_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/agents",
            get(native::list_agents).post(native::create_agent),
        )
        .route(
            "/api/v1/agents/{name}",
            get(native::get_agent).put(native::put_agent),
        )
        .route(
            "/api/v1/sessions",
            get(native::list_sessions).post(native::create_session),
        )
        .route(
            "/api/v1/agents/{name}/memories",
            get(memory::list_memories).post(memory::save_memory),
        )
        .route(
            "/api/v1/agents/{name}/memories/search",
            get(memory::search_memories),
        )
        .route(
            "/api/v1/agents/{name}/memories/{id}",
            axum::routing::delete(memory::forget_memory),
        )
        .route("/api/v1/sessions/{id}", get(native::get_session))
        .route(
            "/api/v1/sessions/{id}/messages",
            get(native::session_messages).post(native::post_message),
        )
}

/// Schedules and runs.
fn run_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/schedules",
            get(schedules::list_schedules).post(schedules::create_schedule),
        )
        .route(
            "/api/v1/schedules/{id}",
            get(schedules::get_schedule).delete(schedules::delete_schedule),
        )
        .route(
            "/api/v1/schedules/{id}/pause",
            post(schedules::pause_schedule),
        )
        .route(
            "/api/v1/schedules/{id}/resume",
            post(schedules::resume_schedule),
        )
        .route(
            "/api/v1/schedules/{id}/fires",
            get(schedules::schedule_fires),
        )
        .route("/api/v1/runs", get(native::list_runs))
        .route("/api/v1/runs/{id}", get(native::get_run))
        .route("/api/v1/runs/{id}/events", get(events::run_events_sse))
        .route("/api/v1/runs/{id}/ws", get(events::run_events_ws))
        .route("/api/v1/runs/{id}/cancel", post(native::cancel_run))
}

/// All routes.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let api = agent_routes()
        .merge(run_routes())
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/metrics", get(metrics::metrics))
        .route_service("/mcp", crate::mcp::http_service(state.clone(), body_limit))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    // Everything but the signed channel endpoints is closed to web pages.
    let guarded = api
        .route("/api/v1/openapi.json", get(openapi::serve_openapi))
        .route("/healthz", get(native::healthz))
        .route("/readyz", get(native::readyz))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::browser_guard,
        ));
    Router::new()
        .merge(guarded)
        .route(
            "/channels/telegram/webhook",
            post(crate::channels::telegram::webhook),
        )
        .route(
            "/channels/slack/events",
            post(crate::channels::slack::events),
        )
        .route(
            "/channels/webhook/{name}",
            post(crate::channels::webhook::inbound),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/openapi.json") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("the server hit an internal error handling this request")
                .into_response()
        }))
        .with_state(state)
}

pub use caller::Caller;

/// Requires a key when the server has one (the operator's key, the shared
/// `server.api_key`, or a person's key), and a person's key always; then
/// the role's limits at the door. Marks the request with its [`Caller`];
/// refusals and changes go to the audit log.
async fn require_key(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let caller = match identify(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => {
            let who = cairn_core::audit::Actor::Anonymous;
            crate::audit::refused(&state, who, &method, &path, e.status, &e.message).await;
            return e.into_response();
        }
    };
    if let Err(e) = caller::door(&caller, &method, &path) {
        let who = caller.actor(state.api_key.is_some());
        crate::audit::refused(&state, who, &method, &path, e.status, &e.message).await;
        return e.into_response();
    }
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    crate::audit::key_used(&state, &caller, &method, &path, response.status()).await;
    response
}

/// Who the request's key says it is from.
async fn identify(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    let given = bearer(headers);
    let is = |key: &Option<String>| {
        key.as_deref()
            .zip(given)
            .is_some_and(|(k, g)| constant_time_eq(g.as_bytes(), k.as_bytes()))
    };
    if is(&state.operator_key) {
        return Ok(Caller::Operator);
    }
    if let Some(person) = match given {
        Some(g) => caller::person(state, g).await?,
        None => None,
    } {
        return Ok(Caller::Person(person));
    }
    if state.api_key.is_none() || is(&state.api_key) {
        return Ok(Caller::Owner);
    }
    Err(ApiError::unauthorized(
        "missing or wrong API key: send `Authorization: Bearer <key>`",
    ))
}

/// The credentials of `Authorization: Bearer …` (the scheme is case
/// insensitive, RFC 9110 §11.1).
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|k| !k.is_empty())
}

/// A JSON body whose errors are answered in the API's error shape: 400
/// with the parser's message (line and column), 413 when too large.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(
                    "request body is larger than the server accepts (server.body_limit_bytes)",
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}
