-- The audit log: append-only, each entry sealed (HMAC under the audit key,
-- which is not in the database) over its fields and the previous seal.
-- One chain for every coordinator: appends take a transaction-scoped
-- advisory lock, so entries are numbered without gaps in commit order.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    prev TEXT NOT NULL,
    seal TEXT NOT NULL
);
