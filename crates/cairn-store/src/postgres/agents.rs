//! Agents defined through the API, on PostgreSQL.
//! The text is `both/agents.rs`, shared by both backends.

use super::PgStore as Store;

include!("../both/agents.rs");
