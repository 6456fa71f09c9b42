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
    JournalPayload, ModelRequest, ModelResponse, RunEnd, RunEvent, RunRecord, RunStatus,
    StreamEvent, now_ms,
};
use cairn_store::StepCommit;

use crate::shared::{CallRef, Carry, Events, Turn, entry};
use crate::{Runtime, RuntimeError};

impl Runtime {
    /// Journals `entries` alone (intents, results no message depends on);
    /// their seqs.
    pub(crate) async fn journal(
        &self,
        run_id: &str,
        entries: Vec<cairn_store::NewEntry>,
    ) -> Result<Vec<i64>, RuntimeError> {
        let step = StepCommit {
            entries,
            ..Default::default()
        };
        Ok(self.store.commit_step(run_id, None, step).await?)
    }

    /// Commits what is pending: a tool step's results, and the intent of
    /// the next model call unless it is still only pending (the call will
    /// not happen now).
    pub(crate) async fn flush(
        &self,
        turn: &mut Turn<'_>,
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
                &turn.run.id,
                Some(&mut *turn.lease),
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
    pub(crate) async fn flush_keeping_call(
        &self,
        turn: &mut Turn<'_>,
        carry: Carry,
    ) -> Result<Carry, RuntimeError> {
        let kept = match carry.call {
            Some(CallRef::Seq(seq)) => Some(CallRef::Seq(seq)),
            _ => None,
        };
        self.flush(turn, carry).await?;
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
            &self.settings.retry,
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
