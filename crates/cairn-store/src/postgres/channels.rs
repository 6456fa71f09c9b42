//! The channel inbox and outbox on PostgreSQL. The text is `both/channels.rs`,
//! shared by both backends.

use super::PgStore as Store;
use sqlx::Postgres as Db;

include!("../both/channels.rs");
