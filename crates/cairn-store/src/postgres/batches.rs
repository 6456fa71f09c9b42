//! Batches on PostgreSQL.
//! The text is `both/batches.rs`, shared by both backends.

use super::PgStore as Store;

include!("../both/batches.rs");
