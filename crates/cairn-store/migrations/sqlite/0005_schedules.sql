-- Schedules wake an agent with a prompt. `next_due` is the next occurrence
-- (NULL once a one-shot has fired); a scheduler advances it with
-- compare-and-set, in the same transaction as the fire record and the run
-- it starts.
CREATE TABLE schedules (
    id         TEXT PRIMARY KEY,
    agent      TEXT NOT NULL,
    session_id TEXT NOT NULL,
    prompt     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    tz         TEXT NOT NULL DEFAULT 'UTC',
    catch_up   TEXT NOT NULL DEFAULT 'once',
    paused     INTEGER NOT NULL DEFAULT 0,
    next_due   INTEGER,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    -- JSON of a heartbeat's policy (quiet hours, cost cap, idle time).
    heartbeat  TEXT
);
CREATE INDEX schedules_due ON schedules (next_due) WHERE paused = 0 AND next_due IS NOT NULL;

-- Exactly once per (schedule, due time): the primary key. Missed and
-- skipped occurrences are recorded too, with their reason, never silently.
CREATE TABLE schedule_fires (
    schedule_id TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    handled_at  INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    run_id      TEXT,
    PRIMARY KEY (schedule_id, due_at)
) WITHOUT ROWID;

-- Liveness of scheduler loops, so that an agent creating a schedule is told
-- when nothing would fire it.
CREATE TABLE scheduler_heartbeats (
    owner   TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
