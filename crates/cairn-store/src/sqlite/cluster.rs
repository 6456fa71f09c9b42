//! Cluster membership on SQLite.
//! The text is `both/cluster.rs`, shared by both backends.

use super::SqliteStore as Store;

include!("../both/cluster.rs");
