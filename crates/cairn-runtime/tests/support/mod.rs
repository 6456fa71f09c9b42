//! What the runtime's tests share: a runtime on the fake LLM over real
//! HTTP, a temporary store of each backend (with a way to reach its
//! database directly, to make it fail), and driving the next queued run.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cairn_core::{AgentSpec, RunRecord};
use cairn_llm::{ProviderChoice, ProviderSettings, select_provider};
use cairn_runtime::{Runtime, Settings};
use cairn_store::{PgSettings, PgStore, Store, kinds};
use cairn_testkit::{FakeLlm, TestDatabase};
use tokio_util::sync::CancellationToken;

/// A runtime whose provider is `fake` (Anthropic's wire format).
pub fn runtime(store: Store, fake: &FakeLlm, ws: &std::path::Path) -> Runtime {
    runtime_with(store, fake, ws, Settings::default())
}

/// `runtime`, set up with `settings`.
pub fn runtime_with(
    store: Store,
    fake: &FakeLlm,
    ws: &std::path::Path,
    settings: Settings,
) -> Runtime {
    let url = fake.anthropic_url();
    let choice = ProviderSettings {
        choice: ProviderChoice::Anthropic,
        model: String::new(),
        timeout: Duration::from_secs(30),
    };
    let provider = select_provider(&choice, &|k| match k {
        "ANTHROPIC_API_KEY" => Some("sk-ant-test".into()),
        "ANTHROPIC_BASE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    Runtime::with_settings(store, provider, ws.to_path_buf(), settings)
}

/// A temporary database of one backend.
pub enum TestStore {
    /// A SQLite file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// A throwaway PostgreSQL database.
    Postgres(TestDatabase),
}

impl TestStore {
    /// A fresh SQLite store.
    pub fn sqlite() -> TestStore {
        TestStore::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh PostgreSQL store (no server is a failure).
    pub async fn postgres() -> TestStore {
        TestStore::Postgres(TestDatabase::create().await)
    }

    /// A handle on it.
    pub async fn open(&self) -> Store {
        match self {
            TestStore::Sqlite(dir) => Store::open_sqlite(&dir.path().join("cairn.db"))
                .await
                .unwrap(),
            TestStore::Postgres(db) => Store::new(
                PgStore::connect(db.url(), &PgSettings::default())
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Runs `sqlite` or `postgres` on the database, over a connection of
    /// its own (as an operator's shell would).
    pub async fn sql(&self, sqlite: &str, postgres: &str) {
        use sqlx::Connection;
        match self {
            TestStore::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            TestStore::Postgres(db) => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Claims the next run's job (leased for `lease_ms`); it must exist.
pub async fn claim_next(store: &Store, lease_ms: i64) -> cairn_store::Job {
    store
        .claim_job(&[kinds::ADVANCE_RUN], lease_ms)
        .await
        .unwrap()
        .expect("a run's job is queued")
}

/// Claims the next run's job and drives it with the default agent.
pub async fn drive_next(rt: &Runtime) -> RunRecord {
    drive_next_as(rt, AgentSpec::default()).await
}

/// Claims the next run's job and drives it with `agent`.
pub async fn drive_next_as(rt: &Runtime, agent: AgentSpec) -> RunRecord {
    let job = claim_next(rt.store(), 30_000).await;
    rt.drive(job, agent, &|_| {}, CancellationToken::new())
        .await
        .unwrap()
}
