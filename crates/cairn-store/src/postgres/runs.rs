//! Runs on PostgreSQL: one turn of work in a session, with its status and totals.
//! The text is `both/runs.rs`, shared by both backends.

use super::PgStore as Store;
use sqlx::Postgres as Db;

include!("../both/runs.rs");
