//! Working memory: a session's context kept under the model's window.
//!
//! Before each model call the runtime estimates the prompt's tokens (the
//! provider's bytes-per-token ratio, calibrated by the `input_tokens` the
//! last response reported). Past the budget, the older messages are
//! summarized by the model: durable facts found in them are saved to
//! semantic memory first, then the summary replaces them in the context, in
//! one commit with the journal entry that records it. The original messages
//! stay in the session (episodic memory). The cut never separates a tool
//! result from its call, and a context that cannot be made to fit (a system
//! prompt and tools bigger than the window) fails the run instead of
//! compacting again and again.

use cairn_core::{
    CompactionDone, CompactionIntent, JournalPayload, Message, ModelRequest, RunEvent, RunRecord,
    ToolSpec, Usage,
};
use cairn_llm::LlmError;
use cairn_llm::tokens::TokenCounter;
use cairn_memory::SaveMemory;
use cairn_store::{NewCompaction, SessionLease, StepCommit};

use crate::history::close_open_tool_calls;
use crate::shared::{Events, Turn, call_cost, entry};
use crate::summary::{
    SUMMARIZER_PROMPT, Summarized, chunks, head_tail, parse_answer, request_text, split_point,
    transcript,
};
use crate::{AgentSpec, Runtime, RuntimeError};

/// What a compaction made of the context.
pub(crate) enum Compacted {
    /// The new context, which fits.
    Fits(Vec<Message>),
    /// It cannot be made to fit, for this reason (the run fails).
    CannotFit(String),
}

/// Where a compaction would cut, or why no cut helps.
enum Planned {
    Cut(Cut),
    CannotFit(String),
}

/// Where a compaction cuts a session's context.
struct Cut {
    /// Messages up to this seq are summarized.
    through_seq: i64,
    /// How many of `messages` are.
    cut: usize,
    /// The context's messages, oldest first.
    messages: Vec<Message>,
    /// The summary already in force, if any.
    summary: Option<String>,
    /// Estimated prompt tokens before.
    tokens_before: u64,
}

/// Importance of facts saved while compacting.
const FLUSHED_FACT_IMPORTANCE: f64 = 0.6;

/// A run's context budget, in tokens.
#[derive(Debug, Clone)]
pub(crate) struct ContextBudget {
    /// The model's context window.
    pub window: u64,
    /// Tokens kept free for the answer.
    pub reserve: u64,
    /// The provider's token counter.
    pub counter: TokenCounter,
    /// Reported / estimated tokens of the last request (1 until known).
    pub calibration: f64,
}

impl ContextBudget {
    /// The budget of `agent` on `model`.
    pub fn new(agent: &AgentSpec, model: &str, counter: TokenCounter) -> ContextBudget {
        let window = match agent.context_window {
            0 => cairn_llm::tokens::context_window(model),
            w => w,
        } as u64;
        ContextBudget {
            window,
            reserve: (agent.max_tokens as u64).min(window / 4),
            counter,
            calibration: 1.0,
        }
    }

    /// Prompt tokens above which the context is compacted.
    pub fn limit(&self) -> u64 {
        self.window.saturating_sub(self.reserve) * 9 / 10
    }

    /// Tokens a compacted context aims at: half the limit, so the next
    /// compaction is many steps away.
    pub fn target(&self) -> u64 {
        self.limit() / 2
    }

    /// Tokens a summary may take.
    pub fn summary_tokens(&self) -> u64 {
        (self.target() / 4).clamp(256, 4096)
    }

    /// Estimated prompt tokens of a request with these parts.
    pub fn estimate(&self, system: &str, messages: &[Message], tools: &[ToolSpec]) -> u64 {
        self.calibrated(self.raw(system, messages, tools))
    }

    fn raw(&self, system: &str, messages: &[Message], tools: &[ToolSpec]) -> u64 {
        self.counter.fixed(system, tools)
            + messages
                .iter()
                .map(|m| self.counter.message(m))
                .sum::<u64>()
    }

