//! People's API keys on SQLite. The text is `both/keys.rs`, shared by
//! both backends.

use super::SqliteStore as Store;

include!("../both/keys.rs");
