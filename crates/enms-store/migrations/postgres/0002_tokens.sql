-- API tokens: only the SHA-256 of a token is kept, so a copy of the
-- database does not give access.
CREATE TABLE api_tokens (
    id         UUID        PRIMARY KEY,
    name       TEXT        NOT NULL,
    role       TEXT        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    hash       TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_name_key ON api_tokens (lower(name));
