-- PostgreSQL tunes autovacuum for its queue tables here; SQLite reuses the
-- pages of deleted rows by itself. Kept so both lists stay the same.
SELECT 1;
