//! Cluster membership on PostgreSQL.
//! The text is `both/cluster.rs`, shared by both backends.

use super::PgStore as Store;

include!("../both/cluster.rs");
