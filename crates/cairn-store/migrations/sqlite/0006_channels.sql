-- Channels (Telegram, Slack, signed webhooks). An inbound message is
-- committed here — with the run it starts, in one transaction — before the
-- platform is told it arrived, and the platform's message id makes a
-- redelivery a no-op. Replies wait in the outbox until delivered (retried
-- with backoff across restarts) or dead-lettered.
CREATE TABLE channel_inbox (
    channel     TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    thread      TEXT,
    user_id     TEXT NOT NULL,
    text        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,          -- queued (a run) | refused (not allowed)
    session_id  TEXT,
    run_id      TEXT,
    replied     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, platform_id)
) WITHOUT ROWID;
CREATE INDEX channel_inbox_awaiting ON channel_inbox (run_id) WHERE replied = 0 AND run_id IS NOT NULL;

CREATE TABLE channel_outbox (
    id          TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    thread      TEXT,
    text        TEXT NOT NULL,
    run_id      TEXT,
    status      TEXT NOT NULL,          -- pending | sent | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER
);
CREATE INDEX channel_outbox_due ON channel_outbox (next_at) WHERE status = 'pending';

-- Where a polling channel has read up to (Telegram's update offset).
CREATE TABLE channel_cursors (
    channel TEXT PRIMARY KEY,
    cursor  TEXT NOT NULL
);

-- A provider that rate-limited us (or whose subscription is in cooldown):
-- runs wait until `until` instead of failing or retrying in a loop.
CREATE TABLE provider_cooldowns (
    provider TEXT PRIMARY KEY,
    until    INTEGER NOT NULL,
    reason   TEXT NOT NULL
);
