//! The audit log on SQLite. The text is `both/audit.rs`, shared by both
//! backends; appends already take turns on SQLite's one writer.

use super::SqliteStore as Store;
use sqlx::Sqlite as Db;

/// Nothing to take: `BEGIN IMMEDIATE` holds the database's write lock.
async fn lock_chain(_tx: &mut sqlx::Transaction<'static, Db>) -> Result<(), crate::StoreError> {
    Ok(())
}

include!("../both/audit.rs");
