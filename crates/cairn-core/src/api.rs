//! Types every surface (CLI, server, tests) exchanges: what `runs show --json`
//! prints is the same shape the API returns.

use serde::{Deserialize, Serialize};

use crate::{JournalEntry, RunRecord};

/// A run with its full journal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The run.
    pub run: RunRecord,
    /// Every journal entry in order.
    pub journal: Vec<JournalEntry>,
}

/// A session as listed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Agent it talks to.
    pub agent: String,
    /// Compare-and-swap version; bumps on every change.
    pub version: i64,
    /// Messages in it.
    pub messages: i64,
    /// Creation time (ms since epoch).
    pub created_at: i64,
    /// Last change (ms since epoch).
    pub updated_at: i64,
    /// The person it belongs to, when known (channels set it).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `POST /api/v1/sessions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Agent the session talks to.
    #[serde(default = "default_agent")]
    pub agent: String,
    /// Id to use (letters, digits, `.`, `_`, `-`); generated when absent.
    /// Creating an existing session of the same agent returns it.
    #[serde(default)]
    pub id: Option<String>,
}

fn default_agent() -> String {
    "default".into()
}

/// `POST /api/v1/sessions/{id}/messages`: a user message, which starts a run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The message text.
    pub content: String,
    /// Answer only when the run has finished (instead of 202 at once).
    #[serde(default)]
    pub wait: bool,
}

/// Every error the native API returns.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error inside [`ErrorBody`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `not_found`, `conflict`,
    /// `payload_too_large`, `unauthorized`, `internal`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `GET /healthz` and `GET /readyz`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Details per check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
}

/// `POST /api/v1/agents/{name}/memories`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveMemoryRequest {
    /// The fact (at most 8 KB).
    pub text: String,
    /// 0 (trivia) to 1 (essential); 0.5 when absent.
    #[serde(default)]
    pub importance: Option<f64>,
    /// The person it is about.
    #[serde(default)]
    pub user_id: Option<String>,
}
