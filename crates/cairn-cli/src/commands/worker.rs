//! `cairn worker --join https://coord:7420 --token <token>`: joins the
//! cluster once (key and certificate kept under $CAIRN_HOME/worker), then
//! dials out to the coordinator and runs the tool jobs it is sent. No
//! inbound port, no database credentials.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cairn_cluster::JoinToken;
use cairn_cluster::runner::ToolRunner;
use cairn_cluster::worker::{NodeIdentity, WorkerOptions};
use tokio_util::sync::CancellationToken;

use crate::{config, wiring};

/// Arguments of `cairn worker`.
#[derive(clap::Args)]
pub struct Args {
    /// Coordinator URLs, comma-separated (https://host:7420,…): the first
    /// is joined; all are tried in turn after a loss. After the first
    /// join, optional (given again, it replaces the saved list).
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// One-time join token from `cairn cluster join-token` (first join only;
    /// prefer --token-file or CAIRN_JOIN_TOKEN: ps shows arguments).
    #[arg(long, env = "CAIRN_JOIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the join token.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// Node name (default: this host's name).
    #[arg(long)]
    name: Option<String>,
    /// Jobs run at once.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// Let jobs whose agent has sandbox = "host" run unsandboxed here.
    #[arg(long)]
    allow_unsandboxed: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

/// Runs the command.
pub async fn run(args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let dir = loaded.home.join("worker");
    let urls: Vec<String> = args
        .join
        .iter()
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect();
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the join token from {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => args.token.clone(),
    };
    let identity = match (NodeIdentity::load(&dir)?, urls.first(), &token) {
        (_, Some(url), Some(token)) => {
            let token = JoinToken::parse(token)?;
            let name = args.name.clone().unwrap_or_else(host_name);
            let mut id = cairn_cluster::worker::join(url, &token, &name, &dir)
                .await
                .with_context(|| format!("joining {url}"))?;
            id.set_coordinators(&dir, urls.clone())?;
            eprintln!(
                "joined as {} (labels: {})",
                id.node_id,
                if id.labels.is_empty() {
                    "none".to_string()
                } else {
                    id.labels.to_string()
                }
            );
            id
        }
        (Some(mut id), first, None) => {
            if first.is_some() {
                id.set_coordinators(&dir, urls.clone())?;
            }
            id
        }
        (None, _, None) => bail!(
            "this host has not joined a cluster: cairn worker --join https://<coordinator>:7420 --token <token from cairn cluster join-token>"
        ),
        (_, None, Some(_)) => bail!("--token needs --join <coordinator URL>"),
    };
    eprintln!(
        "cairn worker {} · node {} · {} slots · coordinators {}",
        env!("CARGO_PKG_VERSION"),
        identity.node_id,
        args.slots,
        identity.coordinators.join(", ")
    );
    let policy = Arc::new(wiring::sandbox_policy(&loaded)?);
    let mut runner = ToolRunner::new(
        loaded.home.join("worker-workspaces"),
        policy,
        args.allow_unsandboxed,
    );
    let servers = &loaded.config.mcp.servers;
    if !servers.is_empty() {
        eprintln!(
            "MCP servers offered to the cluster: {}",
            servers.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        runner = runner.with_mcp(Arc::new(cairn_tools::mcp::McpHub::new(servers.clone())?));
    }
    let runner = Arc::new(runner);
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        crate::commands::serve::wait_for_signal().await;
        stopping.cancel();
    });
    let opts = WorkerOptions {
        dir,
        slots: args.slots.max(1),
        on_status: Arc::new(|s: &str| eprintln!("{s}")),
    };
    cairn_cluster::worker::run(opts, runner, stop).await?;
    Ok(ExitCode::SUCCESS)
}