    fn calibrated(&self, raw: u64) -> u64 {
        (raw as f64 * self.calibration).ceil() as u64
    }

    /// Learns from a response: the provider counted `reported` tokens for a
    /// request estimated (uncalibrated) at `raw`.
    pub fn calibrate(&mut self, request: &ModelRequest, reported: u64) {
        let raw = self.counter.request(request);
        if reported > 0 && raw > 0 {
            self.calibration = (reported as f64 / raw as f64).clamp(0.5, 4.0);
        }
    }

    /// After the provider said the prompt did not fit: believe the window
    /// it named, or else take the prompt that failed as too big by a
    /// quarter.
    pub fn shrink_after_overflow(&mut self, limit: Option<u64>, failed_prompt: u64) {
        let window = limit.unwrap_or(failed_prompt * 3 / 4 + self.reserve);
        self.window = self.window.min(window.max(1));
        self.reserve = self.reserve.min(self.window / 4);
    }
}

/// A context: the summary of compacted messages (if any) as the first
/// message, then `messages`, with tool calls a stopped run left open
/// closed (derived each time, never stored).
fn context(summary: Option<String>, messages: impl Iterator<Item = Message>) -> Vec<Message> {
    let mut history: Vec<Message> = summary.map(Message::user_text).into_iter().collect();
    history.extend(messages);
    close_open_tool_calls(&mut history);
    history
}

/// The parts of the next request that compaction does not change.
pub(crate) struct Fixed<'a> {
    pub system: &'a str,
    pub tools: &'a [ToolSpec],
}

impl Runtime {
    /// The session's context for the next model call: the summary of
    /// compacted messages (if any) and every message after it, with calls
    /// that stopped runs left open closed.
    pub(crate) async fn load_context(
        &self,
        session_id: &str,
    ) -> Result<Vec<Message>, RuntimeError> {
        let ctx = self.store.session_context(session_id).await?;
        Ok(context(
            ctx.summary,
            ctx.messages.into_iter().map(|(_, m)| m),
        ))
    }

