-- The /v1 resources. Every row carries tenant_id; lists walk (tenant_id, created_at, id).
-- JSON documents (addresses, metadata) are TEXT; money is BIGINT minor units plus a currency.

CREATE TABLE sequences (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name      TEXT NOT NULL,
    value     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE customers (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    code            TEXT NOT NULL,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    phone           TEXT,
    billing_address TEXT,
    metadata        TEXT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, code)
);
CREATE INDEX customers_list ON customers (tenant_id, created_at, id);
CREATE INDEX customers_email ON customers (tenant_id, email);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    unit_price  BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, sku)
);
CREATE INDEX products_list ON products (tenant_id, created_at, id);

CREATE TABLE inventory (
    product_id TEXT PRIMARY KEY REFERENCES products (id),
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    on_hand    BIGINT NOT NULL,
    reserved   BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX inventory_list ON inventory (tenant_id, created_at, product_id);

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    code        TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    status      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    total       BIGINT NOT NULL,
    notes       TEXT,
    metadata    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, code)
);
CREATE INDEX orders_list ON orders (tenant_id, created_at, id);
CREATE INDEX orders_customer ON orders (tenant_id, customer_id);

CREATE TABLE order_lines (
    order_id   TEXT NOT NULL REFERENCES orders (id),
    line_no    BIGINT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    quantity   BIGINT NOT NULL,
    unit_price BIGINT NOT NULL,
    amount     BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_product ON order_lines (product_id);

CREATE TABLE invoices (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    code        TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    order_id    TEXT REFERENCES orders (id),
    currency    TEXT NOT NULL,
    amount_due  BIGINT NOT NULL,
    amount_paid BIGINT NOT NULL,
    status      TEXT NOT NULL,
    description TEXT,
    due_at      BIGINT,
    metadata    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, code)
);
CREATE INDEX invoices_list ON invoices (tenant_id, created_at, id);
CREATE INDEX invoices_customer ON invoices (tenant_id, customer_id);

CREATE TABLE payments (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    code       TEXT NOT NULL,
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    amount     BIGINT NOT NULL,
    currency   TEXT NOT NULL,
    method     TEXT NOT NULL,
    reference  TEXT,
    metadata   TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, code)
);
CREATE INDEX payments_list ON payments (tenant_id, created_at, id);
CREATE INDEX payments_invoice ON payments (tenant_id, invoice_id);

-- Idempotency-Key replay store: the first response to a POST, kept for at least 24 hours.
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    location     TEXT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
