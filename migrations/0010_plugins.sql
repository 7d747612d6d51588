-- Plugins for the whole cluster: each version of a component (base64 text, so the same SQL runs
-- on both databases), which version serves each name, and what each node has loaded.
CREATE TABLE plugin_versions (
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    component      TEXT NOT NULL,
    plugin_version TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE plugin_active (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE node_plugins (
    node      TEXT NOT NULL,
    address   TEXT NOT NULL,
    stage     TEXT NOT NULL,
    name      TEXT NOT NULL,
    source    TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    loaded_at BIGINT NOT NULL,
    PRIMARY KEY (node, stage)
);
