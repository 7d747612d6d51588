-- What may never be, said by the database: every writer, on every node, is held to it.

-- Stock is never negative and never below what confirmed orders hold. Rows broken by earlier
-- races are clamped into range so the constraint can be added.
CREATE TABLE inventory_checked (
    product_id TEXT PRIMARY KEY REFERENCES products (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    on_hand    BIGINT NOT NULL,
    reserved   BIGINT NOT NULL CHECK (reserved >= 0),
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (on_hand >= reserved)
);
INSERT INTO inventory_checked (product_id, tenant_id, on_hand, reserved, version, created_at, updated_at)
SELECT product_id, tenant_id,
       CASE WHEN on_hand < (CASE WHEN reserved < 0 THEN 0 ELSE reserved END)
            THEN (CASE WHEN reserved < 0 THEN 0 ELSE reserved END) ELSE on_hand END,
       CASE WHEN reserved < 0 THEN 0 ELSE reserved END,
       version, created_at, updated_at
FROM inventory;
DROP TABLE inventory;
ALTER TABLE inventory_checked RENAME TO inventory;
CREATE INDEX inventory_list ON inventory (tenant_id, created_at, product_id);

-- An order is invoiced at most once.
CREATE UNIQUE INDEX invoices_one_per_order ON invoices (order_id);

-- Idempotency claims are leases, scoped per API key: a claim whose request never finished can
-- be taken again once `lease_until` has passed, and one key never sees another key's answer.
CREATE TABLE idempotency_claims (
    tenant_id    TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    location     TEXT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id, idem_key)
);
CREATE INDEX idempotency_claims_age ON idempotency_claims (created_at);
DROP TABLE idempotency_keys;

-- How far each node's usage spool has been written: a replay after a crash starts after it.
CREATE TABLE usage_spool_marks (
    node TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
