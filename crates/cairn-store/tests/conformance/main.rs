//! One conformance suite, run against both backends: every test here is
//! written once over the store traits and instantiated for SQLite (a temp
//! file) and PostgreSQL (a throwaway database; no server is a failure).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod batches;
mod channels;
mod cluster;
mod journal;
mod keys;
mod memories;
mod parity;
mod queue;
mod run_end;
mod runs_queue;
mod schedules;
mod sessions;
mod tool_jobs;

use std::sync::Arc;

use cairn_core::{RunRecord, RunStatus};
use cairn_store::{Backend, PgSettings, PgStore, SqliteStore};
use cairn_testkit::TestDatabase;

/// What the suite needs of a backend: all of it.
pub trait Tables: Backend {}
impl<T: Backend> Tables for T {}

/// One database, and independent handles on it (as separate processes
/// would have: their own connections, their own locks).
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    /// The backend type.
    type S: Tables;
    /// A new handle on the same database.
    async fn open(&self) -> Arc<Self::S>;
    /// Runs SQL on the database directly, as someone with write access
    /// to it (but not to cairn's home) could.
    async fn tamper(&self, sql: &str);
}

pub struct Sqlite(tempfile::TempDir);

#[async_trait::async_trait]
impl Harness for Sqlite {
    type S = SqliteStore;
    async fn open(&self) -> Arc<SqliteStore> {
        Arc::new(
            SqliteStore::open_sqlite(&self.0.path().join("cairn.db"))
                .await
                .unwrap(),
        )
    }
    async fn tamper(&self, sql: &str) {
        use sqlx::Connection;
        let url = format!("sqlite://{}", self.0.path().join("cairn.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

pub struct Postgres(TestDatabase);

#[async_trait::async_trait]
impl Harness for Postgres {
    type S = PgStore;
    async fn open(&self) -> Arc<PgStore> {
        Arc::new(
            PgStore::connect(self.0.url(), &PgSettings::default())
                .await
                .unwrap(),
        )
    }
    async fn tamper(&self, sql: &str) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(self.0.url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

pub fn sqlite() -> Sqlite {
    Sqlite(tempfile::tempdir().unwrap())
}

pub async fn postgres() -> Postgres {
    Postgres(TestDatabase::create().await)
}

/// Instantiates `$test(harness)` once per backend.
#[macro_export]
macro_rules! both {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test($crate::sqlite()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$test($crate::postgres().await).await;
                }
            }
        )*
    };
}

/// A queued run in session `session`, created with its job.
pub async fn queued_run<S: Tables>(s: &S, session: &str) -> RunRecord {
    s.ensure_session(session, "default").await.unwrap();
    let run = new_run(session);
    s.create_run(&run).await.unwrap();
    run
}

/// A queued run record in session `session`, not stored yet.
pub fn new_run(session: &str) -> RunRecord {
    RunRecord {
        id: cairn_core::ids::new_id("run"),
        session_id: session.into(),
        agent: "default".into(),
        status: RunStatus::Queued,
        input: "hello".into(),
        output: None,
        error: None,
        provider: "fake".into(),
        model: "m".into(),
        steps: 0,
        usage: Default::default(),
        cost_usd: 0.0,
        created_at: cairn_core::now_ms(),
        finished_at: None,
        user_id: None,
    }
}

/// Ends `run` (with its status) the one way a run ends: a step commit that
/// journals its end.
pub async fn end_run<S: Tables>(s: &S, run: &RunRecord) {
    s.commit_step(&run.id, None, run_end_step(run))
        .await
        .unwrap();
}

/// The commit that ends `run` with its status.
pub fn run_end_step(run: &RunRecord) -> cairn_store::StepCommit<'_> {
    cairn_store::StepCommit {
        entries: vec![cairn_store::NewEntry {
            ref_seq: None,
            ref_entry: None,
            body: cairn_core::JournalPayload::RunEnd(cairn_core::RunEnd {
                status: run.status,
                error: run.error.clone(),
            }),
        }],
        run: Some(run),
        ..Default::default()
    }
}
