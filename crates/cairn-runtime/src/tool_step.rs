//! Running the tool calls of one model response: journaled intents,
//! parallel execution, results reused or re-run after a restart according
//! to what the journal says and whether the tool is idempotent.

use std::collections::HashMap;
use std::time::Instant;

use cairn_core::audit::{Actor, AuditEvent, digest};
use cairn_core::{
    ContentBlock, JournalPayload, Message, Role, RunEvent, ToolCall, ToolIntent, ToolOutput,
    ToolResultEntry,
};
use cairn_store::{NewEntry, StepCommit};
use cairn_tools::{ToolContext, ToolRegistry};
use futures_util::future::join_all;

use crate::history::OUTCOME_UNKNOWN;
use crate::shared::{CallRef, Carry, Events, Outcome, Turn, entry};
use crate::{Runtime, RuntimeError};

/// How a tool step left the turn.
pub(crate) enum Stepped {
    /// Go on with this results message and what it leaves to commit.
    Continue(Message, Carry),
    /// Stop the turn (cancelled).
    Stop(Outcome),
}

/// What the journal says about a tool call from before a restart.
pub(crate) enum Prior {
    /// Its result was journaled: reuse it.
    Done(ToolOutput),
    /// Started (intent at `seq`) but no result.
    Started { seq: i64, idempotent: bool },
    /// Intent just journaled (at `seq`) with the response; not started.
    Journaled { seq: i64 },
}

/// Whether `c` may run again after a crash (unknown tools may not).
fn is_idempotent(tools: &ToolRegistry, c: &ToolCall) -> bool {
    tools.get(&c.name).is_some_and(|t| t.idempotent())
}

/// The journal intent of a tool call.
pub(crate) fn tool_intent(tools: &ToolRegistry, c: &ToolCall) -> NewEntry {
    let idempotent = is_idempotent(tools, c);
    entry(
        None,
        JournalPayload::ToolCall(ToolIntent {
            id: c.id.clone(),
            name: c.name.clone(),
            input: c.input.clone(),
            idempotent,
        }),
    )
}

impl Runtime {
    /// Runs a response's tool calls and returns their results message with
    /// what is left to commit; or the final status when the run must stop
    /// (cancelled). `next` is the intent of the model call that follows.
    ///
    /// When every call is idempotent and the loop goes on, nothing is
    /// committed here: results, message and `next` ride with the next
    /// model response. Otherwise they commit now, a lone call's result with
    /// the message (nothing could use it sooner, and a crash in between
    /// leaves the same state as a crash before the result was known).
    pub(crate) async fn tool_step(
        &self,
        turn: &mut Turn<'_>,
        calls: &[ToolCall],
        prior: &HashMap<String, Prior>,
        next: Option<NewEntry>,
    ) -> Result<Stepped, RuntimeError> {
        let all_idempotent = calls.iter().all(|c| is_idempotent(turn.tools, c));
        let carry_over = next.is_some() && all_idempotent;
        let (results, mut entries) = self
            .run_tools(turn, calls, prior, carry_over || calls.len() == 1)
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
        let next = next.filter(|_| !turn.cancel.is_cancelled());
        if let (true, Some(next)) = (carry_over, &next) {
            let at = entries.len();
            entries.push(next.clone());
            let carry = Carry {
                message: Some(message.clone()),
                entries,
                call: Some(CallRef::Pending(at)),
            };
            return Ok(Stepped::Continue(message, carry));
        }
        let has_next = next.is_some();
        entries.extend(next);
        let seqs = self
            .store
            .commit_step(
                &turn.run.id,
                Some(&mut *turn.lease),
                StepCommit {
                    entries,
                    messages: vec![&message],
                    ..Default::default()
                },
            )
            .await?;
        if turn.cancel.is_cancelled() {
            return Ok(Stepped::Stop(Outcome::Cancelled(
                "cancelled during a tool call".into(),
            )));
        }
        let call = if has_next {
            seqs.last().copied().map(CallRef::Seq)
        } else {
            None
        };
        Ok(Stepped::Continue(
            message,
            Carry {
                call,
                ..Carry::default()
            },
        ))
    }

