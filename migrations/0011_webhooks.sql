-- Webhooks. An event is written in the same transaction as the change that caused it, into the
-- outbox, when the tenant has an endpoint subscribed to it. Workers on every node move outbox
-- rows into deliveries (one per subscribed endpoint) and claim due deliveries under a lease, so
-- no two nodes fan out the same event or send the same attempt at once, and a crash loses
-- nothing (a delivery may repeat; receivers de-duplicate on the event id).
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    -- A JSON array of event types; [] subscribes to every type.
    events          TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    disabled_reason TEXT,
    -- Signing secrets, sealed with a key derived from keys.pepper. The previous one signs too
    -- until previous_until (a rotation's grace).
    secret          TEXT NOT NULL,
    secret_hint     TEXT NOT NULL,
    previous_secret TEXT,
    previous_until  BIGINT,
    -- Start of the current run of failed attempts; three days of it disables the endpoint.
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_list ON webhook_endpoints (tenant_id, created_at, id);

-- Append-only and drained within milliseconds: no key and no index, so the change's own
-- transaction pays the cheapest insert there is.
CREATE TABLE webhook_outbox (
    event_id   TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The resource as /v1 returned it, JSON.
    object     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- The event's object (the resource as /v1 returned it, JSON) and when the event happened.
    object           TEXT NOT NULL,
    event_created_at BIGINT NOT NULL,
    -- pending, delivered or failed (gave up, or the endpoint answered 410).
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    due_at           BIGINT NOT NULL,
    -- A worker holds a claimed delivery until then; past it (the worker died) it is due again.
    lease_until      BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    last_latency_ms  BIGINT,
    response_excerpt TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (endpoint_id, created_at, id);

CREATE TABLE webhook_attempts (
    delivery_id      TEXT NOT NULL,
    attempt          BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    latency_ms       BIGINT NOT NULL,
    status           BIGINT,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- inventory.low fires when available stock falls below the product's threshold.
ALTER TABLE inventory ADD COLUMN low_stock_threshold BIGINT;
-- api_key.expiring fires once per key, seven days before it expires.
ALTER TABLE api_keys ADD COLUMN expiry_announced BIGINT NOT NULL DEFAULT 0;
