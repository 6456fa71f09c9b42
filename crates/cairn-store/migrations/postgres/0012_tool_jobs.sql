-- See sqlite/0012_tool_jobs.sql.
CREATE TABLE tool_jobs (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    input       TEXT NOT NULL,
    requires    TEXT NOT NULL,
    workspace   TEXT,
    sandbox     TEXT NOT NULL,
    idempotent  BOOLEAN NOT NULL,
    deadline    BIGINT NOT NULL,
    traceparent TEXT,
    status      TEXT NOT NULL,
    attempt     BIGINT NOT NULL DEFAULT 0,
    node        TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    output      TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX tool_jobs_ready ON tool_jobs (created_at) WHERE status = 'ready';
CREATE INDEX tool_jobs_leased ON tool_jobs (lease_until) WHERE status = 'leased';
CREATE INDEX tool_jobs_run ON tool_jobs (run_id);
