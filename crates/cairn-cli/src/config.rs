//! `cairn.toml` under `CAIRN_HOME`, with every key overridable by an
//! environment variable `CAIRN_<SECTION>__<KEY>` (double underscore between
//! levels, e.g. `CAIRN_LLM__MODEL=gpt-4.1`). Errors name the file or
//! variable, the line and the key, and what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use cairn_llm::ProviderChoice;
use cairn_llm::pricing::Price;
use cairn_runtime::AgentSpec;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Model provider settings.
    pub llm: LlmConfig,
    /// Where state lives.
    pub store: StoreConfig,
    /// Tool limits.
    pub tools: ToolsConfig,
    /// `cairn serve`.
    pub server: ServerConfig,
    /// Memory and embeddings.
    pub memory: MemoryConfig,
    /// Agents by name.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Extra or overriding prices, dollars per million tokens, by model prefix.
    pub pricing: BTreeMap<String, Price>,
    /// Schedules declared in the file, by name.
    pub schedules: BTreeMap<String, ScheduleConfig>,
    /// Telegram, Slack and signed webhooks.
    pub channels: cairn_server::channels::ChannelSettings,
    /// Coordinators and workers.
    pub cluster: cairn_cluster::ClusterSettings,
    /// Model endpoints the router may use, by name (hybrid inference).
    pub providers: BTreeMap<String, cairn_llm::router::ProviderEntry>,
    /// How each model call picks one of `providers`.
    pub router: cairn_llm::router::RouterConfig,
    /// `[mcp]`: MCP servers agents may use.
    pub mcp: McpConfig,
}

/// `[schedules.<name>]`: one of `cron`, `every`, `at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Agent to wake.
    pub agent: String,
    /// The message each run starts with.
    pub prompt: String,
    /// Cron expression.
    pub cron: String,
    /// Time zone of `cron`.
    pub tz: String,
    /// Interval (`15m`).
    pub every: String,
    /// RFC 3339 instant.
    pub at: String,
    /// Session for its runs; empty: one of its own.
    pub session: String,
    /// `once` or `skip`.
    pub catch_up: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            agent: "default".into(),
            prompt: String::new(),
            cron: String::new(),
            tz: "UTC".into(),
            every: String::new(),
            at: String::new(),
            session: String::new(),
            catch_up: "once".into(),
        }
    }
}

/// `[agents.<name>.heartbeat]`: a periodic self-check with the agent's
/// `HEARTBEAT.md` checklist.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Interval (`30m`); empty: no heartbeat.
    pub every: String,
    /// `HH:MM-HH:MM` when it never runs; empty: none.
    pub quiet_hours: String,
    /// Time zone of the quiet hours and of the day for the cap.
    pub tz: String,
    /// Dollars its runs may cost per day.
    pub max_daily_usd: f64,
    /// Skip when nobody has used the agent for this long (`24h`).
    pub idle_after: String,
    /// Model for its runs (cheap or local); empty: the agent's.
    pub model: String,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            every: String::new(),
            quiet_hours: "22:00-07:00".into(),
            tz: "UTC".into(),
            max_daily_usd: 0.10,
            idle_after: "24h".into(),
            model: String::new(),
        }
    }
}

/// `[llm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `auto`, `anthropic` or `openai`.
    pub provider: ProviderChoice,
    /// Model; empty for the provider's default.
    pub model: String,
    /// Seconds a request (or a silent stream) may take.
    pub timeout_s: u64,
    /// Attempts per model call, the first included.
    pub max_attempts: u32,
    /// Longest wait between attempts; a provider asking for longer puts
    /// runs in a cooldown (they wait, then resume) instead.
    pub max_retry_wait_s: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: ProviderChoice::Auto,
            model: String::new(),
            timeout_s: 300,
            max_attempts: 5,
            max_retry_wait_s: 60,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite file, relative to `CAIRN_HOME` unless absolute, or a
    /// `postgres://` URL (also `--database` / `CAIRN_DATABASE_URL`).
    pub database: String,
    /// PostgreSQL: most connections this process opens.
    pub pool_max: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database: "cairn.db".into(),
            pool_max: 10,
        }
    }
}

