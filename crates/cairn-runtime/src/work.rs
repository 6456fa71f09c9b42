//! A turn's loop in named phases: resume (pick up where the run's own
//! messages say it stopped), then per step: boundary checks, absorb
//! inbound messages, compact, the model call, and recording its answer
//! (whose tool calls run in `tool_step`). Each phase either lets the loop
//! go on or ends it with an [`Outcome`].

use std::ops::ControlFlow;

use cairn_core::{
    Message, ModelOutcome, ModelRequest, ModelResponse, Role, RunEvent, RunStatus, ToolSpec, now_ms,
};
use cairn_llm::LlmError;
use cairn_store::StepCommit;

use crate::compact::{Compacted, ContextBudget, Fixed};
use crate::shared::{CallRef, Carry, Outcome, Turn, call_cost, model_intent, tool_calls};
use crate::tool_step::{Prior, Stepped, tool_intent};
use crate::{Runtime, RuntimeError};

/// How long to wait when a provider rate-limits without saying.
const DEFAULT_COOLDOWN: std::time::Duration = std::time::Duration::from_secs(60);

/// What changes from step to step.
struct Steps {
    history: Vec<Message>,
    system: String,
    specs: Vec<ToolSpec>,
    budget: ContextBudget,
    /// Set once the provider said a prompt did not fit: the next
    /// compaction is forced, and a second overflow ends the run.
    overflowed: Option<LlmError>,
    force_compaction: bool,
    carry: Carry,
    inbound_seen: u64,
}

type Phase = ControlFlow<Outcome>;

impl Runtime {
    /// Runs the loop to its outcome.
    pub(crate) async fn work(&self, turn: &mut Turn<'_>) -> Result<Outcome, RuntimeError> {
        if let ControlFlow::Break(done) = self.resume(turn).await? {
            return Ok(done);
        }
        let mut st = self.prepare(turn).await?;
        loop {
            if let ControlFlow::Break(done) = self.at_boundary(turn, &mut st).await? {
                return Ok(done);
            }
            self.absorb_inbound(turn, &mut st).await?;
            if let ControlFlow::Break(done) = self.compact_if_due(turn, &mut st).await? {
                return Ok(done);
            }
            let response = match self.model_step(turn, &mut st).await? {
                ControlFlow::Break(done) => return Ok(done),
                ControlFlow::Continue(None) => continue,
                ControlFlow::Continue(Some(response)) => response,
            };
            if let ControlFlow::Break(done) = self.record(turn, &mut st, response).await? {
                return Ok(done);
            }
        }
    }

