//! The run journal's entries, typed. Each kind has its own payload type, so
//! the resume path reads fields the compiler checks instead of looking up
//! string keys in JSON (a misspelt key used to read as `false`). Stored as
//! `(kind, payload JSON)`; an entry whose payload does not match its kind is
//! an error, never a default.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ModelResponse, RunStatus, Usage};

/// What a journal entry records.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalKind {
    /// Intent: a model call is about to be made.
    ModelCall,
    /// Result of a model call (response, usage, cost).
    ModelResult,
    /// Intent: a tool call is about to run.
    ToolCall,
    /// Result of a tool call.
    ToolResult,
    /// The run ended (status and reason).
    RunEnd,
    /// Intent: older messages are about to be summarized (working memory).
    CompactionStart,
    /// Older messages were replaced in the context by a summary; the facts
    /// found in them were saved to semantic memory first.
    Compaction,
}

impl JournalKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::ModelCall => "model_call",
            JournalKind::ModelResult => "model_result",
            JournalKind::ToolCall => "tool_call",
            JournalKind::ToolResult => "tool_result",
            JournalKind::RunEnd => "run_end",
            JournalKind::CompactionStart => "compaction_start",
            JournalKind::Compaction => "compaction",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "model_call" => JournalKind::ModelCall,
            "model_result" => JournalKind::ModelResult,
            "tool_call" => JournalKind::ToolCall,
            "tool_result" => JournalKind::ToolResult,
            "run_end" => JournalKind::RunEnd,
            "compaction_start" => JournalKind::CompactionStart,
            "compaction" => JournalKind::Compaction,
            _ => return None,
        })
    }
}

/// Intent of a model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCallIntent {
    /// Provider name.
    pub provider: String,
    /// Model asked.
    pub model: String,
    /// Messages sent.
    pub messages: usize,
    /// Tools offered.
    pub tools: usize,
    /// Whether the answer streamed.
    pub stream: bool,
}

/// How a model call ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelOutcome {
    /// The model answered.
    Answered {
        /// The answer.
        response: ModelResponse,
        /// Its price from the pricing table.
        cost_usd: f64,
    },
    /// The call failed.
    Failed {
        /// What went wrong.
        error: String,
        /// The prompt did not fit the model's window (the run compacts and
        /// tries again).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        context_overflow: bool,
        /// The provider rate-limited us until this time (ms since epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cooling_down_until: Option<i64>,
    },
}

/// Intent of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolIntent {
    /// The model's call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the model gave them.
    pub input: serde_json::Value,
    /// Whether the call may run again after a crash. Required when read:
    /// a missing flag must not read as "side effects" or as "safe".
    pub idempotent: bool,
}

/// Result of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultEntry {
    /// The model's call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// What the tool returned (as given to the model).
    pub output: String,
    /// Whether it is an error.
    pub is_error: bool,
    /// Size of `output`.
    pub bytes: usize,
    /// How long the tool ran.
    pub duration_ms: u64,
    /// The call had started before a crash and has side effects: it was not
    /// run again, and the model was told its outcome is unknown.
    pub outcome_unknown: bool,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Final status.
    pub status: RunStatus,
    /// Why, when it did not complete.
    pub error: Option<String>,
}

/// Intent of a compaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionIntent {
    /// Messages up to this seq are to be summarized.
    pub through_seq: i64,
    /// How many messages that is.
    pub messages: usize,
    /// Estimated prompt tokens before.
    pub tokens_before: u64,
}

/// A finished compaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionDone {
    /// Messages up to this seq are summarized.
    pub through_seq: i64,
    /// How many messages that is.
    pub messages: usize,
    /// Estimated prompt tokens before.
    pub tokens_before: u64,
    /// Estimated prompt tokens after.
    pub tokens_after: u64,
    /// Facts found in the messages.
    pub facts: Vec<String>,
    /// How many of them were saved to semantic memory.
    pub facts_saved: usize,
    /// Model calls the summary took.
    pub model_calls: usize,
    /// Tokens those calls used.
    pub usage: Usage,
    /// The summary that replaced the messages.
    pub summary: String,
}

/// A journal entry's content, one type per kind. In the API it appears as
/// `"kind": "...", "payload": {...}` beside the entry's other fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum JournalPayload {
    /// See [`JournalKind::ModelCall`].
    ModelCall(ModelCallIntent),
    /// See [`JournalKind::ModelResult`].
    ModelResult(ModelOutcome),
    /// See [`JournalKind::ToolCall`].
    ToolCall(ToolIntent),
    /// See [`JournalKind::ToolResult`].
    ToolResult(ToolResultEntry),
    /// See [`JournalKind::RunEnd`].
    RunEnd(RunEnd),
    /// See [`JournalKind::CompactionStart`].
    CompactionStart(CompactionIntent),
    /// See [`JournalKind::Compaction`].
    Compaction(CompactionDone),
}

/// A stored entry that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum JournalDecodeError {
    /// The kind column holds an unknown spelling.
    #[error("unknown journal kind {0:?}")]
    UnknownKind(String),
    /// The payload does not match its kind.
    #[error("{kind} payload does not match its type: {source}")]
    Payload {
        /// The entry's kind.
        kind: &'static str,
        /// What serde said.
        source: serde_json::Error,
    },
}

