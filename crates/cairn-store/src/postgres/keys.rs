//! People's API keys on PostgreSQL. The text is `both/keys.rs`, shared
//! by both backends.

use super::PgStore as Store;

include!("../both/keys.rs");
