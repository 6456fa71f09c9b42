//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use super::{events, memory, metrics, native, openai, schedules};

#[derive(OpenApi)]
#[openapi(
    info(title = "cairn API", description = "The native API every cairn surface uses (CLI, console, channels), plus the OpenAI-compatible endpoint."),
    paths(
        native::healthz, native::readyz, metrics::metrics,
        native::list_agents, native::get_agent, native::create_agent, native::put_agent,
        native::list_sessions, native::create_session, native::get_session, native::session_messages, native::post_message,
        native::list_runs, native::get_run, native::cancel_run,
        memory::list_memories, memory::save_memory, memory::search_memories, memory::forget_memory,
        schedules::list_schedules, schedules::create_schedule, schedules::get_schedule, schedules::delete_schedule,
        schedules::pause_schedule, schedules::resume_schedule, schedules::schedule_fires,
        events::run_events_sse, events::run_events_ws,
        openai::models, openai::chat_completions,
    ),
    tags(
        (name = "agents", description = "Agent definitions"),
        (name = "sessions", description = "Conversations; posting a message starts a run"),
        (name = "runs", description = "Runs, their journals and live events"),
        (name = "memory", description = "Facts an agent remembers: list, save, search (hybrid), forget"),
        (name = "schedules", description = "Cron, interval and one-shot schedules that wake an agent; each due time is fired once and recorded"),
        (name = "openai", description = "OpenAI-compatible surface"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn serve_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
