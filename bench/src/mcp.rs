//! `cairn-bench mcp`: the MCP client's tool-call round trip over stdio and
//! streamable HTTP against the reference server (`echo`), beside the
//! official Python SDK calling the same server in the same run; and what
//! `ask_agent` through `/mcp` adds to the same turn through the native API
//! (the fake LLM answering instantly).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_core::{AgentSpec, SandboxProfile};
use cairn_testkit::{FakeLlm, LoggedProcess, Reply, ServerProcess};
use cairn_tools::mcp::{McpHub, McpServerConfig};
use cairn_tools::sandbox::Sandbox;
use cairn_tools::{ToolContext, ToolRegistry, Workspace};
use serde_json::json;

use crate::percentile;

const CALLS: usize = 500;
const TURNS: usize = 200;

fn everything() -> Result<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../scripts/mcp-peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    );
    if !p.exists() {
        bail!(
            "{} not found: run `npm ci --prefix scripts/mcp-peers` (bench/run.sh does)",
            p.display()
        );
    }
    Ok(p)
}

/// p50 and p99 of microsecond samples.
fn p50_p99(mut us: Vec<f64>) -> (f64, f64) {
    us.sort_by(f64::total_cmp);
    (percentile(&us, 0.5), percentile(&us, 0.99))
}

/// A registry holding `server`'s tools for an agent on the host profile.
async fn tools_of(
    name: &str,
    config: McpServerConfig,
    ws: &Path,
) -> Result<(McpHub, ToolRegistry)> {
    let mut servers = BTreeMap::new();
    servers.insert(name.to_string(), config);
    let hub = McpHub::new(servers)?;
    let agent = AgentSpec {
        mcp: vec![name.to_string()],
        sandbox: SandboxProfile::Host,
        ..AgentSpec::default()
    };
    let sandbox = Sandbox {
        profile: SandboxProfile::Host,
        ..Default::default()
    };
    let mut reg = ToolRegistry::default();
    let warnings = hub.add_tools(&agent, &sandbox, ws, &mut reg).await?;
    if !warnings.is_empty() {
        bail!("{}", warnings.join("; "));
    }
    Ok((hub, reg))
}

/// `CALLS` sequential calls of `tool` after a warm-up, µs each.
async fn timed_calls(
    reg: &ToolRegistry,
    tool: &str,
    ctx: &ToolContext,
    args: serde_json::Value,
    n: usize,
) -> Result<Vec<f64>> {
    let t = reg
        .get(tool)
        .with_context(|| format!("{tool} not offered"))?;
    for _ in 0..20 {
        let out = t.call(ctx, args.clone()).await;
        if out.is_error {
            bail!("{tool}: {}", out.content);
        }
    }
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let out = t.call(ctx, args.clone()).await;
        us.push(start.elapsed().as_secs_f64() * 1e6);
        if out.is_error {
            bail!("{tool}: {}", out.content);
        }
    }
    Ok(us)
}

