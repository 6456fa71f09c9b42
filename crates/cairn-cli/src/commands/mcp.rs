//! `cairn mcp`: cairn as an MCP server over stdio, for MCP clients (Claude
//! Desktop, editors, other agents) that start their servers as commands.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::{config, wiring};

/// Arguments of `cairn mcp`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command: MCP on stdin/stdout until the client closes stdin.
pub async fn run(_args: Args) -> Result<ExitCode> {
    let loaded = config::load()?;
    let (rt, unconfigured) = wiring::serve_runtime(&loaded).await?;
    crate::commands::serve::publish_agents(&loaded, &rt).await?;
    if let Some(reason) = &unconfigured {
        // stdout is the protocol: notes go to stderr.
        eprintln!("cairn mcp: not ready: {reason} (ask_agent fails until a provider is set)");
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::commands::serve::wait_for_signal().await;
        stop.cancel();
    });
    let server = &loaded.config.server;
    cairn_server::serve_mcp_stdio(
        rt,
        server.concurrency.max(1),
        Duration::from_secs(server.shutdown_grace_s),
        shutdown,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
