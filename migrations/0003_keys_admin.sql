-- API keys, tenant settings, the audit log, admin sessions and admin tokens.

CREATE TABLE tenant_settings (
    tenant_id                   TEXT PRIMARY KEY REFERENCES tenants (id),
    per_second                  BIGINT NOT NULL,
    per_minute                  BIGINT NOT NULL,
    per_hour                    BIGINT NOT NULL,
    per_day                     BIGINT NOT NULL,
    burst                       BIGINT NOT NULL,
    burst_window_seconds        BIGINT NOT NULL,
    send_retry_after            BIGINT NOT NULL,
    send_rate_limit_headers     BIGINT NOT NULL,
    require_https               BIGINT NOT NULL,
    validate_signatures         BIGINT NOT NULL,
    log_all_requests            BIGINT NOT NULL,
    default_key_expiration_days BIGINT,
    timezone                    TEXT NOT NULL,
    version                     BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    description    TEXT,
    environment    TEXT NOT NULL,
    digest         TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    scope          TEXT NOT NULL,
    grants         TEXT NOT NULL,
    per_second     BIGINT,
    per_minute     BIGINT,
    per_hour       BIGINT,
    per_day        BIGINT,
    burst          BIGINT,
    ip_allowlist   TEXT NOT NULL,
    expires_at     BIGINT,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    revoked_at     BIGINT,
    rotated_to     TEXT,
    version        BIGINT NOT NULL
);
CREATE INDEX api_keys_list ON api_keys (tenant_id, environment, created_at, id);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    changes     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_list ON audit_log (tenant_id, created_at, id);

ALTER TABLE admin_users ADD COLUMN name TEXT;

CREATE TABLE admin_sessions (
    digest       TEXT PRIMARY KEY,
    admin_id     TEXT NOT NULL REFERENCES admin_users (id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE admin_tokens (
    id           TEXT PRIMARY KEY,
    admin_id     TEXT NOT NULL REFERENCES admin_users (id),
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    digest       TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX admin_tokens_tenant ON admin_tokens (tenant_id, created_at);

-- Tenants created before this migration get the seeded defaults.
INSERT INTO tenant_settings (tenant_id, per_second, per_minute, per_hour, per_day, burst, burst_window_seconds,
    send_retry_after, send_rate_limit_headers, require_https, validate_signatures, log_all_requests,
    default_key_expiration_days, timezone, version, updated_at)
SELECT id, 10, 100, 2000, 20000, 20, 5, 1, 1, 0, 0, 0, NULL, 'UTC', 1, created_at FROM tenants;
