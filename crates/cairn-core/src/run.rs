//! Runs, their journal, and the events a run emits while it works.

use serde::{Deserialize, Serialize};

use crate::Usage;

/// Lifecycle of a run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for its session to be free.
    Queued,
    /// Working.
    Running,
    /// Finished with a final answer.
    Completed,
    /// Stopped by an error.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// A run as stored: one turn of work in a session.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub id: String,
    /// Session it belongs to.
    pub session_id: String,
    /// Agent that ran it.
    pub agent: String,
    /// Where it is in its life.
    pub status: RunStatus,
    /// The message that started it.
    pub input: String,
    /// The final answer, when completed.
    pub output: Option<String>,
    /// What went wrong, when failed.
    pub error: Option<String>,
    /// Provider name.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Model calls made.
    pub steps: u32,
    /// Tokens used across all model calls.
    pub usage: Usage,
    /// Cost in US dollars from the pricing table (0 for unknown/local models).
    pub cost_usd: f64,
    /// Creation time (ms since epoch).
    pub created_at: i64,
    /// Finish time (ms since epoch).
    pub finished_at: Option<i64>,
    /// The person the run works for (a group chat's sender; a schedule's
    /// maker); `None`: the session's person, else the local owner.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// What a run tells its watchers while it works.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run started.
    RunStarted {
        /// Run id.
        run_id: String,
        /// Session id.
        session_id: String,
    },
    /// Waiting for another run on the same session to finish.
    WaitingForSession {
        /// Session id.
        session_id: String,
    },
    /// An earlier turn of the session, interrupted by a stopped process, is
    /// being finished first.
    ResumingRun {
        /// That run's id.
        run_id: String,
    },
    /// A piece of answer text.
    TextDelta {
        /// The piece.
        text: String,
    },
    /// A tool call is starting.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        input: serde_json::Value,
    },
    /// Output of a running tool call as it appears (a command's stdout and
    /// stderr). Best effort: chunks may be missing; the result is complete.
    ToolOutput {
        /// Call id.
        id: String,
        /// The text printed since the last chunk.
        chunk: String,
    },
    /// A tool call finished.
    ToolResult {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Whether it failed.
        is_error: bool,
        /// Output size in bytes.
        bytes: usize,
    },
    /// A model call is being retried after a transient error.
    Retrying {
        /// Attempt number about to be made (2 = first retry).
        attempt: u32,
        /// Wait before it, in ms.
        wait_ms: u64,
        /// What failed.
        reason: String,
    },
    /// The session's context passed its token budget: older messages were
    /// summarized (the originals stay searchable as episodic memory).
    ContextCompacted {
        /// Estimated prompt tokens before.
        tokens_before: u64,
        /// Estimated prompt tokens after.
        tokens_after: u64,
        /// Messages replaced by the summary.
        messages: usize,
        /// Facts saved to semantic memory first.
        facts: usize,
    },
    /// A message that arrived for the session while this run worked was
    /// taken into it.
    MessageJoined {
        /// Its text.
        text: String,
    },
    /// The provider rate-limited us: the run waits, and resumes by itself.
    CoolingDown {
        /// Until when (ms since epoch).
        until: i64,
        /// What the provider said.
        reason: String,
    },
    /// The run ended.
    RunFinished {
        /// Final record.
        #[cfg_attr(feature = "openapi", schema(value_type = RunRecord))]
        run: Box<crate::RunRecord>,
    },
}
