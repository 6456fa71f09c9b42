//! Building the runtime from the configuration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_llm::pricing::PriceTable;
use cairn_llm::{Provider, ProviderSettings, RetryPolicy, select_provider};
use cairn_runtime::Runtime;
use cairn_store::Store;

use crate::config::Loaded;

/// Logs go to stderr, quiet unless `RUST_LOG` asks.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// The provider the config and environment point at.
pub fn provider(loaded: &Loaded) -> Result<Arc<dyn Provider>, cairn_llm::LlmError> {
    let settings = ProviderSettings {
        choice: loaded.config.llm.provider,
        model: loaded.config.llm.model.clone(),
        timeout: Duration::from_secs(loaded.config.llm.timeout_s.max(1)),
    };
    select_provider(&settings, &|k| std::env::var(k).ok())
}

/// Opens the store.
pub async fn store(loaded: &Loaded) -> Result<Store> {
    let path = loaded.database_path();
    Store::open_sqlite(&path).await.with_context(|| {
        format!(
            "opening the database (set store.database in {})",
            loaded.home.join("cairn.toml").display()
        )
    })
}

/// Everything a turn needs.
pub async fn runtime(loaded: &Loaded) -> Result<Runtime> {
    runtime_with(loaded, provider(loaded)?).await
}

/// The runtime for `cairn serve`: without a provider it still starts (not
/// ready, every run failing with what to set) instead of refusing to.
pub async fn serve_runtime(loaded: &Loaded) -> Result<(Runtime, Option<String>)> {
    match provider(loaded) {
        Ok(p) => Ok((runtime_with(loaded, p).await?, None)),
        Err(e) => {
            let reason = e.to_string();
            let p: Arc<dyn Provider> =
                Arc::new(cairn_llm::UnconfiguredProvider::new(reason.clone()));
            Ok((runtime_with(loaded, p).await?, Some(reason)))
        }
    }
}

async fn runtime_with(loaded: &Loaded, provider: Arc<dyn Provider>) -> Result<Runtime> {
    let store = store(loaded).await?;
    let mut rt = Runtime::new(store, provider, loaded.workspaces_dir());
    rt.prices = PriceTable::new(loaded.config.pricing.clone());
    rt.retry = RetryPolicy {
        max_attempts: loaded.config.llm.max_attempts.max(1),
        ..RetryPolicy::default()
    };
    rt.tool_output_limit = loaded.config.tools.output_limit_bytes.max(1024);
    Ok(rt)
}
