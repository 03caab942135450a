-- name: InsertIdempotencyKey :execrows
-- A concurrent duplicate blocks here on the primary key until the first transaction ends, then
-- inserts nothing and reads the winner's row.
INSERT INTO idempotency_keys (tenant_id, key, request_hash, order_id, recovery_point, locked_until, created_at)
VALUES ($1, $2, $3, $4, 'order_created', $5, $6)
ON CONFLICT (tenant_id, key) DO NOTHING;

-- name: GetIdempotencyKey :one
SELECT tenant_id, key, request_hash, order_id, recovery_point, locked_until, response_status, response_body, created_at
FROM idempotency_keys
WHERE tenant_id = $1 AND key = $2;

-- name: AcquireIdempotencyLease :execrows
-- Takes over an abandoned in-flight key; the compare on the old lease makes two takers race safely.
UPDATE idempotency_keys
SET locked_until = sqlc.arg(new_lease)
WHERE tenant_id = sqlc.arg(tenant_id) AND key = sqlc.arg(key)
  AND recovery_point = 'order_created'
  AND locked_until IS NOT DISTINCT FROM sqlc.narg(old_lease);

-- name: ReleaseIdempotencyLease :exec
UPDATE idempotency_keys
SET locked_until = NULL
WHERE tenant_id = $1 AND key = $2 AND recovery_point = 'order_created';

-- name: FinishIdempotencyKey :exec
UPDATE idempotency_keys
SET recovery_point = 'finished', locked_until = NULL, response_status = $3, response_body = $4
WHERE tenant_id = $1 AND key = $2;

-- name: DeleteExpiredIdempotencyKeys :execrows
DELETE FROM idempotency_keys
WHERE created_at < $1 AND recovery_point = 'finished';

-- name: PaymentInFlight :one
-- Whether a request is charging this order right now (its key is leased and unfinished).
SELECT EXISTS (
    SELECT 1 FROM idempotency_keys
    WHERE tenant_id = @tenant_id::text AND order_id = @order_id::uuid
      AND recovery_point = 'order_created' AND locked_until > @now::timestamptz
) AS in_flight;

-- name: InsertOrder :exec
INSERT INTO orders (tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9);

-- name: GetOrder :one
SELECT tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, payment_id, version, created_at, updated_at
FROM orders
WHERE tenant_id = $1 AND id = $2;

-- name: GetOrderForUpdate :one
SELECT tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, payment_id, version, created_at, updated_at
FROM orders
WHERE tenant_id = $1 AND id = $2
FOR UPDATE;

-- name: UpdateOrderStatus :one
UPDATE orders
SET status = $3, payment_id = COALESCE(sqlc.narg(payment_id), payment_id), version = version + 1, updated_at = $4
WHERE tenant_id = $1 AND id = $2
RETURNING tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, payment_id, version, created_at, updated_at;

-- name: ListOrdersFirstPage :many
SELECT tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, payment_id, version, created_at, updated_at
FROM orders
WHERE tenant_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2;

-- name: ListOrdersAfter :many
SELECT tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, payment_id, version, created_at, updated_at
FROM orders
WHERE tenant_id = sqlc.arg(tenant_id)
  AND (created_at, id) < (sqlc.arg(after_created_at)::timestamptz, sqlc.arg(after_id)::uuid)
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(page_size);

-- name: InsertOutbox :exec
INSERT INTO outbox (event_id, tenant_id, subject, payload, created_at)
VALUES ($1, $2, $3, $4, $5);

-- name: PendingOutbox :many
-- Only rows of transactions older than every still-running one: a transaction that commits later
-- than a newer one cannot slip in behind a row already published.
SELECT seq, event_id, tenant_id, subject, payload, created_at
FROM outbox
WHERE published_at IS NULL
  AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY txid, seq
LIMIT sqlc.arg(max_rows)::int;

-- name: MarkOutboxPublished :exec
UPDATE outbox SET published_at = sqlc.arg(published_at) WHERE seq = ANY(sqlc.arg(seqs)::bigint[]) AND published_at IS NULL;

-- name: OutboxBacklog :one
-- Read every second, also while the relay is down and events pile up: both parts walk the
-- pending index and stop early. The count stops at 100000 (a backlog alert fires far below it);
-- the oldest is the head of the queue the relay publishes in order.
SELECT
  (SELECT count(*) FROM (
     SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT 100000
   ) AS p)::bigint AS pending,
  COALESCE((
    SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY txid, seq LIMIT 1
  ), now())::timestamptz AS oldest;

