-- Failed jobs are retried with backoff, then kept as dead letters
-- (status 'dead', with their last error) instead of vanishing. The dedup
-- key binds live jobs only, so a dead job never blocks its successor.
ALTER TABLE jobs ADD COLUMN last_error TEXT;
DROP INDEX jobs_dedup;
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL AND status != 'dead';
