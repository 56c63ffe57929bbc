-- People who sign in (docs/sign-in.md): an argon2id hash of the password,
-- never the password; failed attempts and the lock-out they lead to live
-- on the row, so every instance counts the same attempts.
CREATE TABLE users (
    id            UUID        PRIMARY KEY,
    name          TEXT        NOT NULL,
    role          TEXT        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    failed_logins INTEGER     NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ,
    last_login_at TIMESTAMPTZ,
    disabled_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX users_name_key ON users (lower(name));

-- Sessions: only the SHA-256 of a session secret is kept.
CREATE TABLE user_sessions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
