-- See sqlite/0002_jobs.sql. The claim reads `jobs_ready` with
-- FOR UPDATE SKIP LOCKED, so claimers never wait on each other.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    run_id      TEXT,
    payload     TEXT NOT NULL DEFAULT '{}',
    priority    BIGINT NOT NULL DEFAULT 0,
    run_at      BIGINT NOT NULL,
    status      TEXT NOT NULL,
    attempt     BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    dedup_key   TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (priority, run_at, id) WHERE status = 'ready';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE status = 'leased';
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;

ALTER TABLE sessions ADD COLUMN busy_owner TEXT;
