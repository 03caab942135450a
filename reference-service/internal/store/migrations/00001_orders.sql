-- +goose Up
CREATE TABLE orders (
    tenant_id      text        NOT NULL,
    id             uuid        NOT NULL,
    customer_email text        NOT NULL,
    currency       text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor   bigint      NOT NULL CHECK (amount_minor > 0),
    items          jsonb       NOT NULL,
    status         text        NOT NULL
        CHECK (status IN ('pending_payment', 'paid', 'payment_declined', 'cancelled')),
    card_last4     text        NOT NULL,
    payment_id     text,
    version        integer     NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- The tenant leads every key so that no query can reach a row without naming its tenant.
    PRIMARY KEY (tenant_id, id)
)
-- Free space on each page lets the settling update stay a heap-only (HOT) update: no column it
-- changes is indexed, so no index is touched.
WITH (fillfactor = 85);

-- Keyset pagination walks (created_at, id) downwards inside one tenant.
CREATE INDEX orders_tenant_page ON orders (tenant_id, created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    tenant_id       text        NOT NULL,
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,
    order_id        uuid        NOT NULL,
    -- 'order_created': the order and its event are committed, payment not yet settled;
    -- 'finished': response_status and response_body hold the response to replay.
    recovery_point  text        NOT NULL CHECK (recovery_point IN ('order_created', 'finished')),
    locked_until    timestamptz,
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
)
-- Recording the response grows the row; room on the page keeps that update heap-only.
WITH (fillfactor = 70);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_order ON idempotency_keys (tenant_id, order_id);

CREATE TABLE outbox (
    seq          bigserial   PRIMARY KEY,
    -- The writing transaction's id: rows are published only once every older transaction has
    -- ended, so a late commit can never be overtaken (see internal/outbox).
    txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id     uuid        NOT NULL UNIQUE,
    tenant_id    text        NOT NULL,
    subject      text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);

CREATE INDEX outbox_pending ON outbox (txid, seq) WHERE published_at IS NULL;

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    tenant_id   text        NOT NULL,
    order_id    uuid        NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    from_status text,
    to_status   text        NOT NULL,
    request_id  text        NOT NULL,
    at          timestamptz NOT NULL
);

CREATE INDEX audit_log_order ON audit_log (tenant_id, order_id, id);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE outbox;
DROP TABLE idempotency_keys;
DROP TABLE orders;