    /// Picks up from the run's own messages: none yet (a fresh run: its
    /// message is appended), an answer (only the end was not recorded), or
    /// tool calls (their step is finished from the journal).
    async fn resume(&self, turn: &mut Turn<'_>) -> Result<Phase, RuntimeError> {
        let mine = self
            .store
            .run_messages(&turn.run.session_id, &turn.run.id)
            .await?;
        turn.run.status = RunStatus::Running;
        match mine.last() {
            None => {
                let user = Message::user_text(&turn.run.input);
                self.store
                    .commit_step(
                        &turn.run.id,
                        Some(&mut *turn.lease),
                        StepCommit {
                            messages: vec![&user],
                            run: Some(&*turn.run),
                            ..Default::default()
                        },
                    )
                    .await?;
            }
            Some(last) if last.role == Role::Assistant => {
                let calls = tool_calls(&last.content);
                if calls.is_empty() {
                    turn.run.output = Some(last.text());
                    return Ok(ControlFlow::Break(Outcome::Completed));
                }
                let prior = self.prior_tool_calls(&turn.run.id).await?;
                self.store.update_run(turn.run).await?;
                if let Stepped::Stop(stop) = self.tool_step(turn, &calls, &prior, None).await? {
                    return Ok(ControlFlow::Break(stop));
                }
            }
            Some(_) => self.store.update_run(turn.run).await?,
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The context in force (a compaction's summary and the messages after
    /// it; calls that stopped runs left open get an "outcome unknown"
    /// result, derived each time, never stored), the prompt and the budget.
    async fn prepare(&self, turn: &Turn<'_>) -> Result<Steps, RuntimeError> {
        let history = self.load_context(&turn.run.session_id).await?;
        let system = self
            .system_prompt(
                turn.agent,
                &turn.run.input,
                turn.tools,
                &turn.ctx.skill_dirs,
                turn.ctx.user_id.as_deref(),
            )
            .await;
        Ok(Steps {
            history,
            system,
            specs: turn.tools.specs(),
            budget: ContextBudget::new(turn.agent, &turn.run.model, self.provider.token_counter()),
            overflowed: None,
            force_compaction: false,
            carry: Carry::default(),
            inbound_seen: self.inbound.load(std::sync::atomic::Ordering::Acquire),
        })
    }

    /// Leaves at a step boundary when the process stops or the step limit
    /// is reached.
    async fn at_boundary(
        &self,
        turn: &mut Turn<'_>,
        st: &mut Steps,
    ) -> Result<Phase, RuntimeError> {
        let outcome = if self.stopping.is_cancelled() {
            Outcome::Paused
        } else if turn.run.steps >= turn.agent.max_steps {
            Outcome::Failed(format!(
                "step limit reached: {} model calls without a final answer (agent max_steps)",
                turn.agent.max_steps
            ))
        } else {
            return Ok(ControlFlow::Continue(()));
        };
        self.flush(turn, std::mem::take(&mut st.carry)).await?;
        Ok(ControlFlow::Break(outcome))
    }

    /// Messages that arrived for this session meanwhile join this turn
    /// instead of waiting for their own.
    async fn absorb_inbound(
        &self,
        turn: &mut Turn<'_>,
        st: &mut Steps,
    ) -> Result<(), RuntimeError> {
        let inbound_now = self.inbound.load(std::sync::atomic::Ordering::Acquire);
        if inbound_now == st.inbound_seen
            || !st.history.last().is_some_and(|m| m.role == Role::User)
        {
            return Ok(());
        }
        st.inbound_seen = inbound_now;
        st.carry = self
            .flush_keeping_call(turn, std::mem::take(&mut st.carry))
            .await?;
        for text in self.store.absorb_queued_messages(turn.lease).await? {
            (turn.events)(RunEvent::MessageJoined { text: text.clone() });
            st.history.push(Message::user_text(text));
        }
        Ok(())
    }

    /// Compacts the context when it outgrows the budget (or the provider
    /// said it did); a context that cannot be made to fit ends the run.
    async fn compact_if_due(
        &self,
        turn: &mut Turn<'_>,
        st: &mut Steps,
    ) -> Result<Phase, RuntimeError> {
        if !st.force_compaction
            && st.budget.estimate(&st.system, &st.history, &st.specs) <= st.budget.limit()
        {
            return Ok(ControlFlow::Continue(()));
        }
        st.force_compaction = false;
        // Everything in the context must be committed (it is cut by
        // message seq).
        st.carry = self
            .flush_keeping_call(turn, std::mem::take(&mut st.carry))
            .await?;
        let fixed = Fixed {
            system: &st.system,
            tools: &st.specs,
        };
        match self.compact(turn, &st.budget, &fixed).await? {
            Compacted::Fits(compacted) => {
                st.history = compacted;
                Ok(ControlFlow::Continue(()))
            }
            Compacted::CannotFit(reason) => {
                Ok(ControlFlow::Break(Outcome::Failed(match &st.overflowed {
                    Some(e) => format!("{e}; {reason}"),
                    None => reason,
                })))
            }
        }
    }

    /// Journals the call's intent (unless a tool step already did) and
    /// makes the call. `Continue(None)`: the prompt did not fit, compact
    /// and call again.
    async fn model_step(
        &self,
        turn: &mut Turn<'_>,
        st: &mut Steps,
    ) -> Result<ControlFlow<Outcome, Option<ModelResponse>>, RuntimeError> {
        let request = ModelRequest {
            model: turn.run.model.clone(),
            system: st.system.clone(),
            messages: st.history.clone(),
            tools: st.specs.clone(),
            max_tokens: turn.agent.max_tokens,
            stream: turn.agent.stream,
            hints: cairn_core::RouteHints {
                agent: turn.agent.name.clone(),
                user: turn.run.user_id.clone(),
                ..Default::default()
            },
        };
        if st.carry.call.is_none() {
            let intent = model_intent(
                turn.run,
                st.history.len(),
                st.specs.len(),
                turn.agent.stream,
            );
            let seqs = self.journal(&turn.run.id, vec![intent]).await?;
            st.carry.call = seqs.first().copied().map(CallRef::Seq);
        }
        let response = tokio::select! {
            r = self.call_model(&request, turn.events, true) => r,
            _ = turn.cancel.cancelled() => {
                self.flush(turn, std::mem::take(&mut st.carry)).await?;
                return Ok(ControlFlow::Break(Outcome::Cancelled("cancelled during a model call".into())));
            }
        };
        match response {
            Ok(r) => {
                st.overflowed = None;
                st.budget.calibrate(&request, r.usage.input_tokens);
                Ok(ControlFlow::Continue(Some(r)))
            }
            Err(e) => self.model_failed(turn, st, e).await,
        }
    }

    /// A failed model call: an overflow compacts and retries once, a rate
    /// limit becomes a cooldown, anything else ends the run. The call's
    /// intent stays journaled with its error.
    async fn model_failed(
        &self,
        turn: &mut Turn<'_>,
        st: &mut Steps,
        e: LlmError,
    ) -> Result<ControlFlow<Outcome, Option<ModelResponse>>, RuntimeError> {
        let failed = |error: String, context_overflow, cooling_down_until| ModelOutcome::Failed {
            error,
            context_overflow,
            cooling_down_until,
        };
        match e {
            LlmError::ContextOverflow { limit, .. } if st.overflowed.is_none() => {
                // Told apart from other errors: compact (once) and try the
                // call again, believing the window the provider named.
                let result = st.carry.result_for(failed(e.to_string(), true, None));
                st.carry.entries.push(result);
                st.carry.call = None;
                let tried = st.budget.estimate(&st.system, &st.history, &st.specs);
                st.budget.shrink_after_overflow(limit, tried);
                (turn.events)(RunEvent::Retrying {
                    attempt: 2,
                    wait_ms: 0,
                    reason: format!("{e}; compacting the context"),
                });
                st.overflowed = Some(e);
                st.force_compaction = true;
                Ok(ControlFlow::Continue(None))
            }
            LlmError::RateLimited {
                message,
                retry_after,
                ..
            } => {
                // A state, not a failure and not a retry loop: the run
                // waits for the provider and resumes by itself.
                let wait = retry_after
                    .unwrap_or(DEFAULT_COOLDOWN)
                    .max(std::time::Duration::from_secs(1));
                let until = now_ms() + wait.as_millis() as i64;
                let reason = format!("{} rate limit: {message}", self.provider.name());
                let result = st
                    .carry
                    .result_for(failed(reason.clone(), false, Some(until)));
                st.carry.entries.push(result);
                st.carry.call = None;
                self.flush(turn, std::mem::take(&mut st.carry)).await?;
                self.store
                    .set_provider_cooldown(self.provider.name(), until, &reason)
                    .await?;
                Ok(ControlFlow::Break(Outcome::CoolingDown))
            }
            e => {
                let result = st.carry.result_for(failed(e.to_string(), false, None));
                st.carry.entries.push(result);
                st.carry.call = None;
                self.flush(turn, std::mem::take(&mut st.carry)).await?;
                Ok(ControlFlow::Break(Outcome::Failed(e.to_string())))
            }
        }
    }

    /// Commits the answer with the intents of the tool calls it asks for
    /// (journaled before they run, in one transaction), then runs them.
    async fn record(
        &self,
        turn: &mut Turn<'_>,
        st: &mut Steps,
        response: ModelResponse,
    ) -> Result<Phase, RuntimeError> {
        let cost = call_cost(&self.settings.prices, &turn.run.model, &response);
        turn.run.steps += 1;
        turn.run.usage += response.usage;
        turn.run.cost_usd += cost;
        let assistant = Message {
            role: Role::Assistant,
            content: response.content.clone(),
        };
        let calls = tool_calls(&response.content);
        if calls.is_empty() {
            turn.run.output = Some(assistant.text());
        }
        let result = st.carry.result_for(ModelOutcome::Answered {
            response,
            cost_usd: cost,
        });
        let mut entries = std::mem::take(&mut st.carry.entries);
        let first_intent = entries.len() + 1;
        entries.push(result);
        entries.extend(calls.iter().map(|c| tool_intent(turn.tools, c)));
        let mut messages: Vec<&Message> = st.carry.message.iter().collect();
        messages.push(&assistant);
        let seqs = self
            .store
            .commit_step(
                &turn.run.id,
                Some(&mut *turn.lease),
                StepCommit {
                    entries,
                    messages,
                    run: Some(&*turn.run),
                    ..Default::default()
                },
            )
            .await?;
        st.carry = Carry::default();
        st.history.push(assistant);
        if calls.is_empty() {
            return Ok(ControlFlow::Break(Outcome::Completed));
        }
        let journaled = calls
            .iter()
            .zip(seqs.into_iter().skip(first_intent))
            .map(|(c, seq)| (c.id.clone(), Prior::Journaled { seq }))
            .collect();
        // Journal the next model call with these results unless the loop
        // is about to leave (the checks at its top would stop it).
        let next =
            (turn.run.steps < turn.agent.max_steps && !self.stopping.is_cancelled()).then(|| {
                model_intent(
                    turn.run,
                    st.history.len() + 1,
                    st.specs.len(),
                    turn.agent.stream,
                )
            });
        match self.tool_step(turn, &calls, &journaled, next).await? {
            Stepped::Stop(stop) => Ok(ControlFlow::Break(stop)),
            Stepped::Continue(results, next_carry) => {
                st.history.push(results);
                st.carry = next_carry;
                Ok(ControlFlow::Continue(()))
            }
        }
    }
}