-- name: TryRelayLock :one
SELECT pg_try_advisory_xact_lock(sqlc.arg(lock_key)::bigint) AS locked;

-- name: InsertAudit :exec
INSERT INTO audit_log (tenant_id, order_id, actor, action, from_status, to_status, request_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: ListAudit :many
SELECT id, tenant_id, order_id, actor, action, from_status, to_status, request_id, at
FROM audit_log
WHERE tenant_id = $1 AND order_id = $2
ORDER BY id;

-- name: PlaceOrderFast :execrows
-- The common case of BeginPlacement in one statement, so one round trip and one implicit
-- transaction: the key, and only if the key was new, the order, its event and its audit row.
-- Affects 1 row (the audit row) when all four were written, 0 when the key already existed and
-- nothing was. Each write hangs off the key's RETURNING alone: a failed insert fails the whole
-- statement, so nothing else needs to hand a row on, and the statement returns no rows at all.
WITH k AS (
    INSERT INTO idempotency_keys (tenant_id, key, request_hash, order_id, recovery_point, locked_until, created_at)
    VALUES (@tenant_id::text, @key::text, @request_hash::bytea, @order_id::uuid, 'order_created', @locked_until::timestamptz, @now::timestamptz)
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING order_id
), o AS (
    INSERT INTO orders (tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, created_at, updated_at)
    SELECT @tenant_id::text, k.order_id, @customer_email::text, @currency::text, @amount_minor::bigint, @items::jsonb,
           @status::text, @card_last4::text, @now::timestamptz, @now::timestamptz
    FROM k
), e AS (
    INSERT INTO outbox (event_id, tenant_id, subject, payload, created_at)
    SELECT @event_id::uuid, @tenant_id::text, @subject::text, @payload::jsonb, @now::timestamptz FROM k
)
INSERT INTO audit_log (tenant_id, order_id, actor, action, from_status, to_status, request_id, at)
SELECT @tenant_id::text, k.order_id, @actor::text, 'order.create', NULL, @status::text, @request_id::text, @now::timestamptz FROM k;

-- name: SettleOrderFast :execrows
-- The common case of FinishPlacement in one statement: only if the order is still pending at the
-- version the caller rendered, settle it, write its event and audit row, and record the response.
-- Affects 1 row (the key) when all four were written, 0 when the order moved meanwhile (or its
-- key is gone) and nothing was recorded.
WITH o AS (
    UPDATE orders
    SET status = @status::text, payment_id = sqlc.narg(payment_id)::text, version = version + 1, updated_at = @now::timestamptz
    WHERE tenant_id = @tenant_id::text AND id = @order_id::uuid AND status = 'pending_payment' AND version = @version::int
    RETURNING id
), e AS (
    INSERT INTO outbox (event_id, tenant_id, subject, payload, created_at)
    SELECT @event_id::uuid, @tenant_id::text, @subject::text, @payload::jsonb, @now::timestamptz FROM o
), a AS (
    INSERT INTO audit_log (tenant_id, order_id, actor, action, from_status, to_status, request_id, at)
    SELECT @tenant_id::text, o.id, @actor::text, 'order.settle_payment', 'pending_payment', @status::text, @request_id::text, @now::timestamptz FROM o
)
UPDATE idempotency_keys
SET recovery_point = 'finished', locked_until = NULL, response_status = @response_status::int, response_body = @response_body::bytea
WHERE tenant_id = @tenant_id::text AND key = @key::text AND EXISTS (SELECT 1 FROM o);

-- name: DeletePublishedOutbox :execrows
-- Published events older than the cutoff, walking the primary key only below the oldest event
-- still waiting, so the delete never scans the whole table.
DELETE FROM outbox
WHERE seq < COALESCE((SELECT min(p.seq) FROM outbox p WHERE p.published_at IS NULL), 9223372036854775807)
  AND published_at IS NOT NULL
  AND created_at < @cutoff::timestamptz;

-- name: FinishKeyFast :execrows
-- Records the response for an order left pending (payments switched off), only if the order is
-- still at the version the caller rendered.
UPDATE idempotency_keys
SET recovery_point = 'finished', locked_until = NULL, response_status = @response_status::int, response_body = @response_body::bytea
WHERE tenant_id = @tenant_id::text AND key = @key::text
  AND EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = @tenant_id::text AND o.id = @order_id::uuid AND o.version = @version::int);
