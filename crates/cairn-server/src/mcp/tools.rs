//! The tools cairn's MCP server offers.

use std::sync::Arc;

use cairn_core::{RunEvent, RunStatus};
use cairn_memory::{Scope, SearchOptions};
use cairn_store::Found;
use rmcp::model::{JsonObject, ProgressNotificationParam, ProgressToken, Tool};
use rmcp::{Peer, RoleServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::api::native::start_run;

/// What a tool answers: text and structured content, or an error message
/// (a tool error the calling model reads, not a protocol error).
pub(super) type Outcome = Result<(String, Option<Value>), String>;

/// One call's inputs.
pub(super) struct Call<'a> {
    /// Who asks (a person's key sees only their own sessions and facts).
    pub caller: crate::api::Caller,
    pub state: &'a Arc<AppState>,
    pub args: &'a JsonObject,
    pub peer: Peer<RoleServer>,
    pub progress: Option<ProgressToken>,
    pub cancel: CancellationToken,
}

impl Call<'_> {
    fn text(&self, key: &str) -> Result<Option<&str>, String> {
        match self.args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("argument {key:?} must be a string")),
        }
    }

    fn required(&self, key: &str) -> Result<&str, String> {
        self.text(key)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("argument {key:?} is required"))
    }
}

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::default(),
    }
}

/// The tool list.
pub(super) fn specs() -> Vec<Tool> {
    vec![
        Tool::new(
            "ask_agent",
            "Gives a cairn agent a message and returns its answer when its run ends. Pass `session` (returned by an earlier call) to continue that conversation. Progress (tool calls, retries) arrives as progress notifications.",
            schema(json!({
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "description": "Agent name (list_agents)"},
                    "message": {"type": "string"},
                    "session": {"type": "string", "description": "Session to continue"}
                },
                "required": ["agent", "message"]
            })),
        ),
        Tool::new(
            "memory_search",
            "Searches what a cairn agent remembers (facts it saved), best matches first.",
            schema(json!({
                "type": "object",
                "properties": {
                    "agent": {"type": "string"},
                    "query": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50}
                },
                "required": ["agent", "query"]
            })),
        ),
        Tool::new(
            "list_agents",
            "Lists the agents this cairn server runs, with their models and tools.",
            schema(json!({"type": "object", "properties": {}})),
        ),
    ]
}

/// `ask_agent`: a turn in a new or given session, answered when it ends.
pub(super) async fn ask_agent(call: Call<'_>) -> Outcome {
    let agent = call.required("agent")?;
    let message = call.required("message")?;
    let state = call.state;
    // A store error is reported as such, not as "no agent".
    if state
        .agent(agent)
        .await
        .found()
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!("no agent named {agent:?}; list_agents names them"));
    }
    let session = ask_session(&call, agent).await?;
    let run = start_run(state, &call.caller, &session, message.to_string())
        .await
        .map_err(|e| e.message)?;
    follow(&call, &run).await?;
    let done = state
        .tables
        .runs
        .get_run(&run.id)
        .await
        .map_err(|e| e.to_string())?;
    let structured = json!({
        "run_id": done.id, "session": done.session_id, "status": done.status,
    });
    match done.status {
        RunStatus::Completed => Ok((done.output.unwrap_or_default(), Some(structured))),
        status => Err(format!(
            "run {} {}: {}",
            done.id,
            status.as_str(),
            done.error.unwrap_or_default()
        )),
    }
}

/// The session `ask_agent` runs in: the one given (if it is the agent's,
/// and the caller's) or a new one, made sure to exist.
async fn ask_session(call: &Call<'_>, agent: &str) -> Result<String, String> {
    let session = match call.text("session")? {
        Some(s) => {
            cairn_core::ids::validate_name("session", s).map_err(|e| e.to_string())?;
            s.to_string()
        }
        None => cairn_core::ids::new_id("ses"),
    };
    crate::api::caller::own_session(call.state, &call.caller, &session, agent)
        .await
        .map_err(|e| e.message)?;
    Ok(session)
}

