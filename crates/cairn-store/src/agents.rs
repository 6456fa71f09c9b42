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
