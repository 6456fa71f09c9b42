//! Agents defined through the API (agents from the config file are seeded
//! here at server start, so every surface sees one list).

use async_trait::async_trait;
use cairn_core::AgentSpec;

use crate::StoreError;

/// AgentStore: see the module documentation.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates or replaces an agent.
    async fn put_agent(&self, spec: &AgentSpec) -> Result<(), StoreError>;

    /// One agent.
    async fn get_agent(&self, name: &str) -> Result<AgentSpec, StoreError>;

    /// All agents by name.
    async fn list_agents(&self) -> Result<Vec<AgentSpec>, StoreError>;
}

/// An agent from its stored config, or `NotFound`.
pub(crate) fn decode_agent(config: Option<String>, name: &str) -> Result<AgentSpec, StoreError> {
    let config = config.ok_or_else(|| StoreError::NotFound {
        what: "agent",
        id: name.to_string(),
    })?;
    serde_json::from_str(&config).map_err(|e| StoreError::corrupt("agents", e))
}

/// Agents from their stored configs.
pub(crate) fn decode_agents(configs: &[String]) -> Result<Vec<AgentSpec>, StoreError> {
    configs
        .iter()
        .map(|c| serde_json::from_str(c).map_err(|e| StoreError::corrupt("agents", e)))
        .collect()
}
