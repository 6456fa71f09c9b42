//! Routes, the JSON body extractor and the API-key check.

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

/// All routes.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let api = Router::new()
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

/// Requires `Authorization: Bearer <key>` when the server has a key.
async fn require_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = state.api_key.as_deref() else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
        next.run(req).await
    } else {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "missing or wrong API key: send `Authorization: Bearer <key>`".into(),
        }
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
