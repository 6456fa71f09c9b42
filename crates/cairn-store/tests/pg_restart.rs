//! PostgreSQL restarted (`pg_ctlcluster … restart`) while two worker
//! processes drain 5,000 jobs: the workers reconnect by themselves and every
//! job's effect happens exactly once. Its own test binary, so no other test
//! shares the server while it restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/worker.rs"]
mod worker;

use std::time::Duration;

use cairn_testkit::TestDatabase;

const WORKER: &str = "worker_process";

/// Not a test: the body of the worker processes (run with --ignored).
#[tokio::test]
#[ignore = "the body of the worker processes the fault test spawns"]
async fn worker_process() {
    worker::run_if_worker().await;
}

fn restart_postgres() {
    let versions = std::fs::read_dir("/etc/postgresql")
        .expect("this test restarts the local PostgreSQL (Debian's postgresql package, as scripts/test.sh installs)");
    for v in versions {
        let v = v.unwrap().file_name();
        let status = std::process::Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &v.to_string_lossy(),
                "main",
                "restart",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctlcluster restart failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_under_load_loses_nothing_and_doubles_nothing() {
    const N: i64 = 5_000;
    let db = TestDatabase::create().await;
    worker::seed(db.url(), N).await;
    let mut a = worker::spawn(db.url(), WORKER, "a", 2_000);
    let mut b = worker::spawn(db.url(), WORKER, "b", 2_000);
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM effects")
            .fetch_one(&pool)
            .await
            .unwrap();
        if done >= 500 {
            assert!(done < N, "the load finished before the restart");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.close().await;
    restart_postgres();
    let (sa, sb) = tokio::task::spawn_blocking(move || (a.wait().unwrap(), b.wait().unwrap()))
        .await
        .unwrap();
    assert!(
        sa.success() && sb.success(),
        "workers reconnect by themselves"
    );
    worker::check_exactly_once(db.url(), N).await;
}
