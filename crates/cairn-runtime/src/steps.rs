//! The model ↔ tool loop of a run, and how it picks up where a stopped
//! process left it: the run's own messages in the session say which phase
//! it is in, the journal says which tool calls already ran.

use std::collections::HashMap;
use std::time::Instant;

use cairn_core::{
    ContentBlock, JournalKind, Message, ModelRequest, ModelResponse, Role, RunEvent, RunRecord,
    RunStatus, StreamEvent, ToolCall, ToolOutput, now_ms,
};
use cairn_store::{NewEntry, SessionLease, StepCommit};
use cairn_tools::{ToolContext, ToolRegistry};
use futures_util::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::history::{OUTCOME_UNKNOWN, close_open_tool_calls};
use crate::turn::Events;
use crate::{AgentSpec, Runtime, RuntimeError};

fn entry(kind: JournalKind, ref_seq: Option<i64>, payload: serde_json::Value) -> NewEntry {
    NewEntry {
        kind,
        ref_seq,
        payload,
    }
}

/// What the journal says about a tool call from before a restart.
enum Prior {
    /// Its result was journaled: reuse it.
    Done(ToolOutput),
    /// Started (intent at `seq`) but no result.
    Started { seq: i64, idempotent: bool },
    /// Intent just journaled (at `seq`) with the response; not started.
    Journaled { seq: i64 },
}

/// The journal intent of a tool call.
fn tool_intent(tools: &ToolRegistry, c: &ToolCall) -> NewEntry {
    let idempotent = tools.get(&c.name).is_some_and(|t| t.idempotent());
    entry(
        JournalKind::ToolCall,
        None,
        json!({"id": c.id, "name": c.name, "input": c.input, "idempotent": idempotent}),
    )
}

