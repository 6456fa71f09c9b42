-- The audit log: append-only, each entry sealed (HMAC under the audit key,
-- which is not in the database) over its fields and the previous seal.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    prev TEXT NOT NULL,
    seal TEXT NOT NULL
);
