-- See sqlite/0007_users_apart.sql.
ALTER TABLE runs ADD COLUMN user_id TEXT;
ALTER TABLE memories ADD COLUMN shared BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE memories ADD COLUMN owner TEXT GENERATED ALWAYS AS (COALESCE(user_id, '')) STORED;
DROP INDEX memories_dedup;
CREATE UNIQUE INDEX memories_dedup ON memories (agent, owner, hash);
ALTER TABLE schedules ADD COLUMN user_id TEXT;
CREATE TABLE channel_strangers (
    channel    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    messages   BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    last_told  BIGINT,
    PRIMARY KEY (channel, user_id)
);
