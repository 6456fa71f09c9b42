//! Agents defined through the API on SQLite (agents from the config file
//! are seeded here at server start, so every surface sees one list).
//! The text is `both/agents.rs`, shared by both backends.

use super::SqliteStore as Store;

include!("../both/agents.rs");
