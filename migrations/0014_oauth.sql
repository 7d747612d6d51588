-- OAuth 2.0 client credentials (RFC 6749 §4.4): clients per tenant, and the opaque access
-- tokens issued to them, stored as digests like API keys.
ALTER TABLE tenant_settings ADD COLUMN oauth_enabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenant_settings ADD COLUMN oauth_token_ttl_minutes BIGINT NOT NULL DEFAULT 60;

CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    secret_digest TEXT NOT NULL,
    -- The grants a token may carry at most: module -> none, read or read_write (JSON).
    grants        TEXT NOT NULL,
    -- JSON list of "live" and "test".
    environments  TEXT NOT NULL,
    per_second    BIGINT,
    per_minute    BIGINT,
    per_hour      BIGINT,
    per_day       BIGINT,
    burst         BIGINT,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id, created_at);

CREATE TABLE oauth_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL REFERENCES oauth_clients(id),
    digest      TEXT NOT NULL UNIQUE,
    environment TEXT NOT NULL,
    grants      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id);
