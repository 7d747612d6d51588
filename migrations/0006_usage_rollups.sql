-- Usage rollups, maintained as events are written: per minute and per day, by tenant, key,
-- endpoint, status and error code; latency histograms per tenant and day (log buckets of 2%,
-- so percentiles over any period are within 1% without reading raw events).
ALTER TABLE usage_events ADD COLUMN error_detail TEXT;

CREATE TABLE usage_minute (
    tenant_id      TEXT NOT NULL,
    minute         BIGINT NOT NULL,
    key_id         TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    status         BIGINT NOT NULL,
    error_code     TEXT NOT NULL,
    requests       BIGINT NOT NULL,
    latency_sum_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, minute, key_id, endpoint, status, error_code)
);

CREATE TABLE usage_daily (
    tenant_id      TEXT NOT NULL,
    day            BIGINT NOT NULL,
    key_id         TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    status         BIGINT NOT NULL,
    error_code     TEXT NOT NULL,
    requests       BIGINT NOT NULL,
    latency_sum_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, key_id, endpoint, status, error_code)
);

CREATE TABLE usage_latency_daily (
    tenant_id TEXT NOT NULL,
    day       BIGINT NOT NULL,
    bucket    BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, bucket)
);
