//! One turn of an agent in a session.

use std::sync::Arc;
use std::time::Instant;

use cairn_core::ids::{new_id, validate_name};
use cairn_core::{
    ContentBlock, JournalKind, Message, ModelRequest, ModelResponse, Role, RunEvent, RunRecord,
    RunStatus, StreamEvent, ToolCall, ToolOutput, now_ms,
};
use cairn_store::{NewEntry, SessionLease, StepCommit};
use cairn_tools::{ToolContext, ToolRegistry, Workspace};
use futures_util::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::history::close_open_tool_calls;
use crate::lease::{Heartbeat, acquire};
use crate::{AgentSpec, Runtime, RuntimeError};

/// A turn to run.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// The agent.
    pub agent: AgentSpec,
    /// Session to continue or create; a fresh one when `None`.
    pub session_id: Option<String>,
    /// The user's message.
    pub input: String,
}

/// Callback receiving run events.
type Events<'a> = &'a (dyn Fn(RunEvent) + Send + Sync);

fn entry(kind: JournalKind, ref_seq: Option<i64>, payload: serde_json::Value) -> NewEntry {
    NewEntry {
        kind,
        ref_seq,
        payload,
    }
}

impl Runtime {
    /// Runs one turn to its end. A failure of the model or a tool ends the
    /// run as `failed` (returned, not an `Err`); `Err` means the run could not
    /// be recorded at all.
    pub async fn run_turn(
        &self,
        req: TurnRequest,
        events: Events<'_>,
        cancel: CancellationToken,
    ) -> Result<RunRecord, RuntimeError> {
        validate_name("agent", &req.agent.name)?;
        let session_id = match &req.session_id {
            Some(s) => {
                validate_name("session", s)?;
                s.clone()
            }
            None => new_id("ses"),
        };
        let tools = ToolRegistry::builtin(&req.agent.tools)?;
        let ws_dir = self.workspaces.join(&req.agent.name);
        let workspace = Workspace::open(&ws_dir).map_err(|source| RuntimeError::Workspace {
            path: ws_dir.display().to_string(),
            source,
        })?;
        self.store
            .ensure_session(&session_id, &req.agent.name)
            .await?;

        let model = if req.agent.model.is_empty() {
            self.provider.default_model().to_string()
        } else {
            req.agent.model.clone()
        };
        let mut run = RunRecord {
            id: new_id("run"),
            session_id: session_id.clone(),
            agent: req.agent.name.clone(),
            status: RunStatus::Queued,
            input: req.input.clone(),
            output: None,
            error: None,
            provider: self.provider.name().to_string(),
            model,
            steps: 0,
            usage: Default::default(),
            cost_usd: 0.0,
            created_at: now_ms(),
            finished_at: None,
        };
        self.store.create_run(&run).await?;
        events(RunEvent::RunStarted {
            run_id: run.id.clone(),
            session_id: session_id.clone(),
        });

        let Some(mut lease) = acquire(
            &self.store,
            &session_id,
            &run.id,
            self.session_lease_ms,
            &cancel,
            events,
        )
        .await?
        else {
            return self
                .finish(
                    &mut run,
                    RunStatus::Cancelled,
                    Some("cancelled while waiting for the session".into()),
                    events,
                )
                .await;
        };
        let heartbeat = Heartbeat::start(self.store.clone(), lease.clone(), self.session_lease_ms);
        let ctx = ToolContext {
            workspace,
            cancel: cancel.child_token(),
            output_limit: self.tool_output_limit,
        };
        let outcome = self
            .work(
                &req.agent, &tools, &ctx, &mut run, &mut lease, events, &cancel,
            )
            .await;
        drop(heartbeat);
        let result = match outcome {
            Ok((status, error)) => self.finish(&mut run, status, error, events).await,
            Err(e) => {
                // The store failed mid-turn; record what we can.
                let msg = e.to_string();
                let _ = self
                    .finish(&mut run, RunStatus::Failed, Some(msg), events)
                    .await;
                Err(e)
            }
        };
        if let Err(e) = self.store.release_session(&lease).await {
            tracing::warn!(session = %lease.session_id, error = %e, "could not release session");
        }
        result
    }

