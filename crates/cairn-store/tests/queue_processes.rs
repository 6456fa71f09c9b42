//! The queue across real processes on a real PostgreSQL: two workers and a
//! `kill -9` in the middle, and (in its own test binary, pg_restart.rs) a
//! server restart under load. Every job's effect happens exactly once and
//! no attempt of a job is ever held by two workers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/worker.rs"]
mod worker;

use std::time::Duration;

use cairn_testkit::TestDatabase;

const WORKER: &str = "worker_process";

/// Not a test: the body of the worker processes (run with --ignored).
#[tokio::test]
#[ignore = "the body of the worker processes the fault tests spawn"]
async fn worker_process() {
    worker::run_if_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_one_killed_leave_every_effect_exactly_once() {
    const N: i64 = 2_000;
    let db = TestDatabase::create().await;
    worker::seed(db.url(), N).await;
    let mut doomed = worker::spawn(db.url(), WORKER, "doomed", 1_000);
    let mut steady = worker::spawn(db.url(), WORKER, "steady", 1_000);
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    // Kill the first worker once it has done some of the work.
    loop {
        let mine: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM claims WHERE worker = 'doomed'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if mine >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(doomed.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    doomed.wait().unwrap();
    let status = tokio::task::spawn_blocking(move || steady.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    worker::check_exactly_once(db.url(), N).await;
    let retaken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM claims WHERE attempt > 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    eprintln!("jobs taken over after the kill: {retaken}");
}
