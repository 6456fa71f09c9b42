//! Live run events over SSE and WebSocket, and waiting for a run's end.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cairn_core::api::ErrorBody;
use cairn_core::{RunEvent, RunRecord};
use futures_util::Stream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::AppState;
use crate::error::ApiError;

/// The next event of a run, or `None` once it has ended (or the server is
/// stopping). A run that already ended yields its final record once.
pub(crate) async fn next_event(
    state: &AppState,
    run_id: &str,
    rx: &mut Receiver<RunEvent>,
    first: bool,
) -> Option<RunEvent> {
    if first {
        match state.tables.runs.get_run(run_id).await {
            Ok(run) if run.status.is_terminal() => {
                return Some(RunEvent::RunFinished { run: Box::new(run) });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(run = run_id, error = %e, "cannot read the run being watched"),
        }
    }
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(e) => return Some(e),
                Err(RecvError::Lagged(n)) => tracing::warn!(run = run_id, skipped = n, "a slow watcher missed events"),
                Err(RecvError::Closed) => {
                    return match state.tables.runs.get_run(run_id).await {
                        Ok(run) => Some(RunEvent::RunFinished { run: Box::new(run) }),
                        Err(e) => {
                            tracing::warn!(run = run_id, error = %e, "cannot read the finished run");
                            None
                        }
                    };
                }
            },
            _ = state.shutdown.cancelled() => return None,
        }
    }
}

fn event_type(e: &RunEvent) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_else(|| "event".into())
}

/// Streams a run's events as SSE (`event: <type>`, `data: <RunEvent JSON>`)
/// until `run_finished`.
pub fn run_sse(
    state: Arc<AppState>,
    run_id: String,
    rx: Receiver<RunEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(Some((state, run_id, rx, true)), |st| async move {
        let (state, run_id, mut rx, first) = st?;
        let e = next_event(&state, &run_id, &mut rx, first).await?;
        let last = matches!(e, RunEvent::RunFinished { .. });
        let event = Event::default()
            .event(event_type(&e))
            .json_data(&e)
            .unwrap_or_else(|_| Event::default().comment("unserializable event"));
        if last {
            state.hub.forget_if_unwatched(&run_id);
        }
        Some((
            Ok(event),
            if last {
                None
            } else {
                Some((state, run_id, rx, false))
            },
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Waits until the run ends and returns its final record.
pub async fn wait_for_run(
    state: &AppState,
    run_id: &str,
    mut rx: Receiver<RunEvent>,
) -> Result<RunRecord, ApiError> {
    let mut first = true;
    while let Some(e) = next_event(state, run_id, &mut rx, first).await {
        first = false;
        if matches!(e, RunEvent::RunFinished { .. }) {
            break;
        }
    }
    Ok(state.tables.runs.get_run(run_id).await?)
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs", params(("id" = String, Path)),
    description = "Server-sent events of the run (text deltas, tool calls, tool results, retries) until `run_finished`; a finished run sends `run_finished` at once.",
    responses((status = 200, content_type = "text/event-stream", body = RunEvent), (status = 404, body = ErrorBody)))]
pub async fn run_events_sse(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<crate::api::Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = crate::api::caller::visible_run(&state, &caller, &id).await?;
    let rx = state.hub.subscribe(&run.id);
    Ok(run_sse(state, run.id, rx).into_response())
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/ws", tag = "runs", params(("id" = String, Path)),
    description = "The same events as `/events`, one JSON text message each, over a WebSocket that closes after `run_finished`.",
    responses((status = 101, description = "switching to WebSocket"), (status = 404, body = ErrorBody)))]
pub async fn run_events_ws(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<crate::api::Caller>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let run = crate::api::caller::visible_run(&state, &caller, &id).await?;
    let rx = state.hub.subscribe(&run.id);
    Ok(ws.on_upgrade(move |socket| forward_ws(socket, state, run.id, rx)))
}

async fn forward_ws(
    mut socket: WebSocket,
    state: Arc<AppState>,
    run_id: String,
    mut rx: Receiver<RunEvent>,
) {
    let mut first = true;
    while let Some(e) = next_event(&state, &run_id, &mut rx, first).await {
        first = false;
        let last = matches!(e, RunEvent::RunFinished { .. });
        let Ok(text) = serde_json::to_string(&e) else {
            break;
        };
        if socket.send(WsMessage::Text(text.into())).await.is_err() || last {
            break;
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
    state.hub.forget_if_unwatched(&run_id);
}
