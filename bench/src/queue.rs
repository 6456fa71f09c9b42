//! The job queue on PostgreSQL against graphile-worker and pg-boss, on the
//! same server in the same run, each in a database of its own:
//! throughput (enqueue N no-op jobs, then time draining them with 1 and 4
//! workers) and enqueue→start latency (workers idle, jobs enqueued one by
//! one from another connection, 2 ms apart).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_store::{JobQueue, NewJob, PgSettings, PgStore};
use sqlx::Connection;

/// Where the bench makes its databases (an admin URL).
fn admin_url() -> String {
    std::env::var("BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database named `name`; returns its URL.
pub(crate) async fn fresh_db(name: &str) -> Result<String> {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .with_context(|| format!("PostgreSQL at {admin} (set BENCH_POSTGRES)"))?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    let Some((base, _)) = admin.rsplit_once('/') else {
        bail!("BENCH_POSTGRES has no database part");
    };
    Ok(format!("{base}/{name}"))
}

async fn store(url: &str) -> Result<Arc<PgStore>> {
    Ok(Arc::new(
        PgStore::connect(url, &PgSettings::default()).await?,
    ))
}

/// Enqueues `n` no-op jobs from 8 connections at once.
async fn fill(s: &Arc<PgStore>, n: usize) -> Result<()> {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (w..n).step_by(8) {
                s.enqueue(NewJob {
                    kind: "noop".into(),
                    ..Default::default()
                })
                .await?;
            }
            Ok::<_, cairn_store::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Jobs/s draining `n` jobs with `workers` claimers taking `batch` at once.
async fn cairn_throughput(n: usize, workers: usize, batch: usize) -> Result<f64> {
    let url = fresh_db("cairn_bench_queue").await?;
    let s = store(&url).await?;
    fill(&s, n).await?;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let jobs = s.claim_jobs(&["noop"], batch, 30_000).await?;
                if jobs.is_empty() {
                    return Ok::<_, cairn_store::StoreError>(());
                }
                s.complete_jobs(&jobs).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Enqueue→start p50/p99 (ms): workers wait on the queue's wake-ups, an
/// enqueuer on its own connections adds jobs one by one.
async fn cairn_latency(n: usize, workers: usize) -> Result<(f64, f64)> {
    let url = fresh_db("cairn_bench_latency").await?;
    let worker_store = store(&url).await?;
    let enqueuer = store(&url).await?;
    let origin = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let s = worker_store.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let seen = s.jobs_seen();
                let jobs = s.claim_jobs(&["lat"], 1, 30_000).await?;
                if jobs.is_empty() {
                    s.wait_for_jobs(seen, Duration::from_millis(500)).await;
                    continue;
                }
                for j in &jobs {
                    let sent = j.payload["t"].as_f64().unwrap_or(0.0);
                    let now = origin.elapsed().as_secs_f64() * 1000.0;
                    if tx.send(now - sent).is_err() {
                        return Ok::<_, cairn_store::StoreError>(());
                    }
                }
                s.complete_jobs(&jobs).await?;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..n {
        let t = origin.elapsed().as_secs_f64() * 1000.0;
        enqueuer
            .enqueue(NewJob {
                kind: "lat".into(),
                payload: serde_json::json!({"t": t}),
                ..Default::default()
            })
            .await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(ms)) => lat.push(ms),
            _ => bail!("only {} of {n} jobs started", lat.len()),
        }
    }
    drop(rx);
    for t in tasks {
        t.abort();
    }
    lat.sort_by(f64::total_cmp);
    Ok((lat[n / 2], lat[(n * 99 / 100).min(n - 1)]))
}

/// A peer's figure, from `peers.js`.
fn peer(
    node_dir: &Path,
    lib: &str,
    mode: &str,
    url: &str,
    n: usize,
    workers: usize,
) -> Result<serde_json::Value> {
    let out = Command::new("node")
        .current_dir(node_dir)
        .args([
            "peers.js",
            lib,
            mode,
            url,
            &n.to_string(),
            &workers.to_string(),
        ])
        .output()
        .context("running node (bench/run.sh installs the peers)")?;
    if !out.status.success() {
        bail!(
            "{lib} {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{lib} {mode} printed {stdout:?}"))
}

/// `cairn-bench queue [--jobs N]`.
/// The hot table after `total` jobs went through it, 10,000 at a time
/// (enqueued, then drained by 4 claimers taking 10): its size, live and
/// dead rows and autovacuum's visits, then again after a minute's rest.
async fn churn(total: usize) -> Result<()> {
    let url = fresh_db("cairn_bench_churn").await?;
    let s = store(&url).await?;
    let pg = sqlx::PgPool::connect(&url).await?;
    let t = Instant::now();
    let chunk = 10_000;
    for _ in 0..total.div_ceil(chunk) {
        fill(&s, chunk).await?;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let jobs = s.claim_jobs(&["noop"], 10, 30_000).await?;
                    if jobs.is_empty() {
                        return Ok::<_, cairn_store::StoreError>(());
                    }
                    s.complete_jobs(&jobs).await?;
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
    }
    println!(
        "  {total} jobs through the queue in {:.0} s ({:.0} jobs/s enqueue + drain)",
        t.elapsed().as_secs_f64(),
        total as f64 / t.elapsed().as_secs_f64()
    );
    for when in ["right after", "after 60 s idle"] {
        if when != "right after" {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let (size, live, dead, vacuums, analyzes): (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT pg_total_relation_size('jobs'), n_live_tup, n_dead_tup,
                    autovacuum_count, autoanalyze_count
             FROM pg_stat_user_tables WHERE relname = 'jobs'",
        )
        .fetch_one(&pg)
        .await?;
        println!(
            "  jobs table {when}: {:.1} MB with indexes, {live} live rows, {dead} dead, autovacuum ran {vacuums}×, autoanalyze {analyzes}×",
            size as f64 / 1e6
        );
    }
    Ok(())
}

pub async fn run(args: &[String]) -> Result<()> {
    if let Some(i) = args.iter().position(|a| a == "--churn") {
        let total: usize = args.get(i + 1).context("--churn N")?.parse()?;
        println!("job queue on PostgreSQL · table churn");
        return churn(total).await;
    }
    let n: usize = match args.iter().position(|a| a == "--jobs") {
        Some(i) => args.get(i + 1).context("--jobs N")?.parse()?,
        None => 100_000,
    };
    let lat_n = 500;
    let node_dir = std::env::var_os("BENCH_NODE_DIR").map(std::path::PathBuf::from);
    println!(
        "job queue on PostgreSQL · {n} no-op jobs drained; enqueue→start over {lat_n} jobs 2 ms apart"
    );
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for workers in [1, 4] {
        let one = cairn_throughput(n, workers, 1).await?;
        let ten = cairn_throughput(n, workers, 10).await?;
        println!(
            "  cairn           {workers} worker(s): {one:>8.0} jobs/s claiming 1 at a time, {ten:>8.0} claiming 10"
        );
        rows.push((format!("cairn/{workers}"), one, ten));
    }
    let (p50, p99) = cairn_latency(lat_n, 4).await?;
    println!(
        "  cairn           enqueue→start p50 {p50:.2} ms, p99 {p99:.2} ms (LISTEN/NOTIFY across connections)"
    );
    let Some(node_dir) = node_dir else {
        println!("  (peers skipped: set BENCH_NODE_DIR, as bench/run.sh does)");
        return Ok(());
    };
    for lib in ["graphile", "pgboss"] {
        let name = format!("{lib}_bench");
        for workers in [1, 4] {
            let url = fresh_db(&name).await?;
            let r = peer(&node_dir, lib, "throughput", &url, n, workers)?;
            let peer_rate = r["jobs_per_s"].as_f64().unwrap_or(0.0);
            let ours = rows
                .iter()
                .find(|r| r.0 == format!("cairn/{workers}"))
                .map_or(0.0, |r| r.1.max(r.2));
            println!(
                "  {lib:<15} {workers} worker(s): {peer_rate:>8.0} jobs/s   cairn/{lib} {:.2}× (target ≥ 2× graphile-worker)",
                ours / peer_rate.max(1e-9)
            );
        }
        let url = fresh_db(&name).await?;
        let r = peer(&node_dir, lib, "latency", &url, lat_n, 4)?;
        let (pp50, pp99) = (
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
        );
        println!(
            "  {lib:<15} enqueue→start p50 {pp50:.2} ms, p99 {pp99:.2} ms   {lib}/cairn p50 {:.2}×",
            pp50 / p50.max(1e-9)
        );
    }
    Ok(())
}
