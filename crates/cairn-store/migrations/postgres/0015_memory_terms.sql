-- See sqlite/0015_memory_terms.sql. The tsvector is made from the terms
-- cairn analyses (configuration `simple`: no stemming, no stopwords; the
-- terms are plain stemmed words already).
ALTER TABLE memories ADD COLUMN terms TEXT;
CREATE INDEX memories_unterm ON memories (rowid) WHERE terms IS NULL;
DROP INDEX memories_tsv;
ALTER TABLE memories DROP COLUMN tsv;
ALTER TABLE memories ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', COALESCE(terms, ''))) STORED;
CREATE INDEX memories_tsv ON memories USING GIN (tsv);
-- The word total follows the terms (filled after this migration, in Rust).
UPDATE memory_generation SET words = 0 WHERE id = 1;
DROP TRIGGER memories_au ON memories;
CREATE TRIGGER memories_au AFTER UPDATE OF terms ON memories
    FOR EACH ROW WHEN (old.terms IS DISTINCT FROM new.terms) EXECUTE FUNCTION memories_retexted();
