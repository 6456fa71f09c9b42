-- The number of facts kept, maintained by the triggers: the full-text
-- side of memory search weighs each query word by how rare it is (BM25's
-- IDF), which needs this count, and counting rows per search would cost
-- milliseconds at 100,000 facts.
ALTER TABLE memory_generation ADD COLUMN live INTEGER NOT NULL DEFAULT 0;
UPDATE memory_generation SET live = (SELECT count(*) FROM memories) WHERE id = 1;
DROP TRIGGER memories_ai;
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
    UPDATE memory_generation SET added = added + 1, live = live + 1 WHERE id = 1;
END;
DROP TRIGGER memories_ad;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    UPDATE memory_generation SET removed = removed + 1, live = live - 1 WHERE id = 1;
END;
-- The in-memory vector index scans only the facts a person may see; a fact
-- made shared changes that, so the index is rebuilt (rare: a fact is made
-- shared once at most).
CREATE TRIGGER memories_as AFTER UPDATE OF shared ON memories
WHEN old.shared != new.shared BEGIN
    UPDATE memory_generation SET removed = removed + 1 WHERE id = 1;
END;
