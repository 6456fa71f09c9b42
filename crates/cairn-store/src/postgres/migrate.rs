//! Schema migrations for PostgreSQL: the same numbered list as SQLite's
//! (a test keeps them in step), applied under an advisory lock so several
//! processes starting at once migrate once.
//!
//! Not shared with SQLite: see `sqlite/migrate.rs`.

use sqlx::PgPool;

use crate::StoreError;

/// Arbitrary but fixed: the advisory lock every cairn migrator takes.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00_0001;

pub(crate) const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_core.sql")),
    (2, include_str!("../../migrations/postgres/0002_jobs.sql")),
    (3, include_str!("../../migrations/postgres/0003_memory.sql")),
    (
        4,
        include_str!("../../migrations/postgres/0004_compaction.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_schedules.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_channels.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_users_apart.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_memory_count.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_job_retries.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_late_vectors.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_cluster.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_tool_jobs.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_batches.sql"),
    ),
    (
        14,
        include_str!("../../migrations/postgres/0014_queue_vacuum.sql"),
    ),
    (
        15,
        include_str!("../../migrations/postgres/0015_memory_terms.sql"),
    ),
    (
        16,
        include_str!("../../migrations/postgres/0016_cancel_requests.sql"),
    ),
    (
        17,
        include_str!("../../migrations/postgres/0017_workspace_homes.sql"),
    ),
    (18, include_str!("../../migrations/postgres/0018_audit.sql")),
    (
        19,
        include_str!("../../migrations/postgres/0019_api_keys.sql"),
    ),
];

pub(crate) async fn current_version(pool: &PgPool) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(pool)
        .await?;
    Ok(v.unwrap_or(0))
}

pub(crate) async fn run(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut *tx)
        .await?;
    let known = POSTGRES.last().map(|m| m.0).unwrap_or(0);
    // Refused before anything is applied: an older binary must not write
    // to a schema it does not understand.
    if let Some(found) = found.filter(|f| *f > known) {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    // One transaction for all pending migrations: a failure leaves the
    // database as it was.
    for &(version, sql) in POSTGRES.iter().filter(|m| m.0 > found.unwrap_or(0)) {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(cairn_core::now_ms())
            .execute(&mut *tx)
            .await?;
        tracing::debug!(version, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_the_same_migrations() {
        let pg: Vec<i64> = super::POSTGRES.iter().map(|m| m.0).collect();
        let lite: Vec<i64> = crate::sqlite::migrate::SQLITE.iter().map(|m| m.0).collect();
        assert_eq!(pg, lite);
    }
}
