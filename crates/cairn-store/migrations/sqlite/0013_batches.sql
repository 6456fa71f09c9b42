-- Batch fan-out. An item's run is created and recorded on the item in one
-- transaction, only if the item has no live run: an item never gets two.
CREATE TABLE batches (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    agent        TEXT NOT NULL,
    source       TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE TABLE batch_items (
    batch_id TEXT NOT NULL REFERENCES batches (id),
    idx      INTEGER NOT NULL,
    label    TEXT NOT NULL,
    input    TEXT NOT NULL,
    status   TEXT NOT NULL,
    attempt  INTEGER NOT NULL DEFAULT 0,
    run_id   TEXT,
    output   TEXT,
    error    TEXT,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX batch_items_status ON batch_items (batch_id, status, idx);
-- Maintenance that must run in one process at a time (the batch driver):
-- whoever holds the row until `until` leads; anyone may take it after.
CREATE TABLE leaders (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
