//! What the sandbox costs: `exec` of `true` through the real tool, per
//! profile, against a plain unsandboxed spawn measured in the same run;
//! and a whole agent run whose every step is an `exec`, sandbox on and off.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cairn_core::SandboxProfile;
use cairn_llm::{AnthropicProvider, Provider};
use cairn_runtime::{AgentSpec, Runtime};
use cairn_store::Store;
use cairn_testkit::{FakeLlm, Reply};
use cairn_tools::sandbox::{Sandbox, SandboxPolicy};
use cairn_tools::{ToolContext, ToolRegistry, Workspace};
use serde_json::json;

const CALLS: usize = 200;
const LOOP_STEPS: usize = 10;
const LOOP_RUNS: usize = 7;
const DOWNLOADS: usize = 7;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

/// p50/p99 of starting `program args` and waiting for it.
async fn spawn_times(program: &str, args: &[&str]) -> Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let status = tokio::process::Command::new(program)
            .args(args)
            .status()
            .await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if !status.success() {
            bail!("{program} {args:?} failed");
        }
    }
    Ok(summary(ms))
}

/// The policy `cairn serve` uses, with or without the Landlock helper (as
/// root, commands run as the unprivileged user, as under `cairn serve`).
fn policy(helper: Option<&Path>) -> Arc<SandboxPolicy> {
    Arc::new(SandboxPolicy {
        landlock_helper: helper.map(Path::to_path_buf),
        run_as: cairn_tools::sandbox::RunAs::for_this_process("")
            .ok()
            .flatten()
            .filter(|_| helper.is_some()),
        ..Default::default()
    })
}

/// Median MB/s of a 10 MB download from a server in a network namespace
/// on a public address, measured inside the command (process start left
/// out), through `exec` under `profile`.
async fn download_rate(url: &str, profile: SandboxProfile, helper: Option<&Path>) -> Result<f64> {
    let (_dir, ctx, exec) = exec_in(profile, helper)?;
    let command = format!(
        "python3 -c \"import time, urllib.request as u; t = time.perf_counter(); n = len(u.urlopen('{url}').read()); print('rate', n / (time.perf_counter() - t) / 1e6)\""
    );
    let mut rates = Vec::new();
    for _ in 0..DOWNLOADS {
        let out = exec.call(&ctx, json!({"command": command})).await;
        let rate = out
            .content
            .lines()
            .find_map(|l| l.strip_prefix("rate ")?.trim().parse::<f64>().ok());
        match rate {
            Some(r) => rates.push(r),
            None => bail!("download under {}: {}", profile.as_str(), out.content),
        }
    }
    Ok(summary(rates).0)
}

/// The egress proxy's throughput against the host's own network.
async fn egress(helper: Option<&Path>) -> Result<()> {
    let Some(helper) = helper else {
        println!("  egress: skipped, no cairn-sandbox-init beside cairn-bench");
        return Ok(());
    };
    let site = tempfile::tempdir()?;
    std::fs::write(site.path().join("10mb"), vec![b'x'; 10 << 20])?;
    let host = cairn_testkit::PublicHost::start(site.path(), 7);
    let url = format!("http://{}:8080/10mb", host.addr);
    let direct = download_rate(&url, SandboxProfile::Host, None).await?;
    let proxied = download_rate(&url, SandboxProfile::Workspace, Some(helper)).await?;
    println!(
        "  10 MB download, median of {DOWNLOADS}: {proxied:.0} MB/s through the egress proxy, {direct:.0} MB/s on the host's network ({:.2}x)",
        proxied / direct
    );
    Ok(())
}

/// The `exec` tool with a context in a fresh workspace under `profile`;
/// the directory must outlive the calls.
fn exec_in(
    profile: SandboxProfile,
    helper: Option<&Path>,
) -> Result<(tempfile::TempDir, ToolContext, Arc<dyn cairn_tools::Tool>)> {
    let dir = tempfile::tempdir()?;
    let mut ctx = ToolContext::new(Workspace::open(&dir.path().join("ws"))?);
    ctx.sandbox = Sandbox {
        policy: policy(helper),
        profile,
        ..Default::default()
    };
    let reg = ToolRegistry::builtin(&["exec".to_string()])?;
    let Some(exec) = reg.get("exec") else {
        bail!("no exec tool");
    };
    Ok((dir, ctx, exec.clone()))
}

