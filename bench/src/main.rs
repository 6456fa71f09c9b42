//! cairn benchmarks. Each prints cairn's figure, the target from the issue,
//! and the ratio against peers measured in the same run on the same machine.
//! See bench/README.md.

mod always_on;
mod audit;
mod cluster;
mod mcp;
mod memory;
mod queue;
mod recall;
mod recall_set;
mod router;
mod sandbox;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use cairn_core::{ModelRequest, ModelResponse};
use cairn_llm::{AnthropicProvider, EventSink, LlmError, OpenAiProvider, Provider};
use cairn_runtime::{AgentSpec, Runtime, TurnRequest};
use cairn_store::Store;
use cairn_testkit::{FakeLlm, Reply};
use serde_json::json;

/// Model calls per benchmarked run: 19 tool-calling steps and a final answer.
const STEPS: usize = 20;
const RUNS: usize = 15;

/// Wraps a provider and adds up the time spent inside model calls, so the
/// orchestration overhead can be separated from the (fake) model's latency.
struct TimedProvider {
    inner: Arc<dyn Provider>,
    nanos: AtomicU64,
}

#[async_trait]
impl Provider for TimedProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn default_model(&self) -> &str {
        self.inner.default_model()
    }
    async fn complete(
        &self,
        req: &ModelRequest,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let t = Instant::now();
        let r = self.inner.complete(req, on_event).await;
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}

fn script(fake: &FakeLlm) {
    for _ in 0..STEPS - 1 {
        fake.push([Reply::tool("read_file", json!({"path": "data.txt"}))]);
    }
    fake.push([Reply::text("done")]);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct LoopResult {
    per_run_ms: f64,
    overhead_us_per_step: f64,
}

/// The agent loop in-process, journal on (SQLite, WAL), against the fake.
async fn cairn_loop(fake: &FakeLlm, provider_kind: &str) -> Result<LoopResult> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_sqlite(&dir.path().join("bench.db")).await?;
    cairn_loop_on(fake, provider_kind, store, dir.path()).await
}

/// The agent loop on PostgreSQL (a fresh database), for the figure beside
/// SQLite's.
async fn cairn_loop_pg(fake: &FakeLlm, provider_kind: &str) -> Result<LoopResult> {
    let dir = tempfile::tempdir()?;
    let url = queue::fresh_db("cairn_bench_loop").await?;
    let pg = cairn_store::PgStore::connect(&url, &cairn_store::PgSettings::default()).await?;
    cairn_loop_on(fake, provider_kind, Store::new(pg), dir.path()).await
}

async fn cairn_loop_on(
    fake: &FakeLlm,
    provider_kind: &str,
    store: Store,
    dir: &std::path::Path,
) -> Result<LoopResult> {
    let inner: Arc<dyn Provider> = if provider_kind == "anthropic" {
        Arc::new(AnthropicProvider::new(
            &fake.anthropic_url(),
            "k",
            "claude-sonnet-4-5",
            Duration::from_secs(30),
        ))
    } else {
        Arc::new(OpenAiProvider::new(
            &fake.openai_url(),
            Some("k"),
            "gpt-4.1",
            Duration::from_secs(30),
        ))
    };
    let timed = Arc::new(TimedProvider {
        inner,
        nanos: AtomicU64::new(0),
    });
    let rt = Runtime::new(store, timed.clone(), dir.join("ws"));
    std::fs::create_dir_all(dir.join("ws/bench"))?;
    std::fs::write(dir.join("ws/bench/data.txt"), "x".repeat(200))?;
    let agent = AgentSpec {
        name: "bench".into(),
        max_steps: STEPS as u32 + 5,
        tools: vec!["read_file".into()],
        ..AgentSpec::default()
    };
    let mut totals = Vec::new();
    let mut overheads = Vec::new();
    for i in 0..RUNS + 1 {
        script(fake);
        timed.nanos.store(0, Ordering::Relaxed);
        let t = Instant::now();
        let run = fresh_turn(&rt, &agent, "read the file repeatedly").await?;
        let total = t.elapsed().as_secs_f64();
        if run.steps as usize != STEPS {
            bail!(
                "benchmark run took {} steps, expected {STEPS}: {:?}",
                run.steps,
                run.error
            );
        }
        if i == 0 {
            continue; // warm-up
        }
        let model = timed.nanos.load(Ordering::Relaxed) as f64 / 1e9;
        totals.push(total * 1e3);
        overheads.push((total - model) / STEPS as f64 * 1e6);
    }
    Ok(LoopResult {
        per_run_ms: median(totals),
        overhead_us_per_step: median(overheads),
    })
}