    /// Tool calls of this run the journal knows about, by call id.
    pub(crate) async fn prior_tool_calls(
        &self,
        run_id: &str,
    ) -> Result<HashMap<String, Prior>, RuntimeError> {
        let mut prior = HashMap::new();
        for e in self.store.journal(run_id).await? {
            match e.body {
                JournalPayload::ToolCall(intent) => {
                    prior.insert(
                        intent.id,
                        Prior::Started {
                            seq: e.seq,
                            idempotent: intent.idempotent,
                        },
                    );
                }
                JournalPayload::ToolResult(result) => {
                    prior.insert(
                        result.id,
                        Prior::Done(ToolOutput {
                            content: result.output,
                            is_error: result.is_error,
                        }),
                    );
                }
                _ => {}
            }
        }
        Ok(prior)
    }

    /// Runs the calls of one model response in parallel. New calls have
    /// their intents journaled before any starts and each result as soon as
    /// it is known. Calls from before a restart: a journaled result is
    /// reused; a started idempotent or keyed call re-runs (a keyed tool makes
    /// the repeat take effect once); a started side-effecting call is not
    /// re-run and reports an unknown outcome.
    ///
    /// With `defer`, results are not committed here but returned, to commit
    /// with the results message or later (see `tool_step`).
    async fn run_tools(
        &self,
        turn: &Turn<'_>,
        calls: &[ToolCall],
        prior: &HashMap<String, Prior>,
        defer: bool,
    ) -> Result<(Vec<ToolOutput>, Vec<NewEntry>), RuntimeError> {
        let fresh: Vec<&ToolCall> = calls
            .iter()
            .filter(|c| !prior.contains_key(&c.id))
            .collect();
        let intents: Vec<NewEntry> = fresh.iter().map(|c| tool_intent(turn.tools, c)).collect();
        let new_seqs = if intents.is_empty() {
            vec![]
        } else {
            self.journal(&turn.run.id, intents).await?
        };
        let mut seq_of: HashMap<&str, i64> =
            fresh.iter().map(|c| c.id.as_str()).zip(new_seqs).collect();
        let futures = calls.iter().map(|call| {
            let plan = plan_for(call, prior.get(&call.id), turn.tools, &mut seq_of);
            self.run_one(turn, call, plan, defer)
        });
        let mut outputs = Vec::with_capacity(calls.len());
        let mut deferred = Vec::new();
        for r in join_all(futures).await {
            let (output, entry) = r?;
            outputs.push(output);
            deferred.extend(entry);
        }
        Ok((outputs, deferred))
    }

    /// Carries out one call's plan and journals its result (or, with
    /// `defer`, returns the entry to commit later).
    async fn run_one(
        &self,
        turn: &Turn<'_>,
        call: &ToolCall,
        plan: Plan,
        defer: bool,
    ) -> Result<(ToolOutput, Option<NewEntry>), RuntimeError> {
        let events = turn.events;
        let mut duration_ms = 0u64;
        let (output, seq, unknown) = match plan {
            Plan::Reuse(out) => return Ok((out, None)),
            Plan::Unknown(seq) => (ToolOutput::error(OUTCOME_UNKNOWN), seq, true),
            Plan::Run(seq) => {
                events(RunEvent::ToolCall {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    input: call.input.clone(),
                });
                let started = Instant::now();
                let (progress, chunks) = cairn_tools::Progress::channel();
                let ctx = turn
                    .ctx
                    .for_call(format!("{}/{seq}", turn.run.id), Some(progress));
                let out = streamed(invoke(turn.tools, &ctx, call), chunks, &call.id, events).await;
                duration_ms = started.elapsed().as_millis() as u64;
                self.audit_call(turn, call, &out).await;
                (out, seq, false)
            }
        };
        let payload = JournalPayload::ToolResult(ToolResultEntry {
            id: call.id.clone(),
            name: call.name.clone(),
            output: output.content.clone(),
            is_error: output.is_error,
            bytes: output.content.len(),
            duration_ms,
            outcome_unknown: unknown,
        });
        let result = entry(Some(seq), payload);
        let deferred = if defer {
            Some(result)
        } else {
            self.journal(&turn.run.id, vec![result]).await?;
            None
        };
        events(RunEvent::ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            is_error: output.is_error,
            bytes: output.content.len(),
        });
        Ok((output, deferred))
    }

    /// Records in the audit log that a call ran (with digests of its input
    /// and output, not their text) or was refused as an unknown tool.
    async fn audit_call(&self, turn: &Turn<'_>, call: &ToolCall, out: &ToolOutput) {
        let Some(audit) = self.audit() else { return };
        let run = turn.run.id.clone();
        let actor = Actor::Agent {
            agent: turn.run.agent.clone(),
            run: run.clone(),
        };
        let event = match turn.tools.get(&call.name) {
            Some(tool) => AuditEvent::ToolRan {
                run,
                tool: call.name.clone(),
                call: call.id.clone(),
                place: tool.place(),
                input_sha256: digest(call.input.to_string().as_bytes()),
                output_sha256: digest(out.content.as_bytes()),
                is_error: out.is_error,
            },
            None => AuditEvent::ToolRefused {
                run,
                tool: call.name.clone(),
                call: call.id.clone(),
                reason: "the agent has no such tool".into(),
            },
        };
        audit.note(actor, event).await;
    }
}

