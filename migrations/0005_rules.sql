-- Versions of the rhai limit rules: scope is 'default' or a tenant id. The highest version of a
-- scope is the one serving; every accepted change adds a version, so any can be rolled back to.
CREATE TABLE rules (
    id         TEXT PRIMARY KEY,
    scope      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    note       TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (scope, version)
);
