package store_test

import (
	"context"
	"testing"
	"time"

	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/store/db"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// TestOutboxBacklogIsBoundedAndReadsTheHead: the backlog gauges are read every second, also
// while events pile up, so the count stops at 100000 and the age is the oldest pending event
// (the head of the relay's queue, in write order); published events count for neither.
func TestOutboxBacklogIsBoundedAndReadsTheHead(t *testing.T) {
	pg := platformtest.StartPostgres(t)
	pool, _ := testenv.Database(t, pg.DSN)
	ctx := context.Background()
	q := db.New(pool)

	b, err := q.OutboxBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pending != 0 || time.Since(b.Oldest) > time.Minute {
		t.Fatalf("empty outbox: got %d pending, oldest %v", b.Pending, b.Oldest)
	}

	// One published event, older than all, then 100001 pending ones written an hour ago onwards.
	head := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := pool.Exec(ctx, `
INSERT INTO outbox (event_id, tenant_id, subject, payload, created_at, published_at)
VALUES (gen_random_uuid(), 't', 's', '{}', $1::timestamptz - interval '1 day', now())`, head); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
INSERT INTO outbox (event_id, tenant_id, subject, payload, created_at)
SELECT gen_random_uuid(), 't', 's', '{}', $1::timestamptz + g * interval '1 ms'
FROM generate_series(0, 100000) AS g ORDER BY g`, head); err != nil {
		t.Fatal(err)
	}
	b, err = q.OutboxBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pending != 100000 {
		t.Errorf("pending: got %d, want the bound 100000 (100001 wait)", b.Pending)
	}
	if !b.Oldest.Equal(head) {
		t.Errorf("oldest: got %v, want the head %v", b.Oldest, head)
	}
}