impl Runtime {
    /// Runs the loop; returns the final status and error text, or
    /// `Running` when it paused at a step boundary because the process is
    /// stopping.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn work(
        &self,
        agent: &AgentSpec,
        tools: &ToolRegistry,
        ctx: &ToolContext,
        run: &mut RunRecord,
        lease: &mut SessionLease,
        events: Events<'_>,
        cancel: &CancellationToken,
    ) -> Result<(RunStatus, Option<String>), RuntimeError> {
        let mine = self.store.run_messages(&run.session_id, &run.id).await?;
        run.status = RunStatus::Running;
        match mine.last() {
            None => {
                let user = Message::user_text(&run.input);
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
            }
            Some(last) if last.role == Role::Assistant => {
                let calls = tool_calls(&last.content);
                if calls.is_empty() {
                    // The answer was recorded; only the run's end was not.
                    run.output = Some(last.text());
                    return Ok((RunStatus::Completed, None));
                }
                let prior = self.prior_tool_calls(&run.id).await?;
                self.store.update_run(run).await?;
                if let Err(stop) = self
                    .tool_step(tools, ctx, run, lease, &calls, &prior, events, cancel)
                    .await?
                {
                    return Ok(stop);
                }
            }
            Some(_) => self.store.update_run(run).await?,
        }

        let mut history = self.store.messages(&run.session_id).await?;
        // Calls that other stopped runs left open get an "outcome unknown"
        // result; derived from the stored history each time, never stored.
        close_open_tool_calls(&mut history);
        let specs = tools.specs();
        loop {
            if self.stopping.is_cancelled() {
                // The process is stopping: leave at this step boundary; the
                // run resumes here at the next start.
                return Ok((RunStatus::Running, None));
            }
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
                    let step = StepCommit {
                        entries: vec![entry(
                            JournalKind::ModelResult,
                            Some(call_seq),
                            json!({"error": e.to_string()}),
                        )],
                        ..Default::default()
                    };
                    self.store.commit_step(&run.id, None, step).await?;
                    return Ok((RunStatus::Failed, Some(e.to_string())));
                }
            };
            let cost = self.prices.cost(&run.model, response.usage);
            run.steps += 1;
            run.usage += response.usage;
            run.cost_usd += cost;
            let assistant = Message {
                role: Role::Assistant,
                content: response.content.clone(),
            };
            let calls = tool_calls(&response.content);
            if calls.is_empty() {
                run.output = Some(assistant.text());
            }
            // The tool calls' intents commit with the response that asked
            // for them: journaled before they run, in one transaction.
            let mut entries = vec![entry(
                JournalKind::ModelResult,
                Some(call_seq),
                json!({"response": response, "cost_usd": cost}),
            )];
            entries.extend(calls.iter().map(|c| tool_intent(tools, c)));
            let seqs = self
                .store
                .commit_step(
                    &run.id,
                    Some(lease),
                    StepCommit {
                        entries,
                        message: Some(&assistant),
                        run: Some(run),
                    },
                )
                .await?;
            history.push(assistant);
            if calls.is_empty() {
                return Ok((RunStatus::Completed, None));
            }
            let journaled: HashMap<String, Prior> = calls
                .iter()
                .zip(seqs.into_iter().skip(1))
                .map(|(c, seq)| (c.id.clone(), Prior::Journaled { seq }))
                .collect();
            match self
                .tool_step(tools, ctx, run, lease, &calls, &journaled, events, cancel)
                .await?
            {
                Err(stop) => return Ok(stop),
                Ok(results) => history.push(results),
            }
        }
    }

    /// Runs a response's tool calls and appends their results message, which
    /// it returns; or the final status when the run must stop (cancelled).
    #[allow(clippy::too_many_arguments)]
    async fn tool_step(
        &self,
        tools: &ToolRegistry,
        ctx: &ToolContext,
        run: &RunRecord,
        lease: &mut SessionLease,
        calls: &[ToolCall],
        prior: &HashMap<String, Prior>,
        events: Events<'_>,
        cancel: &CancellationToken,
    ) -> Result<Result<Message, (RunStatus, Option<String>)>, RuntimeError> {
        let results = self
            .run_tools(tools, ctx, run, calls, prior, events)
            .await?;
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
        if cancel.is_cancelled() {
            return Ok(Err((
                RunStatus::Cancelled,
                Some("cancelled during a tool call".into()),
            )));
        }
        Ok(Ok(message))
    }

    /// Tool calls of this run the journal knows about, by call id.
    async fn prior_tool_calls(&self, run_id: &str) -> Result<HashMap<String, Prior>, RuntimeError> {
        let mut prior = HashMap::new();
        for e in self.store.journal(run_id).await? {
            let Some(id) = e.payload["id"].as_str().map(str::to_string) else {
                continue;
            };
            match e.kind {
                JournalKind::ToolCall => {
                    prior.insert(
                        id,
                        Prior::Started {
                            seq: e.seq,
                            idempotent: e.payload["idempotent"] == true,
                        },
                    );
                }
                JournalKind::ToolResult => {
                    let out = e.payload["output"].as_str().unwrap_or("").to_string();
                    prior.insert(
                        id,
                        Prior::Done(ToolOutput {
                            content: out,
                            is_error: e.payload["is_error"] == true,
                        }),
                    );
                }
                _ => {}
            }
        }
        Ok(prior)
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

    /// Runs the calls of one model response in parallel. New calls have
    /// their intents journaled before any starts and each result as soon as
    /// it is known. Calls from before a restart: a journaled result is
    /// reused; a started idempotent call re-runs; a started side-effecting
    /// call is not re-run and reports an unknown outcome.
    async fn run_tools(
        &self,
        tools: &ToolRegistry,
        ctx: &ToolContext,
        run: &RunRecord,
        calls: &[ToolCall],
        prior: &HashMap<String, Prior>,
        events: Events<'_>,
    ) -> Result<Vec<ToolOutput>, RuntimeError> {
        let fresh: Vec<&ToolCall> = calls
            .iter()
            .filter(|c| !prior.contains_key(&c.id))
            .collect();
        let intents = fresh
            .iter()
            .map(|c| tool_intent(tools, c))
            .collect::<Vec<_>>();
        let new_seqs = if intents.is_empty() {
            vec![]
        } else {
            self.store
                .commit_step(
                    &run.id,
                    None,
                    StepCommit {
                        entries: intents,
                        ..Default::default()
                    },
                )
                .await?
        };
        let mut seq_of: HashMap<&str, i64> =
            fresh.iter().map(|c| c.id.as_str()).zip(new_seqs).collect();

        let futures = calls.iter().map(|call| {
            let plan = match prior.get(&call.id) {
                Some(Prior::Done(out)) => Plan::Reuse(out.clone()),
                Some(Prior::Started { seq, idempotent: true }) => Plan::Run(*seq),
                Some(Prior::Started { seq, idempotent: false }) => Plan::Unknown(*seq),
                Some(Prior::Journaled { seq }) => Plan::Run(*seq),
                None => Plan::Run(seq_of.remove(call.id.as_str()).unwrap_or(0)),
            };
            async move {
                let mut duration_ms = 0u64;
                let (output, seq, unknown) = match plan {
                    Plan::Reuse(out) => return Ok(out),
                    Plan::Unknown(seq) => (ToolOutput::error(OUTCOME_UNKNOWN), seq, true),
                    Plan::Run(seq) => {
                        events(RunEvent::ToolCall { id: call.id.clone(), name: call.name.clone(), input: call.input.clone() });
                        let started = Instant::now();
                        let out = invoke(tools, ctx, call).await;
                        duration_ms = started.elapsed().as_millis() as u64;
                        (out, seq, false)
                    }
                };
                let payload = json!({
                    "id": call.id, "name": call.name, "output": output.content, "is_error": output.is_error,
                    "bytes": output.content.len(), "duration_ms": duration_ms, "outcome_unknown": unknown,
                });
                let committed = self
                    .store
                    .commit_step(&run.id, None, StepCommit { entries: vec![entry(JournalKind::ToolResult, Some(seq), payload)], ..Default::default() })
                    .await;
                events(RunEvent::ToolResult { id: call.id.clone(), name: call.name.clone(), is_error: output.is_error, bytes: output.content.len() });
                committed.map(|_| output)
            }
        });
        join_all(futures)
            .await
            .into_iter()
            .map(|r| r.map_err(RuntimeError::from))
            .collect()
    }

    pub(crate) async fn finish(
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
        self.store
            .commit_step(
                &run.id,
                None,
                StepCommit {
                    entries: vec![entry(JournalKind::RunEnd, None, payload)],
                    run: Some(run),
                    ..Default::default()
                },
            )
            .await?;
        events(RunEvent::RunFinished {
            run: Box::new(run.clone()),
        });
        Ok(run.clone())
    }
}

enum Plan {
    Reuse(ToolOutput),
    Run(i64),
    Unknown(i64),
}

fn tool_calls(content: &[ContentBlock]) -> Vec<ToolCall> {
    content
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
    // A panicking tool fails its call, not the run. Caught in place rather
    // than in a spawned task: a hand-off between threads per call costs more
    // than the call itself for quick tools.
    let call_future = std::panic::AssertUnwindSafe(tool.call(ctx, call.input.clone()));
    match futures_util::FutureExt::catch_unwind(call_future).await {
        Ok(out) => out,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ToolOutput::error(format!("the tool crashed: {what}"))
        }
    }
}
