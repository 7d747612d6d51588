-- Raw usage events, one per /v1 request, written in batches by the usage pipeline.
CREATE TABLE usage_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT,
    key_id       TEXT,
    endpoint     TEXT NOT NULL,
    module       TEXT NOT NULL,
    status       BIGINT NOT NULL,
    status_class TEXT NOT NULL,
    error_code   TEXT,
    latency_us   BIGINT NOT NULL,
    tags         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX usage_events_tenant_time ON usage_events (tenant_id, created_at);
