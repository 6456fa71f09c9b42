-- See sqlite/0004_compaction.sql.
CREATE TABLE session_compactions (
    session_id    TEXT NOT NULL REFERENCES sessions(id),
    through_seq   BIGINT NOT NULL,
    summary       TEXT NOT NULL,
    run_id        TEXT,
    tokens_before BIGINT NOT NULL,
    tokens_after  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (session_id, through_seq)
);