/// Where state lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Database {
    /// For messages: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(url) => cairn_store::postgres::redact_url(url),
        }
    }
}

/// `--database` given on the command line; it wins over the config file
/// and `CAIRN_DATABASE_URL`.
static DATABASE_FLAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records `--database` for every later `load`.
pub fn set_database_flag(url: String) {
    if DATABASE_FLAG.set(url).is_err() {
        tracing::debug!("--database was already set");
    }
}

/// `[tools]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Bytes of output kept per tool call (head and tail).
    pub output_limit_bytes: usize,
    /// Limits of sandboxed commands.
    pub sandbox: crate::config_tools::SandboxConfig,
    /// What `http_fetch` may reach.
    pub http_fetch: crate::config_tools::HttpFetchConfig,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            output_limit_bytes: 32 * 1024,
            sandbox: Default::default(),
            http_fetch: Default::default(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address `cairn serve` listens on.
    pub listen: String,
    /// Runs driven at once.
    pub concurrency: usize,
    /// Largest request body (bytes).
    pub body_limit_bytes: usize,
    /// On SIGTERM, seconds running steps get to finish.
    pub shutdown_grace_s: u64,
    /// Run and session leases (ms): a run whose process died is resumed by
    /// another (or the next start) this long after its last heartbeat.
    pub lease_ms: u64,
    /// Bearer key the API requires; set it with CAIRN_SERVER__API_KEY, not
    /// in the file (a file holding it must be mode 0600).
    pub api_key: Option<String>,
    /// Seconds a run may go without progress before the watchdog cancels
    /// it (a tool call in flight gets its own timeout plus a minute); 0: off.
    pub watchdog_stuck_s: u64,
    /// `cancel`, or `retry` (cancel and start the turn again, once).
    pub watchdog_action: String,
    /// Host names the API answers besides loopback names and IP addresses
    /// (refusing others stops DNS-rebinding pages).
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://host[:port]`) whose pages may call the API.
    pub allowed_origins: Vec<String>,
    /// TLS certificate chain (PEM) for a single node; with `tls_key`.
    pub tls_cert: String,
    /// Its private key (PEM).
    pub tls_key: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:7420".into(),
            concurrency: 16,
            body_limit_bytes: 1024 * 1024,
            shutdown_grace_s: 10,
            lease_ms: 30_000,
            api_key: None,
            watchdog_stuck_s: 900,
            watchdog_action: "cancel".into(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

/// Which embedding model memory uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderChoice {
    /// `local` when `model_dir` is set, else none.
    Auto,
    /// No embeddings: memory search is full-text only.
    None,
    /// A BERT-family model in process, from `model_dir`.
    Local,
    /// An OpenAI-compatible `/embeddings` endpoint.
    Openai,
}

/// `[memory]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// `auto`, `none`, `local` or `openai`.
    pub embedder: EmbedderChoice,
    /// Directory with config.json, tokenizer.json and model.safetensors
    /// (e.g. all-MiniLM-L6-v2), for `local`.
    pub model_dir: String,
    /// Model name, for `openai`.
    pub embed_model: String,
    /// Base URL ending in /v1, for `openai`; empty: `OPENAI_BASE_URL`, else
    /// OpenAI's.
    pub embed_url: String,
    /// Bytes of remembered facts put in a run's system prompt (0: none).
    pub prompt_budget_bytes: usize,
    /// Relevance (0..1) a fact needs to be recalled into a prompt; unset:
    /// the default tuned for all-MiniLM-L6-v2 (`cairn-bench recall`).
    pub recall_floor: Option<f64>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            embedder: EmbedderChoice::Auto,
            model_dir: String::new(),
            embed_model: "text-embedding-3-small".into(),
            embed_url: String::new(),
            prompt_budget_bytes: 2000,
            recall_floor: None,
        }
    }
}

