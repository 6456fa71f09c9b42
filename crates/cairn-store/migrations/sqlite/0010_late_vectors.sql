-- An in-memory vector index reads embeddings in row order after the last
-- row it saw. A fact's first embedding stored later (a backfill after an
-- embedder is configured) lands below that cursor, so it must count as a
-- change that makes indexes rebuild, like a replaced one.
DROP TRIGGER memories_ae;
CREATE TRIGGER memories_ae AFTER UPDATE OF embedding ON memories
WHEN old.embedding IS NOT new.embedding BEGIN
    UPDATE memory_generation SET removed = removed + 1 WHERE id = 1;
END;
