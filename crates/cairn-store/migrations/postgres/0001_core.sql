-- PostgreSQL twin of sqlite/0001_core.sql: same tables, same columns, same
-- meaning; times are ms since the epoch in BIGINT on both backends so rows
-- copy across unchanged (`cairn migrate`).
CREATE TABLE agents (
    name       TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    agent      TEXT NOT NULL,
    version    BIGINT NOT NULL DEFAULT 0,
    busy_run   TEXT,
    busy_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE messages (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq        BIGINT NOT NULL,
    run_id     TEXT,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions(id),
    agent         TEXT NOT NULL,
    status        TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    steps         BIGINT NOT NULL DEFAULT 0,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX runs_session ON runs (session_id, created_at);
CREATE INDEX runs_created ON runs (created_at);

CREATE TABLE run_journal (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    ref_seq BIGINT,
    payload TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
