-- API tokens: only the SHA-256 of a token is kept, so a copy of the
-- database does not give access.
CREATE TABLE api_tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    hash       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL, -- Unix milliseconds, UTC
    revoked_at INTEGER
);
