//! Batches on SQLite.
//! The text is `both/batches.rs`, shared by both backends.

use super::SqliteStore as Store;

include!("../both/batches.rs");
