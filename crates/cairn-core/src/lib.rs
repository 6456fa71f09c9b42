//! Domain types shared by every cairn crate: ids, conversation messages, tool
//! specifications, model requests and responses, runs, journal entries and the
//! events a run emits. This crate does no I/O.

pub mod agent;
pub mod api;
pub mod audit;
pub mod batch;
pub mod channel;
pub mod cluster;
pub mod ids;
pub mod journal;
pub mod keys;
pub mod memory;
pub mod message;
pub mod model;
pub mod residency;
pub mod run;
pub mod schedule;
pub mod tool;

pub use agent::{AgentSpec, Placement, SandboxProfile};
pub use journal::{
    CompactionDone, CompactionIntent, JournalEntry, JournalKind, JournalPayload, ModelCallIntent,
    ModelOutcome, RunEnd, ToolIntent, ToolResultEntry,
};
pub use memory::{MemoryHit, MemoryRecord, MessageFilter, MessageHit};
pub use message::{ContentBlock, Message, Role};
pub use model::{ModelRequest, ModelResponse, StopReason, StreamEvent, Usage};
pub use residency::{DataClass, RouteDecision, RouteHints};
pub use run::{RunEvent, RunRecord, RunStatus};
pub use tool::{ToolCall, ToolOutput, ToolSpec};

/// Milliseconds since the Unix epoch, the one timestamp format in the store.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
