//! What an agent is, as far as a turn is concerned.

use serde::{Deserialize, Serialize};

/// An agent's settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Name; also names its workspace directory.
    pub name: String,
    /// System prompt.
    pub system_prompt: String,
    /// Model; empty for the provider's default.
    pub model: String,
    /// Model calls allowed per turn.
    pub max_steps: u32,
    /// Output token limit per model call.
    pub max_tokens: u32,
    /// Built-in tools it may use (`*` for all).
    pub tools: Vec<String>,
    /// Whether to stream model output.
    pub stream: bool,
    /// The model's context window in tokens; 0 looks it up by model name
    /// (unknown models, such as local ones, get a small safe default).
    #[serde(default)]
    pub context_window: u32,
    /// Where notices for the agent's owner go (`<channel>:<chat>`, e.g.
    /// `telegram:123456789`): missed schedules, runs the watchdog stopped.
    #[serde(default)]
    pub owner: Option<String>,
    /// Where its commands run: `workspace` (sandboxed, network on),
    /// `offline` (sandboxed, no network) or `host` (no sandbox).
    #[serde(default)]
    pub sandbox: SandboxProfile,
    /// Environment variables its commands get on top of the allowlist
    /// (PATH, LANG, TERM, TZ; HOME is the workspace).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Tools that run on cluster workers instead of this host (`None`:
    /// every tool runs here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// MCP servers (names in `[mcp.servers]`) whose tools it may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<String>,
    /// Networks its sandboxed commands may reach although not public
    /// (`192.168.1.0/24`); by default only public addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_allow: Vec<String>,
}

/// Where an agent's tools run in a cluster.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    /// Labels a worker must have (`region=eu,cap=browser`).
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub requires: crate::cluster::Labels,
    /// Tools sent to workers; empty: every tool a worker offers.
    pub tools: Vec<String>,
    /// A named workspace on the worker (kept between calls); empty: a
    /// fresh one per call.
    pub workspace: String,
    /// A call no worker took within this many seconds fails (0: 600).
    pub deadline_s: u64,
}

/// How an agent's commands are confined.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxProfile {
    /// Namespaces, read-only host, writable workspace, network on.
    #[default]
    Workspace,
    /// As `workspace`, with no network at all (not even the host's loopback).
    Offline,
    /// No sandbox: commands run as the server's user on the host.
    Host,
}

impl SandboxProfile {
    /// The profile's config name.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxProfile::Workspace => "workspace",
            SandboxProfile::Offline => "offline",
            SandboxProfile::Host => "host",
        }
    }
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            name: "default".into(),
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
            model: String::new(),
            max_steps: 40,
            max_tokens: 8192,
            tools: vec!["*".into()],
            stream: true,
            context_window: 0,
            owner: None,
            sandbox: SandboxProfile::Workspace,
            env: Default::default(),
            placement: None,
            mcp: Vec::new(),
            network_allow: Vec::new(),
        }
    }
}

/// The default agent's system prompt.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are cairn, a capable assistant running on the user's machine. \
You have tools to run shell commands and to read, write and edit files in your workspace directory, and to fetch URLs. \
Use them when they help; prefer doing over describing. Keep answers short and concrete.";

/// How far a profile lets commands reach: `offline` < `workspace` < `host`.
fn breadth(p: SandboxProfile) -> u8 {
    match p {
        SandboxProfile::Offline => 0,
        SandboxProfile::Workspace => 1,
        SandboxProfile::Host => 2,
    }
}

/// The fields in which `new` gives an agent's commands more than `current`
/// does: a wider sandbox, other environment variables, MCP servers,
/// networks or placement. Empty when `new` is as narrow or narrower.
pub fn widened(current: &AgentSpec, new: &AgentSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if breadth(new.sandbox) > breadth(current.sandbox) {
        out.push("sandbox");
    }
    if new.env.iter().any(|(k, v)| current.env.get(k) != Some(v)) {
        out.push("env");
    }
    if new.mcp.iter().any(|m| !current.mcp.contains(m)) {
        out.push("mcp");
    }
    if new
        .network_allow
        .iter()
        .any(|n| !current.network_allow.contains(n))
    {
        out.push("network_allow");
    }
    if new.placement.is_some() && new.placement != current.placement {
        out.push("placement");
    }
    out
}

#[cfg(test)]
mod widening_tests {
    use super::*;

    #[test]
    fn narrowing_is_free_and_widening_is_named() {
        let base = AgentSpec::default();
        let mut offline = base.clone();
        offline.sandbox = SandboxProfile::Offline;
        assert!(widened(&base, &offline).is_empty());
        assert_eq!(widened(&offline, &base), ["sandbox"]);
        let mut loose = base.clone();
        loose.sandbox = SandboxProfile::Host;
        loose.env.insert("LD_PRELOAD".into(), "/x.so".into());
        loose.network_allow.push("10.0.0.0/8".into());
        loose.mcp.push("fs".into());
        assert_eq!(
            widened(&base, &loose),
            ["sandbox", "env", "mcp", "network_allow"]
        );
        assert!(widened(&loose, &loose).is_empty());
        let mut fewer = loose.clone();
        fewer.env.clear();
        assert!(widened(&loose, &fewer).is_empty());
    }
}
