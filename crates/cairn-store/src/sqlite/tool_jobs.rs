//! Tool jobs on SQLite.
//! The text is `both/tool_jobs.rs`, shared by both backends.

use super::SqliteStore as Store;

include!("../both/tool_jobs.rs");
