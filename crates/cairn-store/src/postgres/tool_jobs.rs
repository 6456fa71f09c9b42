//! Tool jobs on PostgreSQL.
//! The text is `both/tool_jobs.rs`, shared by both backends.

use super::PgStore as Store;

include!("../both/tool_jobs.rs");
