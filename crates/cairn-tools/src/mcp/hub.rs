//! Every MCP server connection of this process, one per agent and server
//! (a stdio server runs in its agent's sandbox and workspace). A slot
//! connects on first use, remembers the tools it found, reconnects when the
//! server dies (with backoff, so a server that crashes at start does not
//! spin) and re-reads the tool list when the server says it changed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::AgentSpec;
use serde::Serialize;

use super::McpError;
use super::config::McpServerConfig;
use super::conn::{Conn, Launch, connect};
use super::tool::{McpTool, SideTool};
use crate::sandbox::Sandbox;
use crate::{Tool, ToolRegistry};

/// Longest wait between restarts of a failing server.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// All MCP servers of the config and their live connections.
pub struct McpHub {
    servers: BTreeMap<String, McpServerConfig>,
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
}

/// One agent's connection to one server.
pub(crate) struct Slot {
    pub name: String,
    pub config: McpServerConfig,
    agent: String,
    sandbox: Sandbox,
    workspace: PathBuf,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    conn: Option<Arc<Conn>>,
    /// What the server offered when last asked.
    offer: Option<Offer>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    restarts: u64,
}

/// What a server offers.
#[derive(Clone, Default)]
pub(crate) struct Offer {
    pub tools: Vec<rmcp::model::Tool>,
    pub resources: bool,
    pub prompts: bool,
}

/// A server's state, for `cairn status` and the API.
#[derive(Debug, Clone, Serialize)]
pub struct McpServerStatus {
    /// The agent using it.
    pub agent: String,
    /// Server name.
    pub server: String,
    /// Connected now.
    pub connected: bool,
    /// Tools it offers.
    pub tools: usize,
    /// Times it was started again after it stopped.
    pub restarts: u64,
    /// Why it last failed.
    pub last_error: Option<String>,
}

impl McpHub {
    /// A hub for the configured servers (nothing starts until used).
    pub fn new(servers: BTreeMap<String, McpServerConfig>) -> Result<Self, McpError> {
        for (name, c) in &servers {
            c.endpoint(name).map_err(McpError::Config)?;
        }
        Ok(McpHub {
            servers,
            slots: Mutex::default(),
        })
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The configured servers.
    pub fn servers(&self) -> &BTreeMap<String, McpServerConfig> {
        &self.servers
    }

    /// Refuses an agent naming a server that is not configured.
    pub fn check(&self, agent: &AgentSpec) -> Result<(), McpError> {
        match agent.mcp.iter().find(|s| !self.servers.contains_key(*s)) {
            Some(missing) => Err(McpError::Unknown(missing.clone())),
            None => Ok(()),
        }
    }

    fn slot(
        &self,
        owner: &str,
        server: &str,
        sandbox: &Sandbox,
        workspace: &Path,
    ) -> Result<Arc<Slot>, McpError> {
        let config = self
            .servers
            .get(server)
            .ok_or_else(|| McpError::Unknown(server.to_string()))?;
        let mut slots = self.slots.lock().map_err(|_| McpError::Poisoned)?;
        let key = (owner.to_string(), server.to_string());
        let slot = slots.entry(key).or_insert_with(|| {
            Arc::new(Slot {
                name: server.to_string(),
                config: config.clone(),
                agent: owner.to_string(),
                sandbox: sandbox.clone(),
                workspace: workspace.to_path_buf(),
                state: Default::default(),
            })
        });
        Ok(slot.clone())
    }

    /// The tools of `server` for `owner` (an agent, or a worker), whose
    /// connection is started in `sandbox` and `workspace` when it is not
    /// running yet.
    pub async fn tools_for(
        &self,
        owner: &str,
        server: &str,
        sandbox: &Sandbox,
        workspace: &Path,
    ) -> Result<Vec<Arc<dyn Tool>>, McpError> {
        let slot = self.slot(owner, server, sandbox, workspace)?;
        let offer = slot.offer().await?;
        let mut out: Vec<Arc<dyn Tool>> = Vec::new();
        for side in SideTool::offered(&offer) {
            out.push(Arc::new(side.bind(slot.clone())));
        }
        for t in offer.tools {
            out.push(Arc::new(McpTool::new(slot.clone(), t)));
        }
        Ok(out)
    }

    /// Adds the tools of `agent`'s servers that run here to `tools`
    /// (connecting those not yet connected; servers pinned to cluster
    /// workers are left to the placement); a server that cannot be reached
    /// is left out and named in the returned warnings, and the run goes on
    /// without it.
    pub async fn add_tools(
        &self,
        agent: &AgentSpec,
        sandbox: &Sandbox,
        workspace: &Path,
        tools: &mut ToolRegistry,
    ) -> Result<Vec<String>, McpError> {
        let mut warnings = Vec::new();
        for server in &agent.mcp {
            if self
                .servers
                .get(server)
                .is_some_and(McpServerConfig::pinned)
            {
                continue;
            }
            match self
                .tools_for(&agent.name, server, sandbox, workspace)
                .await
            {
                Ok(found) => found.into_iter().for_each(|t| tools.insert(t)),
                Err(e @ (McpError::Unknown(_) | McpError::Poisoned)) => return Err(e),
                Err(e) => warnings.push(e.to_string()),
            }
        }
        Ok(warnings)
    }

    /// Every slot's state.
    pub async fn status(&self) -> Vec<McpServerStatus> {
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(s) => s.values().cloned().collect(),
            Err(_) => return vec![],
        };
        let mut out = Vec::new();
        for slot in slots {
            let st = slot.state.lock().await;
            out.push(McpServerStatus {
                agent: slot.agent.clone(),
                server: slot.name.clone(),
                connected: st.conn.as_ref().is_some_and(|c| !c.closed()),
                tools: st.offer.as_ref().map_or(0, |o| o.tools.len()),
                restarts: st.restarts,
                last_error: st.last_error.clone(),
            });
        }
        out.sort_by(|a, b| (&a.agent, &a.server).cmp(&(&b.agent, &b.server)));
        out
    }

