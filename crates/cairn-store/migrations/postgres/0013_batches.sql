-- See sqlite/0013_batches.sql.
CREATE TABLE batches (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    agent        TEXT NOT NULL,
    source       TEXT NOT NULL,
    concurrency  BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE TABLE batch_items (
    batch_id TEXT NOT NULL REFERENCES batches (id),
    idx      BIGINT NOT NULL,
    label    TEXT NOT NULL,
    input    TEXT NOT NULL,
    status   TEXT NOT NULL,
    attempt  BIGINT NOT NULL DEFAULT 0,
    run_id   TEXT,
    output   TEXT,
    error    TEXT,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX batch_items_status ON batch_items (batch_id, status, idx);
CREATE TABLE leaders (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
