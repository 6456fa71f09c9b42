-- The job queue. A job is handed to one executor at a time under a lease;
-- `attempt` is the fencing token: a completion or heartbeat from a stale
-- lease (lower attempt) is rejected. Finished jobs are deleted: the table
-- only ever holds live work.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    run_id      TEXT,
    payload     TEXT NOT NULL DEFAULT '{}',
    priority    INTEGER NOT NULL DEFAULT 0,
    run_at      INTEGER NOT NULL,
    status      TEXT NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    dedup_key   TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs (priority, run_at, id) WHERE status = 'ready';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE status = 'leased';
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;

-- Which process holds a session, so a restart can tell a dead holder at once.
ALTER TABLE sessions ADD COLUMN busy_owner TEXT;
