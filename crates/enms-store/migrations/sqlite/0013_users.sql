-- People who sign in (docs/sign-in.md): an argon2id hash of the password,
-- never the password; failed attempts and the lock-out they lead to live
-- on the row, so every instance counts the same attempts.
CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL, -- Unix milliseconds, UTC
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    last_login_at INTEGER,
    disabled_at   INTEGER
);

-- Sessions: only the SHA-256 of a session secret is kept.
CREATE TABLE user_sessions (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