/// `[mcp]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `[mcp.servers.<name>]`: a stdio command or a streamable-HTTP URL.
    pub servers: BTreeMap<String, cairn_tools::mcp::McpServerConfig>,
}

/// `[agents.<name>]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// System prompt.
    pub system_prompt: String,
    /// Model; empty uses `llm.model`.
    pub model: String,
    /// Model calls allowed per turn.
    pub max_steps: u32,
    /// Output tokens per model call.
    pub max_tokens: u32,
    /// Built-in tools allowed; `["*"]` for all.
    pub tools: Vec<String>,
    /// Stream model output.
    pub stream: bool,
    /// The model's context window in tokens (0: known models by name,
    /// 8192 for others, such as local ones).
    pub context_window: u32,
    /// Periodic self-check.
    pub heartbeat: HeartbeatConfig,
    /// Where notices for the owner go: `<channel>:<chat>`; empty: nowhere.
    pub owner: String,
    /// `workspace` (sandboxed, network on), `offline` (sandboxed, no
    /// network) or `host` (no sandbox).
    pub sandbox: cairn_core::SandboxProfile,
    /// Variables its commands get besides PATH, LANG, TERM, TZ and HOME.
    pub env: BTreeMap<String, String>,
    /// `[agents.<name>.placement]`: tools that run on cluster workers.
    pub placement: Option<cairn_core::Placement>,
    /// MCP servers (`[mcp.servers.<name>]`) whose tools it gets.
    pub mcp: Vec<String>,
    /// Networks its sandboxed commands may reach although not public.
    pub network_allow: Vec<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let d = AgentSpec::default();
        AgentConfig {
            system_prompt: d.system_prompt,
            model: d.model,
            max_steps: d.max_steps,
            max_tokens: d.max_tokens,
            tools: d.tools,
            stream: d.stream,
            context_window: d.context_window,
            heartbeat: HeartbeatConfig::default(),
            owner: String::new(),
            sandbox: d.sandbox,
            placement: None,
            env: d.env,
            mcp: d.mcp,
            network_allow: d.network_allow,
        }
    }
}

/// The loaded configuration and where it came from.
pub struct Loaded {
    /// The configuration in force.
    pub config: Config,
    /// `CAIRN_HOME`.
    pub home: PathBuf,
    /// The config file, if one exists.
    pub file: Option<PathBuf>,
    /// Environment variables that overrode keys.
    pub overrides: Vec<String>,
}

impl Loaded {
    /// Where state lives: a `postgres://` URL, else a SQLite file.
    pub fn database(&self) -> Database {
        let db = &self.config.store.database;
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Database::Postgres(db.clone());
        }
        let p = Path::new(db);
        Database::Sqlite(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.home.join(p)
        })
    }

    /// Where agents' workspaces live.
    pub fn workspaces_dir(&self) -> PathBuf {
        self.home.join("workspaces")
    }

    /// The named agent, built from config (the `default` agent always exists).
    pub fn agent(&self, name: &str) -> Result<AgentSpec> {
        cairn_core::ids::validate_name("agent", name)?;
        let cfg = match self.config.agents.get(name) {
            Some(c) => c.clone(),
            None if name == "default" => AgentConfig::default(),
            None => {
                let known: Vec<&str> = self.config.agents.keys().map(String::as_str).collect();
                bail!(
                    "no agent named {name:?} in the config (known: {})",
                    if known.is_empty() {
                        "default".into()
                    } else {
                        known.join(", ")
                    }
                );
            }
        };
        cairn_tools::ToolRegistry::builtin(&cfg.tools)
            .map_err(|e| anyhow!("agent {name:?}: {e}"))?;
        for n in &cfg.network_allow {
            cairn_tools::net_guard::Network::parse(n)
                .map_err(|e| anyhow!("agents.{name}.network_allow: {e}"))?;
        }
        Ok(AgentSpec {
            name: name.to_string(),
            system_prompt: cfg.system_prompt,
            model: if cfg.model.is_empty() {
                self.config.llm.model.clone()
            } else {
                cfg.model
            },
            max_steps: cfg.max_steps,
            max_tokens: cfg.max_tokens,
            tools: cfg.tools,
            stream: cfg.stream,
            context_window: cfg.context_window,
            sandbox: cfg.sandbox,
            env: cfg.env,
            placement: cfg.placement,
            mcp: cfg.mcp,
            network_allow: cfg.network_allow,
            owner: match cfg.owner.trim() {
                "" => None,
                o if o
                    .split_once(':')
                    .is_some_and(|(c, chat)| !c.is_empty() && !chat.is_empty()) =>
                {
                    Some(o.to_string())
                }
                o => bail!(
                    "agents.{name}.owner: {o:?} is not <channel>:<chat>, such as \"telegram:123456789\""
                ),
            },
        })
    }
}

