// Agents defined through the API, on both backends (agents from the config
// file are seeded here at server start, so every surface sees one list).
// Compiled once per backend: see the store's `lib.rs`.

use cairn_core::{AgentSpec, now_ms};

use async_trait::async_trait;

use crate::StoreError;
use crate::agents::*;

#[async_trait]
impl AgentStore for Store {
    async fn put_agent(&self, spec: &AgentSpec) -> Result<(), StoreError> {
        let _writing = self.lock_writes().await;
        let now = now_ms();
        let config = serde_json::to_string(spec).map_err(|e| StoreError::corrupt("agents", e))?;
        sqlx::query(
            "INSERT INTO agents (name, config, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(&spec.name)
        .bind(config)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn get_agent(&self, name: &str) -> Result<AgentSpec, StoreError> {
        let config: Option<String> =
            sqlx::query_scalar("SELECT config FROM agents WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        decode_agent(config, name)
    }

    async fn list_agents(&self) -> Result<Vec<AgentSpec>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT config FROM agents ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        decode_agents(&rows)
    }
}
