//! What `cairn migrate` copies: every table that holds state, in an order
//! that satisfies foreign keys, each with its key (for resuming) and its
//! columns' kinds (for reading and binding without knowing the backend).
//! Derived tables are not copied: the episodic index rebuilds itself, and
//! generated columns (`owner`, `tsv`) are computed by the target.

/// How a column is read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TEXT, maybe NULL.
    Text,
    /// INTEGER / BIGINT, maybe NULL.
    Int,
    /// REAL / DOUBLE PRECISION.
    Real,
    /// 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Bool,
    /// BLOB / BYTEA, maybe NULL.
    Blob,
}

/// One table to copy.
#[derive(Debug)]
pub struct Table {
    /// Its name (the same on both backends).
    pub name: &'static str,
    /// Its key columns, in order: rows are copied and checksummed in key
    /// order, and a resumed copy starts after the last key committed.
    pub key: &'static [&'static str],
    /// Every copied column (the key's first) and its kind.
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::*;

/// The tables, parents before children.
pub const TABLES: &[Table] = &[
    Table {
        name: "agents",
        key: &["name"],
        columns: &[
            ("name", Text),
            ("config", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "sessions",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("agent", Text),
            ("version", Int),
            ("busy_run", Text),
            ("busy_until", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("busy_owner", Text),
            ("user_id", Text),
        ],
    },
    Table {
        name: "messages",
        key: &["session_id", "seq"],
        columns: &[
            ("session_id", Text),
            ("seq", Int),
            ("run_id", Text),
            ("role", Text),
            ("content", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "runs",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("session_id", Text),
            ("agent", Text),
            ("status", Text),
            ("input", Text),
            ("output", Text),
            ("error", Text),
            ("provider", Text),
            ("model", Text),
            ("steps", Int),
            ("input_tokens", Int),
            ("output_tokens", Int),
            ("cost_usd", Real),
            ("created_at", Int),
            ("finished_at", Int),
            ("user_id", Text),
        ],
    },
    Table {
        name: "run_journal",
        key: &["run_id", "seq"],
        columns: &[
            ("run_id", Text),
            ("seq", Int),
            ("kind", Text),
            ("ref_seq", Int),
            ("payload", Text),
            ("at", Int),
        ],
    },
    Table {
        name: "jobs",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("run_id", Text),
            ("payload", Text),
            ("priority", Int),
            ("run_at", Int),
            ("status", Text),
            ("attempt", Int),
            ("lease_owner", Text),
            ("lease_until", Int),
            ("dedup_key", Text),
            ("created_at", Int),
            ("last_error", Text),
            ("cancel_requested", Bool),
        ],
    },
    Table {
        name: "session_compactions",
        key: &["session_id", "through_seq"],
        columns: &[
            ("session_id", Text),
            ("through_seq", Int),
            ("summary", Text),
            ("run_id", Text),
            ("tokens_before", Int),
            ("tokens_after", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "memories",
        key: &["rowid"],
        columns: &[
            ("rowid", Int),
            ("id", Text),
            ("agent", Text),
            ("user_id", Text),
            ("text", Text),
            ("hash", Text),
            ("importance", Real),
            ("source", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("embed_model", Text),
            ("embedding", Blob),
            ("shared", Bool),
            ("terms", Text),
        ],
    },
    Table {
        name: "schedules",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("agent", Text),
            ("session_id", Text),
            ("prompt", Text),
            ("kind", Text),
            ("spec", Text),
            ("tz", Text),
            ("catch_up", Text),
            ("paused", Bool),
            ("next_due", Int),
            ("created_at", Int),
            ("created_by", Text),
            ("heartbeat", Text),
            ("user_id", Text),
        ],
    },
    Table {
        name: "schedule_fires",
        key: &["schedule_id", "due_at"],
        columns: &[
            ("schedule_id", Text),
            ("due_at", Int),
            ("handled_at", Int),
            ("outcome", Text),
            ("reason", Text),
            ("run_id", Text),
        ],
    },
    Table {
        name: "channel_inbox",
        key: &["channel", "platform_id"],
        columns: &[
            ("channel", Text),
            ("platform_id", Text),
            ("chat_id", Text),
            ("thread", Text),
            ("user_id", Text),
            ("text", Text),
            ("received_at", Int),
            ("outcome", Text),
            ("session_id", Text),
            ("run_id", Text),
            ("replied", Bool),
        ],
    },
    Table {
        name: "channel_outbox",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("channel", Text),
            ("chat_id", Text),
            ("thread", Text),
            ("text", Text),
            ("run_id", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_at", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("sent_at", Int),
        ],
    },
    Table {
        name: "channel_cursors",
        key: &["channel"],
        columns: &[("channel", Text), ("cursor", Text)],
    },
    Table {
        name: "channel_strangers",
        key: &["channel", "user_id"],
        columns: &[
            ("channel", Text),
            ("user_id", Text),
            ("messages", Int),
            ("first_seen", Int),
            ("last_seen", Int),
            ("last_told", Int),
        ],
    },
    Table {
        name: "provider_cooldowns",
        key: &["provider"],
        columns: &[("provider", Text), ("until", Int), ("reason", Text)],
    },
    Table {
        name: "cluster_tokens",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("secret_sha256", Text),
            ("labels", Text),
            ("expires_at", Int),
            ("created_at", Int),
            ("used_at", Int),
            ("used_by", Text),
        ],
    },
    Table {
        name: "cluster_nodes",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("name", Text),
            ("labels", Text),
            ("cert_sha256", Text),
            ("slots", Int),
            ("running", Int),
            ("coordinator", Text),
            ("joined_at", Int),
            ("last_seen", Int),
            ("revoked_at", Int),
        ],
    },
    Table {
        name: "tool_jobs",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("run_id", Text),
            ("tool", Text),
            ("input", Text),
            ("requires", Text),
            ("workspace", Text),
            ("sandbox", Text),
            ("idempotent", Bool),
            ("deadline", Int),
            ("traceparent", Text),
            ("status", Text),
            ("attempt", Int),
            ("node", Text),
            ("lease_owner", Text),
            ("lease_until", Int),
            ("output", Text),
            ("created_at", Int),
            ("finished_at", Int),
        ],
    },
    Table {
        name: "batches",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("name", Text),
            ("agent", Text),
            ("source", Text),
            ("concurrency", Int),
            ("max_attempts", Int),
            ("created_at", Int),
            ("finished_at", Int),
        ],
    },
    Table {
        name: "batch_items",
        key: &["batch_id", "idx"],
        columns: &[
            ("batch_id", Text),
            ("idx", Int),
            ("label", Text),
            ("input", Text),
            ("status", Text),
            ("attempt", Int),
            ("run_id", Text),
            ("output", Text),
            ("error", Text),
        ],
    },
    Table {
        name: "audit_log",
        key: &["seq"],
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("key_id", Text),
            ("actor", Text),
            ("event", Text),
            ("prev", Text),
            ("seal", Text),
        ],
    },
    Table {
        name: "api_keys",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("role", Text),
            ("agent", Text),
            ("secret_sha256", Text),
            ("created_at", Int),
            ("revoked_at", Int),
        ],
    },
];