/// `CAIRN_HOME`, or `~/.cairn`.
pub fn home_dir() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("CAIRN_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither CAIRN_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cairn"))
}

/// Loads `$CAIRN_HOME/cairn.toml` (defaults if absent) and applies `CAIRN_*` overrides.
pub fn load() -> Result<Loaded> {
    let home = home_dir()?;
    let path = home.join("cairn.toml");
    let mut source = String::new();
    let (mut table, file) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            source.clone_from(&text);
            // Parse into the typed config first: that keeps line numbers in errors.
            toml::from_str::<Config>(&text)
                .map_err(|e| anyhow!(describe_toml_error(&path, &text, &e)))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow!(describe_toml_error(&path, &text, &e)))?;
            let mut secrets = Vec::new();
            secret_keys(&table, "", &mut secrets);
            if !secrets.is_empty() {
                check_private(&path, &secrets)?;
            }
            (table, Some(path.clone()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (toml::Table::new(), None),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let mut overrides = Vec::new();
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CAIRN_") && k != "CAIRN_HOME" && k != "CAIRN_DATABASE_URL")
        .collect();
    vars.sort();
    for (var, value) in vars {
        let keys: Vec<String> = var["CAIRN_".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if keys.iter().any(std::string::String::is_empty) {
            bail!(
                "environment variable {var}: cannot be read as a config key (use CAIRN_<SECTION>__<KEY>, e.g. CAIRN_LLM__MODEL)"
            );
        }
        set_key(&mut table, &keys, parse_env_value(&value))
            .map_err(|e| anyhow!("environment variable {var}: {e}"))?;
        // Check after each one so the error names the variable at fault.
        toml::Value::Table(table.clone())
            .try_into::<Config>()
            .map_err(|e| {
                anyhow!(
                    "environment variable {var} (key {}): {}",
                    keys.join("."),
                    e.message()
                )
            })?;
        overrides.push(var);
    }
    // The database has names of its own, as other tools spell them.
    let database = match (DATABASE_FLAG.get(), std::env::var("CAIRN_DATABASE_URL")) {
        (Some(flag), _) => Some(("--database".to_string(), flag.clone())),
        (None, Ok(url)) if !url.is_empty() => Some(("CAIRN_DATABASE_URL".to_string(), url)),
        _ => None,
    };
    if let Some((source, url)) = database {
        set_key(
            &mut table,
            &["store".to_string(), "database".to_string()],
            toml::Value::String(url),
        )
        .map_err(|e| anyhow!("{source}: {e}"))?;
        overrides.push(source);
    }
    let config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow!("config: {}", e.message()))?;
    for name in config.agents.keys() {
        cairn_core::ids::validate_name("agent", name)
            .map_err(|e| anyhow!("{}: [agents.{name}]: {e}", path.display()))?;
    }
    for (name, server) in &config.mcp.servers {
        if let Err(e) = server.endpoint(name) {
            let at = crate::config_locate::line_of(&source, &format!("mcp.servers.{name}"))
                .map(|line| format!(":{line}"))
                .unwrap_or_default();
            bail!("{}{at}: {e}", path.display());
        }
    }
    for (agent, cfg) in &config.agents {
        if let Some(missing) = cfg
            .mcp
            .iter()
            .find(|s| !config.mcp.servers.contains_key(*s))
        {
            let at = crate::config_locate::line_of(&source, &format!("agents.{agent}.mcp"))
                .map(|line| format!(":{line}"))
                .unwrap_or_default();
            bail!(
                "{}{at}: agents.{agent}.mcp names {missing:?}, which is not in [mcp.servers]",
                path.display()
            );
        }
    }
    if let Err(e) = config.router.check(&config.providers) {
        let at = crate::config_locate::line_of(&source, &e.key)
            .map(|line| format!(":{line}"))
            .unwrap_or_default();
        bail!("{}{at}: {} (key {})", path.display(), e.message, e.key);
    }
    Ok(Loaded {
        config,
        home,
        file,
        overrides,
    })
}

/// The dotted names of keys that hold a secret (a token, secret, password
/// or API key with a value).
fn secret_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let name = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => secret_keys(t, &format!("{name}."), out),
            toml::Value::String(s) if !s.is_empty() => {
                let lower = k.to_ascii_lowercase();
                if [
                    "token",
                    "secret",
                    "password",
                    "api_key",
                    "apikey",
                    "authorization",
                ]
                .iter()
                .any(|w| lower.contains(w))
                {
                    out.push(name);
                }
            }
            _ => {}
        }
    }
}

