//! The cluster: a coordinator (in this process, serving workers over mTLS
//! on loopback, on PostgreSQL) and real `cairn worker` processes.
//!
//! - remote tool hop: one `read_file` at a time through the coordinator's
//!   placed tool (submit → dispatch → worker → result), p50/p99;
//! - throughput: 10,000 sleep-bound tool jobs (an `http_fetch` of a local
//!   page that takes 20 ms) with 1, 2, 4 and 8 worker processes, and the
//!   scaling efficiency; every fetch is counted by the page, so effects
//!   that happened twice show;
//! - the same 10,000 tasks through Celery with a Redis broker (threads
//!   pool, the same concurrency per worker) in the same run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_cluster::{CaDir, ClusterSettings, Coordinator, JoinToken};
use cairn_core::cluster::{JoinTokenRecord, Labels, NewToolJob};
use cairn_core::{AgentSpec, Placement, now_ms};
use cairn_store::{PgSettings, PgStore, Store};
use cairn_tools::{ToolContext, ToolPlacement, ToolRegistry, Workspace};
use tokio_util::sync::CancellationToken;

/// Slots per worker, for cairn and Celery alike.
const SLOTS: u32 = 16;
/// How long the page a job fetches takes.
const PAGE_MS: u64 = 20;

/// A page on 127.0.0.2 that takes `PAGE_MS` and counts fetches per path.
async fn slow_page() -> Result<(String, Arc<Mutex<HashMap<String, u32>>>)> {
    let hits: Arc<Mutex<HashMap<String, u32>>> = Default::default();
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/t/{key}",
        axum::routing::get(
            move |axum::extract::Path(key): axum::extract::Path<String>| {
                let counter = counter.clone();
                async move {
                    *counter
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(key)
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(PAGE_MS)).await;
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, hits))
}

/// A coordinator serving on loopback over TLS; its URL.
async fn coordinator(dir: &Path, store: Store) -> Result<(Arc<Coordinator>, String)> {
    let ca = CaDir(dir.join("cluster"));
    ca.init(&["127.0.0.1".into()])?;
    let co = Coordinator::new(
        store,
        ca.clone(),
        ClusterSettings {
            heartbeat_ms: 1_000,
        },
        CancellationToken::new(),
    )?;
    co.start();
    let tls = cairn_cluster::tls::server_config(&ca)?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", tcp.local_addr()?);
    let listener = cairn_cluster::tls::TlsListener::new(tcp, tls)?;
    let app = co.router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<cairn_cluster::tls::Peer>(),
        )
        .await
    });
    Ok((co, url))
}

/// A worker home that joined the cluster (token minted here).
async fn join(bin: &Path, store: &Store, ca: &CaDir, url: &str, home: &Path) -> Result<()> {
    std::fs::create_dir_all(home)?;
    std::fs::write(
        home.join("cairn.toml"),
        "[tools.http_fetch]\nallow = [\"127.0.0.2\"]\n",
    )?;
    let token = JoinToken::mint(&ca.ca_fingerprint()?)?;
    store
        .create_join_token(&JoinTokenRecord {
            id: token.id.clone(),
            secret_sha256: token.secret_sha256(),
            labels: Labels::default(),
            expires_at: now_ms() + 600_000,
            created_at: now_ms(),
        })
        .await?;
    // Joining is a first run that is stopped once connected.
    let mut p = start_worker(bin, home, &["--join", url, "--token", &token.to_string()])?;
    p.kill()?;
    p.wait()?;
    Ok(())
}

