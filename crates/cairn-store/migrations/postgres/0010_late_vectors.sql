-- See sqlite/0010_late_vectors.sql.
DROP TRIGGER memories_ae ON memories;
CREATE TRIGGER memories_ae AFTER UPDATE OF embedding ON memories
    FOR EACH ROW WHEN (old.embedding IS DISTINCT FROM new.embedding) EXECUTE FUNCTION memories_removed();
