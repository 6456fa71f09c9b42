//! Schema migrations: numbered SQL files applied in order, each in its own
//! transaction, recorded in `schema_migrations`. Hand-rolled rather than
//! sqlx's `migrate!` so the same list serves SQLite and (later) PostgreSQL
//! without the macros feature.
//!
//! Not shared with PostgreSQL: each backend has its own numbered SQL files
//! (types differ), and PostgreSQL migrates under an advisory lock.

use sqlx::SqlitePool;

use crate::StoreError;

pub(crate) const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_core.sql")),
    (2, include_str!("../../migrations/sqlite/0002_jobs.sql")),
    (3, include_str!("../../migrations/sqlite/0003_memory.sql")),
    (
        4,
        include_str!("../../migrations/sqlite/0004_compaction.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_schedules.sql"),
    ),
    (6, include_str!("../../migrations/sqlite/0006_channels.sql")),
    (
        7,
        include_str!("../../migrations/sqlite/0007_users_apart.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_memory_count.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_job_retries.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_late_vectors.sql"),
    ),
    (11, include_str!("../../migrations/sqlite/0011_cluster.sql")),
    (
        12,
        include_str!("../../migrations/sqlite/0012_tool_jobs.sql"),
    ),
    (13, include_str!("../../migrations/sqlite/0013_batches.sql")),
    (
        14,
        include_str!("../../migrations/sqlite/0014_queue_vacuum.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_memory_terms.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_cancel_requests.sql"),
    ),
    (
        17,
        include_str!("../../migrations/sqlite/0017_workspace_homes.sql"),
    ),
    (18, include_str!("../../migrations/sqlite/0018_audit.sql")),
    (
        19,
        include_str!("../../migrations/sqlite/0019_api_keys.sql"),
    ),
];

pub(crate) async fn current_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await?;
    Ok(v.unwrap_or(0))
}

pub(crate) async fn run(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    let known = SQLITE.last().map(|m| m.0).unwrap_or(0);
    for &(version, sql) in SQLITE {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(cairn_core::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::debug!(version, "applied migration");
    }
    let found = current_version(pool).await?;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    Ok(())
}
