//! The model ↔ tool loop of a run, and how it picks up where a stopped
//! process left it: the run's own messages in the session say which phase
//! it is in, the journal says which tool calls already ran.
//!
//! A step is one or two commits. The model's response, the intents of the
//! tool calls it asks for, the assistant message and the run's totals
//! commit together, before any tool starts. Tool results commit before the
//! next model call sees them when a tool has side effects; when every call
//! of the step is idempotent, the results (and the next call's intent)
//! commit with the next response instead, like Temporal's local
//! activities: a crash in between re-runs calls that are safe to re-run.

use cairn_core::{
    ContentBlock, JournalPayload, Message, ModelCallIntent, ModelOutcome, ModelRequest,
    ModelResponse, Role, RunEnd, RunEvent, RunRecord, RunStatus, StreamEvent, ToolCall, now_ms,
};
use cairn_llm::LlmError;
use cairn_store::{NewEntry, SessionLease, StepCommit};
use cairn_tools::{ToolContext, ToolRegistry};
use tokio_util::sync::CancellationToken;

use crate::compact::{ContextBudget, Fixed};
use crate::tool_step::{Prior, tool_intent};
use crate::turn::Events;
use crate::{AgentSpec, Runtime, RuntimeError};

/// How long to wait when a provider rate-limits without saying.
const DEFAULT_COOLDOWN: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) fn entry(ref_seq: Option<i64>, body: JournalPayload) -> NewEntry {
    NewEntry {
        ref_seq,
        ref_entry: None,
        body,
    }
}

/// The journal intent of a model call over `messages` messages.
pub(crate) fn model_intent(
    run: &RunRecord,
    messages: usize,
    tools: usize,
    stream: bool,
) -> NewEntry {
    entry(
        None,
        JournalPayload::ModelCall(ModelCallIntent {
            provider: run.provider.clone(),
            model: run.model.clone(),
            messages,
            tools,
            stream,
        }),
    )
}

/// Where the intent of the next model call is journaled.
#[derive(Clone, Copy)]
pub(crate) enum CallRef {
    /// Committed, at this seq.
    Seq(i64),
    /// Not yet committed: at this index of `Carry::entries`.
    Pending(usize),
}

/// What a tool step leaves for the next commit.
#[derive(Default)]
pub(crate) struct Carry {
    /// The results message, when it is not committed yet.
    pub message: Option<Message>,
    /// Journal entries not committed yet, in order.
    pub entries: Vec<NewEntry>,
    /// The next model call's intent, when the tool step journaled it.
    pub call: Option<CallRef>,
}

