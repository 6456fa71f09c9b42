//! The MCP client: tools, resources and prompts from MCP servers (stdio
//! child processes in the agent's sandbox, or streamable HTTP), through
//! `rmcp`, the protocol's official Rust SDK.

mod config;
mod conn;
mod hub;
mod progress;
mod render;
mod tool;

use thiserror::Error;

pub use config::{Endpoint, McpServerConfig};
pub use hub::{McpHub, McpServerStatus};
pub use tool::tool_name;

/// The tool name of the cluster job that asks a worker which tools one of
/// its MCP servers offers (input `{"server": …}`, output a JSON list of
/// [`OfferedTool`]).
pub const LIST_JOB: &str = "mcp.list";

/// A tool an MCP server on a worker offers, as the coordinator learns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OfferedTool {
    /// Name (`<server>__<tool>`), description and schema.
    pub spec: cairn_core::ToolSpec,
    /// Whether a crash-interrupted call may be run again.
    pub idempotent: bool,
}

/// Why an MCP server's tools are not available.
#[derive(Debug, Error)]
pub enum McpError {
    /// A config entry is wrong.
    #[error("{0}")]
    Config(String),
    /// An agent names a server the config lacks.
    #[error("no MCP server named {0:?} in [mcp.servers]")]
    Unknown(String),
    /// Starting or initialising failed.
    #[error("MCP server {server} could not be started: {reason}")]
    Start {
        /// Server name.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// Down, and waiting before the next restart.
    #[error("MCP server {server} is down (retrying in {retry_in_s} s): {reason}")]
    Down {
        /// Server name.
        server: String,
        /// Seconds until the next attempt.
        retry_in_s: u64,
        /// Its last failure.
        reason: String,
    },
    /// A lock was poisoned by a panic elsewhere.
    #[error("the MCP connection table is unusable after an internal error")]
    Poisoned,
}