    /// Compacts the session's context to the budget's target and returns
    /// the new context, or why it cannot be made to fit (the
    /// caller fails the run).
    pub(crate) async fn compact(
        &self,
        turn: &mut Turn<'_>,
        budget: &ContextBudget,
        fixed: &Fixed<'_>,
    ) -> Result<Compacted, RuntimeError> {
        let (run, lease, events) = (&mut *turn.run, &mut *turn.lease, turn.events);
        let user_id = turn.ctx.user_id.as_deref();
        let plan = match self.plan_cut(&run.session_id, budget, fixed).await? {
            Planned::Cut(plan) => plan,
            Planned::CannotFit(why) => return Ok(Compacted::CannotFit(why)),
        };
        let (cut, messages) = (plan.cut, &plan.messages);
        let intent = JournalPayload::CompactionStart(CompactionIntent {
            through_seq: plan.through_seq,
            messages: cut,
            tokens_before: plan.tokens_before,
        });
        self.journal(&run.id, vec![entry(None, intent)]).await?;
        let earlier = plan.summary.as_deref();
        let (summarized, calls, usage) = match self
            .summarize(run, earlier, &messages[..cut], budget, events)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                return Ok(Compacted::CannotFit(format!(
                    "compacting the context failed: {e}"
                )));
            }
        };
        // Facts first: whatever the summary leaves out stays findable.
        let saved = self.flush_facts(run, user_id, &summarized.facts).await;
        let request_in_summary = self.request_note(run, &messages[..cut], budget);
        let text = format!(
            "[Earlier conversation, compacted: a summary of {} message{}; the messages themselves stay searchable in episodic memory.]\n\n{}{}",
            cut,
            if cut == 1 { "" } else { "s" },
            summarized.summary,
            request_in_summary
        );
        let history = context(Some(text.clone()), messages[cut..].iter().cloned());
        let tokens_after = budget.estimate(fixed.system, &history, fixed.tools);
        if tokens_after > budget.limit() {
            return Ok(Compacted::CannotFit(self.cannot_fit(budget, tokens_after)));
        }
        let done = CompactionDone {
            through_seq: plan.through_seq,
            messages: cut,
            tokens_before: plan.tokens_before,
            tokens_after,
            facts: summarized.facts,
            facts_saved: saved,
            model_calls: calls,
            usage,
            summary: text,
        };
        self.commit_compaction(run, lease, done, events).await?;
        Ok(Compacted::Fits(history))
    }

    /// Where to cut the session's context so what follows the cut fits
    /// the budget beside a summary, or why no cut can make it fit.
    async fn plan_cut(
        &self,
        session_id: &str,
        budget: &ContextBudget,
        fixed: &Fixed<'_>,
    ) -> Result<Planned, RuntimeError> {
        let ctx = self.store.session_context(session_id).await?;
        let seqs: Vec<i64> = ctx.messages.iter().map(|(s, _)| *s).collect();
        let messages: Vec<Message> = ctx.messages.into_iter().map(|(_, m)| m).collect();
        let before = context(ctx.summary.clone(), messages.iter().cloned());
        let tokens_before = budget.estimate(fixed.system, &before, fixed.tools);
        if messages.is_empty() {
            return Ok(Planned::CannotFit(self.cannot_fit(budget, tokens_before)));
        }
        let summary_tokens = budget.summary_tokens();
        let fixed_tokens = budget.estimate(fixed.system, &[], fixed.tools);
        if fixed_tokens + summary_tokens > budget.limit() {
            // No summary can help: the fixed part alone leaves no room.
            let needed = fixed_tokens + summary_tokens;
            return Ok(Planned::CannotFit(self.cannot_fit(budget, needed)));
        }
        let tail_budget = budget
            .target()
            .saturating_sub(fixed_tokens + summary_tokens);
        // Calibrated tokens back to the counter's own units.
        let tail_raw = (tail_budget as f64 / budget.calibration) as u64;
        let cut = split_point(&messages, budget.counter, tail_raw);
        Ok(Planned::Cut(Cut {
            through_seq: seqs[cut - 1],
            cut,
            messages,
            summary: ctx.summary,
            tokens_before,
        }))
    }

    /// Records a finished compaction: its journal entry, the summary that
    /// replaces the messages it covers, and the run's totals, together.
    async fn commit_compaction(
        &self,
        run: &RunRecord,
        lease: &mut SessionLease,
        done: CompactionDone,
        events: Events<'_>,
    ) -> Result<(), RuntimeError> {
        let compaction = NewCompaction {
            through_seq: done.through_seq,
            summary: done.summary.clone(),
            tokens_before: done.tokens_before,
            tokens_after: done.tokens_after,
        };
        let told = RunEvent::ContextCompacted {
            tokens_before: done.tokens_before,
            tokens_after: done.tokens_after,
            messages: done.messages,
            facts: done.facts_saved,
        };
        self.store
            .commit_step(
                &run.id,
                Some(lease),
                StepCommit {
                    entries: vec![entry(None, JournalPayload::Compaction(done))],
                    run: Some(run),
                    compaction: Some(compaction),
                    ..Default::default()
                },
            )
            .await?;
        events(told);
        Ok(())
    }

    fn cannot_fit(&self, budget: &ContextBudget, tokens: u64) -> String {
        format!(
            "the context cannot be made to fit the model's window: about {tokens} tokens are needed \
             with at most {} allowed (window {}, {} kept for the answer); shorten the system prompt, \
             allow fewer tools, or set a larger agents.<name>.context_window if the model has one",
            budget.limit(),
            budget.window,
            budget.reserve
        )
    }

    /// The run's own request, verbatim, when it is among the summarized
    /// messages and small enough: the summary must not blur the task.
    fn request_note(
        &self,
        run: &RunRecord,
        summarized: &[Message],
        budget: &ContextBudget,
    ) -> String {
        let asked = summarized
            .iter()
            .any(|m| m.role == cairn_core::Role::User && m.text() == run.input);
        let small = budget
            .counter
            .message(&Message::user_text(run.input.clone()))
            <= budget.summary_tokens() / 2;
        if asked && small {
            format!(
                "\n\n[The request you are working on, verbatim]\n{}",
                run.input
            )
        } else {
            String::new()
        }
    }

    /// Summarizes `messages` (after `previous`, an earlier summary) in as
    /// many calls as it takes for each to fit the window; each call's
    /// usage counts toward the run.
    async fn summarize(
        &self,
        run: &mut RunRecord,
        previous: Option<&str>,
        messages: &[Message],
        budget: &ContextBudget,
        events: Events<'_>,
    ) -> Result<(Summarized, usize, Usage), LlmError> {
        let summary_tokens = budget.summary_tokens();
        let instructions = budget.estimate(SUMMARIZER_PROMPT, &[], &[]);
        // Room for a chunk: the window less the answer, the instructions,
        // a previous summary and a fifth for error in the estimate.
        let room = budget
            .window
            .saturating_sub(instructions + 2 * summary_tokens)
            * 4
            / 5;
        let chunk_bytes =
            (room as f64 * budget.counter.bytes_per_token / budget.calibration) as usize;
        let mut summary = previous.map(str::to_string);
        let mut facts = Vec::new();
        let mut calls = 0;
        let mut usage = Usage::default();
        for chunk in chunks(transcript(messages), chunk_bytes) {
            let request = ModelRequest {
                model: run.model.clone(),
                system: SUMMARIZER_PROMPT.to_string(),
                messages: vec![Message::user_text(request_text(summary.as_deref(), &chunk))],
                tools: vec![],
                max_tokens: summary_tokens as u32,
                stream: false,
                hints: cairn_core::RouteHints {
                    agent: run.agent.clone(),
                    user: run.user_id.clone(),
                    ..Default::default()
                },
            };
            // The summary is not the answer: its text is not shown.
            let response = self.call_model(&request, events, false).await?;
            calls += 1;
            usage += response.usage;
            run.usage += response.usage;
            run.cost_usd += call_cost(&self.settings.prices, &run.model, &response);
            let answer = Message {
                role: cairn_core::Role::Assistant,
                content: response.content,
            }
            .text();
            let mut part = parse_answer(&answer);
            if part.summary.is_empty() {
                // A model that answered nothing useful: keep the gist of
                // the transcript itself rather than lose it.
                part.summary = head_tail(
                    &chunk,
                    (summary_tokens as f64 * budget.counter.bytes_per_token) as usize,
                );
            }
            facts.append(&mut part.facts);
            summary = Some(part.summary);
        }
        let summarized = Summarized {
            facts,
            summary: summary.unwrap_or_default(),
        };
        Ok((summarized, calls, usage))
    }

    /// Saves the facts to the agent's semantic memory; returns how many
    /// were new or refreshed. A failure is logged: the facts are in the
    /// journal and the messages in episodic memory either way.
    async fn flush_facts(&self, run: &RunRecord, user_id: Option<&str>, facts: &[String]) -> usize {
        let reqs: Vec<SaveMemory> = facts
            .iter()
            .filter(|f| cairn_memory::Memory::prepare(f).is_ok())
            .map(|f| SaveMemory {
                agent: run.agent.clone(),
                user_id: user_id.map(str::to_string),
                text: f.clone(),
                importance: Some(FLUSHED_FACT_IMPORTANCE),
                source: Some(format!("compaction:{}", run.id)),
                times: None,
                shared: false,
            })
            .collect();
        if reqs.is_empty() {
            return 0;
        }
        match self.memory.save_many(reqs).await {
            Ok(saved) => saved.len(),
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "could not save facts before compacting");
                0
            }
        }
    }
}