fn python_peer(py: &str, args: &[String]) -> Result<Vec<f64>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/mcp_peer.py");
    let out = Command::new(py).arg(script).args(args).output()?;
    if !out.status.success() {
        bail!("mcp_peer.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn line(label: &str, ours: (f64, f64), peer: Option<(f64, f64)>) {
    let ratio = peer
        .map(|p| {
            format!(
                "   Python SDK p50 {:.0} µs, p99 {:.0} µs → cairn {:.1}x faster at p50",
                p.0,
                p.1,
                p.0 / ours.0
            )
        })
        .unwrap_or_else(|| "   (Python SDK peer not run: set BENCH_PYTHON)".into());
    println!(
        "  {label:<7} p50 {:>6.0} µs  p99 {:>6.0} µs{ratio}",
        ours.0, ours.1
    );
}

/// Runs the MCP figures.
pub async fn run(bin: &Path, fake: &FakeLlm, python: Option<String>) -> Result<()> {
    let server = everything()?;
    let node = "node".to_string();
    let dir = tempfile::tempdir()?;
    let ctx = ToolContext::new(Workspace::open(dir.path())?);
    let echo = json!({"message": "hello"});
    println!(
        "MCP client, {CALLS} sequential echo calls to @modelcontextprotocol/server-everything (one connection, after 20 warm-up calls)"
    );

    let stdio = McpServerConfig {
        command: node.clone(),
        args: vec![server.display().to_string(), "stdio".into()],
        ..Default::default()
    };
    let (hub, reg) = tools_of("ev", stdio, dir.path()).await?;
    let ours = p50_p99(timed_calls(&reg, "ev__echo", &ctx, echo.clone(), CALLS).await?);
    hub.shutdown().await;
    let peer = match &python {
        Some(py) => Some(p50_p99(python_peer(
            py,
            &[
                "stdio".into(),
                node.clone(),
                server.display().to_string(),
                CALLS.to_string(),
            ],
        )?)),
        None => None,
    };
    line("stdio", ours, peer);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = Command::new(&node);
    cmd.arg(&server)
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let http_server = LoggedProcess::spawn(cmd);
    http_server.wait_for("listening on port", Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = McpServerConfig {
        url: url.clone(),
        ..Default::default()
    };
    let (hub, reg) = tools_of("ev", http, dir.path()).await?;
    let ours = p50_p99(timed_calls(&reg, "ev__echo", &ctx, echo, CALLS).await?);
    hub.shutdown().await;
    let peer = match &python {
        Some(py) => Some(p50_p99(python_peer(
            py,
            &["http".into(), url, CALLS.to_string()],
        )?)),
        None => None,
    };
    line("http", ours, peer);
    drop(http_server);
    ask_agent_overhead(bin, fake, &ctx).await
}

/// `ask_agent` through `/mcp` against the same one-step turn through the
/// native API, on one `cairn serve`.
async fn ask_agent_overhead(bin: &Path, fake: &FakeLlm, ctx: &ToolContext) -> Result<()> {
    let home = tempfile::tempdir()?;
    let mut cmd = Command::new(bin);
    cmd.env("CAIRN_HOME", home.path())
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", fake.anthropic_url())
        .env("CAIRN_SERVER__API_KEY", "bench-key");
    let server = ServerProcess::start(cmd);
    for _ in 0..(2 * TURNS + 40) {
        fake.push([Reply::text("ok")]);
    }
    let mut headers = BTreeMap::new();
    headers.insert("Authorization".to_string(), "Bearer bench-key".to_string());
    let config = McpServerConfig {
        url: format!("{}/mcp", server.url),
        headers,
        ..Default::default()
    };
    let (hub, reg) = tools_of("cairn", config, ctx.workspace.root()).await?;
    let ask = json!({"agent": "default", "message": "hi"});
    let mcp = p50_p99(timed_calls(&reg, "cairn__ask_agent", ctx, ask, TURNS).await?);
    hub.shutdown().await;

    let http = reqwest::Client::new();
    let mut native = Vec::with_capacity(TURNS);
    for i in 0..TURNS + 20 {
        let start = Instant::now();
        let id = format!("bench{i}");
        let r = http
            .post(format!("{}/api/v1/sessions", server.url))
            .bearer_auth("bench-key")
            .json(&json!({"id": id}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("create session: {}", r.status());
        }
        let r = http
            .post(format!("{}/api/v1/sessions/{id}/messages", server.url))
            .bearer_auth("bench-key")
            .json(&json!({"content": "hi", "wait": true}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("post message: {}", r.status());
        }
        if i >= 20 {
            native.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let native = p50_p99(native);
    println!(
        "ask_agent through /mcp (streamable HTTP, API key), {TURNS} one-step turns, the fake LLM answering at once"
    );
    println!(
        "  /mcp ask_agent  p50 {:>6.0} µs  p99 {:>6.0} µs\n  native API      p50 {:>6.0} µs  p99 {:>6.0} µs   (session + message with wait)\n  MCP overhead    p50 {:>+6.0} µs",
        mcp.0,
        mcp.1,
        native.0,
        native.1,
        mcp.0 - native.0
    );
    Ok(())
}