impl JournalPayload {
    /// Its kind.
    pub fn kind(&self) -> JournalKind {
        match self {
            JournalPayload::ModelCall(_) => JournalKind::ModelCall,
            JournalPayload::ModelResult(_) => JournalKind::ModelResult,
            JournalPayload::ToolCall(_) => JournalKind::ToolCall,
            JournalPayload::ToolResult(_) => JournalKind::ToolResult,
            JournalPayload::RunEnd(_) => JournalKind::RunEnd,
            JournalPayload::CompactionStart(_) => JournalKind::CompactionStart,
            JournalPayload::Compaction(_) => JournalKind::Compaction,
        }
    }

    /// The payload column's JSON (the kind goes in its own column).
    pub fn encode(&self) -> Result<String, serde_json::Error> {
        match self {
            JournalPayload::ModelCall(p) => serde_json::to_string(p),
            JournalPayload::ModelResult(p) => serde_json::to_string(p),
            JournalPayload::ToolCall(p) => serde_json::to_string(p),
            JournalPayload::ToolResult(p) => serde_json::to_string(p),
            JournalPayload::RunEnd(p) => serde_json::to_string(p),
            JournalPayload::CompactionStart(p) => serde_json::to_string(p),
            JournalPayload::Compaction(p) => serde_json::to_string(p),
        }
    }

    /// Reads a stored `(kind, payload)` pair.
    pub fn decode(kind: &str, payload: &str) -> Result<Self, JournalDecodeError> {
        let kind = JournalKind::parse(kind)
            .ok_or_else(|| JournalDecodeError::UnknownKind(kind.to_string()))?;
        fn de<T: DeserializeOwned>(k: JournalKind, s: &str) -> Result<T, JournalDecodeError> {
            serde_json::from_str(s).map_err(|source| JournalDecodeError::Payload {
                kind: k.as_str(),
                source,
            })
        }
        Ok(match kind {
            JournalKind::ModelCall => JournalPayload::ModelCall(de(kind, payload)?),
            JournalKind::ModelResult => JournalPayload::ModelResult(de(kind, payload)?),
            JournalKind::ToolCall => JournalPayload::ToolCall(de(kind, payload)?),
            JournalKind::ToolResult => JournalPayload::ToolResult(de(kind, payload)?),
            JournalKind::RunEnd => JournalPayload::RunEnd(de(kind, payload)?),
            JournalKind::CompactionStart => JournalPayload::CompactionStart(de(kind, payload)?),
            JournalKind::Compaction => JournalPayload::Compaction(de(kind, payload)?),
        })
    }
}

/// One append-only journal entry `(run_id, seq)`. Intents are written before
/// the step happens and results after, so a restart can tell what finished.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Run it belongs to.
    pub run_id: String,
    /// Position in the run, from 1.
    pub seq: i64,
    /// For results: the seq of the intent they complete.
    pub ref_seq: Option<i64>,
    /// What it records: `kind` and `payload`.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: JournalPayload,
    /// When it was written (ms since epoch).
    pub at: i64,
}

impl JournalEntry {
    /// Its kind.
    pub fn kind(&self) -> JournalKind {
        self.body.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_intent_without_its_idempotence_flag_is_an_error_not_false() {
        let err = JournalPayload::decode(
            "tool_call",
            r#"{"id":"c1","name":"shell","input":{},"idempotnet":true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("idempotent"), "{err}");
        let ok = JournalPayload::decode(
            "tool_call",
            r#"{"id":"c1","name":"shell","input":{},"idempotent":true}"#,
        )
        .unwrap();
        assert!(matches!(
            ok,
            JournalPayload::ToolCall(ToolIntent {
                idempotent: true,
                ..
            })
        ));
    }

    #[test]
    fn entries_keep_the_api_shape_kind_and_payload() {
        let e = JournalEntry {
            run_id: "run_1".into(),
            seq: 3,
            ref_seq: Some(2),
            body: JournalPayload::RunEnd(RunEnd {
                status: RunStatus::Failed,
                error: Some("boom".into()),
            }),
            at: 9,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "run_end");
        assert_eq!(v["payload"]["status"], "failed");
        assert_eq!(v["payload"]["error"], "boom");
        let back: JournalEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let stored = e.body.encode().unwrap();
        assert_eq!(JournalPayload::decode("run_end", &stored).unwrap(), e.body);
    }

    #[test]
    fn a_model_failure_reads_back_with_its_flags() {
        let p = JournalPayload::decode(
            "model_result",
            r#"{"error":"too long","context_overflow":true}"#,
        )
        .unwrap();
        assert!(matches!(
            p,
            JournalPayload::ModelResult(ModelOutcome::Failed {
                context_overflow: true,
                ..
            })
        ));
        assert!(JournalPayload::decode("model_result", r#"{"nothing":1}"#).is_err());
        assert!(JournalPayload::decode("model_resalt", "{}").is_err());
    }
}
