-- OAuth 2.0 authorization code with PKCE (RFC 7636, S256) for third-party apps a tenant's admin
-- approves, and refresh tokens that rotate on use (a reused one revokes its family).
ALTER TABLE oauth_clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE oauth_tokens ADD COLUMN family_id TEXT;

CREATE TABLE oauth_authorizations (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(id),
    redirect_uri   TEXT NOT NULL,
    grants         TEXT NOT NULL,
    scope          TEXT NOT NULL,
    state          TEXT,
    code_challenge TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    decided_at     BIGINT,
    decided_by     TEXT,
    code_digest    TEXT UNIQUE,
    code_used_at   BIGINT,
    family_id      TEXT
);

CREATE TABLE oauth_refresh_tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oauth_clients(id),
    family_id  TEXT NOT NULL,
    digest     TEXT NOT NULL UNIQUE,
    environment TEXT NOT NULL,
    grants     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family_id);
