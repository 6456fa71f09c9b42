//! Runs on SQLite: one turn of work in a session, with its status and totals.
//! The text is `both/runs.rs`, shared by both backends.

use super::SqliteStore as Store;
use sqlx::Sqlite as Db;

include!("../both/runs.rs");
