//! Sessions on SQLite: creation, the per-session run lease, and messages
//! appended with compare-and-swap on the session's version. The text is
//! `both/sessions.rs`, shared with PostgreSQL.

use super::SqliteStore as Store;
use sqlx::Sqlite as Db;

include!("../both/sessions.rs");
