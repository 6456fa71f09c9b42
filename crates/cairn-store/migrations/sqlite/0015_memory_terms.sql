-- The facts' full-text index holds the words cairn analyses itself
-- (`index_terms`: split, lower-cased, Snowball English stems) instead of
-- FTS5's porter tokenizer's, so that PostgreSQL, indexing the same terms,
-- ranks facts exactly as SQLite does. `terms` is filled in Rust: on new
-- facts when they are saved, on existing ones when the store opens (the
-- index is rebuilt once they are all filled).
ALTER TABLE memories ADD COLUMN terms TEXT;
CREATE INDEX memories_unterm ON memories (id) WHERE terms IS NULL;
DROP TRIGGER memories_ai;
DROP TRIGGER memories_ad;
DROP TRIGGER memories_au;
DROP TABLE memories_fts;
CREATE VIRTUAL TABLE memories_fts USING fts5 (
    terms, content = 'memories', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 0'
);
-- A fact inserted without terms is indexed when they are filled in.
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, terms) SELECT new.rowid, new.terms WHERE new.terms IS NOT NULL;
    UPDATE memory_generation SET added = added + 1, live = live + 1 WHERE id = 1;
END;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, terms)
        SELECT 'delete', old.rowid, old.terms WHERE old.terms IS NOT NULL;
    UPDATE memory_generation SET removed = removed + 1, live = live - 1 WHERE id = 1;
END;
-- Only facts already indexed are deleted from the index first: deleting a
-- row FTS5 never held would corrupt its totals.
CREATE TRIGGER memories_au AFTER UPDATE OF terms ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, terms)
        SELECT 'delete', old.rowid, old.terms WHERE old.terms IS NOT NULL;
    INSERT INTO memories_fts (rowid, terms) SELECT new.rowid, new.terms WHERE new.terms IS NOT NULL;
END;