/// Starts `cairn worker` and waits until it is connected.
fn start_worker(bin: &Path, home: &Path, extra: &[&str]) -> Result<Child> {
    let mut child = Command::new(bin)
        .env("CAIRN_HOME", home)
        .env_remove("RUST_LOG")
        .arg("worker")
        .args(["--slots", &SLOTS.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cairn worker")?;
    let stderr = child.stderr.take().context("worker stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("connected to")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        bail!("the worker in {} did not connect", home.display());
    }
    Ok(child)
}

/// p50 and p99 (ms) of sequential `read_file` calls through a placed tool.
async fn hop(co: &Arc<Coordinator>, worker_home: &Path, calls: usize) -> Result<(f64, f64)> {
    let ws = worker_home.join("worker-workspaces/named/bench");
    std::fs::create_dir_all(&ws)?;
    std::fs::write(ws.join("x.txt"), "hello")?;
    let agent = AgentSpec {
        placement: Some(Placement {
            tools: vec!["read_file".into()],
            workspace: "bench".into(),
            ..Default::default()
        }),
        ..AgentSpec::default()
    };
    let mut tools = ToolRegistry::builtin(&["read_file".to_string()])?;
    cairn_cluster::remote::ClusterPlacement::new(co.clone()).place(&agent, &mut tools);
    let tool = tools.get("read_file").context("placed read_file")?.clone();
    let local = tempfile::tempdir()?;
    let ctx = ToolContext::new(Workspace::open(local.path())?);
    let input = serde_json::json!({"path": "x.txt"});
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls + 20 {
        let mut c = ctx.for_call(format!("hop/{i}"), None);
        c.run_id = Some("hop".into());
        let t = Instant::now();
        let out = tool.call(&c, input.clone()).await;
        if out.is_error {
            bail!("remote read_file failed: {}", out.content);
        }
        if i >= 20 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((
        crate::percentile(&times, 0.5),
        crate::percentile(&times, 0.99),
    ))
}

/// Jobs/s running `n` fetch jobs; and how many fetches happened twice.
async fn throughput(
    store: &Store,
    pg: &sqlx::PgPool,
    page: &str,
    hits: &Arc<Mutex<HashMap<String, u32>>>,
    tag: &str,
    n: usize,
) -> Result<(f64, usize)> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, page, tag) = (store.clone(), page.to_string(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                let key = format!("{tag}-{i}");
                store
                    .submit_tool_job(&NewToolJob {
                        id: key.clone(),
                        run_id: tag.clone(),
                        tool: "http_fetch".into(),
                        input: serde_json::json!({"url": format!("{page}/t/{key}")}),
                        requires: Labels::default(),
                        workspace: None,
                        sandbox: cairn_core::SandboxProfile::Workspace,
                        idempotent: false,
                        deadline_ms: now_ms() + 600_000,
                        traceparent: None,
                    })
                    .await?;
            }
            Ok::<_, cairn_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    loop {
        let (done, bad): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'done'),
                    count(*) FILTER (WHERE status IN ('unknown', 'expired'))
             FROM tool_jobs WHERE run_id = $1",
        )
        .bind(tag)
        .fetch_one(pg)
        .await?;
        if bad > 0 {
            bail!("{bad} jobs were lost during the throughput run");
        }
        if done as usize >= n {
            break;
        }
        // Counting is a scan: often enough to time a multi-second run,
        // rarely enough not to compete with the run for the CPU.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let twice = hits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|(k, v)| k.starts_with(&format!("{tag}-")) && **v > 1)
        .count();
    Ok((n as f64 / secs, twice))
}

/// Celery's jobs/s with `workers` processes, from the peer script.
fn celery(python: &str, workers: usize, n: usize, page: &str) -> Result<f64> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/celery/bench.py");
    let out = Command::new(python)
        .arg(&script)
        .args([
            "--workers",
            &workers.to_string(),
            "--jobs",
            &n.to_string(),
            "--concurrency",
            &SLOTS.to_string(),
            "--url",
            &format!("{page}/t/celery{workers}"),
        ])
        .current_dir(script.parent().context("peer dir")?)
        .output()
        .context("running the Celery peer")?;
    if !out.status.success() {
        bail!(
            "Celery peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["jobs_per_s"].as_f64().context("jobs_per_s")
}

/// `cairn-bench cluster [--jobs N]`.
pub async fn run(bin: &Path, args: &[String]) -> Result<()> {
    let n: usize = match args.iter().position(|a| a == "--jobs") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .context("--jobs N")?,
        None => 10_000,
    };
    let url = crate::queue::fresh_db("cairn_bench_cluster").await?;
    let pg_store = PgStore::connect(&url, &PgSettings::default()).await?;
    let store = Store::new(pg_store);
    let pg = sqlx::PgPool::connect(&url).await?;
    let dir = tempfile::tempdir()?;
    let (co, co_url) = coordinator(dir.path(), store.clone()).await?;
    let ca = co.ca().clone();
    let (page, hits) = slow_page().await?;
    let homes: Vec<PathBuf> = (0..8).map(|i| dir.path().join(format!("w{i}"))).collect();
    for h in &homes {
        join(bin, &store, &ca, &co_url, h).await?;
    }

    println!("cluster (coordinator on PostgreSQL, workers over mTLS WebSocket on loopback)");
    let mut first = start_worker(bin, &homes[0], &[])?;
    let (p50, p99) = hop(&co, &homes[0], 500).await?;
    first.kill()?;
    first.wait()?;
    println!(
        "  remote tool hop (read_file, submit → worker → result): p50 {p50:.2} ms, p99 {p99:.2} ms   target p50 ≤ 2 ms"
    );

    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut base = 0.0;
    println!("  {n} tool jobs, each a fetch of a {PAGE_MS} ms page, {SLOTS} slots per worker:");
    for workers in [1usize, 2, 4, 8] {
        let mut procs = Vec::new();
        for h in &homes[..workers] {
            procs.push(start_worker(bin, h, &[])?);
        }
        let (ours, twice) =
            throughput(&store, &pg, &page, &hits, &format!("w{workers}"), n).await?;
        for mut p in procs {
            p.kill()?;
            p.wait()?;
        }
        if workers == 1 {
            base = ours;
        }
        let efficiency = ours / (base * workers as f64) * 100.0;
        let peer = match celery(&python, workers, n, &page) {
            Ok(c) => format!("Celery+Redis {c:.0} jobs/s, cairn/Celery {:.2}x", ours / c),
            Err(e) => format!("Celery not measured: {e}"),
        };
        println!(
            "    {workers} worker(s): cairn {ours:.0} jobs/s (scaling {efficiency:.0}%, effects twice: {twice}) · {peer}"
        );
    }
    let celery_twice = hits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|(k, v)| k.starts_with("celery") && **v > 1)
        .count();
    println!("    Celery effects twice: {celery_twice}");
    Ok(())
}
