-- People's API keys: the id and a SHA-256 of the secret (never the
-- secret), the person, the role, and the one agent a key may be limited to.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    agent TEXT,
    secret_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
