-- Working memory: when a session's context outgrows its token budget, the
-- messages up to `through_seq` are replaced in the context (not in the
-- `messages` table: they stay, as episodic memory) by a summary. The newest
-- row of a session is in force. Written in the same transaction as the
-- journal entry that records it.
CREATE TABLE session_compactions (
    session_id    TEXT NOT NULL REFERENCES sessions(id),
    through_seq   INTEGER NOT NULL,
    summary       TEXT NOT NULL,
    run_id        TEXT,
    tokens_before INTEGER NOT NULL,
    tokens_after  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (session_id, through_seq)
) WITHOUT ROWID;
