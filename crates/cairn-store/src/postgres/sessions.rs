//! Sessions on PostgreSQL: the run lease and the version compare-and-swap
//! are single UPDATEs, atomic under row locks. The text is
//! `both/sessions.rs`, shared with SQLite.

use super::PgStore as Store;
use sqlx::Postgres as Db;

include!("../both/sessions.rs");