/// A file holding only a secret (the operator key) must be private.
pub fn check_secret_mode(path: &Path) -> Result<()> {
    check_private(path, &["the whole file".to_string()])
}

/// Secrets may live in a file only when nobody else can read it.
fn check_private(path: &Path, secrets: &[String]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} holds secrets ({}) but is readable by others (mode {:o}); run `chmod 600 {}`, or set them in the environment (CAIRN_<SECTION>__<KEY>) instead",
            path.display(),
            secrets.join(", "),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_key(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty key")?;
    let mut t = table;
    for k in parents {
        let entry = t
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("{k} is not a table"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

/// "file:line:col: message" plus the offending line.
fn describe_toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return format!("{}: {}", path.display(), e.message());
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let source_line = text.lines().nth(line - 1).unwrap_or("");
    format!(
        "{}:{line}:{col}: {}\n  {line} | {source_line}",
        path.display(),
        e.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_template::initial_config;

    #[test]
    fn initial_config_parses_to_defaults() {
        let c: Config = toml::from_str(&initial_config()).unwrap();
        assert_eq!(c.llm.max_attempts, 5);
        assert_eq!(c.agents["default"].tools, vec!["*"]);
        assert_eq!(
            c.agents["default"].system_prompt,
            AgentSpec::default().system_prompt
        );
    }

    #[test]
    fn errors_name_line_and_key() {
        let text = "[llm]\nmodel = \"x\"\nmax_attempts = \"five\"\n";
        let e = toml::from_str::<Config>(text).unwrap_err();
        let msg = describe_toml_error(Path::new("/h/cairn.toml"), text, &e);
        assert!(msg.starts_with("/h/cairn.toml:3:"), "{msg}");
        assert!(msg.contains("max_attempts"), "{msg}");
    }

    #[test]
    fn env_values_are_typed() {
        assert_eq!(parse_env_value("40"), toml::Value::Integer(40));
        assert_eq!(
            parse_env_value("gpt-4.1"),
            toml::Value::String("gpt-4.1".into())
        );
        assert_eq!(parse_env_value("true"), toml::Value::Boolean(true));
    }
}
