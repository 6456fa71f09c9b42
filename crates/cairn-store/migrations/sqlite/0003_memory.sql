-- Semantic memory: facts an agent keeps, with their embedding (little-endian
-- f32, produced by `embed_model`) and a normalised-text hash that
-- de-duplicates them per agent. Full-text search through memories_fts,
-- kept in step by triggers.
CREATE TABLE memories (
    id          TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    user_id     TEXT,
    text        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    importance  REAL NOT NULL DEFAULT 0.5,
    source      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    embed_model TEXT,
    -- Last: reading the other columns never walks the blob's pages.
    embedding   BLOB
);
CREATE UNIQUE INDEX memories_dedup ON memories (agent, hash);

CREATE VIRTUAL TABLE memories_fts USING fts5 (
    text, content = 'memories', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
-- Counts of additions and removals (an embedding replaced counts as a
-- removal), so an in-memory vector index can tell in one row read whether
-- it may append or must rebuild.
CREATE TABLE memory_generation (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    added   INTEGER NOT NULL,
    removed INTEGER NOT NULL
);
INSERT INTO memory_generation (id, added, removed) VALUES (1, 0, 0);
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
    UPDATE memory_generation SET added = added + 1 WHERE id = 1;
END;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    UPDATE memory_generation SET removed = removed + 1 WHERE id = 1;
END;
CREATE TRIGGER memories_ae AFTER UPDATE OF embedding ON memories
WHEN old.embedding IS NOT NULL BEGIN
    UPDATE memory_generation SET removed = removed + 1 WHERE id = 1;
END;
CREATE TRIGGER memories_au AFTER UPDATE OF text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
END;

-- Episodic memory: every message's text (text blocks and tool results),
-- searchable. Indexed in batches, not per message, to keep the step commit
-- lean: after each run and before each search, messages past a session's
-- `episodic_progress` are added.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text, session_id UNINDEXED, seq UNINDEXED, tokenize = 'porter unicode61'
);
CREATE TABLE episodic_progress (
    session_id TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL
);
-- The person a session belongs to (set by channels); filters searches.
ALTER TABLE sessions ADD COLUMN user_id TEXT;
