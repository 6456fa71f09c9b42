//! The native API: agents, sessions, messages (which start runs), runs.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::api::{CreateSession, ErrorBody, Health, PostMessage, RunDetail, SessionInfo};
use cairn_core::ids::validate_name;
use cairn_core::{AgentSpec, Message, RunRecord};
use cairn_runtime::{CancelOutcome, TurnRequest};
use serde::Deserialize;

use super::events::{run_sse, wait_for_run};
use super::{ApiJson, Caller};
use crate::AppState;
use crate::error::ApiError;
use cairn_store::Found;

pub(crate) type S = State<Arc<AppState>>;

/// Largest message accepted, in bytes.
const MAX_MESSAGE: usize = 256 * 1024;

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: vec![],
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): S) -> Response {
    let store = state.tables.runs.ping().await.map_err(|e| e.to_string());
    let provider = state.rt.provider().readiness();
    let checks = vec![
        match &store {
            Ok(()) => "store: ok".to_string(),
            Err(e) => format!("store: {e}"),
        },
        match &provider {
            Ok(()) => format!("provider: {} ok", state.rt.provider().name()),
            Err(e) => format!("provider: {e}"),
        },
    ];
    if store.is_ok() && provider.is_ok() {
        Json(Health {
            status: "ok".into(),
            checks,
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                checks,
            }),
        )
            .into_response()
    }
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = Vec<AgentSpec>)))]
pub async fn list_agents(
    State(state): S,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<AgentSpec>>, ApiError> {
    let mut agents = state.tables.agents.list_agents().await?;
    if !agents.iter().any(|a| a.name == "default") {
        agents.insert(0, AgentSpec::default());
    }
    agents.retain(|a| caller.shows_agent(&a.name));
    Ok(Json(agents))
}

#[utoipa::path(get, path = "/api/v1/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 200, body = AgentSpec), (status = 404, body = ErrorBody)))]
pub async fn get_agent(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<AgentSpec>, ApiError> {
    caller.may_use(&name)?;
    Ok(Json(state.agent(&name).await?))
}

fn check_agent(state: &AppState, spec: &AgentSpec) -> Result<(), ApiError> {
    validate_name("agent", &spec.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .rt
        .check_mcp(spec)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    cairn_tools_check(&spec.tools)?;
    for n in &spec.network_allow {
        cairn_tools::net_guard::Network::parse(n)
            .map_err(|e| ApiError::bad_request(format!("network_allow: {e}")))?;
    }
    if let Some(owner) = &spec.owner
        && !owner
            .split_once(':')
            .is_some_and(|(c, chat)| !c.is_empty() && !chat.is_empty())
    {
        return Err(ApiError::bad_request(format!(
            "owner {owner:?} is not <channel>:<chat>, such as \"telegram:123456789\""
        )));
    }
    if spec.max_steps == 0 || spec.max_tokens == 0 {
        return Err(ApiError::bad_request(
            "max_steps and max_tokens must be at least 1",
        ));
    }
    Ok(())
}

/// Refuses a change that widens an agent's isolation unless the operator
/// asks: a prompt-injected command or a web page holding no more than the
/// API's access must not turn an agent's commands loose on the host.
fn require_operator(caller: &Caller, current: &AgentSpec, new: &AgentSpec) -> Result<(), ApiError> {
    let widened = cairn_core::agent::widened(current, new);
    if widened.is_empty() || *caller == Caller::Operator {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::FORBIDDEN,
        code: "operator_required",
        message: format!(
            "changing an agent's {} widens its isolation and is the operator's: send `Authorization: Bearer <operator key>` (the key is in $CAIRN_HOME/operator.key on the server's host), or set it in the server's config",
            widened.join(", ")
        ),
    })
}

fn cairn_tools_check(tools: &[String]) -> Result<(), ApiError> {
    for t in tools {
        if t != "*" && !cairn_runtime::BUILTIN_TOOLS.contains(&t.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown tool {t:?}; built-in tools are: {}",
                cairn_runtime::BUILTIN_TOOLS.join(", ")
            )));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentSpec,
    responses((status = 201, body = AgentSpec), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "widens the agent's isolation without the operator key"),
              (status = 409, body = ErrorBody)))]
pub async fn create_agent(
    State(state): S,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> Result<(StatusCode, Json<AgentSpec>), ApiError> {
    check_agent(&state, &spec)?;
    require_operator(&caller, &AgentSpec::default(), &spec)?;
    if state
        .tables
        .agents
        .get_agent(&spec.name)
        .await
        .found()?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "agent {:?} exists; PUT /api/v1/agents/{} to change it",
            spec.name, spec.name
        )));
    }
    state.tables.agents.put_agent(&spec).await?;
    crate::audit::agent_changed(&state, &caller, &AgentSpec::default(), &spec).await;
    Ok((StatusCode::CREATED, Json(spec)))
}

#[utoipa::path(put, path = "/api/v1/agents/{name}", tag = "agents", params(("name" = String, Path)), request_body = AgentSpec,
    responses((status = 200, body = AgentSpec), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "widens the agent's isolation without the operator key")))]