/// Cost of the store's two kinds of write, which a step is made of.
async fn store_writes() -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_sqlite(&dir.path().join("s.db")).await?;
    let agent = AgentSpec::default();
    store.ensure_session("s", &agent.name).await?;
    let run = cairn_core::RunRecord {
        id: "run_bench".into(),
        session_id: "s".into(),
        agent: agent.name.clone(),
        status: cairn_core::RunStatus::Running,
        input: "x".into(),
        output: None,
        error: None,
        provider: "p".into(),
        model: "m".into(),
        steps: 0,
        usage: Default::default(),
        cost_usd: 0.0,
        created_at: cairn_core::now_ms(),
        finished_at: None,
        user_id: None,
    };
    store.create_run(&run).await?;
    let mut lease = store
        .try_acquire_session("s", &run.id, 60_000)
        .await?
        .context("lease")?;
    let entry = || cairn_store::NewEntry {
        ref_seq: Some(1),
        ref_entry: None,
        body: cairn_core::JournalPayload::ToolResult(cairn_core::ToolResultEntry {
            id: "call_1".into(),
            name: "read_file".into(),
            output: "x".repeat(200),
            is_error: false,
            bytes: 200,
            duration_ms: 1,
            outcome_unknown: false,
        }),
    };
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        store
            .commit_step(
                &run.id,
                None,
                cairn_store::StepCommit {
                    entries: vec![entry()],
                    ..Default::default()
                },
            )
            .await?;
    }
    let single = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    let msg = cairn_core::Message::user_text("y".repeat(200));
    let t = Instant::now();
    for _ in 0..n {
        store
            .commit_step(
                &run.id,
                Some(&mut lease),
                cairn_store::StepCommit {
                    entries: vec![entry()],
                    messages: vec![&msg],
                    run: Some(&run),
                    ..Default::default()
                },
            )
            .await?;
    }
    let step = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    Ok((single, step))
}

/// One turn of `agent` in a new session, events ignored.
async fn fresh_turn(rt: &Runtime, agent: &AgentSpec, input: &str) -> Result<cairn_core::RunRecord> {
    let req = TurnRequest {
        agent: agent.clone(),
        session_id: None,
        input: input.into(),
        user_id: None,
    };
    Ok(rt.run_turn(req, &|_| {}, Default::default()).await?)
}

fn cairn_bin() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("cairn");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (bench/run.sh does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Max RSS (KiB) of all waited-for children so far.
fn children_max_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0)
}

fn vm_rss_kib(pid: u32) -> Option<i64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field (`VmRSS:`, `RssAnon:`, …) of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak RSS of `cairn run` doing the 20-step run as a real process, and its
/// wall time including process start.
fn cairn_process(fake: &FakeLlm, bin: &Path) -> Result<(f64, i64)> {
    let home = tempfile::tempdir()?;
    std::fs::create_dir_all(home.path().join("workspaces/default"))?;
    std::fs::write(
        home.path().join("workspaces/default/data.txt"),
        "x".repeat(200),
    )?;
    let mut times = Vec::new();
    for _ in 0..5 {
        script(fake);
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["run", "--quiet", "read the file repeatedly"])
            .env("CAIRN_HOME", home.path())
            .env("ANTHROPIC_API_KEY", "k")
            .env("ANTHROPIC_BASE_URL", fake.anthropic_url())
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("cairn run failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(times), children_max_rss_kib()))
}

fn cold_start_ms(bin: &Path) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let s = Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        if !s.success() {
            bail!("cairn --version failed");
        }
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(v))
}

/// RSS of a process sitting idle: `cairn chat` at its prompt, or a peer.
fn idle_rss_kib(mut cmd: Command) -> Result<i64> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(1500));
    let rss = vm_rss_kib(child.id()).context("reading /proc/<pid>/status")?;
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    Ok(rss)
}

fn python() -> Option<String> {
    let venv = std::env::var("BENCH_PYTHON").ok()?;
    Path::new(&venv).exists().then_some(venv)
}