impl Carry {
    /// A result entry that refers to the pending intent gets its index.
    fn result_for(&self, outcome: ModelOutcome) -> NewEntry {
        let body = JournalPayload::ModelResult(outcome);
        match self.call {
            Some(CallRef::Seq(seq)) => entry(Some(seq), body),
            Some(CallRef::Pending(i)) => NewEntry {
                ref_entry: Some(i),
                ..entry(None, body)
            },
            None => entry(None, body),
        }
    }
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
                            messages: vec![&user],
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
                    .tool_step(tools, ctx, run, lease, &calls, &prior, None, events, cancel)
                    .await?
                {
                    return Ok(stop);
                }
            }
            Some(_) => self.store.update_run(run).await?,
        }

        // The context in force (a compaction's summary and the messages
        // after it); calls that stopped runs left open get an "outcome
        // unknown" result, derived each time, never stored.
        let mut history = self.load_context(&run.session_id).await?;
        let specs = tools.specs();
        let system = self
            .system_prompt(
                agent,
                &run.input,
                tools,
                &ctx.skill_dirs,
                ctx.user_id.as_deref(),
            )
            .await;
        let mut budget = ContextBudget::new(agent, &run.model, self.provider.token_counter());
        // Set once the provider said a prompt did not fit: the next
        // compaction is forced, and a second overflow ends the run.
        let mut overflowed: Option<LlmError> = None;
        let mut force_compaction = false;
        let mut carry = Carry::default();
        let mut inbound_seen = self.inbound.load(std::sync::atomic::Ordering::Acquire);
        loop {
            if self.stopping.is_cancelled() {
                // The process is stopping: leave at this step boundary; the
                // run resumes here at the next start.
                self.flush(run, lease, carry).await?;
                return Ok((RunStatus::Running, None));
            }
            if run.steps >= agent.max_steps {
                self.flush(run, lease, carry).await?;
                return Ok((
                    RunStatus::Failed,
                    Some(format!(
                        "step limit reached: {} model calls without a final answer (agent max_steps)",
                        agent.max_steps
                    )),
                ));
            }
            let inbound_now = self.inbound.load(std::sync::atomic::Ordering::Acquire);
            if inbound_now != inbound_seen && history.last().is_some_and(|m| m.role == Role::User) {
                // Messages that arrived for this session meanwhile join this
                // turn instead of waiting for their own.
                inbound_seen = inbound_now;
                carry = self.flush_keeping_call(run, lease, carry).await?;
                for text in self.store.absorb_queued_messages(lease).await? {
                    events(RunEvent::MessageJoined { text: text.clone() });
                    history.push(Message::user_text(text));
                }
            }
            if force_compaction || budget.estimate(&system, &history, &specs) > budget.limit() {
                force_compaction = false;
                // Everything in the context must be committed (it is cut
                // by message seq).
                carry = self.flush_keeping_call(run, lease, carry).await?;
                let fixed = Fixed {
                    system: &system,
                    tools: &specs,
                };
                match self
                    .compact(run, lease, &budget, &fixed, ctx.user_id.as_deref(), events)
                    .await?
                {
                    Ok(compacted) => history = compacted,
                    Err(reason) => {
                        let reason = match &overflowed {
                            Some(e) => format!("{e}; {reason}"),
                            None => reason,
                        };
                        return Ok((RunStatus::Failed, Some(reason)));
                    }
                }
            }
            let request = ModelRequest {
                model: run.model.clone(),
                system: system.clone(),
                messages: history.clone(),
                tools: specs.clone(),
                max_tokens: agent.max_tokens,
                stream: agent.stream,
            };
            if carry.call.is_none() {
                let intent = model_intent(run, history.len(), specs.len(), agent.stream);
                let seqs = self
                    .store
                    .commit_step(
                        &run.id,
                        None,
                        StepCommit {
                            entries: vec![intent],
                            ..Default::default()
                        },
                    )
                    .await?;
                carry.call = seqs.first().copied().map(CallRef::Seq);
            }

            let response = tokio::select! {
                r = self.call_model(&request, events, true) => r,
                _ = cancel.cancelled() => {
                    self.flush(run, lease, carry).await?;
                    return Ok((RunStatus::Cancelled, Some("cancelled during a model call".into())));
                }
            };
            let response = match response {
                Ok(r) => r,
                Err(e @ LlmError::ContextOverflow { .. }) if overflowed.is_none() => {
                    // Told apart from other errors: compact (once) and try
                    // the call again, believing the window the provider named.
                    let failed = carry.result_for(ModelOutcome::Failed {
                        error: e.to_string(),
                        context_overflow: true,
                        cooling_down_until: None,
                    });
                    carry.entries.push(failed);
                    carry.call = None;
                    if let LlmError::ContextOverflow { limit, .. } = &e {
                        let tried = budget.estimate(&system, &history, &specs);
                        budget.shrink_after_overflow(*limit, tried);
                    }
                    events(RunEvent::Retrying {
                        attempt: 2,
                        wait_ms: 0,
                        reason: format!("{e}; compacting the context"),
                    });
                    overflowed = Some(e);
                    force_compaction = true;
                    continue;
                }
                Err(LlmError::RateLimited {
                    message,
                    retry_after,
                    ..
                }) => {
                    // A state, not a failure and not a retry loop: the run
                    // waits for the provider and resumes by itself.
                    let wait = retry_after
                        .unwrap_or(DEFAULT_COOLDOWN)
                        .max(std::time::Duration::from_secs(1));
                    let until = now_ms() + wait.as_millis() as i64;
                    let reason = format!("{} rate limit: {message}", self.provider.name());
                    let failed = carry.result_for(ModelOutcome::Failed {
                        error: reason.clone(),
                        context_overflow: false,
                        cooling_down_until: Some(until),
                    });
                    carry.entries.push(failed);
                    carry.call = None;
                    self.flush(run, lease, carry).await?;
                    self.store
                        .set_provider_cooldown(self.provider.name(), until, &reason)
                        .await?;
                    // `Queued`: the caller hands the job back until the
                    // provider's cooldown (as stored) ends.
                    return Ok((RunStatus::Queued, None));
                }
                Err(e) => {
                    let failed = carry.result_for(ModelOutcome::Failed {
                        error: e.to_string(),
                        context_overflow: false,
                        cooling_down_until: None,
                    });
                    carry.entries.push(failed);
                    // The call was made: its intent stays, with the error.
                    carry.call = None;
                    self.flush(run, lease, carry).await?;
                    return Ok((RunStatus::Failed, Some(e.to_string())));
                }
            };
            overflowed = None;
            budget.calibrate(&request, response.usage.input_tokens);
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
            let result = carry.result_for(ModelOutcome::Answered {
                response,
                cost_usd: cost,
            });
            let mut entries = std::mem::take(&mut carry.entries);
            let first_intent = entries.len() + 1;
            entries.push(result);
            entries.extend(calls.iter().map(|c| tool_intent(tools, c)));
            let mut messages: Vec<&Message> = carry.message.iter().collect();
            messages.push(&assistant);
            let seqs = self
                .store
                .commit_step(
                    &run.id,
                    Some(lease),
                    StepCommit {
                        entries,
                        messages,
                        run: Some(run),
                        ..Default::default()
                    },
                )
                .await?;
            history.push(assistant);
            if calls.is_empty() {
                return Ok((RunStatus::Completed, None));
            }
            let journaled = calls
                .iter()
                .zip(seqs.into_iter().skip(first_intent))
                .map(|(c, seq)| (c.id.clone(), Prior::Journaled { seq }))
                .collect();
            // Journal the next model call with these results unless the loop
            // is about to leave (the checks at its top would stop it).
            let next = (run.steps < agent.max_steps && !self.stopping.is_cancelled())
                .then(|| model_intent(run, history.len() + 1, specs.len(), agent.stream));
            match self
                .tool_step(
                    tools, ctx, run, lease, &calls, &journaled, next, events, cancel,
                )
                .await?
            {
                Err(stop) => return Ok(stop),
                Ok((results, next_carry)) => {
                    history.push(results);
                    carry = next_carry;
                }
            }
        }
    }

    /// Commits what is pending: a tool step's results, and the intent of
    /// the next model call unless it is still only pending (the call will
    /// not happen now).
    async fn flush(
        &self,
        run: &RunRecord,
        lease: &mut SessionLease,
        mut carry: Carry,
    ) -> Result<(), RuntimeError> {
        if let Some(CallRef::Pending(i)) = carry.call {
            carry.entries.truncate(i);
        }
        if carry.entries.is_empty() && carry.message.is_none() {
            return Ok(());
        }
        self.store
            .commit_step(
                &run.id,
                Some(lease),
                StepCommit {
                    entries: carry.entries,
                    messages: carry.message.iter().collect(),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// Commits what is pending before the context changes between steps
    /// (messages join, a compaction); a next-call intent already journaled
    /// stays the intent of the call that follows.
    async fn flush_keeping_call(
        &self,
        run: &RunRecord,
        lease: &mut SessionLease,
        carry: Carry,
    ) -> Result<Carry, RuntimeError> {
        let kept = match carry.call {
            Some(CallRef::Seq(seq)) => Some(CallRef::Seq(seq)),
            _ => None,
        };
        self.flush(run, lease, carry).await?;
        Ok(Carry {
            call: kept,
            ..Default::default()
        })
    }

    /// One model call with retries, each retry told as an event; the
    /// answer's text is streamed to `events` when `show_text`.
    pub(crate) async fn call_model(
        &self,
        request: &ModelRequest,
        events: Events<'_>,
        show_text: bool,
    ) -> Result<ModelResponse, cairn_llm::LlmError> {
        let on_event = |e: StreamEvent| {
            if let StreamEvent::TextDelta { text } = e
                && show_text
            {
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
        let payload = JournalPayload::RunEnd(RunEnd {
            status,
            error: run.error.clone(),
        });
        self.store
            .commit_step(
                &run.id,
                None,
                StepCommit {
                    entries: vec![entry(None, payload)],
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

pub(crate) fn tool_calls(content: &[ContentBlock]) -> Vec<ToolCall> {
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
