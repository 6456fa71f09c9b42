-- Users kept apart. A run carries the person it works for (in a group chat
-- that is the sender of the message, not the session's first speaker); a
-- memory is that person's unless marked shared, and the same fact said by
-- two people is two facts; a schedule belongs to the person who made it.
-- NULL is the local owner (the CLI, keyless loopback API clients).
ALTER TABLE runs ADD COLUMN user_id TEXT;
ALTER TABLE memories ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE memories ADD COLUMN owner TEXT GENERATED ALWAYS AS (COALESCE(user_id, '')) VIRTUAL;
DROP INDEX memories_dedup;
CREATE UNIQUE INDEX memories_dedup ON memories (agent, owner, hash);
ALTER TABLE schedules ADD COLUMN user_id TEXT;
-- Strangers (senders not on a channel's allowlist) are counted, not stored:
-- their words never reach a run, a prompt or the inbox, and they are told
-- "no" at most once an hour however much they send.
CREATE TABLE channel_strangers (
    channel    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    messages   INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    last_told  INTEGER,
    PRIMARY KEY (channel, user_id)
) WITHOUT ROWID;
