//! The PostgreSQL backend: state that outlives its host and is shared by
//! several cairn processes. Same tables and meaning as SQLite (see
//! `migrations/postgres`); concurrency comes from row locks instead of one
//! writer: a claim takes `FOR UPDATE SKIP LOCKED`, a step commit locks its
//! run's row, a message append compares and swaps the session's version.

mod agents;
mod audit;
mod batches;
mod channels;
mod cluster;
mod journal;
mod keys;
mod memories;
pub(crate) mod migrate;
mod queue;
mod runs;
mod schedules;
mod sessions;
mod tool_jobs;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Backend, StoreError};

pub use queue::Wakeups;

/// How a PostgreSQL store connects.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Most connections this process opens (`CAIRN_DATABASE_POOL`). Each
    /// executor slot holds one only while it writes; 10 serves a node
    /// running a few dozen runs at once.
    pub max_connections: u32,
    /// How long to wait for a connection before failing a request.
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// The PostgreSQL backend; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// The URL without its password, for messages.
    target: String,
    wakeups: std::sync::Arc<Wakeups>,
}

/// `url` with any password replaced, so it can be logged.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((cred, host)) => {
                let user = cred.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date. Fails with a
    /// clear `Open` error when the server is unreachable, refuses the
    /// credentials, or holds a newer schema.
    pub async fn connect(url: &str, settings: &PgSettings) -> Result<Self, StoreError> {
        let target = redact_url(url);
        let open_err = |e: sqlx::Error| StoreError::Open {
            target: target.clone(),
            reason: e.to_string(),
        };
        let options: PgConnectOptions = url.parse().map_err(open_err)?;
        let options = options.application_name("cairn");
        // One plain connection first: a refused port or a wrong password is
        // reported at once (the pool would retry until its timeout).
        let probe = tokio::time::timeout(
            settings.acquire_timeout,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| StoreError::Open {
            target: target.clone(),
            reason: format!("no answer within {} s", settings.acquire_timeout.as_secs()),
        })?;
        let probe = probe.map_err(open_err)?;
        sqlx::Connection::close(probe).await.map_err(open_err)?;
        // No ping before each use (sqlx's default costs a round trip per
        // query); a broken connection fails its query and is replaced.
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        migrate::run(&pool).await?;
        memories::fill_terms(&pool).await?;
        let wakeups = std::sync::Arc::new(Wakeups::start(pool.clone()));
        Ok(PgStore {
            pool,
            target,
            wakeups,
        })
    }

    /// Signals that jobs were added or became ready, in this process and to
    /// every other process listening on the database.
    pub fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    // The write seam the shared text in `both/` uses (see its header).

    /// Nothing to hold: PostgreSQL orders writers by row locks.
    pub(crate) async fn lock_writes(&self) -> NoWriteLock {
        NoWriteLock
    }

    /// Starts a write transaction.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The pool single writes go to: the one pool.
    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Jobs were added: wake executors here and in every other process.
    pub(crate) fn jobs_added(&self) {
        self.wakeups.jobs_added();
    }
}

/// The write lock of a backend that needs none.
pub(crate) struct NoWriteLock;

#[async_trait]
impl Backend for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        migrate::current_version(&self.pool).await
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact_url("postgres://cairn:s3cret@db:5432/cairn"),
            "postgres://cairn:***@db:5432/cairn"
        );
        assert_eq!(redact_url("postgres://db/cairn"), "postgres://db/cairn");
        assert!(!redact_url("postgres://u:p@ss@h/d").contains("p@ss"));
    }
}
