//! The channel inbox and outbox on SQLite. The text is `both/channels.rs`,
//! shared by both backends.

use super::SqliteStore as Store;
use sqlx::Sqlite as Db;

include!("../both/channels.rs");