pub async fn put_agent(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(mut spec): ApiJson<AgentSpec>,
) -> Result<Json<AgentSpec>, ApiError> {
    spec.name = name;
    check_agent(&state, &spec)?;
    let current = state.agent(&spec.name).await.found()?.unwrap_or_default();
    require_operator(&caller, &current, &spec)?;
    state.tables.agents.put_agent(&spec).await?;
    crate::audit::agent_changed(&state, &caller, &current, &spec).await;
    Ok(Json(spec))
}

/// `?limit=` on listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Most items to return (default 50, at most 1000).
    limit: Option<i64>,
    /// Only runs of this session.
    session: Option<String>,
}

impl ListQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(ListQuery), responses((status = 200, body = Vec<SessionInfo>)))]
pub async fn list_sessions(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let sessions = &state.tables.sessions;
    Ok(Json(match caller.scope() {
        Some(user) => sessions.list_sessions_of(user, q.limit()).await?,
        None => sessions.list_sessions(q.limit()).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionInfo), (status = 200, body = SessionInfo, description = "it already existed"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_session(
    State(state): S,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionInfo>), ApiError> {
    state.agent(&req.agent).await?;
    let id = match req.id {
        Some(id) => {
            validate_name("session", &id).map_err(|e| ApiError::bad_request(e.to_string()))?;
            id
        }
        None => cairn_core::ids::new_id("ses"),
    };
    let existed = state
        .tables
        .sessions
        .get_session(&id)
        .await
        .found()?
        .is_some();
    let info = super::caller::own_session(&state, &caller, &id, &req.agent).await?;
    Ok((
        if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(info),
    ))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(
        super::caller::visible_session(&state, &caller, &id).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/messages", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Message>), (status = 404, body = ErrorBody)))]
pub async fn session_messages(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Message>>, ApiError> {
    super::caller::visible_session(&state, &caller, &id).await?;
    Ok(Json(state.tables.sessions.messages(&id).await?))
}

/// Queues a run for `input` in an existing session and wakes an executor.
pub(crate) async fn start_run(
    state: &AppState,
    caller: &Caller,
    session_id: &str,
    input: String,
) -> Result<RunRecord, ApiError> {
    if input.trim().is_empty() {
        return Err(ApiError::bad_request("the message is empty"));
    }
    if input.len() > MAX_MESSAGE {
        return Err(ApiError::too_large(format!(
            "the message is {} bytes; the limit is {MAX_MESSAGE}",
            input.len()
        )));
    }
    let session = super::caller::visible_session(state, caller, session_id).await?;
    caller.may_use(&session.agent)?;
    let agent = state.agent(&session.agent).await?;
    let (run, _job) = state
        .rt
        .submit(&TurnRequest {
            agent,
            session_id: Some(session_id.to_string()),
            input,
            user_id: caller.user().map(str::to_string),
        })
        .await?;
    Ok(run)
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/messages", tag = "sessions", params(("id" = String, Path)), request_body = PostMessage,
    description = "Posts a user message, which starts a run. Answers 202 with the queued run; with `Accept: text/event-stream` streams the run's events (SSE) until it ends; with `wait: true` answers when it has finished.",
    responses((status = 202, body = RunRecord), (status = 200, body = RunRecord, description = "finished run (wait: true)"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn post_message(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PostMessage>,
) -> Result<Response, ApiError> {
    let run = start_run(&state, &caller, &id, req.content).await?;
    let events = state.hub.subscribe(&run.id);
    state.wake.notify_one();
    let wants_sse = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if wants_sse {
        return Ok(run_sse(state.clone(), run.id.clone(), events).into_response());
    }
    if req.wait {
        let done = wait_for_run(&state, &run.id, events).await?;
        return Ok((StatusCode::OK, Json(done)).into_response());
    }
    drop(events);
    state.hub.forget_if_unwatched(&run.id);
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListQuery), responses((status = 200, body = Vec<RunRecord>)))]
pub async fn list_runs(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let runs = &state.tables.runs;
    let (session, limit) = (q.session.as_deref(), q.limit());
    Ok(Json(match caller.scope() {
        Some(user) => runs.list_runs_of(user, session, limit).await?,
        None => runs.list_runs(session, limit).await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "run id or a unique prefix")),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = super::caller::visible_run(&state, &caller, &id).await?;
    let journal = state.tables.runs.journal(&run.id).await?;
    Ok(Json(RunDetail { run, journal }))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    responses((status = 202, body = RunRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_run(
    State(state): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunRecord>), ApiError> {
    let run = super::caller::visible_run(&state, &caller, &id).await?;
    if run.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "run {} has already {}",
            run.id,
            run.status.as_str()
        )));
    }
    let run = cancel(&state, run).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Stops `run` wherever it is (the runtime decides how); a run withdrawn
/// from the queue is told to its watchers as ended.
pub(crate) async fn cancel(state: &AppState, run: RunRecord) -> Result<RunRecord, ApiError> {
    match state.rt.cancel_run(&run.id).await? {
        CancelOutcome::Withdrawn(ended) => {
            state.hub.publish(
                &ended.id,
                cairn_core::RunEvent::RunFinished { run: ended.clone() },
            );
            Ok(*ended)
        }
        CancelOutcome::Unheld => {
            tracing::info!(run = %run.id, "cancel: no process holds the run; it ended or waits to be resumed");
            Ok(run)
        }
        CancelOutcome::Stopping | CancelOutcome::Requested => Ok(run),
    }
}
