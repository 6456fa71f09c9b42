-- Failed jobs are retried with backoff, then kept as dead letters
-- (status 'dead', with their last error) instead of vanishing. The dedup
-- key binds live jobs only, so a dead job never blocks its successor.
ALTER TABLE jobs ADD COLUMN last_error TEXT;
DROP INDEX jobs_dedup;
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL AND status != 'dead';

-- The claim, as a function so it can carry its own planner settings: with
-- statistics from when the table was small (a burst of enqueues between
-- autovacuum's visits), PostgreSQL would sort every ready job on each claim
-- instead of reading the ready index in order and stopping at the first
-- unlocked rows. Bitmap scans and sorts are off inside this function only.
CREATE FUNCTION cairn_claim_jobs(p_owner TEXT, p_lease_until BIGINT, p_now BIGINT, p_kinds TEXT[], p_max BIGINT)
RETURNS TABLE (id TEXT, kind TEXT, run_id TEXT, payload TEXT, attempt BIGINT, priority BIGINT, run_at BIGINT)
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    -- PL/pgSQL keeps the plan between calls (a SQL function plans anew).
    RETURN QUERY
    UPDATE jobs AS u SET status = 'leased', attempt = u.attempt + 1, lease_owner = p_owner, lease_until = p_lease_until
    WHERE u.id IN (
        SELECT j.id FROM jobs j
        WHERE j.status = 'ready' AND j.run_at <= p_now AND j.kind = ANY(p_kinds)
          AND NOT EXISTS (SELECT 1 FROM runs r JOIN sessions s ON s.id = r.session_id
                          WHERE r.id = j.run_id AND s.busy_run IS NOT NULL
                            AND s.busy_run != r.id AND s.busy_until >= p_now)
        ORDER BY j.priority, j.run_at, j.id
        LIMIT p_max
        FOR UPDATE SKIP LOCKED)
    RETURNING u.id, u.kind, u.run_id, u.payload, u.attempt, u.priority, u.run_at;
END $$;
