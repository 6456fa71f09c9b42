-- See sqlite/0011_cluster.sql.
CREATE TABLE cluster_tokens (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    labels        TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    used_at       BIGINT,
    used_by       TEXT
);
CREATE TABLE cluster_nodes (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    cert_sha256 TEXT NOT NULL UNIQUE,
    slots       BIGINT NOT NULL DEFAULT 0,
    running     BIGINT NOT NULL DEFAULT 0,
    coordinator TEXT,
    joined_at   BIGINT NOT NULL,
    last_seen   BIGINT,
    revoked_at  BIGINT
);
