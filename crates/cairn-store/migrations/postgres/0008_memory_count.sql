-- See sqlite/0008_memory_count.sql.
ALTER TABLE memory_generation ADD COLUMN live BIGINT NOT NULL DEFAULT 0;
UPDATE memory_generation SET live = (SELECT count(*) FROM memories) WHERE id = 1;
CREATE OR REPLACE FUNCTION memories_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memory_generation SET added = added + 1, live = live + 1,
        words = words + cairn_doc_len(new.tsv) WHERE id = 1;
    RETURN NULL;
END $$;
CREATE FUNCTION memories_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memory_generation SET removed = removed + 1, live = live - 1,
        words = words - cairn_doc_len(old.tsv) WHERE id = 1;
    RETURN NULL;
END $$;
DROP TRIGGER memories_ad ON memories;
CREATE TRIGGER memories_ad AFTER DELETE ON memories FOR EACH ROW EXECUTE FUNCTION memories_deleted();
CREATE TRIGGER memories_as AFTER UPDATE OF shared ON memories
    FOR EACH ROW WHEN (old.shared IS DISTINCT FROM new.shared) EXECUTE FUNCTION memories_removed();
-- A fact's text edited in place changes the word total (SQLite's FTS5
-- keeps its own totals).
CREATE FUNCTION memories_retexted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE memory_generation SET words = words - cairn_doc_len(old.tsv) + cairn_doc_len(new.tsv) WHERE id = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER memories_au AFTER UPDATE OF text ON memories
    FOR EACH ROW WHEN (old.text IS DISTINCT FROM new.text) EXECUTE FUNCTION memories_retexted();
