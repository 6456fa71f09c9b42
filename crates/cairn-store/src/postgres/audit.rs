//! The audit log on PostgreSQL. The text is `both/audit.rs`, shared by
//! both backends.

use super::PgStore as Store;
use sqlx::Postgres as Db;

/// The advisory lock's key: "cairn au" in ASCII.
const CHAIN_LOCK: i64 = 0x6361_6972_6e20_6175;

/// Makes every coordinator's appends take turns until commit, so they
/// extend one chain (numbered in commit order, no forks).
async fn lock_chain(tx: &mut sqlx::Transaction<'static, Db>) -> Result<(), crate::StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHAIN_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

include!("../both/audit.rs");
