-- Tool calls run on cluster workers. The id is stable across restarts of
-- the run (`<run>/<journal seq>`), so a resumed run finds its call. A
-- coordinator leases a job for the worker it sends it to; `attempt`
-- fences late results; a lost lease makes an idempotent job ready again
-- and a side-effecting one `unknown` (never run twice).
CREATE TABLE tool_jobs (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    input       TEXT NOT NULL,
    requires    TEXT NOT NULL,
    workspace   TEXT,
    sandbox     TEXT NOT NULL,
    idempotent  INTEGER NOT NULL,
    deadline    INTEGER NOT NULL,
    traceparent TEXT,
    status      TEXT NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    node        TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    output      TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX tool_jobs_ready ON tool_jobs (created_at) WHERE status = 'ready';
CREATE INDEX tool_jobs_leased ON tool_jobs (lease_until) WHERE status = 'leased';
CREATE INDEX tool_jobs_run ON tool_jobs (run_id);
