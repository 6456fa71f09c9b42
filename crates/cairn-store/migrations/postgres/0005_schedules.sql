-- See sqlite/0005_schedules.sql.
CREATE TABLE schedules (
    id         TEXT PRIMARY KEY,
    agent      TEXT NOT NULL,
    session_id TEXT NOT NULL,
    prompt     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    tz         TEXT NOT NULL DEFAULT 'UTC',
    catch_up   TEXT NOT NULL DEFAULT 'once',
    paused     BOOLEAN NOT NULL DEFAULT false,
    next_due   BIGINT,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    heartbeat  TEXT
);
CREATE INDEX schedules_due ON schedules (next_due) WHERE NOT paused AND next_due IS NOT NULL;

CREATE TABLE schedule_fires (
    schedule_id TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    handled_at  BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    run_id      TEXT,
    PRIMARY KEY (schedule_id, due_at)
);

CREATE TABLE scheduler_heartbeats (
    owner   TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