    /// The model/tool loop. Returns the final status and error text.
    #[allow(clippy::too_many_arguments)]
    async fn work(
        &self,
        agent: &AgentSpec,
        tools: &ToolRegistry,
        ctx: &ToolContext,
        run: &mut RunRecord,
        lease: &mut SessionLease,
        events: Events<'_>,
        cancel: &CancellationToken,
    ) -> Result<(RunStatus, Option<String>), RuntimeError> {
        let mut history = self.store.messages(&lease.session_id).await?;
        // Calls a stopped run left open get an "outcome unknown" result. The
        // repair is derived from the stored history each time it is loaded,
        // so it need not be stored itself.
        close_open_tool_calls(&mut history);
        let user = Message::user_text(&run.input);
        run.status = RunStatus::Running;
        self.store
            .commit_step(
                &run.id,
                Some(lease),
                StepCommit {
                    message: Some(&user),
                    run: Some(run),
                    ..Default::default()
                },
            )
            .await?;
        history.push(user);

        let specs = tools.specs();
        loop {
            if run.steps >= agent.max_steps {
                return Ok((
                    RunStatus::Failed,
                    Some(format!(
                        "step limit reached: {} model calls without a final answer (agent max_steps)",
                        agent.max_steps
                    )),
                ));
            }
            let request = ModelRequest {
                model: run.model.clone(),
                system: agent.system_prompt.clone(),
                messages: history.clone(),
                tools: specs.clone(),
                max_tokens: agent.max_tokens,
                stream: agent.stream,
            };
            let intent = json!({"provider": run.provider, "model": run.model, "messages": history.len(), "tools": specs.len(), "stream": agent.stream});
            let call_seq = self
                .store
                .commit_step(
                    &run.id,
                    None,
                    StepCommit {
                        entries: vec![entry(JournalKind::ModelCall, None, intent)],
                        ..Default::default()
                    },
                )
                .await?[0];

            let response = tokio::select! {
                r = self.call_model(&request, events) => r,
                _ = cancel.cancelled() => return Ok((RunStatus::Cancelled, Some("cancelled during a model call".into()))),
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    self.store
                        .commit_step(
                            &run.id,
                            None,
                            StepCommit {
                                entries: vec![entry(
                                    JournalKind::ModelResult,
                                    Some(call_seq),
                                    json!({"error": e.to_string()}),
                                )],
                                ..Default::default()
                            },
                        )
                        .await?;
                    return Ok((RunStatus::Failed, Some(e.to_string())));
                }
            };
            let cost = self.prices.cost(&run.model, response.usage);
            run.steps += 1;
            run.usage += response.usage;
            run.cost_usd += cost;
            if !response.model.is_empty() && run.model.is_empty() {
                run.model = response.model.clone();
            }
            let assistant = Message {
                role: Role::Assistant,
                content: response.content.clone(),
            };
            let calls = tool_calls(&response);
            if calls.is_empty() {
                run.output = Some(assistant.text());
            }
            self.store
                .commit_step(
                    &run.id,
                    Some(lease),
                    StepCommit {
                        entries: vec![entry(
                            JournalKind::ModelResult,
                            Some(call_seq),
                            json!({"response": response, "cost_usd": cost}),
                        )],
                        message: Some(&assistant),
                        run: Some(run),
                    },
                )
                .await?;
            history.push(assistant);
            if calls.is_empty() {
                return Ok((RunStatus::Completed, None));
            }

            let results = self.run_tools(tools, ctx, run, &calls, events).await?;
            let message = Message {
                role: Role::User,
                content: calls
                    .iter()
                    .zip(&results)
                    .map(|(c, r)| ContentBlock::ToolResult {
                        tool_use_id: c.id.clone(),
                        content: r.content.clone(),
                        is_error: r.is_error,
                    })
                    .collect(),
            };
            self.store
                .commit_step(
                    &run.id,
                    Some(lease),
                    StepCommit {
                        message: Some(&message),
                        ..Default::default()
                    },
                )
                .await?;
            history.push(message);
            if cancel.is_cancelled() {
                return Ok((
                    RunStatus::Cancelled,
                    Some("cancelled during a tool call".into()),
                ));
            }
        }
    }

    async fn call_model(
        &self,
        request: &ModelRequest,
        events: Events<'_>,
    ) -> Result<ModelResponse, cairn_llm::LlmError> {
        let on_event = |e: StreamEvent| {
            if let StreamEvent::TextDelta { text } = e {
                events(RunEvent::TextDelta { text });
            }
        };
        let on_retry = |attempt: u32, wait: std::time::Duration, err: &cairn_llm::LlmError| {
            events(RunEvent::Retrying {
                attempt,
                wait_ms: wait.as_millis() as u64,
                reason: err.to_string(),
            });
        };
        cairn_llm::complete_with_retry(
            self.provider.as_ref(),
            request,
            &self.retry,
            &on_event,
            &on_retry,
        )
        .await
    }

    /// Runs the calls of one model response in parallel; each intent is
    /// journaled before any starts, each result as soon as it is known.
    async fn run_tools(
        &self,
        tools: &ToolRegistry,
        ctx: &ToolContext,
        run: &RunRecord,
        calls: &[ToolCall],
        events: Events<'_>,
    ) -> Result<Vec<ToolOutput>, RuntimeError> {
        let intents = calls
            .iter()
            .map(|c| {
                let idempotent = tools.get(&c.name).is_some_and(|t| t.idempotent());
                entry(
                    JournalKind::ToolCall,
                    None,
                    json!({"id": c.id, "name": c.name, "input": c.input, "idempotent": idempotent}),
                )
            })
            .collect();
        let seqs = self
            .store
            .commit_step(
                &run.id,
                None,
                StepCommit {
                    entries: intents,
                    ..Default::default()
                },
            )
            .await?;
        for c in calls {
            events(RunEvent::ToolCall {
                id: c.id.clone(),
                name: c.name.clone(),
                input: c.input.clone(),
            });
        }
        let futures = calls.iter().zip(seqs).map(|(call, seq)| async move {
            let started = Instant::now();
            let output = invoke(tools, ctx, call).await;
            let payload = json!({
                "id": call.id, "name": call.name, "output": output.content, "is_error": output.is_error,
                "bytes": output.content.len(), "duration_ms": started.elapsed().as_millis() as u64,
            });
            let committed = self
                .store
                .commit_step(&run.id, None, StepCommit { entries: vec![entry(JournalKind::ToolResult, Some(seq), payload)], ..Default::default() })
                .await;
            events(RunEvent::ToolResult { id: call.id.clone(), name: call.name.clone(), is_error: output.is_error, bytes: output.content.len() });
            committed.map(|_| output)
        });
        join_all(futures)
            .await
            .into_iter()
            .map(|r| r.map_err(RuntimeError::from))
            .collect()
    }

    async fn finish(
        &self,
        run: &mut RunRecord,
        status: RunStatus,
        error: Option<String>,
        events: Events<'_>,
    ) -> Result<RunRecord, RuntimeError> {
        run.status = status;
        run.error = error;
        run.finished_at = Some(now_ms());
        let payload = json!({"status": status, "error": run.error});
        let step = StepCommit {
            entries: vec![entry(JournalKind::RunEnd, None, payload)],
            run: Some(run),
            ..Default::default()
        };
        self.store.commit_step(&run.id, None, step).await?;
        events(RunEvent::RunFinished {
            run: Box::new(run.clone()),
        });
        Ok(run.clone())
    }
}

fn tool_calls(r: &ModelResponse) -> Vec<ToolCall> {
    r.content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => Some(ToolCall {
                id: id.clone(),
                name: name.clone(),
                input: input.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Runs one call, turning every kind of misuse into a tool error the model
/// can read and correct.
async fn invoke(tools: &ToolRegistry, ctx: &ToolContext, call: &ToolCall) -> ToolOutput {
    let Some(tool) = tools.get(&call.name) else {
        return ToolOutput::error(format!(
            "unknown tool {:?}; available tools: {}",
            call.name,
            tools.names().join(", ")
        ));
    };
    if !call.input.is_object() {
        let raw = match &call.input {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return ToolOutput::error(format!(
            "the arguments were not a valid JSON object ({raw}); call {} again with a JSON object matching its schema",
            call.name
        ));
    }
    // A panicking tool fails its call, not the run.
    let tool = Arc::clone(tool);
    let ctx = ctx.clone();
    let input = call.input.clone();
    match tokio::spawn(async move { tool.call(&ctx, input).await }).await {
        Ok(out) => out,
        Err(e) => ToolOutput::error(format!("the tool crashed: {e}")),
    }
}