/// Follows the run to its end, telling the client its progress; the
/// client's cancel cancels the run.
async fn follow(call: &Call<'_>, run: &cairn_core::RunRecord) -> Result<(), String> {
    let state = call.state;
    let mut rx = state.hub.subscribe(&run.id);
    state.wake.notify_one();
    let mut step = 0u32;
    // Another process on the same database may drive the run; its events
    // do not reach this one, so the run's record is read now and then.
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let event = tokio::select! {
            e = crate::api::events::next_event(state, &run.id, &mut rx, step == 0) => e,
            _ = check.tick(), if step > 0 => {
                match state.tables.runs.get_run(&run.id).await {
                    Ok(r) if r.status.is_terminal() => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err(e.to_string()),
                }
            }
            _ = call.cancel.cancelled() => {
                if let Err(e) = crate::api::native::cancel(state, run.clone()).await {
                    tracing::warn!(run = %run.id, "cancelling after the MCP client did: {}", e.message);
                }
                return Err(format!("cancelled; run {} was asked to stop", run.id));
            }
        };
        step += 1;
        let Some(event) = event else { return Ok(()) };
        if matches!(event, RunEvent::RunFinished { .. }) {
            return Ok(());
        }
        if let (Some(token), Some(message)) = (&call.progress, progress_message(&event)) {
            let mut p = ProgressNotificationParam::new(token.clone(), f64::from(step));
            p.message = Some(message);
            if let Err(e) = call.peer.notify_progress(p).await {
                tracing::debug!("MCP progress not delivered: {e}");
            }
        }
    }
}

/// A line for the watching client, for events worth one.
fn progress_message(e: &RunEvent) -> Option<String> {
    match e {
        RunEvent::ToolCall { name, .. } => Some(format!("calling {name}")),
        RunEvent::ToolResult { name, is_error, .. } => Some(if *is_error {
            format!("{name} failed")
        } else {
            format!("{name} done")
        }),
        RunEvent::Retrying { reason, .. } => Some(format!("retrying: {reason}")),
        RunEvent::CoolingDown { reason, .. } => Some(format!("cooling down: {reason}")),
        RunEvent::WaitingForSession { .. } => Some("waiting for the session".into()),
        RunEvent::ContextCompacted { .. } => Some("context compacted".into()),
        _ => None,
    }
}

/// `memory_search`: the agent's facts for a query (everyone's for the
/// owner; a person's own and shared ones for a person's key).
pub(super) async fn memory_search(call: Call<'_>) -> Outcome {
    let agent = call.required("agent")?;
    let query = call.required("query")?;
    cairn_core::ids::validate_name("agent", agent).map_err(|e| e.to_string())?;
    let limit = call
        .args
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 50) as usize;
    call.caller.may_use(agent).map_err(|e| e.message)?;
    let scope = call
        .caller
        .scope()
        .map_or(Scope::Everyone, |me| Scope::Person(Some(me.to_string())));
    let opts = SearchOptions {
        scope,
        limit,
        ..Default::default()
    };
    let hits = call
        .state
        .rt
        .memory()
        .search(agent, query, &opts)
        .await
        .map_err(|e| e.to_string())?;
    let text = if hits.is_empty() {
        "nothing found".to_string()
    } else {
        hits.iter()
            .map(|h| format!("- {} [{}]", h.memory.text.replace('\n', " "), h.memory.id))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let structured = serde_json::to_value(&hits).map_err(|e| e.to_string())?;
    Ok((text, Some(json!({ "hits": structured }))))
}

/// `list_agents`: names, models and tools.
pub(super) async fn list_agents(call: Call<'_>) -> Outcome {
    let mut agents = call
        .state
        .tables
        .agents
        .list_agents()
        .await
        .map_err(|e| e.to_string())?;
    if !agents.iter().any(|a| a.name == "default") {
        agents.insert(0, cairn_core::AgentSpec::default());
    }
    agents.retain(|a| call.caller.shows_agent(&a.name));
    let list: Vec<Value> = agents
        .iter()
        .map(|a| json!({"name": a.name, "model": a.model, "tools": a.tools, "mcp": a.mcp}))
        .collect();
    let text = agents
        .iter()
        .map(|a| a.name.clone())
        .collect::<Vec<_>>()
        .join("\n");
    Ok((text, Some(json!({ "agents": list }))))
}