    /// Stops every server (children are killed with what they started).
    pub async fn shutdown(&self) {
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(mut s) => s.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        for slot in slots {
            slot.state.lock().await.conn = None;
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << failures.min(10).saturating_sub(1));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

impl Slot {
    /// The live connection, reconnecting when it ended and the backoff has
    /// passed.
    pub async fn live(&self) -> Result<Arc<Conn>, McpError> {
        let mut st = self.state.lock().await;
        self.ensure(&mut st).await
    }

    async fn ensure(&self, st: &mut SlotState) -> Result<Arc<Conn>, McpError> {
        if let Some(c) = &st.conn {
            if !c.closed() {
                return Ok(c.clone());
            }
            let why = format!("the connection closed{}", c.stderr_note());
            tracing::warn!(agent = %self.agent, server = %self.name, "MCP server stopped ({why}); restarting");
            st.last_error = Some(why);
            st.conn = None;
            st.failures = st.failures.saturating_add(1);
            st.retry_at = Some(Instant::now() + backoff(st.failures));
            st.restarts += 1;
        }
        if let Some(at) = st.retry_at
            && Instant::now() < at
        {
            // The first restart after a crash is not delayed: a server that
            // died once is started again at once; one that keeps dying waits.
            if st.failures > 1 || st.offer.is_none() {
                return Err(McpError::Down {
                    server: self.name.clone(),
                    retry_in_s: at.saturating_duration_since(Instant::now()).as_secs() + 1,
                    reason: st.last_error.clone().unwrap_or_default(),
                });
            }
        }
        let launch = Launch {
            name: &self.name,
            config: &self.config,
            sandbox: &self.sandbox,
            workspace: &self.workspace,
        };
        match connect(launch).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                st.conn = Some(conn.clone());
                st.retry_at = None;
                match list_offer(&self.name, &conn, self.config.timeout()).await {
                    Ok(offer) => {
                        st.failures = 0;
                        st.offer = Some(offer);
                        Ok(conn)
                    }
                    Err(e) => {
                        st.conn = None;
                        self.failed(st, &e);
                        Err(e)
                    }
                }
            }
            Err(e) => {
                self.failed(st, &e);
                Err(e)
            }
        }
    }

    fn failed(&self, st: &mut SlotState, e: &McpError) {
        st.failures = st.failures.saturating_add(1);
        st.retry_at = Some(Instant::now() + backoff(st.failures));
        st.last_error = Some(e.to_string());
        tracing::warn!(agent = %self.agent, server = %self.name, "MCP server unavailable: {e}");
    }

    /// What the server offers now (re-read when it said its tools changed).
    pub async fn offer(&self) -> Result<Offer, McpError> {
        let mut st = self.state.lock().await;
        let conn = self.ensure(&mut st).await?;
        if conn.handler.tools_changed.swap(false, Ordering::AcqRel) || st.offer.is_none() {
            match list_offer(&self.name, &conn, self.config.timeout()).await {
                Ok(o) => st.offer = Some(o),
                Err(e) => tracing::warn!(server = %self.name, "cannot re-read the tool list: {e}"),
            }
        }
        Ok(st.offer.clone().unwrap_or_default())
    }

    /// Drops `conn` (a call on it hung) so the next use starts afresh.
    pub async fn discard(&self, conn: &Arc<Conn>, why: String) {
        let mut st = self.state.lock().await;
        if st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            tracing::warn!(agent = %self.agent, server = %self.name, "{why}; restarting the MCP server");
            st.conn = None;
            st.last_error = Some(why);
            st.restarts += 1;
        }
    }
}

async fn list_offer(name: &str, conn: &Conn, timeout: Duration) -> Result<Offer, McpError> {
    let peer = conn.service.peer();
    let caps = peer.peer_info().map(|i| i.capabilities.clone());
    let tools = tokio::time::timeout(timeout, peer.list_all_tools())
        .await
        .map_err(|_| McpError::Start {
            server: name.to_string(),
            reason: format!("tools/list had no answer within {} s", timeout.as_secs()),
        })?
        .map_err(|e| McpError::Start {
            server: name.to_string(),
            reason: format!("tools/list failed: {e}"),
        })?;
    Ok(Offer {
        tools,
        resources: caps.as_ref().is_some_and(|c| c.resources.is_some()),
        prompts: caps.as_ref().is_some_and(|c| c.prompts.is_some()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
