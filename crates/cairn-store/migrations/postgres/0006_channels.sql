-- See sqlite/0006_channels.sql.
CREATE TABLE channel_inbox (
    channel     TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    thread      TEXT,
    user_id     TEXT NOT NULL,
    text        TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    session_id  TEXT,
    run_id      TEXT,
    replied     BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (channel, platform_id)
);
CREATE INDEX channel_inbox_awaiting ON channel_inbox (run_id) WHERE NOT replied AND run_id IS NOT NULL;

CREATE TABLE channel_outbox (
    id          TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    thread      TEXT,
    text        TEXT NOT NULL,
    run_id      TEXT,
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
);
CREATE INDEX channel_outbox_due ON channel_outbox (next_at) WHERE status = 'pending';

CREATE TABLE channel_cursors (
    channel TEXT PRIMARY KEY,
    cursor  TEXT NOT NULL
);

CREATE TABLE provider_cooldowns (
    provider TEXT PRIMARY KEY,
    until    BIGINT NOT NULL,
    reason   TEXT NOT NULL
);