/// Runs a Python peer `RUNS` times; median seconds of its own loop timing.
fn python_peer(py: &str, script_name: &str, fake: &FakeLlm) -> Option<(f64, f64)> {
    let work = tempfile::tempdir().ok()?;
    std::fs::write(work.path().join("data.txt"), "x".repeat(200)).ok()?;
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script_name);
    let mut loops = Vec::new();
    let mut walls = Vec::new();
    for i in 0..6 {
        script(fake);
        let t = Instant::now();
        let out = Command::new(py)
            .arg(&script_path)
            .args([
                &fake.openai_url(),
                work.path().to_str()?,
                &(STEPS - 1).to_string(),
            ])
            .output()
            .ok()?;
        let wall = t.elapsed().as_secs_f64() * 1e3;
        if !out.status.success() {
            eprintln!(
                "  {script_name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            fake.clear_script();
            return None;
        }
        if i == 0 {
            continue;
        }
        loops.push(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<f64>()
                .ok()?
                * 1e3,
        );
        walls.push(wall);
    }
    Some((median(loops), median(walls)))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `cairn serve` under load: `/v1/chat/completions` (non-streaming) at
/// several client counts, each request a fresh session and a one-step run.
async fn server_load(fake: &FakeLlm, bin: &Path) -> Result<()> {
    let home = tempfile::tempdir()?;
    let mut cmd = Command::new(bin);
    cmd.env("CAIRN_HOME", home.path())
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", fake.anthropic_url())
        .env("CAIRN_SERVER__CONCURRENCY", "64");
    let server = cairn_testkit::ServerProcess::start(cmd);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let url = format!("{}/v1/chat/completions", server.url);
    println!(
        "server (/v1/chat/completions, non-streaming, fresh session per request, 64 executors)"
    );
    for clients in [1usize, 16, 256] {
        let total = (clients * 8).clamp(200, 2048);
        for _ in 0..total {
            fake.push([Reply::text("ok")]);
        }
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, url, next) = (http.clone(), url.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while (next.fetch_add(1, Ordering::Relaxed) as usize) < total {
                    let t = Instant::now();
                    let r = http.post(&url).json(&json!({"model": "cairn:default", "messages": [{"role": "user", "content": "hi"}]})).send().await?;
                    if !r.status().is_success() {
                        bail!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default());
                    }
                    let _ = r.bytes().await?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                Ok(lat)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let secs = started.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        println!(
            "  {clients:>3} clients  {:>7.0} runs/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests)",
            all.len() as f64 / secs,
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all.len()
        );
    }
    drop(server);
    // Sessions resident: a fresh server, 1,000 sessions with a turn each, then idle.
    let home = tempfile::tempdir()?;
    let mut cmd = Command::new(bin);
    cmd.env("CAIRN_HOME", home.path())
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", fake.anthropic_url());
    let server = cairn_testkit::ServerProcess::start(cmd);
    let sessions_url = format!("{}/api/v1/sessions", server.url);
    for i in 0..1000 {
        fake.push([Reply::text("noted")]);
        let id = format!("idle-{i}");
        http.post(&sessions_url)
            .json(&json!({"id": id}))
            .send()
            .await?
            .error_for_status()?;
        http.post(format!("{sessions_url}/{id}/messages"))
            .json(&json!({"content": "remember this", "wait": true}))
            .send()
            .await?
            .error_for_status()?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = vm_rss_kib(server.pid()).unwrap_or(0);
    println!(
        "  1,000 sessions (one turn each), idle: {:.1} MB RSS (target < 100)",
        rss as f64 / 1024.0
    );
    Ok(())
}

fn ratio(peer: f64, ours: f64) -> String {
    format!("{:.1}x", peer / ours)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let fake = FakeLlm::start();
    // `cairn-bench loop`: only the in-process agent loop (for profilers).
    if std::env::args().nth(1).as_deref() == Some("loop") {
        let o = cairn_loop(&fake, "openai").await?;
        println!(
            "SQLite:     openai wire {:.2} ms/run, overhead {:.0} µs/step",
            o.per_run_ms, o.overhead_us_per_step
        );
        if std::env::args().nth(2).as_deref() == Some("--postgres") {
            let p = cairn_loop_pg(&fake, "openai").await?;
            println!(
                "PostgreSQL: openai wire {:.2} ms/run, overhead {:.0} µs/step",
                p.per_run_ms, p.overhead_us_per_step
            );
        }
        return Ok(());
    }
    // `cairn-bench recall`: recall quality on the labelled set.
    if std::env::args().nth(1).as_deref() == Some("recall") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return recall::run(&args).await;
    }
    // `cairn-bench audit`: sealed audit appends against plain inserts.
    if std::env::args().nth(1).as_deref() == Some("audit") {
        return audit::run().await;
    }
    // `cairn-bench queue`: the job queue on PostgreSQL against its peers.
    if std::env::args().nth(1).as_deref() == Some("queue") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return queue::run(&args).await;
    }
    let model_dir = std::env::var_os("BENCH_MODEL_DIR").map(PathBuf::from);
    // `cairn-bench memory`: only the memory benchmark.
    if std::env::args().nth(1).as_deref() == Some("memory") {
        return memory::run(model_dir).await;
    }
    // `cairn-bench router`: routing decisions, detectors, cost saved.
    if std::env::args().nth(1).as_deref() == Some("router") {
        return router::run(model_dir).await;
    }
    // `cairn-bench sandbox`: only the sandbox figures.
    if std::env::args().nth(1).as_deref() == Some("sandbox") {
        let helper = cairn_bin()
            .ok()
            .map(|b| b.with_file_name("cairn-sandbox-init"))
            .filter(|p| p.is_file());
        return sandbox::run(&fake, helper.as_deref()).await;
    }
    let bin = cairn_bin()?;
    // `cairn-bench cluster`: coordinator, workers, and Celery beside them.
    if std::env::args().nth(1).as_deref() == Some("cluster") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return cluster::run(&bin, &args).await;
    }
    // `cairn-bench mcp`: the MCP client and server.
    if std::env::args().nth(1).as_deref() == Some("mcp") {
        return mcp::run(&bin, &fake, python()).await;
    }
    // `cairn-bench always-on`: schedules and channels only.
    if std::env::args().nth(1).as_deref() == Some("always-on") {
        always_on::schedules().await?;
        return always_on::channels(&fake, &bin).await;
    }
    println!(
        "cairn benchmarks · {STEPS}-step tool-calling run (read_file each step) against the fake LLM, journal on (SQLite WAL)\n"
    );

    let (proc_ms, peak_kib) = cairn_process(&fake, &bin)?;
    let start_ms = cold_start_ms(&bin)?;
    let mut chat = Command::new(&bin);
    let idle_home = tempfile::tempdir()?;
    chat.arg("chat")
        .env("CAIRN_HOME", idle_home.path())
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", fake.anthropic_url());
    let chat_kib = idle_rss_kib(chat)?;

    let (single_us, step_us) = store_writes().await?;
    let a = cairn_loop(&fake, "anthropic").await?;
    let o = cairn_loop(&fake, "openai").await?;
    println!("agent loop (in-process, median of {RUNS} runs)");
    println!(
        "  anthropic wire  {:>8.2} ms/run   overhead {:>6.0} µs/step (target < 500)",
        a.per_run_ms, a.overhead_us_per_step
    );
    println!(
        "  openai wire     {:>8.2} ms/run   overhead {:>6.0} µs/step (target < 500)",
        o.per_run_ms, o.overhead_us_per_step
    );
    println!(
        "  store writes: journal entry {single_us:.0} µs; entry + message + run in one transaction {step_us:.0} µs"
    );
    println!("process");
    println!(
        "  cairn run       {proc_ms:>8.2} ms/run (process start to exit)   peak RSS {:.1} MB",
        peak_kib as f64 / 1024.0
    );
    println!("  cairn --version {start_ms:>8.2} ms cold start (target < 20)");
    println!(
        "  cairn chat idle {:>8.1} MB RSS (target < 30)",
        chat_kib as f64 / 1024.0
    );
    server_load(&fake, &bin).await?;
    sandbox::run(&fake, Some(&bin.with_file_name("cairn-sandbox-init"))).await?;
    always_on::schedules().await?;
    always_on::channels(&fake, &bin).await?;

    println!(
        "peers (same fake, same machine, same run; ratio = peer time / cairn time, >1 means cairn is faster)"
    );
    match python() {
        None => println!(
            "  skipped: set BENCH_PYTHON to a Python with openai, langgraph, langchain-openai (bench/run.sh does)"
        ),
        Some(py) => {
            for (name, file) in [
                ("openai SDK loop (Python)", "openai_loop.py"),
                ("LangGraph ReAct agent", "langgraph_loop.py"),
            ] {
                match python_peer(&py, file, &fake) {
                    Some((loop_ms, wall_ms)) => println!(
                        "  {name:<26} {loop_ms:>8.2} ms/run loop ({} vs cairn openai wire)   {wall_ms:>8.1} ms/run process ({} vs cairn run)",
                        ratio(loop_ms, o.per_run_ms),
                        ratio(wall_ms, proc_ms)
                    ),
                    None => println!("  {name:<26} not available"),
                }
            }
            let mut idle = Command::new(&py);
            idle.args([
                "-c",
                "import sys, langgraph.prebuilt, langchain_openai; sys.stdin.read()",
            ]);
            if let Ok(kib) = idle_rss_kib(idle) {
                println!(
                    "  LangGraph idle (imported)  {:>8.1} MB RSS ({} vs cairn chat idle)",
                    kib as f64 / 1024.0,
                    ratio(kib as f64, chat_kib as f64)
                );
            }
        }
    }
    Ok(())
}