/// What to do with a call, from what the journal says of it.
fn plan_for(
    call: &ToolCall,
    prior: Option<&Prior>,
    tools: &ToolRegistry,
    fresh_seqs: &mut HashMap<&str, i64>,
) -> Plan {
    match prior {
        Some(Prior::Done(out)) => Plan::Reuse(out.clone()),
        Some(Prior::Started {
            seq,
            idempotent: true,
        }) => Plan::Run(*seq),
        Some(Prior::Started {
            seq,
            idempotent: false,
        }) if tools.get(&call.name).is_some_and(|t| t.keyed()) => Plan::Run(*seq),
        Some(Prior::Started {
            seq,
            idempotent: false,
        }) => Plan::Unknown(*seq),
        Some(Prior::Journaled { seq }) => Plan::Run(*seq),
        None => Plan::Run(fresh_seqs.remove(call.id.as_str()).unwrap_or(0)),
    }
}

/// How long a cancelled tool gets to stop by itself.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A call's plan: reuse its journaled result, run it (its intent at this
/// seq), or report its outcome unknown.
enum Plan {
    Reuse(ToolOutput),
    Run(i64),
    Unknown(i64),
}

/// Runs one call, turning every kind of misuse into a tool error the model
/// can read and correct.
/// Runs a call, passing the output it streams on as events meanwhile.
async fn streamed(
    call: impl std::future::Future<Output = ToolOutput>,
    mut chunks: tokio::sync::mpsc::Receiver<String>,
    id: &str,
    events: Events<'_>,
) -> ToolOutput {
    let emit = |chunk: String| {
        events(RunEvent::ToolOutput {
            id: id.to_string(),
            chunk,
        })
    };
    tokio::pin!(call);
    let out = loop {
        tokio::select! {
            biased;
            out = &mut call => break out,
            Some(chunk) = chunks.recv() => emit(chunk),
        }
    };
    // What was printed just before the end; nothing later is waited for.
    while let Ok(chunk) = chunks.try_recv() {
        emit(chunk);
    }
    out
}

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
    let call_future = futures_util::FutureExt::catch_unwind(call_future);
    tokio::pin!(call_future);
    let outcome = tokio::select! {
        r = &mut call_future => r,
        _ = ctx.cancel.cancelled() => {
            // Tools that watch the token stop and clean up (exec kills its
            // process group); one that does not is dropped after a grace,
            // so a hung tool cannot hold a cancelled run.
            match tokio::time::timeout(CANCEL_GRACE, &mut call_future).await {
                Ok(r) => r,
                Err(_) => Ok(ToolOutput::error("cancelled: the tool did not stop in time and was abandoned")),
            }
        }
    };
    match outcome {
        Ok(out) => out,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(std::string::ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ToolOutput::error(format!("the tool crashed: {what}"))
        }
    }
}