async fn exec_tool(profile: SandboxProfile, helper: Option<&Path>) -> Result<(f64, f64)> {
    let (_dir, ctx, exec) = exec_in(profile, helper)?;
    let mut ms = Vec::with_capacity(CALLS);
    for i in 0..=CALLS {
        let t = Instant::now();
        let out = exec.call(&ctx, json!({"command": "true"})).await;
        if out.is_error {
            bail!("exec under {}: {}", profile.as_str(), out.content);
        }
        if i > 0 {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(summary(ms))
}

/// ms per step of a run whose steps are each an `exec` of `true`.
async fn exec_loop(fake: &FakeLlm, profile: SandboxProfile, helper: Option<&Path>) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_sqlite(&dir.path().join("bench.db")).await?;
    let provider: Arc<dyn Provider> = Arc::new(AnthropicProvider::new(
        &fake.anthropic_url(),
        "k",
        "claude-sonnet-4-5",
        Duration::from_secs(30),
    ));
    let settings = cairn_runtime::Settings {
        sandbox: policy(helper),
        ..Default::default()
    };
    let rt = Runtime::with_settings(store, provider, dir.path().join("ws"), settings);
    let agent = AgentSpec {
        name: "bench".into(),
        max_steps: LOOP_STEPS as u32 + 5,
        tools: vec!["exec".into()],
        sandbox: profile,
        ..AgentSpec::default()
    };
    let mut per_step = Vec::new();
    for i in 0..=LOOP_RUNS {
        let mut script: Vec<Reply> = (1..LOOP_STEPS)
            .map(|_| Reply::tool("exec", json!({"command": "true"})))
            .collect();
        script.push(Reply::text("done"));
        fake.push(script);
        let t = Instant::now();
        let run = crate::fresh_turn(&rt, &agent, "run true repeatedly").await?;
        if run.steps as usize != LOOP_STEPS {
            bail!("exec loop took {} steps: {:?}", run.steps, run.error);
        }
        if i > 0 {
            per_step.push(t.elapsed().as_secs_f64() * 1e3 / LOOP_STEPS as f64);
        }
    }
    Ok(summary(per_step).0)
}

/// Prints the sandbox figures; `helper` is cairn-sandbox-init (Landlock).
pub async fn run(fake: &FakeLlm, helper: Option<&Path>) -> Result<()> {
    println!("sandbox (exec of `true` through the tool, {CALLS} calls; p50 / p99)");
    let (plain50, plain99) = spawn_times("sh", &["-c", "true"]).await?;
    // bubblewrap with nothing but a read-only root: what namespaces cost on
    // this kernel before any of our choices.
    let (bare50, bare99) =
        spawn_times("bwrap", &["--ro-bind", "/", "/", "sh", "-c", "true"]).await?;
    println!(
        "  plain sh -c true spawn         {plain50:>7.2} / {plain99:>7.2} ms   (baseline, no limits)"
    );
    println!(
        "  bwrap --ro-bind / / sh -c true {bare50:>7.2} / {bare99:>7.2} ms   (bubblewrap's own floor here: {:+.2} ms)",
        bare50 - plain50
    );
    let cases = [
        (SandboxProfile::Host, None, "host"),
        (SandboxProfile::Workspace, None, "workspace"),
        (SandboxProfile::Workspace, helper, "workspace+landlock"),
        (SandboxProfile::Offline, helper, "offline+landlock"),
    ];
    for (profile, helper, label) in cases {
        if label.ends_with("landlock") && helper.is_none() {
            println!("  exec, {label:<20} skipped: no cairn-sandbox-init beside cairn-bench");
            continue;
        }
        let (p50, p99) = exec_tool(profile, helper).await?;
        println!(
            "  exec, {label:<20}   {p50:>7.2} / {p99:>7.2} ms   added {:>+6.2} ms p50 (target < 10 sandboxed)",
            p50 - plain50
        );
    }
    egress(helper).await?;
    let host = exec_loop(fake, SandboxProfile::Host, None).await?;
    let sandboxed = exec_loop(fake, SandboxProfile::Workspace, helper).await?;
    println!(
        "  agent loop, {LOOP_STEPS} exec steps: {sandboxed:.2} ms/step sandboxed, {host:.2} ms/step on the host ({:+.2} ms)",
        sandboxed - host
    );
    Ok(())
}
