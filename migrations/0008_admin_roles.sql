-- Admins who can lose access: a role each (owner, admin, viewer), a disabled state, and an
-- e-mail unique within its tenant only (so creating one says nothing about other tenants).
-- Tokens get a role of their own (never above their admin's) and always expire.
-- The three tables are rebuilt, children first, so every foreign key follows.
CREATE TABLE admin_users_next (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    name          TEXT,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    disabled_at   BIGINT,
    UNIQUE (tenant_id, email)
);
-- Each tenant's first admin owns it; the rest keep what they could do: everything but
-- managing admins.
INSERT INTO admin_users_next (id, tenant_id, email, password_hash, created_at, name, role, disabled_at)
SELECT a.id, a.tenant_id, a.email, a.password_hash, a.created_at, a.name,
       CASE WHEN a.id = (SELECT b.id FROM admin_users b WHERE b.tenant_id = a.tenant_id
                         ORDER BY b.created_at, b.id LIMIT 1)
            THEN 'owner' ELSE 'admin' END,
       NULL
FROM admin_users a;

CREATE TABLE admin_sessions_next (
    digest       TEXT PRIMARY KEY,
    admin_id     TEXT NOT NULL REFERENCES admin_users_next (id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
INSERT INTO admin_sessions_next (digest, admin_id, csrf_token, created_at, expires_at)
SELECT digest, admin_id, csrf_token, created_at, expires_at FROM admin_sessions;

-- A token that never expired now expires a year after this migration's tokens were made.
CREATE TABLE admin_tokens_next (
    id             TEXT PRIMARY KEY,
    admin_id       TEXT NOT NULL REFERENCES admin_users_next (id),
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    digest         TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    last_used_at   BIGINT
);
INSERT INTO admin_tokens_next (id, admin_id, tenant_id, name, digest, display_prefix, role, created_at,
    expires_at, revoked_at, last_used_at)
SELECT t.id, t.admin_id, t.tenant_id, t.name, t.digest, t.display_prefix, 'admin', t.created_at,
       COALESCE(t.expires_at, t.created_at + 31536000000), t.revoked_at, t.last_used_at
FROM admin_tokens t;

DROP TABLE admin_sessions;
DROP TABLE admin_tokens;
DROP TABLE admin_users;
ALTER TABLE admin_users_next RENAME TO admin_users;
ALTER TABLE admin_sessions_next RENAME TO admin_sessions;
ALTER TABLE admin_tokens_next RENAME TO admin_tokens;
CREATE INDEX admin_users_email ON admin_users (email);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);
CREATE INDEX admin_tokens_tenant ON admin_tokens (tenant_id, created_at);
CREATE INDEX admin_tokens_admin ON admin_tokens (admin_id);
