-- What changed, in order: every node drops what it cached of it (a key, a tenant's settings, a
-- rule, a plugin) within a second. A change is recorded in the same transaction as itself; the
-- sequence row is taken last, so changes become visible in sequence order.
CREATE TABLE change_seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_seq (id, seq) VALUES (1, 0);

CREATE TABLE changes (
    seq        BIGINT PRIMARY KEY,
    tenant_id  TEXT,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX changes_age ON changes (created_at);
