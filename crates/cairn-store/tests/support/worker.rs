//! A queue worker in a process of its own, for fault tests: the test binary
//! runs itself with `CAIRN_QW_URL` set and the worker test selected. Each
//! job's effect is an insert with a unique key (`effects.n`), and every
//! claim is logged (`claims`), so a test can tell "exactly once" and "never
//! two holders of one attempt" apart from the outside.

use std::time::{Duration, Instant};

use cairn_store::{JobQueue, NewJob, PgSettings, PgStore};

/// Tables the workers write besides the queue.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS effects (n BIGINT PRIMARY KEY, worker TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS claims (n BIGINT NOT NULL, attempt BIGINT NOT NULL, worker TEXT NOT NULL)";

/// Spawns this test binary as a worker on `url`.
pub fn spawn(url: &str, test: &str, name: &str, lease_ms: i64) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CAIRN_QW_URL", url)
        .env("CAIRN_QW_NAME", name)
        .env("CAIRN_QW_LEASE_MS", lease_ms.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The worker's body, when this process is one; returns at once otherwise.
/// Errors (a restarting server) are waited out, never fatal; it exits after
/// three idle seconds.
pub async fn run_if_worker() {
    let Ok(url) = std::env::var("CAIRN_QW_URL") else {
        return;
    };
    let name = std::env::var("CAIRN_QW_NAME").unwrap_or_default();
    let lease: i64 = std::env::var("CAIRN_QW_LEASE_MS").unwrap().parse().unwrap();
    let store = loop {
        match PgStore::connect(&url, &PgSettings::default()).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(3) {
        if let Err(e) = store.recover_leases().await {
            eprintln!("{name}: recover: {e}");
        }
        let batch = match store.claim_jobs(&["effect"], 8, lease).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: claim: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        idle_since = Instant::now();
        for job in &batch {
            let n = job.payload["n"].as_i64().unwrap();
            // Effects are retried until they land; the key makes them once.
            loop {
                let logged =
                    sqlx::query("INSERT INTO claims (n, attempt, worker) VALUES ($1, $2, $3)")
                        .bind(n)
                        .bind(job.attempt)
                        .bind(&name)
                        .execute(&pool)
                        .await;
                let done = sqlx::query(
                    "INSERT INTO effects (n, worker) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(n)
                .bind(&name)
                .execute(&pool)
                .await;
                if logged.is_ok() && done.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if let Err(e) = store.complete_jobs(&batch).await {
            eprintln!("{name}: complete: {e} (the leases expire and the jobs run again)");
        }
    }
    std::process::exit(0);
}

/// Seeds `n` effect jobs and the effect tables.
pub async fn seed(url: &str, n: i64) -> PgStore {
    let store = PgStore::connect(url, &PgSettings::default()).await.unwrap();
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
    for i in 0..n {
        store
            .enqueue(NewJob {
                kind: "effect".into(),
                payload: serde_json::json!({"n": i}),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    store
}

/// Every effect once, no attempt held twice, nothing left queued.
pub async fn check_exactly_once(url: &str, n: i64) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let effects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(effects, n, "every job's effect, once");
    let shared: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT n, attempt FROM claims GROUP BY n, attempt HAVING COUNT(DISTINCT worker) > 1) x",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(shared, 0, "no attempt of a job was held by two workers");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the queue drained");
}
