//! What the phases of a turn share: the turn itself, how it ended, where
//! its events go, what a tool step carries to the next commit, and the
//! journal entries every phase writes. It imports no phase, so the phases
//! (work, tool_step, compact, steps, drive) depend on it and not on each
//! other in a circle.

use cairn_core::{
    AgentSpec, ContentBlock, JournalPayload, Message, ModelCallIntent, ModelOutcome, ModelResponse,
    RunEvent, RunRecord, ToolCall,
};
use cairn_store::NewEntry;
use cairn_tools::{ToolContext, ToolRegistry};
use tokio_util::sync::CancellationToken;

/// Callback receiving run events.
pub(crate) type Events<'a> = &'a (dyn Fn(RunEvent) + Send + Sync);

/// How a turn's loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A final answer.
    Completed,
    /// Stopped by an error, for this reason.
    Failed(String),
    /// Stopped on request, for this reason.
    Cancelled(String),
    /// Waiting for a rate-limited provider: the job is handed back until
    /// its cooldown ends.
    CoolingDown,
    /// The process is stopping: left at a step boundary, resumed at the
    /// next start.
    Paused,
}

/// A turn in progress: what stays the same through it, and the run and
/// session lease its phases change (each phase takes `&mut Turn`).
pub(crate) struct Turn<'a> {
    /// The run: its status and totals as the phases change them.
    pub run: &'a mut RunRecord,
    /// The session lease every commit of the turn is made under.
    pub lease: &'a mut cairn_store::SessionLease,
    /// The agent.
    pub agent: &'a AgentSpec,
    /// Its tools.
    pub tools: &'a ToolRegistry,
    /// What tools run with.
    pub ctx: &'a ToolContext,
    /// Where events go.
    pub events: Events<'a>,
    /// Cancels the turn.
    pub cancel: &'a CancellationToken,
}

/// A journal entry that refers to `ref_seq` (an intent), if given.
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
    pub(crate) fn result_for(&self, outcome: ModelOutcome) -> NewEntry {
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

/// The tool calls a model's answer asks for.
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

/// What a call cost: as the router priced it at the provider that
/// answered, else at the run's model's price.
pub(crate) fn call_cost(
    prices: &cairn_llm::pricing::PriceTable,
    model: &str,
    response: &ModelResponse,
) -> f64 {
    match &response.route {
        Some(route) => route.cost_usd,
        None => prices.cost(model, response.usage),
    }
}
