-- Cluster membership. A join token is stored as the hash of its secret;
-- spending it and recording the node it admits happen in one transaction.
CREATE TABLE cluster_tokens (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    labels        TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    used_at       INTEGER,
    used_by       TEXT
);
CREATE TABLE cluster_nodes (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    cert_sha256 TEXT NOT NULL UNIQUE,
    slots       INTEGER NOT NULL DEFAULT 0,
    running     INTEGER NOT NULL DEFAULT 0,
    coordinator TEXT,
    joined_at   INTEGER NOT NULL,
    last_seen   INTEGER,
    revoked_at  INTEGER
);
